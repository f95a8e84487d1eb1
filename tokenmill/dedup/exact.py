"""Exact deduplication on normalized text, hash-partitioned through files.

  phase 1, one task per shard:     normalize (ngrams.normalize: NFKC, lowercase, no punctuation, one space), hash
                                   each text to 128 bits (xxh3-128), write (hash, key, id, rank) partitioned by
                                   hash into one exchange file `hashes/shard-S.arrows` (common.write_partitioned);
  phase 2, one task per partition: read its partition from every shard's file, sort by (hash, rank, key): the
                                   first row of each hash group survives, the others (row, id, duplicate_of) go
                                   into `decisions/part-P.arrows`, partitioned by shard;
  per shard:                       reads its partition of every decisions file; the rows at those positions get
                                   `drop_reason = exact_dedup.duplicate` and `exact_dedup.duplicate_of` = the kept
                                   copy's id (two rows with one id and one text: the later is a duplicate).

Files: S + P exchange files (+ P stats) for S shards and P partitions, where one file per (shard, partition) made
S × P + (shards with duplicates per partition) × P. No task holds more than one shard or one partition (1/P of
all hashes). Texts that normalize to nothing are left alone (the filters own empty pages).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import Field

from tokenmill.dedup import common
from tokenmill.dedup.ngrams import normalized_text
from tokenmill.io import atomic_write_json, read_json
from tokenmill.schema import ID, TEXT, set_column, with_drop_reason
from tokenmill.stage import GlobalStage, Phases, StageConfig, Task

REASON = "exact_dedup.duplicate"
DUPLICATE_OF = "exact_dedup.duplicate_of"


class ExactDedupConfig(StageConfig):
    partitions: int | None = Field(default=None, ge=1)  # None: common.partition_count
    keep: common.KeepRule = "first"
    quality_column: str | None = None


def hash_shard(path: str, shard: int, workdir: str, cfg: dict, parts: int) -> dict:
    """Phase 1: (hash_hi, hash_lo, key, id, rank) of every active row, split into partition files."""
    c = ExactDedupConfig(**cfg)
    table = common.input_columns(path, c.keep, c.quality_column)
    texts = normalized_text(table[TEXT])
    active = common.active_mask(table) & np.array([bool(t) for t in texts], bool)
    digest = np.frombuffer(b"".join(xxhash.xxh3_128_digest(t.encode()) for t in texts), ">u8").reshape(-1, 2)
    hi, lo = digest[:, 0].astype(np.uint64), digest[:, 1].astype(np.uint64)
    out = pa.table({"h_hi": hi, "h_lo": lo, "key": common.node_keys(shard, table.num_rows),
                    "id": table[ID], "rank": common.rank_column(table, c.keep, c.quality_column)})
    out = out.filter(pa.array(active))
    common.write_partitioned(out, common.partition_of(out["h_hi"].to_numpy(), parts), parts, _hashes(workdir, shard))
    return {"shard": shard, "docs": int(active.sum())}


def resolve_partition(p: int, n_shards: int, workdir: str) -> dict:
    """Phase 2: survivors of partition p; the duplicates' decisions, partitioned by shard."""
    t = common.read_partition([_hashes(workdir, s) for s in range(n_shards)], p)
    t = t.append_column("grp", pa.array(_group_codes(t)))
    t = t.take(pa.array(common.survivor_order(t, "grp")))
    first = common.group_starts(t["grp"].to_numpy())
    kept_row = np.maximum.accumulate(np.where(first, np.arange(t.num_rows), 0))
    dup = ~first
    keys = t["key"].to_numpy()[dup]
    dups = pa.table({"row": common.key_row(keys), ID: t[ID].take(pa.array(np.flatnonzero(dup))),
                     DUPLICATE_OF: t[ID].take(pa.array(kept_row[dup]))})
    common.write_partitioned(dups, common.key_shard(keys), n_shards,
                             os.path.join(workdir, "decisions", f"part-{p:05d}.arrows"))
    sizes = np.diff(np.append(np.flatnonzero(first), t.num_rows))
    stats = {"partition": p, "docs": t.num_rows, "duplicates": int(dup.sum()),
             "groups_with_duplicates": int((sizes > 1).sum()), "largest_group": int(sizes.max(initial=0))}
    atomic_write_json(os.path.join(workdir, "stats", f"part-{p:04d}.json"), stats)
    return stats


def _hashes(workdir: str, shard: int) -> str:
    return os.path.join(workdir, "hashes", f"shard-{shard:05d}.arrows")


def _group_codes(t: pa.Table) -> np.ndarray:
    """A dense int64 code per distinct 128-bit hash (pyarrow sorts one column faster than two)."""
    hi, lo = t["h_hi"].to_numpy(), t["h_lo"].to_numpy()
    order = np.lexsort((lo, hi))
    new = np.ones(len(order), bool)
    new[1:] = (hi[order][1:] != hi[order][:-1]) | (lo[order][1:] != lo[order][:-1])
    codes = np.empty(len(order), np.int64)
    codes[order] = np.cumsum(new) - 1
    return codes


class ExactDedup(GlobalStage):
    """Drop every document whose normalized text equals an earlier (by the `keep` rule) document's."""

    name = "exact_dedup"
    Config = ExactDedupConfig

    def check(self) -> None:
        common.check_keep_rule(self.config.keep, self.config.quality_column)

    def prepare(self, inputs: list[str], workdir: str) -> Phases:
        cfg, parts = self.config.model_dump(), common.partition_count(self.config.partitions, len(inputs))
        yield [Task(f"hash-{i:05d}", hash_shard, (p, i, workdir, cfg, parts)) for i, p in enumerate(inputs)]
        yield [Task(f"resolve-{p:04d}", resolve_partition, (p, len(inputs), workdir)) for p in range(parts)]

    def setup(self) -> None:
        assert self.workdir is not None and self.shard is not None, "the runner sets workdir and shard"
        self.row_offset = 0  # an instance set up again for another shard starts at its first row
        paths = common.shard_files(os.path.join(self.workdir, "decisions", "part-*.arrows"))
        schema = pa.schema([("row", pa.int64()), (ID, pa.string()), (DUPLICATE_OF, pa.string())])
        self._decisions = common.sorted_by_row(common.read_partition(paths, self.shard.index, schema))

    def process(self, table: pa.Table) -> pa.Table:
        idx = common.batch_lookup(self, self._decisions, table)
        dup_of = common.column_from(self._decisions, DUPLICATE_OF, idx, pa.string())
        table = set_column(table, DUPLICATE_OF, dup_of)
        return with_drop_reason(table, pa.array(np.where(idx >= 0, REASON, None), pa.string()))

    def summary(self, workdir: str) -> dict:
        stats = [read_json(p) for p in common.shard_files(os.path.join(workdir, "stats", "*.json"))]
        return {"documents": sum(s["docs"] for s in stats),
                "documents_removed": sum(s["duplicates"] for s in stats),
                "groups_with_duplicates": sum(s["groups_with_duplicates"] for s in stats),
                "largest_group": max((s["largest_group"] for s in stats), default=0)}
