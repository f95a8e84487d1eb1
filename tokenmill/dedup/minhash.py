"""MinHash-LSH near-duplicate removal: signatures → LSH buckets → distributed connected components → one survivor.

  signatures  (per shard)      word 5-grams of the normalized text → 112 64-bit MinHashes (ngrams.py, whole
                               batches) → 14 band hashes of 8 rows; (band, band hash, key) rows partitioned by
                               band hash into `buckets/shard-S.arrows`; (key, id, rank) kept in `meta/`;
  buckets     (per partition)  every (band, hash) bucket with k > 1 documents gives k-1 star edges to its smallest
                               key: the candidate pairs;
  attach,     (per shard,      with `min_jaccard`: each candidate (u, v) gets u's signature in u's shard, then v's
  verify       twice)          shard keeps it if the two signatures agree on >= min_jaccard of their hashes; kept
                               edges go, both ways, into the first components step;
  components                   Large-Star/Small-Star rounds (components.py), each task one edge partition;
  members     (per shard)      the final labels of this shard's nodes joined with its meta, partitioned by root;
  choose      (per partition)  per cluster: survivor by the `keep` rule (common.py), size; decisions (by row) per
                               shard.
  per shard                    `minhash_dedup.cluster_id` (the survivor's id), `minhash_dedup.cluster_size`, and
                               `drop_reason = minhash_dedup.duplicate` for every member but the survivor (each
                               row on its own: a member's id may be shared by an unrelated document).

Every arrow above that changes the grouping (shard ↔ partition) is an exchange: each producer task writes ONE
file with all its consumers' partitions (common.write_partitioned) and each consumer reads its slice of every
producer's file. Files per run, S shards, P partitions, R Large-Star rounds: per shard buckets, meta, sigs,
candidates/b, verify, cc step 0, members (7S); per partition candidates/a, decisions, stats (3P); per round
large-star output, labels, small-star output ((3R - 1)P; the last round has no small-star): 7S + (3R + 2)P, 58 for
the 10k benchmark (S = 2, P = 4, R = 3), 360 for 100k (S = P = 20). One file per (producer, consumer) made up to
S·P in each of these exchanges.

Defaults are FineWeb's (Penedo et al. 2024, datatrove `MinhashConfig`): 5-grams, 14 bands × 8 rows — a pair is a
candidate with probability 1 - (1 - J^8)^14: 0.92 at Jaccard 0.8, 0.05 at 0.5; candidates are then verified on
their signatures (`min_jaccard`), which brings the 0.5 pairs to ~0 (tests/test_dedup_minhash.py). Text without
spaces (Chinese, Japanese) has no word 5-grams, only one whole-text shingle, so MinHash finds no near-duplicates in
it (as in FineWeb); exact dedup still removes its copies.
Measured (benchmarks/dedup.py --scale 1m, 5,000-document shards, P = S, every task in its own process, 2 cores):
10k / 100k / 1M documents with 10% planted near-duplicates in 6.2 / 21.7 / 96.7 s, 992 / 9,915 / 99,213 removed,
3,600 work files at 1M. Peak RSS of the largest task (a shard's signatures) 268 / 315 / 321 MiB; a typical
signatures task is 268 MiB at P = 4, 20 and 200 alike (the larger peaks are the odd task out of 20 or 200), and
every other phase stays within 95-175 MiB at all three sizes: memory per task follows the shard and partition
size, not the corpus.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from tokenmill.dedup import common, components
from tokenmill.dedup.ngrams import band_hashes, doc_shingles, minhash_params, minhash_signatures
from tokenmill.io import atomic_write_json, read_json
from tokenmill.schema import ID, TEXT, set_column, with_drop_reason
from tokenmill.stage import GlobalStage, Phases, StageConfig, Task

REASON = "minhash_dedup.duplicate"
CLUSTER_ID = "minhash_dedup.cluster_id"
CLUSTER_SIZE = "minhash_dedup.cluster_size"
SIGNATURE_BATCH = 4096  # documents hashed together: bounds the (S, K) temporaries to ~tens of MB


class MinHashDedupConfig(StageConfig):
    ngram: int = Field(default=5, ge=1)  # FineWeb: word 5-grams
    bands: int = Field(default=14, ge=1, le=65535)  # FineWeb: 14 buckets ...
    rows: int = Field(default=8, ge=1)  # ... of 8 hashes each (112 hashes)
    seed: int = 1
    partitions: int | None = Field(default=None, ge=1)  # None: common.partition_count
    keep: common.KeepRule = "earliest"
    quality_column: str | None = None
    # Candidate pairs whose signatures agree on fewer than this fraction of hashes are not merged (None: merge
    # every LSH candidate, as FineWeb does). 0.7 lies between the 0.5 pairs we must not merge and the 0.8 pairs
    # we must; with 112 hashes the estimate's σ is ≤ 0.05, so both sides are ≥ 2σ away.
    min_jaccard: float | None = Field(default=0.7, ge=0.0, le=1.0)


def signature_shard(path: str, shard: int, workdir: str, cfg: dict, parts: int) -> dict:
    """Phase 1: band hashes of every active document with at least one word, into partition files."""
    c = MinHashDedupConfig(**cfg)
    table = common.input_columns(path, c.keep, c.quality_column)
    keys = common.node_keys(shard, table.num_rows)
    active = common.active_mask(table)
    a_K, b_K = minhash_params(c.bands * c.rows, c.seed)
    bands_DB, has_DB, sigs_DK = [], [], []
    for lo in range(0, table.num_rows, SIGNATURE_BATCH):
        hashes, offsets = doc_shingles(table[TEXT].slice(lo, SIGNATURE_BATCH), c.ngram)
        sig_DK = minhash_signatures(hashes, offsets, a_K, b_K)
        bands_DB.append(band_hashes(sig_DK, c.bands, c.rows))
        if c.min_jaccard is not None:
            sigs_DK.append(sig_DK)
        has_DB.append(np.diff(offsets) > 0)
    use = active & (np.concatenate(has_DB) if has_DB else np.zeros(0, bool))
    bh_DB = np.concatenate(bands_DB)[use] if bands_DB else np.zeros((0, c.bands), np.uint64)
    D = int(use.sum())
    rows = pa.table({"band": np.tile(np.arange(c.bands, dtype=np.uint16), D), "bhash": bh_DB.reshape(-1),
                     "key": np.repeat(keys[use], c.bands)})
    common.write_partitioned(rows, common.partition_of(rows["bhash"].to_numpy(), parts), parts,
                             _path(workdir, "buckets", shard))
    if c.min_jaccard is not None:
        sig_DK = np.concatenate(sigs_DK)[use] if sigs_DK else np.zeros((0, c.bands * c.rows), np.uint64)
        components.save_npy(os.path.join(workdir, "sigs", f"shard-{shard:05d}.npy"), sig_DK)
    meta = pa.table({"key": keys, "id": table[ID], "rank": common.rank_column(table, c.keep, c.quality_column)})
    common.write_parquet(meta.filter(pa.array(use)), os.path.join(workdir, "meta", f"shard-{shard:05d}.parquet"))
    return {"shard": shard, "docs": int(active.sum()), "signed": D}


def bucket_partition(p: int, n_shards: int, workdir: str, parts: int, verify: bool) -> dict:
    """Phase 2: star edges (smallest key, other key) of every bucket with more than one document."""
    t = common.read_partition([_path(workdir, "buckets", s) for s in range(n_shards)], p)
    band, bh, key = (t[c].to_numpy() for c in ("band", "bhash", "key"))
    order = np.lexsort((key, bh, band))
    band, bh, key = band[order], bh[order], key[order]
    first = np.ones(len(key), bool)
    first[1:] = (band[1:] != band[:-1]) | (bh[1:] != bh[:-1])
    root = key[np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))]
    edges = components.unique_pairs(np.stack([root[~first], key[~first]], axis=1))  # a pair may share many bands
    if verify:
        _write_by_shard(edges, 0, n_shards, _path(workdir, "candidates/a", p))
    else:
        components.write_pairs(components.both_directions(edges), components.step_dir(workdir, 0), p, parts)
    return {"partition": p, "edges": len(edges)}


def _path(workdir: str, kind: str, producer: int) -> str:
    """The exchange file of one producer task (a shard or a partition) of one kind."""
    return os.path.join(workdir, kind, f"from-{producer:05d}.arrows")


def _write_by_shard(edges_E2: np.ndarray, col: int, n_shards: int, path: str, sig_EK: np.ndarray | None = None) -> None:
    """Edges (u, v) [and u's signature] partitioned by the shard of column `col`."""
    t = components.pairs_table(edges_E2)
    if sig_EK is not None:
        flat = pa.array(sig_EK.reshape(-1), pa.uint64())
        t = t.append_column("sig_u", pa.FixedSizeListArray.from_arrays(flat, sig_EK.shape[1]))
    common.write_partitioned(t, common.key_shard(edges_E2[:, col]), n_shards, path)


def _shard_sigs(workdir: str, shard: int, keys: np.ndarray) -> np.ndarray:
    """Signatures (E, K) of this shard's documents with the given keys (rows of sigs/ follow meta/ key order)."""
    meta_keys = common.read_parquets([os.path.join(workdir, "meta", f"shard-{shard:05d}.parquet")])["key"]
    sig_DK = np.load(os.path.join(workdir, "sigs", f"shard-{shard:05d}.npy"))
    return sig_DK[np.searchsorted(meta_keys.to_numpy(), keys)]


def attach_signatures(shard: int, workdir: str, n_shards: int, parts: int) -> dict:
    """Verify, step 1: candidate edges (u, v) with u in this shard get u's signature, then go to v's shard."""
    t = common.read_partition([_path(workdir, "candidates/a", p) for p in range(parts)], shard)
    edges = components.table_pairs(t)
    _write_by_shard(edges, 1, n_shards, _path(workdir, "candidates/b", shard), _shard_sigs(workdir, shard, edges[:, 0]))
    return {"shard": shard, "candidates": len(edges)}


def verify_shard(shard: int, workdir: str, n_shards: int, parts: int, min_jaccard: float) -> dict:
    """Verify, step 2: keep the edges (u, v), v in this shard, whose signatures agree on >= min_jaccard."""
    t = common.read_partition([_path(workdir, "candidates/b", s) for s in range(n_shards)], shard)
    edges = components.table_pairs(t)
    K = t.schema.field("sig_u").type.list_size
    sig_u_EK = t["sig_u"].combine_chunks().flatten().to_numpy().reshape(len(edges), K)
    est_E = (sig_u_EK == _shard_sigs(workdir, shard, edges[:, 1])).mean(axis=1)
    ok = est_E >= min_jaccard
    atomic_write_json(os.path.join(workdir, "verify", f"shard-{shard:05d}.json"), {"rejected": int((~ok).sum())})
    components.write_pairs(components.both_directions(edges[ok]), components.step_dir(workdir, 0), shard, parts)
    return {"shard": shard, "edges": int(ok.sum()), "rejected": int((~ok).sum())}


def members_shard(shard: int, workdir: str, labels_step: int | None, parts: int) -> dict:
    """Phase: this shard's clustered nodes (key, root) joined with meta (id, rank), partitioned by root."""
    labels = np.zeros((0, 2), np.uint64)
    if labels_step is not None:
        labels = components.read_labels(workdir, labels_step, parts, shard)
    meta = common.read_parquets([os.path.join(workdir, "meta", f"shard-{shard:05d}.parquet")])
    row = pc.index_in(pa.array(labels[:, 0]), value_set=meta["key"]).to_numpy(zero_copy_only=False)
    m = meta.take(pa.array(row.astype(np.int64))).append_column("root", pa.array(labels[:, 1]))
    common.write_partitioned(m, common.partition_of(labels[:, 1], parts), parts, _path(workdir, "members", shard))
    return {"shard": shard, "clustered": len(labels)}


def choose_partition(p: int, n_shards: int, workdir: str) -> dict:
    """Phase: survivor and size of every cluster whose root falls in partition p; decisions per shard."""
    t = common.read_partition([_path(workdir, "members", s) for s in range(n_shards)], p)
    t = t.take(pa.array(common.survivor_order(t, "root")))
    first = common.group_starts(t["root"].to_numpy())
    starts = np.flatnonzero(first)
    sizes_C = np.diff(np.append(starts, t.num_rows))
    cluster_N = np.cumsum(first) - 1
    dec = pa.table({"row": common.key_row(t["key"].to_numpy()), ID: t[ID],
                    CLUSTER_ID: t[ID].take(pa.array(starts[cluster_N])),
                    CLUSTER_SIZE: pa.array(sizes_C[cluster_N], pa.int64()), "duplicate": pa.array(~first)})
    common.write_partitioned(dec, common.key_shard(t["key"].to_numpy()), n_shards, _path(workdir, "decisions", p))
    hist = np.bincount(np.minimum(np.log2(np.maximum(sizes_C, 1)).astype(int), 20))
    stats = {"partition": p, "clusters": len(starts), "clustered_docs": t.num_rows,
             "duplicates": int((~first).sum()), "size_hist_log2": hist.tolist(),
             "largest_cluster": int(sizes_C.max(initial=0))}
    atomic_write_json(os.path.join(workdir, "stats", f"part-{p:04d}.json"), stats)
    return stats


class MinHashDedup(GlobalStage):
    """Keep one document per MinHash-LSH cluster of near-duplicates."""

    name = "minhash_dedup"
    Config = MinHashDedupConfig

    def check(self) -> None:
        common.check_keep_rule(self.config.keep, self.config.quality_column)

    def prepare(self, inputs: list[str], workdir: str) -> Phases:
        cfg, n = self.config.model_dump(), len(inputs)
        parts = common.partition_count(self.config.partitions, n)
        results = yield [Task(f"signatures-{i:05d}", signature_shard, (p, i, workdir, cfg, parts))
                         for i, p in enumerate(inputs)]
        verify = self.config.min_jaccard is not None
        results = yield [Task(f"buckets-{p:04d}", bucket_partition, (p, n, workdir, parts, verify))
                         for p in range(parts)]
        if verify and sum(r["edges"] for r in results):
            yield [Task(f"attach-{i:05d}", attach_signatures, (i, workdir, n, parts)) for i in range(n)]
            results = yield [Task(f"verify-{i:05d}", verify_shard, (i, workdir, n, parts, self.config.min_jaccard))
                             for i in range(n)]
        step = None
        if sum(r["edges"] for r in results):
            step = yield from components.connected_components(workdir, parts, n)
        yield [Task(f"members-{i:05d}", members_shard, (i, workdir, step, parts)) for i in range(n)]
        yield [Task(f"choose-{p:04d}", choose_partition, (p, n, workdir)) for p in range(parts)]

    def setup(self) -> None:
        assert self.workdir is not None and self.shard is not None, "the runner sets workdir and shard"
        self.row_offset = 0  # an instance set up again for another shard starts at its first row
        paths = common.shard_files(os.path.join(self.workdir, "decisions", "from-*.arrows"))
        schema = pa.schema([("row", pa.int64()), (ID, pa.string()), (CLUSTER_ID, pa.string()),
                            (CLUSTER_SIZE, pa.int64()), ("duplicate", pa.bool_())])
        self._decisions = common.sorted_by_row(common.read_partition(paths, self.shard.index, schema))

    def process(self, table: pa.Table) -> pa.Table:
        idx = common.batch_lookup(self, self._decisions, table)
        cluster = common.column_from(self._decisions, CLUSTER_ID, idx, pa.string())
        size = common.column_from(self._decisions, CLUSTER_SIZE, idx, pa.int64())
        dup = common.column_from(self._decisions, "duplicate", idx, pa.bool_())
        table = set_column(table, CLUSTER_ID, pc.coalesce(cluster, table[ID].combine_chunks()))
        table = set_column(table, CLUSTER_SIZE, pc.fill_null(size, 1))
        dup_np = pc.fill_null(dup, False).to_numpy(zero_copy_only=False)
        return with_drop_reason(table, pa.array(np.where(dup_np, REASON, None), pa.string()))

    def summary(self, workdir: str) -> dict:
        stats = [read_json(p) for p in common.shard_files(os.path.join(workdir, "stats", "part-*.json"))]
        rejected = [read_json(p)["rejected"] for p in common.shard_files(os.path.join(workdir, "verify", "*.json"))]
        label_steps = common.shard_files(os.path.join(workdir, "cc", "labels-*"))  # one per Large-Star round
        width = max((len(s["size_hist_log2"]) for s in stats), default=0)
        hist = np.zeros(width, np.int64)
        for s in stats:
            hist[:len(s["size_hist_log2"])] += np.asarray(s["size_hist_log2"], np.int64)
        return {"documents_removed": sum(s["duplicates"] for s in stats),
                "clusters": sum(s["clusters"] for s in stats),
                "clustered_documents": sum(s["clustered_docs"] for s in stats),
                "largest_cluster": max((s["largest_cluster"] for s in stats), default=0),
                "candidate_pairs_rejected": sum(rejected), "components_rounds": len(label_steps),
                "cluster_size_histogram": {f"{2**i}-{2**(i + 1) - 1}": int(c) for i, c in enumerate(hist) if c}}
