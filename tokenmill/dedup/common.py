"""What the dedup stages share: node keys, the survivor rule, partitioned exchange files, per-shard decisions.

A document is named inside the global phases by a 64-bit *node key* `shard << 32 | row` (its position in the
stage's input list and in its shard file), so that keys sort in input order and need no string joins. The
per-shard pass joins decisions back by document `id`.

The survivor of a group (exact duplicates, a MinHash cluster) is the first row after sorting by
(rank, id, key), with `rank` set by the `keep` rule:
  first     input order (shard, then row)
  earliest  smallest `warc_date` (ISO-8601 sorts chronologically); missing dates last
  longest   most characters of text
  quality   highest value of `quality_column`; missing scores last
Ties go to the smallest id, then the earliest input position: the result never depends on task order.
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

KeepRule = Literal["first", "earliest", "longest", "quality"]
ROW_BITS = 32  # rows per shard < 2**32; shards < 2**32


def node_keys(shard: int, n: int) -> np.ndarray:
    return (np.uint64(shard) << np.uint64(ROW_BITS)) | np.arange(n, dtype=np.uint64)


def key_shard(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(ROW_BITS)).astype(np.int64)


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
    """Row order that puts each group together with its survivor first: by (group, rank, id, key)."""
    keys = [(c, "ascending", "at_end") for c in (group, "rank", "id", "key")]
    return pc.sort_indices(table, sort_keys=keys).to_numpy()


def group_starts(sorted_groups: np.ndarray) -> np.ndarray:
    """Boolean (N,): True where a new group begins in an array sorted by group."""
    first = np.ones(len(sorted_groups), bool)
    first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    return first


def write_parquet(table: pa.Table, path: str) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_parquets(paths: list[str], schema: pa.Schema | None = None) -> pa.Table | None:
    tables = [pq.read_table(p) for p in paths]
    if not tables:
        return schema.empty_table() if schema is not None else None
    return pa.concat_tables(tables, promote_options="default")


def shard_files(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


def lookup_by_id(ids: pa.ChunkedArray | pa.Array, decisions: pa.Table) -> np.ndarray:
    """For each document id, the row of `decisions` with that id, or -1."""
    if decisions.num_rows == 0:
        return np.full(len(ids), -1, np.int64)
    idx = pc.index_in(ids, value_set=decisions[ID].combine_chunks())
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def column_from(decisions: pa.Table, name: str, idx: np.ndarray, typ: pa.DataType) -> pa.Array:
    """decisions[name] taken at idx, null where idx == -1."""
    if decisions.num_rows == 0:
        return pa.nulls(len(idx), typ)
    mask = pa.array(idx < 0)
    taken = decisions[name].combine_chunks().take(pa.array(np.maximum(idx, 0)))
    return pc.if_else(mask, pa.scalar(None, typ), taken.cast(typ))


def shard_dir(workdir: str, kind: str, shard: int) -> str:
    return os.path.join(workdir, kind, f"shard-{shard:05d}")
