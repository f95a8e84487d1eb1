"""One shard through a run of per-document stages: read in batches, process, split kept/dropped, count, write.

Memory is bounded by the batch size: the shard streams through, kept rows go to one Parquet file, dropped rows to
`rejected/<stage>/` (all, or a deterministic sample by document id), and the counts per stage come back as the
task's result (and its done-marker). in = kept + dropped is checked for every stage and batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from tokenmill.config import InputSpec
from tokenmill.io import ParquetSink
from tokenmill.pipeline.plan import StageSpec
from tokenmill.schema import DOC_SCHEMA, DROP_REASON, ID, TEXT
from tokenmill.stage import GlobalStage, ShardInfo, Stage, StageCounts

INGEST = "ingest"


@dataclass(frozen=True)
class SegmentShard:
    """Everything a worker needs to run one shard through one segment (picklable)."""

    index: int
    source_path: str  # a crawl file (first segment) or the previous step's Parquet shard
    input_spec: InputSpec | None  # set for the first segment: read with tokmill.ingest
    stages: tuple[StageSpec, ...]
    stage_keys: tuple[str, ...]  # report names, unique within the job
    out_path: str
    rejected_dir: str
    batch_size: int
    rejected_sample_rate: float
    global_workdir: str | None = None  # for a segment that starts with a GlobalStage's per-shard pass

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"


@dataclass
class _Worker:
    """Stages built and set up once per worker process (Ray reuses processes across tasks)."""

    built: dict[tuple, Stage] = field(default_factory=dict)

    def stage(self, spec: StageSpec, shard: SegmentShard, position: int) -> Stage:
        if position == 0 and shard.global_workdir is not None:
            st = spec.build()  # a global stage's pass reads per-shard decisions: fresh for every shard
            assert isinstance(st, GlobalStage)
            st.workdir = shard.global_workdir
            st.shard = ShardInfo(shard.index, shard.name, shard.source_path)
            st.setup()
            return st
        key = (spec.name, repr(sorted(spec.params.items())))
        if key not in self.built:
            st = spec.build()
            st.setup()
            self.built[key] = st
        return self.built[key]


_WORKER = _Worker()


def read_batches(shard: SegmentShard) -> Iterator[pa.Table]:
    if shard.input_spec is not None:
        from tokenmill.ingest import read_documents

        yield from read_documents(shard.input_spec, shard.source_path, shard.batch_size)
        return
    pf = pq.ParquetFile(shard.source_path)
    for batch in pf.iter_batches(batch_size=shard.batch_size):
        yield pa.Table.from_batches([batch])


def _text_bytes(table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    return int(pc.sum(pc.binary_length(table[TEXT].cast(pa.large_binary()))).as_py() or 0)


def sample_mask(ids: pa.ChunkedArray | pa.Array, rate: float) -> np.ndarray:
    """Deterministic per-document sample: the same documents are sampled on every run."""
    if rate >= 1.0:
        return np.ones(len(ids), dtype=bool)
    if rate <= 0.0:
        return np.zeros(len(ids), dtype=bool)
    limit = int(rate * 2**64)
    return np.fromiter((xxhash.xxh3_64_intdigest(s) < limit for s in ids.to_pylist()), bool, len(ids))


def split_dropped(table: pa.Table) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    dropped_mask = pc.is_valid(table[DROP_REASON])
    kept = table.filter(pc.invert(dropped_mask))
    dropped = table.filter(dropped_mask)
    counts: dict[str, int] = {}
    if dropped.num_rows:
        vc = pc.value_counts(dropped[DROP_REASON])
        counts = {v["values"].as_py(): v["counts"].as_py() for v in vc}
    return kept, dropped, counts


def run_segment(shard: SegmentShard) -> dict:
    """The Ray task body for one shard of one segment. Returns {stage_key: counts} and the output path."""
    keys = ((INGEST,) if shard.input_spec is not None else ()) + shard.stage_keys
    counts = {k: StageCounts() for k in keys}
    stages = [_WORKER.stage(spec, shard, i) for i, spec in enumerate(shard.stages)]
    sink = ParquetSink(shard.out_path)
    rejected: dict[str, ParquetSink] = {}
    head = stages[0] if stages and isinstance(stages[0], GlobalStage) else None
    offset = 0  # a global stage's decisions name rows of this shard file: each batch's first row, from 0
    try:
        for batch in read_batches(shard):
            if head is not None:
                head.row_offset = offset
            offset += batch.num_rows
            table = batch
            if shard.input_spec is not None:
                table = _account(counts[INGEST], INGEST, table, table, shard, rejected)
            for key, stage in zip(shard.stage_keys, stages, strict=True):
                if table.num_rows == 0:
                    break
                out = stage.process(table)
                if out.num_rows != table.num_rows:
                    raise RuntimeError(f"stage {key} returned {out.num_rows} rows for {table.num_rows}: "
                                       "stages must set drop_reason, never delete rows")
                table = _account(counts[key], key, table, out, shard, rejected)
            if table.num_rows:
                sink.write(table)
        if sink.schema is None:
            sink.schema = DOC_SCHEMA
        sink.close()
        for r in rejected.values():
            r.close()
    except BaseException:
        sink.abort()
        for r in rejected.values():
            r.abort()
        raise
    return {"shard": shard.index, "input": shard.source_path, "output": shard.out_path, "rows_out": sink.rows,
            "stages": {k: c.to_dict() for k, c in counts.items()}}


def _account(c: StageCounts, key: str, before: pa.Table, after: pa.Table, shard: SegmentShard,
             rejected: dict[str, ParquetSink]) -> pa.Table:
    kept, dropped, by_reason = split_dropped(after)
    c.add(StageCounts(before.num_rows, _text_bytes(before), kept.num_rows, _text_bytes(kept), by_reason))
    if not c.balanced():
        raise RuntimeError(f"accounting violated in stage {key} on {shard.name}: {c.to_dict()}")
    if dropped.num_rows:
        sample = dropped.filter(pa.array(sample_mask(dropped[ID], shard.rejected_sample_rate)))
        if sample.num_rows:
            if key not in rejected:
                path = os.path.join(shard.rejected_dir, key, f"{shard.name}.parquet")
                rejected[key] = ParquetSink(path)
            rejected[key].write(sample)
    return kept


def shard_output(step_dir: Path, index: int) -> str:
    return str(step_dir / f"shard-{index:05d}.parquet")
