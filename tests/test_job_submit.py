"""`ray job submit` against a real `ray start --head` on loopback, exactly as a data engineer would."""

from __future__ import annotations

import json
import sys

import pytest
from pipeline_helpers import documents, write_job
from raycluster import LoopbackCluster

pytestmark = [pytest.mark.ray_cluster, pytest.mark.slow]


def test_submitted_job_runs_to_completion(small_crawl, tmp_path):
    workdir = tmp_path / "wd"
    workdir.mkdir()
    out = tmp_path / "out"
    write_job(workdir / "job.yaml", small_crawl, out, [{"pii": {}}])
    with LoopbackCluster(tmp_path / "ray", head_cpus=2) as cluster:
        proc = cluster.submit(f"{sys.executable} -m tokenmill.cli run job.yaml --no-progress", workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr
    stats = json.loads((out / "report" / "stats.json").read_text())
    truth = (small_crawl / "ground_truth.jsonl").read_text().splitlines()
    assert stats["funnel"][0]["docs_in"] == len(truth)
    assert documents(out).num_rows == stats["documents_out"] > 0
