"""Run a GlobalStage without Ray: its phases one task after another, then the per-shard pass.

The same protocol the Ray runner follows (tokenmill.stage.GlobalStage), in one process: handy on a laptop, in
tests, and to check that a stage's result does not depend on how its tasks were scheduled.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.stage import GlobalStage, ShardInfo


def run_phases(stage: GlobalStage, inputs: list[str], workdir: str) -> list[list[dict]]:
    """Drive `stage.prepare` to the end, running each phase's tasks in order. Returns every phase's results."""
    phases = stage.prepare(list(inputs), str(workdir))
    history: list[list[dict]] = []
    results = None
    while True:
        try:
            tasks = next(phases) if results is None else phases.send(results)
        except StopIteration:
            return history
        results = [task.fn(*task.args) or {} for task in tasks]
        history.append(results)


def run_global_locally(stage: GlobalStage, inputs: list[str], workdir: str,
                       batch_size: int | None = None) -> list[pa.Table]:
    """All phases, then every shard through a fresh stage instance (as a worker would). One table per input."""
    run_phases(stage, inputs, workdir)
    out = []
    for i, path in enumerate(inputs):
        worker = type(stage)(stage.config)
        worker.workdir = str(workdir)
        worker.shard = ShardInfo(i, f"shard-{i:05d}", str(path))
        worker.setup()
        pf = pq.ParquetFile(path)
        size = batch_size or max(pf.metadata.num_rows, 1)
        batches, offset = [], 0
        for b in pf.iter_batches(batch_size=size):
            worker.row_offset, offset = offset, offset + b.num_rows  # as the runner's segment does
            batches.append(worker.process(pa.Table.from_batches([b])))
        out.append(pa.concat_tables(batches, promote_options="default") if batches else pf.schema_arrow.empty_table())
    return out
