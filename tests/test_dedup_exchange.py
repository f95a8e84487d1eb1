"""The dedup exchange file: one file per producer holding every partition; a consumer reads only its own."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pytest

from tokenmill.dedup import common

SCHEMA = pa.schema([("key", pa.uint64()), ("id", pa.string())])


def test_each_partition_reads_back_its_rows_in_order_across_producers(tmp_path):
    rng = np.random.default_rng(0)
    paths, tables, parts_of = [], [], []
    for src in range(3):
        n = [500, 0, 37][src]  # one producer has nothing to send
        t = pa.table({"key": rng.integers(0, 2**63, n).astype(np.uint64), "id": [f"{src}-{i}" for i in range(n)]},
                     schema=SCHEMA)
        part = rng.integers(0, 6, n)  # partitions 6 and 7 stay empty everywhere
        paths.append(str(tmp_path / f"from-{src}.arrows"))
        common.write_partitioned(t, part, 8, paths[-1])
        tables.append(t)
        parts_of.append(part)
    assert sorted(os.listdir(tmp_path)) == ["from-0.arrows", "from-1.arrows", "from-2.arrows"]  # not 3 x 8
    for p in range(8):
        want = pa.concat_tables([t.filter(pa.array(part == p)) for t, part in zip(tables, parts_of, strict=True)])
        assert common.read_partition(paths, p).equals(want)
    # the whole file is still a valid Arrow stream (for debugging): every row, partition by partition
    with open(paths[0], "rb") as f:
        assert pa.ipc.open_stream(f.read()).read_all().num_rows == 500


def test_a_truncated_or_foreign_file_is_named_in_the_error(tmp_path):
    path = str(tmp_path / "from-0.arrows")
    common.write_partitioned(pa.table({"u": np.arange(10, dtype=np.uint64)}), np.arange(10) % 2, 2, path)
    with pytest.raises(ValueError, match="partition 5 asked for, the file has 2"):
        common.read_partition([path], 5)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:-3])
    with pytest.raises(ValueError, match=f"{path}: not a partitioned exchange file"):
        common.read_partition([path], 0)
