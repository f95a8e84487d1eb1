"""Connected components over edge files, distributed: no task holds more than one partition of the edges.

Algorithm: the alternating Large-Star / Small-Star rounds of Kiveris et al., "Connected Components in MapReduce
and Beyond" (SoCC 2014). Nodes are 64-bit keys whose order is the label order. Edges are partitioned by one
endpoint `u` (`partition_of(u)`); every step is one phase of P tasks, each reading the pairs (u, v) of its
partition from every previous task's exchange file `cc/step-K/from-Q.arrows` (common.write_partitioned: one file
per task, so P files a step) and writing its output pairs, partitioned again, into one file:

  Large-Star (input: both directions of every edge, grouped by u):
      m(u) = min(u, Γ(u));  emit {v, m(u)} for every neighbour v > u
  Small-Star (input: every edge oriented larger -> smaller, grouped by the larger end u):
      m(u) = min(N(u));     emit {v, m(u)} for every v in N(u) ∪ {u}, v ≠ m(u)

Both keep each component connected and only ever move edges towards smaller labels; the fixed point is a star per
component centred on its smallest key. The paper proves O(log² n) rounds. Measured: 3 Large-Star rounds (the
last one only confirms) on the 10k, 100k and 1M benchmark corpora (work files 58 / 360 / 3,600 in all, see
minhash.py), 7 on the test's random graph with a 400-node chain (`summary()["components_rounds"]` reports it per
run). Convergence: each Large-Star task returns a fingerprint of its (deduplicated) input edges (count and sum of
fmix64(edge)); when a round's edge set equals the previous round's, nothing can change any more. That
Large-Star's labels, (u, min(u, Γ(u))) in `cc/labels-K/from-Q.arrows` partitioned by the shard of u, are then
every node's component root (its smallest key). Peak memory of a task: the edges of one partition (and of the
largest star: one cluster).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from tokenmill.dedup import common
from tokenmill.dedup.ngrams import fmix64
from tokenmill.io import atomic_path
from tokenmill.stage import Phases, Task

MAX_ROUNDS = 64  # far above the ~log² n bound for any realistic cluster size; a guard against a bug, not a tuning


def step_dir(workdir: str, step: int) -> str:
    return os.path.join(workdir, "cc", f"step-{step:03d}")


def labels_dir(workdir: str, step: int) -> str:
    return os.path.join(workdir, "cc", f"labels-{step:03d}")


PAIRS = pa.schema([("u", pa.uint64()), ("v", pa.uint64())])


def pairs_table(pairs_E2: np.ndarray) -> pa.Table:
    return pa.table({"u": pairs_E2[:, 0], "v": pairs_E2[:, 1]}, schema=PAIRS)


def table_pairs(t: pa.Table) -> np.ndarray:
    """(E, 2) uint64 from the first two columns of an exchange table."""
    cols = [t.column(i).to_numpy() for i in (0, 1)]
    return np.stack(cols, axis=1) if t.num_rows else np.zeros((0, 2), np.uint64)


def save_npy(path: str, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def write_pairs(pairs_E2: np.ndarray, out_dir: str, src: int, parts: int) -> None:
    """Write (u, v) pairs into the exchange file `out_dir/from-SRC.arrows`, partitioned by partition_of(u)."""
    common.write_partitioned(pairs_table(pairs_E2), common.partition_of(pairs_E2[:, 0], parts), parts,
                             os.path.join(out_dir, f"from-{src:05d}.arrows"))


def read_pairs(in_dir: str, q: int) -> np.ndarray:
    """Partition q of every exchange file in `in_dir` (the producers of step 0 vary: buckets, verify or a test)."""
    paths = common.shard_files(os.path.join(in_dir, "from-*.arrows"))
    return table_pairs(common.read_partition(paths, q, PAIRS))


def both_directions(pairs_E2: np.ndarray) -> np.ndarray:
    return np.concatenate([pairs_E2, pairs_E2[:, ::-1]])


def unique_pairs(pairs_E2: np.ndarray) -> np.ndarray:
    """Pairs sorted by (u, v), duplicates and self-loops removed."""
    pairs_E2 = pairs_E2[pairs_E2[:, 0] != pairs_E2[:, 1]]
    order = np.lexsort((pairs_E2[:, 1], pairs_E2[:, 0]))
    p = pairs_E2[order]
    keep = np.ones(len(p), bool)
    keep[1:] = (p[1:, 0] != p[:-1, 0]) | (p[1:, 1] != p[:-1, 1])
    return p[keep]


def _group_min(p_E2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For pairs sorted by (u, v): the first v of each u group, broadcast to every pair; and the group starts."""
    first = common.group_starts(p_E2[:, 0])
    start_idx = np.maximum.accumulate(np.where(first, np.arange(len(p_E2)), 0))
    return p_E2[start_idx, 1], first


