"""MinHash-LSH dedup: planted near-duplicates at known Jaccard (the crawl generator's own synth), distributed
connected components against a reference union-find, and the survivor rule."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pipeline_helpers import write_shards

from tokenmill.dedup import components
from tokenmill.dedup.local import run_global_locally, run_phases
from tokenmill.dedup.minhash import CLUSTER_ID, CLUSTER_SIZE, REASON, MinHashDedup
from tokenmill.ingest.generate import NEAR_DUP_JACCARDS
from tokenmill.ingest.synth import article_text, make_article, near_duplicate, render_blocks

SEED = 11
PAIRS_PER_LEVEL = 40
SHARDS = 5  # node keys of the components test lie in shards 0..4


@pytest.fixture(scope="module")
def planted() -> tuple[list[dict], list[tuple[str, str, float]]]:
    """Sources, one near-duplicate each at every NEAR_DUP_JACCARDS level (measured Jaccard kept), and singles."""
    rows, pairs = [], []
    i = 0
    for level in NEAR_DUP_JACCARDS:
        made = 0
        while made < PAIRS_PER_LEVEL:
            rng = np.random.default_rng([SEED, i])
            art = make_article("en", SEED, rng)
            i += 1
            if art.n_words < 120:
                continue
            dup, jac = near_duplicate(art, level, SEED, rng)
            src_id, dup_id = f"src-{i:05d}", f"dup-{i:05d}"
            rows.append({"id": src_id, "text": article_text(render_blocks(art, SEED)), "warc_date": "2024-05-01"})
            rows.append({"id": dup_id, "text": article_text(render_blocks(dup, SEED)), "warc_date": "2024-03-01"})
            pairs.append((src_id, dup_id, jac))
            made += 1
    order = np.random.default_rng(SEED).permutation(len(rows))
    return [rows[k] for k in order], pairs


@pytest.fixture(scope="module")
def deduped(planted, tmp_path_factory) -> dict[str, dict]:
    rows, _ = planted
    tmp = tmp_path_factory.mktemp("minhash")
    out = run_global_locally(MinHashDedup(partitions=4), write_shards(rows, tmp, 3), str(tmp / "work"),
                             batch_size=100)
    return {r["id"]: r for t in out for r in t.to_pylist()}


def merged_rate(pairs, deduped, keep) -> tuple[float, int]:
    sel = [(a, b) for a, b, j in pairs if keep(j)]
    same = [deduped[a][CLUSTER_ID] == deduped[b][CLUSTER_ID] for a, b in sel]
    return float(np.mean(same)), len(sel)


def test_near_duplicates_at_or_above_08_are_merged(planted, deduped):
    recall, n = merged_rate(planted[1], deduped, lambda j: j >= 0.8)
    assert n >= 3 * PAIRS_PER_LEVEL and recall >= 0.95, f"recall {recall:.3f} over {n} pairs"


def test_pairs_at_or_below_05_are_kept_apart(planted, deduped):
    rate, n = merged_rate(planted[1], deduped, lambda j: j <= 0.5)
    assert n >= PAIRS_PER_LEVEL and rate <= 0.02, f"merge rate {rate:.3f} over {n} pairs"


def test_one_survivor_per_cluster_by_earliest_date(deduped):
    clusters: dict[str, list[dict]] = {}
    for r in deduped.values():
        clusters.setdefault(r[CLUSTER_ID], []).append(r)
    assert any(len(c) > 1 for c in clusters.values())
    for cid, members in clusters.items():
        kept = [m for m in members if m["drop_reason"] is None]
        assert len(kept) == 1 and kept[0]["id"] == cid
        assert all(m[CLUSTER_SIZE] == len(members) for m in members)
        assert all(m["drop_reason"] == REASON for m in members if m is not kept[0])
        # the near-duplicate carries the earlier date, so it is the one kept
        assert len(members) == 1 or kept[0]["id"].startswith("dup-")


def test_summary_counts_match_rows(planted, deduped, tmp_path):
    rows, _ = planted
    paths = write_shards(rows, tmp_path, 2)
    stage = MinHashDedup(partitions=3)
    out = run_global_locally(stage, paths, str(tmp_path / "w"))
    s = stage.summary(str(tmp_path / "w"))
    dropped = sum(t.num_rows - t["drop_reason"].null_count for t in out)
    assert s["documents_removed"] == dropped > 0
    assert sum(s["cluster_size_histogram"].values()) == s["clusters"]
    assert s["components_rounds"] >= 2  # at least one round that changes nothing
    # the same documents in 2 shards / 3 partitions as in 3 shards / 4 partitions: the same kept set
    kept = {r["id"] for t in out for r in t.to_pylist() if r["drop_reason"] is None}
    assert kept == {i for i, r in deduped.items() if r["drop_reason"] is None}


def reference_components(edges: np.ndarray) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


def run_components(edges: np.ndarray, workdir: str, parts: int) -> tuple[dict[int, int], int]:
    """Edges written from several source tasks, then the Large-Star/Small-Star phases, run one task at a time."""
    for src, chunk in enumerate(np.array_split(edges, 3)):
        components.write_pairs(components.both_directions(chunk), components.step_dir(workdir, 0), src, parts)
    phases, results, n_phases = components.connected_components(workdir, parts, SHARDS), None, 0
    try:
        while True:
            tasks = next(phases) if results is None else phases.send(results)
            results = [t.fn(*t.args) for t in tasks]
            n_phases += 1
    except StopIteration as stop:
        final = stop.value
    labels = np.concatenate([components.read_labels(workdir, final, parts, s) for s in range(SHARDS)])
    return {int(a): int(b) for a, b in labels}, n_phases


def test_components_equal_union_find_with_chains_across_shards(tmp_path):
    rng = np.random.default_rng(3)
    keys = np.unique((rng.integers(0, SHARDS, 4000).astype(np.uint64) << np.uint64(32))
                     | rng.integers(0, 2000, 4000).astype(np.uint64))
    random_edges = keys[rng.integers(0, len(keys), (1500, 2))]
    # chains a~b~c~... whose consecutive nodes sit in different shards (and so in different tasks)
    chain = keys[rng.permutation(len(keys))[:400]]
    chain_edges = np.stack([chain[:-1], chain[1:]], axis=1)
    edges = np.concatenate([random_edges, chain_edges])
    edges = edges[edges[:, 0] != edges[:, 1]]
    got, n_phases = run_components(edges, str(tmp_path), parts=5)
    assert got == reference_components(edges)
    assert len(set(got.values())) > 1 and n_phases < 2 * components.MAX_ROUNDS


def test_pipeline_phases_when_nothing_is_duplicated(tmp_path):
    rows = [{"id": f"d{i}", "text": f"unique document number {i} " + " ".join(f"w{i}x{k}" for k in range(20))}
            for i in range(30)] + [{"id": "empty", "text": ""}]
    paths = write_shards(rows, tmp_path, 2)
    stage = MinHashDedup(partitions=2)
    history = run_phases(stage, paths, str(tmp_path / "w"))
    assert [len(h) for h in history] == [2, 2, 2, 2]  # signatures, buckets, members, choose: no CC rounds
    out = run_global_locally(stage, paths, str(tmp_path / "w2"))
    t = pa.concat_tables(out)
    assert t["drop_reason"].null_count == t.num_rows
    assert set(t[CLUSTER_SIZE].to_pylist()) == {1}


def long_article(i: int):
    """A synth article of at least 120 words (near_duplicate needs room for its edits)."""
    while True:
        rng = np.random.default_rng([SEED, 10_000 + i])
        art = make_article("en", SEED, rng)
        if art.n_words >= 120:
            return art, rng
        i += 1_000


def test_rows_that_share_an_id_are_clustered_each_on_its_own(tmp_path):
    """A near-duplicate pair whose later member shares its id with an unrelated document: only that member goes,
    and (no dates) `earliest` keeps the pair's first in input order, not its smallest id."""
    art, rng = long_article(0)
    dup, jac = near_duplicate(art, 0.9, SEED, rng)
    other, _ = long_article(1)
    rows = [{"id": "zz", "text": article_text(render_blocks(art, SEED))},
            {"id": "aa", "text": article_text(render_blocks(other, SEED))},
            {"id": "aa", "text": article_text(render_blocks(dup, SEED))}]
    stage = MinHashDedup(partitions=2, keep="earliest")
    out = run_global_locally(stage, write_shards(rows, tmp_path, 1), str(tmp_path / "w"), batch_size=2)[0]
    assert jac >= 0.85 and out["drop_reason"].to_pylist() == [None, None, REASON]
    assert out[CLUSTER_ID].to_pylist() == ["zz", "aa", "zz"] and out[CLUSTER_SIZE].to_pylist() == [2, 1, 2]
