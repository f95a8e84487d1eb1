"""What the dedup stages share: node keys, the survivor rule, partitioned exchange files, per-shard decisions.

A document is named inside the global phases by a 64-bit *node key* `shard << 32 | row` (its position in the
stage's input list and in its shard file), so that keys sort in input order and need no string joins. Decisions
keep that position: each goes, with its `row`, to its shard's task, whose `process()` joins them to the batch rows
[row_offset, row_offset + n) (`GlobalStage.row_offset`, set by the runner). The `id` is only a name: two rows
with one id are two documents (each kept or dropped on its own), and `id` names the kept copy in the output.

The survivor of a group (exact duplicates, a MinHash cluster) is the first row after sorting by
(rank, key), with `rank` set by the `keep` rule:
  first     input order (shard, then row)
  earliest  smallest `warc_date` (ISO-8601 sorts chronologically); missing dates last
  longest   most characters of text
  quality   highest value of `quality_column`; missing scores last
Ties go to the earliest input position (the node key), so `earliest` on documents without dates keeps the first
in input order, like `first`; the result never depends on task order.

Exchange files (`write_partitioned` / `read_partition`): every all-to-all step between phases has each producer
task write ONE file holding all P partitions, so a phase writes as many files as it has tasks, not tasks × P.
The file is an Arrow IPC stream (schema, an empty batch, one record batch per non-empty partition in partition
order, end-of-stream), then a trailer: P+1 little-endian uint64 byte offsets (batch p spans [off[p], off[p+1]),
the header is [0, off[0])), P, and the magic `TMPART01`. A consumer reads the trailer's 16 + 16 bytes, the header
and its own batch: a constant ~0.1 ms per (producer, partition) at any P, where a Parquet row group per partition
costs a footer parse that grows with P (~270 B per row group: 24 ms to read one of 10,000, measured). Empty
partitions take no bytes; a non-empty one costs ~240 B of batch metadata (3 columns) besides its rows.
"""

from __future__ import annotations

import glob
import os
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.config import ConfigError
from tokenmill.io import atomic_path
from tokenmill.schema import DROP_REASON, ID, TEXT, WARC_DATE
from tokenmill.stage import GlobalStage

KeepRule = Literal["first", "earliest", "longest", "quality"]
ROW_BITS = 32  # rows per shard < 2**32; shards < 2**32


def node_keys(shard: int, n: int) -> np.ndarray:
    return (np.uint64(shard) << np.uint64(ROW_BITS)) | np.arange(n, dtype=np.uint64)


def key_shard(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(ROW_BITS)).astype(np.int64)


def key_row(keys: np.ndarray) -> np.ndarray:
    return (keys & np.uint64(2**ROW_BITS - 1)).astype(np.int64)


def partition_of(hashes: np.ndarray, parts: int) -> np.ndarray:
    """Partition of each 64-bit hash; the high bits are used so that it is independent of any low-bit bucketing."""
    return ((hashes >> np.uint64(32)) % np.uint64(parts)).astype(np.int64)


MIN_PARTITIONS = 4


def partition_count(configured: int | None, n_inputs: int) -> int:
    """Hash partitions for the exchange phases: as configured, else one per input shard (at least 4), so that
    each partition task holds about one shard's worth of hashes however large the corpus grows."""
    return configured if configured is not None else max(n_inputs, MIN_PARTITIONS)


def check_keep_rule(keep: KeepRule, quality_column: str | None) -> None:
    if keep == "quality" and not quality_column:
        raise ConfigError("keep: 'quality' needs quality_column (the score column written by a quality filter)")


def document_columns(path: str) -> list[str]:
    """The column names of a document file; ValueError naming the file when `id` or `text` is missing."""
    names = pq.read_schema(path).names
    missing = [c for c in (ID, TEXT) if c not in names]
    if missing:
        raise ValueError(f"{path}: not a document file: no column {', '.join(missing)} (columns: {names})")
    return names