def fingerprint(p_E2: np.ndarray) -> tuple[int, int]:
    """(count, sum of hashes mod 2**64) of the undirected edges u < v: equal sets give equal fingerprints."""
    fwd = p_E2[p_E2[:, 0] < p_E2[:, 1]]
    mixed = fmix64(fwd[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ fwd[:, 1])
    return len(fwd), int(mixed.sum(dtype=np.uint64))


def large_star(workdir: str, step: int, q: int, parts: int, shards: int) -> dict:
    p = unique_pairs(read_pairs(step_dir(workdir, step), q))
    minv, first = _group_min(p)
    m_E = np.minimum(p[:, 0], minv)
    up = p[:, 1] > p[:, 0]
    out = np.stack([p[up, 1], m_E[up]], axis=1)  # oriented larger -> smaller, for Small-Star
    write_pairs(out, step_dir(workdir, step + 1), q, parts)
    labels = np.stack([p[first, 0], m_E[first]], axis=1)
    common.write_partitioned(pairs_table(labels), common.key_shard(labels[:, 0]), shards,
                             os.path.join(labels_dir(workdir, step), f"from-{q:05d}.arrows"))
    count, fp = fingerprint(p)
    return {"edges": count, "fingerprint": str(fp)}


def small_star(workdir: str, step: int, q: int, parts: int) -> dict:
    p = unique_pairs(read_pairs(step_dir(workdir, step), q))
    m_E, first = _group_min(p)
    leaves = p[p[:, 1] != m_E]
    out = np.concatenate([np.stack([leaves[:, 1], m_E[p[:, 1] != m_E]], axis=1),
                          np.stack([p[first, 0], m_E[first]], axis=1)])
    write_pairs(both_directions(out), step_dir(workdir, step + 1), q, parts)
    return {"edges": len(p)}


def read_labels(workdir: str, step: int, parts: int, shard: int) -> np.ndarray:
    """(N, 2) (key, root) of the clustered nodes of one shard, from the final Large-Star's P label files."""
    paths = [os.path.join(labels_dir(workdir, step), f"from-{q:05d}.arrows") for q in range(parts)]
    return table_pairs(common.read_partition(paths, shard))


def connected_components(workdir: str, parts: int, shards: int) -> Phases:
    """Phases of Large-Star/Small-Star rounds over `step_dir(workdir, 0)`, for nodes whose key_shard < `shards`.
    Returns the step of the final labels (read_labels)."""
    step, previous = 0, None
    for _ in range(MAX_ROUNDS):
        results = yield [Task(f"large-star-{step:03d}-{q:04d}", large_star, (workdir, step, q, parts, shards))
                         for q in range(parts)]
        current = (sum(r["edges"] for r in results), sum(int(r["fingerprint"]) for r in results) % 2**64)
        if current == previous:
            return step
        previous = current
        yield [Task(f"small-star-{step + 1:03d}-{q:04d}", small_star, (workdir, step + 1, q, parts))
               for q in range(parts)]
        step += 2
    raise RuntimeError(f"{workdir}: connected components did not converge in {MAX_ROUNDS} rounds")
