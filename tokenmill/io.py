"""Small file helpers every stage shares: atomic writes (temporary name, then rename) and fsspec opening.

A killed task must never leave a half-written file under its final name; readers may then trust any file
that exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _tmp_name(path: str | Path) -> str:
    path = str(path)
    return f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """Yield a temporary path to write to; renamed to `path` only if the block finishes without error."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ParquetSink:
    """Write tables to one Parquet file atomically; an empty sink still writes a valid file with the schema."""

    def __init__(self, path: str | Path, schema: pa.Schema | None = None) -> None:
        self.path = str(path)
        self.schema = schema
        self.rows = 0
        self._tmp = _tmp_name(path)
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0 and self._writer is not None:
            return
        if self._writer is None:
            self.schema = self.schema or table.schema
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> str:
        if self._writer is None:
            if self.schema is None:
                raise ValueError(f"{self.path}: nothing written and no schema given")
            self.write(self.schema.empty_table())
        assert self._writer is not None
        self._writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)
