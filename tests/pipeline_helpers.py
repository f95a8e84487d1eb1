"""Small helpers for the pipeline tests: write a job spec, read a run's documents back."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from tokenmill.schema import documents_from_pylist


def write_job(path: Path, crawl: Path | str, out: Path, stages: list | None = None, **extra) -> Path:
    spec = {"name": "test", "output": str(out), "batch_size": 64,
            "inputs": [{"paths": [f"{crawl}/crawl-*.warc.gz"], "source": "cc/TEST"}],
            "stages": stages or [], **extra}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def read_dir(folder: Path) -> pa.Table:
    files = sorted(folder.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default") if files else None


def documents(out: Path) -> pa.Table:
    return read_dir(out / "documents")


def rows_by_id(table: pa.Table) -> dict[str, dict]:
    return {r["id"]: r for r in table.to_pylist()}


def write_shards(rows: list[dict], folder: Path, n_shards: int) -> list[str]:
    """Document rows dealt round-robin into `n_shards` Parquet files (the inputs of a global stage)."""
    paths = []
    for s in range(n_shards):
        paths.append(str(folder / f"in-{s}.parquet"))
        pq.write_table(documents_from_pylist(rows[s::n_shards]), paths[-1])
    return paths
