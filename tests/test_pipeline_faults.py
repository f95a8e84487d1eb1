"""Kill a Ray worker mid-task, or the driver mid-run: the re-run's output equals a clean run's, no duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pipeline_helpers import documents, rows_by_id, write_job

from tokenmill.pipeline.runner import run_job

STAGES = [{"pii": {}}]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    from tokenmill.ingest.generate import generate_crawl

    out = tmp_path_factory.mktemp("faultcrawl")
    generate_crawl(out, n_docs=1200, n_files=6, seed=11)
    return out


@pytest.fixture(scope="module")
def reference(ray_local, crawl, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    result = run_job(write_job(tmp / "job.yaml", crawl, tmp / "out", STAGES), progress=False)
    return rows_by_id(documents(result.output)), result.stats["funnel"]


def _task_pids() -> list[int]:
    """Ray sets a worker's process title to `ray::<function>` while it runs a task."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"ray::execute_task"):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def test_worker_killed_mid_task_is_retried(reference, crawl, tmp_path):
    job = write_job(tmp_path / "job.yaml", crawl, tmp_path / "out", STAGES)
    killed: list[int] = []

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for pid in _task_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    result = run_job(job, progress=False)
    t.join()
    assert killed, "no running task was found to kill"
    docs = documents(result.output)
    assert len(set(docs["id"].to_pylist())) == docs.num_rows
    assert rows_by_id(docs) == reference[0]
    assert result.stats["funnel"] == reference[1]


def test_driver_killed_then_rerun_gives_identical_output(reference, crawl, tmp_path):
    out = tmp_path / "out"
    job = write_job(tmp_path / "job.yaml", crawl, out, STAGES, batch_size=16)
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    proc = subprocess.Popen([sys.executable, "-m", "tokenmill.cli", "run", str(job), "--no-progress"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = out / "_done" / "documents"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(done.glob("*.json"))) < 1 and proc.poll() is None:
        time.sleep(0.05)
    finished_before_kill = len(list(done.glob("*.json")))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= finished_before_kill < 6, "the driver should be killed partway through"
    result = run_job(job, progress=False)  # the re-run, in this process's embedded Ray
    docs = documents(result.output)
    assert len(set(docs["id"].to_pylist())) == docs.num_rows
    assert rows_by_id(docs) == reference[0]