def input_columns(path: str, keep: KeepRule, quality_column: str | None) -> pa.Table:
    """The columns a global phase needs from one input shard (id, text, drop_reason, the rule's column)."""
    names = document_columns(path)
    cols = [ID, TEXT] + [c for c in (DROP_REASON,) if c in names]
    if keep == "earliest" and WARC_DATE in names:
        cols.append(WARC_DATE)
    if keep == "quality":
        if quality_column not in names:
            raise ConfigError(f"{path}: keep='quality' but the column {quality_column!r} is missing "
                              "(run the quality filter before this stage)")
        cols.append(quality_column)
    return pq.read_table(path, columns=cols)


def active_mask(table: pa.Table) -> np.ndarray:
    """Rows that take part: not already dropped by an earlier stage."""
    if DROP_REASON not in table.column_names:
        return np.ones(table.num_rows, bool)
    return pc.is_null(table[DROP_REASON]).to_numpy(zero_copy_only=False)


def rank_column(table: pa.Table, keep: KeepRule, quality_column: str | None) -> pa.Array:
    """Ascending sort key for the survivor rule (nulls sort last)."""
    n = table.num_rows
    if keep == "earliest":
        if WARC_DATE not in table.column_names:
            return pa.nulls(n, pa.string())
        return table[WARC_DATE].combine_chunks().cast(pa.string())
    if keep == "longest":
        return pc.negate(pc.utf8_length(table[TEXT]).cast(pa.float64())).combine_chunks()
    if keep == "quality":
        return pc.negate(table[quality_column].cast(pa.float64())).combine_chunks()
    return pa.nulls(n, pa.float64())


def survivor_order(table: pa.Table, group: str) -> np.ndarray:
    """Row order that puts each group together with its survivor first: by (group, rank, key)."""
    keys = [(c, "ascending", "at_end") for c in (group, "rank", "key")]
    return pc.sort_indices(table, sort_keys=keys).to_numpy()


def group_starts(sorted_groups: np.ndarray) -> np.ndarray:
    """Boolean (N,): True where a new group begins in an array sorted by group."""
    first = np.ones(len(sorted_groups), bool)
    first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    return first


def write_parquet(table: pa.Table, path: str) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


PART_MAGIC = b"TMPART01"
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")  # halves hash/key partitions of a few thousand rows


def write_partitioned(table: pa.Table, part: np.ndarray, parts: int, path: str) -> None:
    """Write `table` to one exchange file, row i into partition part[i] (0 <= part < parts); row order within a
    partition is kept. Atomic: a killed task leaves no file, a re-run replaces it."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    batch = table.take(pa.array(order)).combine_chunks().to_batches()
    rows = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=table.schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as w:
        w.write_batch(rows.slice(0, 0))  # the header ends here; off[0] below
        offsets = [sink.tell()]
        for p in range(parts):
            if bounds[p + 1] > bounds[p]:
                w.write_batch(rows.slice(bounds[p], bounds[p + 1] - bounds[p]))
            offsets.append(sink.tell())
    trailer = np.asarray(offsets + [parts], "<u8").tobytes() + PART_MAGIC
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(sink.getvalue())
        f.write(trailer)


def _read_one_partition(path: str, p: int) -> pa.Table:
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - 16, 0))
        tail = f.read(16)
        if len(tail) < 16 or tail[8:] != PART_MAGIC:
            raise ValueError(f"{path}: not a partitioned exchange file (no {PART_MAGIC!r} trailer: truncated?)")
        parts = int(np.frombuffer(tail[:8], "<u8")[0])
        if not 0 <= p < parts:
            raise ValueError(f"{path}: partition {p} asked for, the file has {parts}")
        base = size - 16 - 8 * (parts + 1)
        f.seek(base)
        header_end = int(np.frombuffer(f.read(8), "<u8")[0])
        f.seek(base + 8 * p)
        lo, hi = (int(x) for x in np.frombuffer(f.read(16), "<u8"))
        f.seek(0)
        schema = pa.ipc.read_schema(pa.py_buffer(f.read(header_end)))
        if hi == lo:
            return schema.empty_table()
        f.seek(lo)
        return pa.Table.from_batches([pa.ipc.read_record_batch(pa.py_buffer(f.read(hi - lo)), schema)])


def read_partition(paths: list[str], p: int, schema: pa.Schema | None = None) -> pa.Table:
    """Partition p of every exchange file in `paths`, concatenated in path order (the schema's empty table if
    there are no paths)."""
    tables = [_read_one_partition(path, p) for path in paths]
    if not tables:
        if schema is None:
            raise ValueError(f"no exchange files to read partition {p} from")
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="default")


def read_parquets(paths: list[str], schema: pa.Schema | None = None) -> pa.Table | None:
    tables = [pq.read_table(p) for p in paths]
    if not tables:
        return schema.empty_table() if schema is not None else None
    return pa.concat_tables(tables, promote_options="default")


def shard_files(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


def sorted_by_row(decisions: pa.Table) -> pa.Table:
    """A shard's decisions (with `row` and `id` columns) in row order, as `lookup_rows` needs them."""
    return decisions.take(pc.sort_indices(decisions["row"]))


