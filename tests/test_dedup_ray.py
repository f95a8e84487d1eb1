"""The dedup stages through the Ray runner's own driver and segment tasks: one worker at a time and two in
parallel give the same kept set as each other and as the in-process driver."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import write_shards

from tokenmill.dedup.exact import ExactDedup
from tokenmill.dedup.local import run_global_locally
from tokenmill.dedup.minhash import MinHashDedup
from tokenmill.ingest.synth import article_text, make_article, near_duplicate, render_blocks
from tokenmill.pipeline.plan import StageSpec
from tokenmill.pipeline.runner import _drive
from tokenmill.pipeline.segment import SegmentShard, run_segment
from tokenmill.pipeline.tasks import run_tasks
from tokenmill.stage import Phases, Task

SEED = 23
N_SHARDS = 4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    rows = []
    for i in range(160):
        rng = np.random.default_rng([SEED, i])
        art = make_article("en", SEED, rng)
        text = article_text(render_blocks(art, SEED))
        rows.append({"id": f"src-{i:04d}", "text": text, "warc_date": f"2024-01-{1 + i % 28:02d}"})
        if i % 4 == 0 and art.n_words >= 120:  # chains: src ~ d1 ~ d2 (d2 is an edit of d1)
            d1, _ = near_duplicate(art, 0.9, SEED, rng)
            d2, _ = near_duplicate(d1, 0.9, SEED, rng)
            rows += [{"id": f"d1-{i:04d}", "text": article_text(render_blocks(d1, SEED))},
                     {"id": f"d2-{i:04d}", "text": article_text(render_blocks(d2, SEED))}]
        if i % 7 == 0:
            rows.append({"id": f"copy-{i:04d}", "text": text.upper()})
    rows = [rows[k] for k in np.random.default_rng(SEED).permutation(len(rows))]
    return write_shards(rows, tmp_path_factory.mktemp("ray-dedup"), N_SHARDS)


def with_cpus(phases: Phases, cpus: float) -> Phases:
    """The same phases, each task asking for `cpus` CPUs: 2 on a 2-CPU Ray means one task at a time."""
    results = None
    while True:
        try:
            tasks = next(phases) if results is None else phases.send(results)
        except StopIteration:
            return
        results = yield [dataclasses.replace(t, num_cpus=cpus) for t in tasks]


def run_on_ray(name: str, params: dict, inputs: list[str], out, cpus: float) -> set[str]:
    spec = StageSpec(name, params)
    workdir = out / "work"
    _drive(with_cpus(spec.build().prepare(inputs, str(workdir)), cpus), out / "_done" / name, name, 0, False)
    tasks = [Task(f"shard-{i:05d}", run_segment, (SegmentShard(
        index=i, source_path=p, input_spec=None, stages=(spec,), stage_keys=(name,),
        out_path=str(out / "documents" / f"shard-{i:05d}.parquet"), rejected_dir=str(out / "rejected"),
        batch_size=50, rejected_sample_rate=1.0, global_workdir=str(workdir)),), cpus) for i, p in enumerate(inputs)]
    results = run_tasks(tasks, out / "_done" / "segment", max_retries=0, progress=False)
    assert all(r["stages"][name]["docs_in"] == r["stages"][name]["docs_kept"] + sum(r["stages"][name]["dropped"].values())
               for r in results)
    kept = pa.concat_tables([pq.read_table(r["output"]) for r in results])
    return set(kept["id"].to_pylist())


@pytest.mark.parametrize("name,stage_cls,params", [
    ("minhash_dedup", MinHashDedup, {"partitions": 3}),
    ("exact_dedup", ExactDedup, {"partitions": 3}),
])
def test_one_and_two_workers_keep_the_same_documents(ray_local, inputs, tmp_path, name, stage_cls, params):
    params = stage_cls.Config(**params).model_dump(mode="json")
    one = run_on_ray(name, params, inputs, tmp_path / "one", cpus=2)
    two = run_on_ray(name, params, inputs, tmp_path / "two", cpus=1)
    local = run_global_locally(stage_cls(stage_cls.Config(**params)), inputs, str(tmp_path / "local"))
    local_kept = {r["id"] for t in local for r in t.to_pylist() if r["drop_reason"] is None}
    assert one == two == local_kept
    n_in = sum(pq.read_metadata(p).num_rows for p in inputs)
    assert 0 < n_in - len(one) < n_in // 2
    if name == "minhash_dedup":  # every chain src ~ d1 ~ d2 collapsed to one document (the dated src)
        chains = {r["id"][3:] for t in local for r in t.to_pylist() if r["id"].startswith("d1-")}
        assert chains and all(f"src-{c}" in one and f"d1-{c}" not in one and f"d2-{c}" not in one for c in chains)
