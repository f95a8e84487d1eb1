"""Run a phase of `Task`s as Ray tasks: skip those already done, retry on worker death, show progress.

Each task writes its own done-marker (with its result) after its outputs are in place, so a killed driver loses
nothing that finished: the re-run reads the marker instead of running the task again.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import ray

from tokenmill.config import ConfigError
from tokenmill.io import atomic_write_json, read_json
from tokenmill.stage import Task


def _marker_path(done_dir: Path, key: str) -> Path:
    return done_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".json")


def execute_task(fn, args: tuple, marker: str) -> dict:
    """Runs inside a Ray worker (or inline). The marker is written last: it means "outputs complete"."""
    t0 = time.perf_counter()
    result = fn(*args) or {}
    atomic_write_json(marker, {"result": result, "seconds": round(time.perf_counter() - t0, 3)})
    return result


_execute_remote = ray.remote(execute_task)


def run_tasks(tasks: list[Task], done_dir: Path, *, max_retries: int = 3, desc: str = "",
              progress: bool = True) -> list[dict]:
    """Run every task not yet done; return all results in task order."""
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{desc}: task keys must be unique within a phase")
    done_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict | None] = [None] * len(tasks)
    pending: dict = {}
    for i, t in enumerate(tasks):
        marker = _marker_path(done_dir, t.key)
        if marker.exists():
            results[i] = read_json(marker)["result"]
            continue
        opts = {"max_retries": max_retries, "num_cpus": t.num_cpus}
        pending[_execute_remote.options(**opts).remote(t.fn, t.args, str(marker))] = i
    bar = _progress(len(tasks), len(tasks) - len(pending), desc) if progress else None
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            i = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayTaskError as err:  # bad input found by a task: one line naming it
                if isinstance(err.cause, ConfigError):
                    raise ConfigError(f"{desc or 'task'} {keys[i]}: {err.cause}") from None
                raise
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return [r if r is not None else {} for r in results]


def _progress(total: int, done: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=desc, unit="task", file=sys.stderr, leave=True,
                disable=not sys.stderr.isatty())