def batch_lookup(stage: GlobalStage, decisions: pa.Table, batch: pa.Table) -> np.ndarray:
    """`lookup_rows` for the batch `stage.process` was given, whose first row is shard row `stage.row_offset`;
    the offset then moves past the batch, so that a caller streaming a shard in order from its first row (as
    `local.run_global_locally` and the benchmarks do) need not set it. The runner sets it before every batch."""
    lo = stage.row_offset
    stage.row_offset = lo + batch.num_rows
    where = f"{stage.name} on {stage.shard.path if stage.shard is not None else 'its shard'}"
    try:
        return lookup_rows(decisions, batch[ID], lo, where)
    except RuntimeError as err:
        raise RuntimeError(f"{err}; remove {stage.workdir} to recompute the stage's decisions") from None


def lookup_rows(decisions: pa.Table, ids: pa.ChunkedArray | pa.Array, lo: int, where: str) -> np.ndarray:
    """For each row of a batch holding shard rows [lo, lo + len(ids)), the row of `decisions` (sorted by `row`)
    that decides it, or -1. A decision whose id is not the batch row's means the shard is not the file the phases
    read (or came out of order): a RuntimeError naming `where` and the row, never a silent wrong join."""
    n = len(ids)
    rows = decisions["row"].to_numpy()
    a, b = np.searchsorted(rows, [lo, lo + n])
    idx = np.full(n, -1, np.int64)
    idx[rows[a:b] - lo] = np.arange(a, b)
    if b > a:
        flat = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        got = flat.take(pa.array(rows[a:b] - lo)).cast(pa.string())
        want = decisions[ID].slice(a, b - a).combine_chunks().cast(pa.string())
        if not got.equals(want):
            k = int(np.argmin(pc.fill_null(pc.equal(got, want), False).to_numpy(zero_copy_only=False)))
            raise RuntimeError(f"{where}: row {rows[a + k]} has id {got[k].as_py()!r}, the global phases saw "
                               f"{want[k].as_py()!r} there: the shard changed since, or its batches came out of order")
    return idx


def column_from(decisions: pa.Table, name: str, idx: np.ndarray, typ: pa.DataType) -> pa.Array:
    """decisions[name] taken at idx, null where idx == -1."""
    if decisions.num_rows == 0:
        return pa.nulls(len(idx), typ)
    mask = pa.array(idx < 0)
    taken = decisions[name].combine_chunks().take(pa.array(np.maximum(idx, 0)))
    return pc.if_else(mask, pa.scalar(None, typ), taken.cast(typ))
