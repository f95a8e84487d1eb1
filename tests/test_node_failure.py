"""A second Ray node dies mid-stage: its tasks are retried on the head and the output equals a clean run's."""

from __future__ import annotations

import sys
import time

import pytest
from pipeline_helpers import documents, rows_by_id, write_job
from raycluster import LoopbackCluster

from tokenmill.pipeline.runner import run_job

pytestmark = [pytest.mark.ray_cluster, pytest.mark.slow]
STAGES = [{"pii": {}}, {"repetition": {}}]


def test_job_survives_losing_a_node(ray_local, tmp_path):
    from tokenmill.ingest.generate import generate_crawl

    crawl = tmp_path / "crawl"
    generate_crawl(crawl, n_docs=1600, n_files=8, seed=3)
    clean = run_job(write_job(tmp_path / "clean.yaml", crawl, tmp_path / "clean", STAGES, batch_size=32),
                    progress=False)

    workdir = tmp_path / "wd"
    workdir.mkdir()
    out = tmp_path / "out"
    write_job(workdir / "job.yaml", crawl, out, STAGES, batch_size=32)
    with LoopbackCluster(tmp_path / "ray", head_cpus=1) as cluster:
        node = cluster.add_node(num_cpus=1)
        time.sleep(5)  # let the node register before the job's tasks are scheduled
        job_id = cluster.submit_no_wait(f"{sys.executable} -m tokenmill.cli run job.yaml --no-progress", workdir)
        done = out / "_done" / "documents"
        deadline = time.time() + 300
        while time.time() < deadline and len(list(done.glob("*.json"))) < 2:
            time.sleep(0.1)
        assert len(list(done.glob("*.json"))) < 8, "the node must die mid-stage"
        node.kill()
        state = cluster.wait_job(job_id, timeout=600)
        logs = cluster.job_logs(job_id)
    assert state == "SUCCEEDED", logs[-4000:]
    docs = documents(out)
    assert len(set(docs["id"].to_pylist())) == docs.num_rows
    assert rows_by_id(docs) == rows_by_id(documents(clean.output))
