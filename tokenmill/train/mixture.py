"""The data mixture: which source and which sequence feed global sample i, as a pure function of (seed, schedule, i).

A schedule is a list of stages `(start_step, {source: weight})`. Samples are cut into blocks of `block_size`
(default: one global batch). Within a stage every block holds *exact* counts per source: `floor(w * B)` each, and
the `r = B - sum(floor)` remaining slots go to the sources with fractional parts `f`, by systematic sampling with a
low-discrepancy offset `u_b = frac(u0 + b * golden)`: source s gets one extra slot iff an integer lies in
`[cum_{s-1} + u_b, cum_s + u_b)`. The realized share of each source then stays within one sample of `w * n` over any
run of blocks, and per-block counts sum to B exactly. The slots' order inside block b is a permutation drawn from
`np.random.default_rng([seed, b])` (STYLE habit 9).

Each source is read as a stream: the k-th sample drawn from source s in a stage is element `offset[stage][s] + k` of
that stream, where `offset` is the running total over all earlier stages (Levanter's `data/mixture.py` idea). Since
the past of a stage is fixed once it has begun, appending a stage never repeats nor skips a sequence. Stream element
j is epoch `j // n_s`, position `j % n_s`, and sequence `feistel_e(position)` — a seeded bijection on [0, n_s)
computed on the fly (a 6-round Feistel network on the next even power of two, cycle-walked), so no permutation
array is ever stored. Measured: `locate` of 131k samples in ~0.11 s (~0.9 us a sample) on one shared, loaded core,
~1 us a sample from 2k samples up, ~3 us at 512 (per-call overhead); the loader calls it on 8192 samples at once.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

GOLDEN = (math.sqrt(5) - 1) / 2  # Weyl-sequence step: the most evenly spread offsets (three-distance theorem)
FEISTEL_ROUNDS = 6  # Luby-Rackoff: >= 4 rounds give a pseudorandom permutation; 6 for margin on tiny domains
FLOOR_EPS = 1e-9  # w * B = 2.9999999997 from float weights must floor to 3
EXTENT_CHUNK = 1 << 16  # blocks summed per NumPy call when totalling a long stage


class DataExhausted(RuntimeError):
    """A source ran out of sequences and the job says `on_exhausted: stop`."""


@dataclass(frozen=True)
class MixStage:
    start_step: int
    weights: dict[str, float]  # normalized to sum 1, zero weights dropped


_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> _S30)  # a new array; the rest in place (~1.7x faster on 8k-element arrays)
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


@lru_cache(maxsize=4096)
def _key(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def feistel_permute(positions: np.ndarray, n: int, key: int | np.ndarray) -> np.ndarray:
    """A seeded bijection of [0, n) applied to `positions`; `key` is one int or one uint64 per position.

    Vectorized; cycle-walking (re-encrypting values >= n) keeps the bijection inside [0, n).
    """
    if n <= 1:
        return np.zeros(len(positions), dtype=np.int64)
    half = max(1, math.ceil(math.log2(n) / 2))
    mask = np.uint64((1 << half) - 1)
    base = np.asarray(key, dtype=np.uint64) if isinstance(key, np.ndarray) else np.uint64(key % 2**64)
    with np.errstate(over="ignore"):
        round_keys = [_mix64(base + np.uint64(0x9E3779B97F4A7C15 * (r + 1) % 2**64)) for r in range(FEISTEL_ROUNDS)]

    def encrypt(x: np.ndarray, sel: np.ndarray | slice) -> np.ndarray:
        left, right = x >> np.uint64(half), x & mask
        for rk in round_keys:
            rk = rk[sel] if rk.ndim else rk
            left, right = right, left ^ (_mix64(right ^ rk) & mask)
        return (left << np.uint64(half)) | right

    with np.errstate(over="ignore"):
        y = encrypt(positions.astype(np.uint64), slice(None))
        walk = np.flatnonzero(y >= np.uint64(n))
        while len(walk):
            y[walk] = encrypt(y[walk], walk)
            walk = walk[y[walk] >= np.uint64(n)]
    return y.astype(np.int64)


class MixtureSchedule:
    """Maps global sample indices to (source, sequence). Pure: two instances with equal inputs agree everywhere.

    `source_sizes`: sequences per source; `stages`: sorted by start_step, the first at 0; `samples_per_step`: the
    global batch (sequences); `block_size` must divide `start_step * samples_per_step` of every stage.
    """

    def __init__(self, source_sizes: dict[str, int], stages: list[MixStage], *, seed: int, samples_per_step: int,
                 block_size: int | None = None, on_exhausted: str = "wrap") -> None:
        self.sources = sorted(source_sizes)
        self.source_sizes = dict(source_sizes)
        self.stages = stages
        self.seed = seed
        self.samples_per_step = samples_per_step
        self.block_size = block_size or samples_per_step
        self.on_exhausted = on_exhausted
        self._start_blocks = [s.start_step * samples_per_step // self.block_size for s in stages]
        self._alloc = [self._allocation(s) for s in stages]
        self._offsets = self._stage_offsets()
        self._cursor: dict[int, tuple[int, np.ndarray]] = {}  # stage -> (block, stream counts before it)

    # -- per-block counts ---------------------------------------------------------------------------------------
    def _allocation(self, stage: MixStage) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(source ids, floor counts, cumulative fractional parts, u0) of one stage."""
        ids = np.array([self.sources.index(n) for n in sorted(stage.weights)], dtype=np.int64)
        w = np.array([stage.weights[n] for n in sorted(stage.weights)], dtype=np.float64)
        exact = w * self.block_size
        base = np.floor(exact + FLOOR_EPS).astype(np.int64)
        frac = np.clip(exact - base, 0.0, None)
        cum = np.concatenate([[0.0], np.cumsum(frac)])
        cum[-1] = self.block_size - base.sum()  # exactly the integer number of remaining slots
        u0 = _key(self.seed, "mix-offset", stage.start_step) / 2.0**64
        return ids, base, cum, u0

    def _extras(self, k: int, lo: int, hi: int) -> np.ndarray:
        """Extra slots (0/1) per source for stage-relative blocks [lo, hi): shape (hi-lo, sources in stage)."""
        _, _, cum, u0 = self._alloc[k]
        u_B = np.modf(u0 + np.arange(lo, hi, dtype=np.float64) * GOLDEN)[0][:, None]
        return (np.floor(cum[1:] + u_B) - np.floor(cum[:-1] + u_B)).astype(np.int64)

    def block_counts(self, k: int, lo: int, hi: int) -> np.ndarray:
        """Samples per (block, source in stage k) for stage-relative blocks [lo, hi)."""
        return self._alloc[k][1][None, :] + self._extras(k, lo, hi)

    def counts_in_block(self, block: int) -> dict[str, int]:
        """Exact samples per source in global block `block` (the contract tests check)."""
        k, rel = self._stage_of_block(block)
        ids, counts = self._alloc[k][0], self.block_counts(k, rel, rel + 1)[0]
        return {self.sources[i]: int(c) for i, c in zip(ids, counts, strict=False) if c}

    def _stage_of_block(self, block: int) -> tuple[int, int]:
        k = int(np.searchsorted(self._start_blocks, block, side="right")) - 1
        return k, block - self._start_blocks[k]

    # -- stream offsets -----------------------------------------------------------------------------------------
    def _stage_offsets(self) -> list[np.ndarray]:
        """Per stage, samples drawn from each source (all sources) before the stage begins."""
        total = np.zeros(len(self.sources), dtype=np.int64)
        offsets = []
        for k in range(len(self.stages)):
            offsets.append(total.copy())
            if k + 1 < len(self.stages):
                total[self._alloc[k][0]] += self._sum_counts(k, 0, self._start_blocks[k + 1] - self._start_blocks[k])
        return offsets

    def _sum_counts(self, k: int, lo: int, hi: int) -> np.ndarray:
        acc = np.zeros(len(self._alloc[k][0]), dtype=np.int64)
        for a in range(lo, hi, EXTENT_CHUNK):
            acc += self.block_counts(k, a, min(hi, a + EXTENT_CHUNK)).sum(axis=0)
        return acc

    def _counts_before(self, k: int, rel: int) -> np.ndarray:
        """Samples per source in stage k before its block `rel` (cached: loaders read blocks in order)."""
        at, acc = self._cursor.get(k, (0, np.zeros(len(self._alloc[k][0]), dtype=np.int64)))
        if rel < at:
            at, acc = 0, np.zeros_like(acc)
        acc = acc + self._sum_counts(k, at, rel)
        self._cursor[k] = (rel, acc)
        return acc

    # -- sample lookup ------------------------------------------------------------------------------------------
    def _stage_streams(self, k: int, blocks: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(source id, stream element) of slot `pos` of each global block in `blocks` (all in stage k).

        Slots of block b are laid out source by source, then shuffled by a bijection keyed by (seed, b).
        """
        ids = self._alloc[k][0]
        rel = blocks - self._start_blocks[k]
        lo, hi = int(rel.min()), int(rel.max()) + 1
        counts = self.block_counts(k, lo, hi)  # (blocks, sources in stage)
        before = self._counts_before(k, lo) + np.cumsum(counts, axis=0) - counts  # stream counts before each block
        slot_start = np.cumsum(counts, axis=1) - counts  # first slot of each source inside its block
        with np.errstate(over="ignore"):
            keys = _mix64(blocks.astype(np.uint64) + np.uint64(_key(self.seed, "block-order")))
        slot = feistel_permute(pos, self.block_size, keys)
        r = rel - lo
        j = (slot[:, None] >= slot_start[r]).sum(axis=1) - 1
        elem = self._offsets[k][ids[j]] + before[r, j] + slot - slot_start[r, j]
        return ids[j], elem

    def locate(self, indices: np.ndarray, check_exhausted: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source id, sequence index, epoch) of each global sample index; raises DataExhausted per config."""
        indices = np.asarray(indices, dtype=np.int64)
        src = np.empty(len(indices), dtype=np.int64)
        elem = np.empty(len(indices), dtype=np.int64)
        blocks = indices // self.block_size
        stage = np.searchsorted(self._start_blocks, blocks, side="right") - 1
        for k in np.unique(stage):
            sel = stage == k
            src[sel], elem[sel] = self._stage_streams(int(k), blocks[sel], indices[sel] % self.block_size)
        sizes = np.array([self.source_sizes[n] for n in self.sources], dtype=np.int64)[src]
        epoch, position = np.divmod(elem, sizes)
        if check_exhausted and self.on_exhausted == "stop" and (epoch > 0).any():
            i = int(np.argmax(epoch > 0))
            raise DataExhausted(f"source {self.sources[src[i]]!r} ran out of its {sizes[i]} sequences at sample "
                                f"{indices[i]} (step {indices[i] // self.samples_per_step}); set "
                                "data.on_exhausted: wrap to start a new epoch, or add data")
        seq = np.empty_like(elem)
        n_epochs = int(epoch.max()) + 1 if len(epoch) else 1
        for s, e in (divmod(key, n_epochs) for key in np.unique(src * n_epochs + epoch).tolist()):  # no per-row loop
            sel = (src == s) & (epoch == e)
            seq[sel] = feistel_permute(position[sel], int(sizes[sel][0]), _key(self.seed, self.sources[s], e))
        return src, seq, epoch

    # -- fingerprint of the past (STYLE habit 11) ---------------------------------------------------------------
    def past(self, step: int, source_fingerprints: dict[str, str] | None = None) -> dict:
        """Everything that decided samples [0, step * samples_per_step): changing any of it changes the past."""
        stages = [{"start_step": s.start_step, "weights": s.weights} for s in self.stages if s.start_step < step]
        used = sorted({n for s in stages for n in s["weights"]})
        fps = source_fingerprints or {}
        return {"seed": self.seed, "block_size": self.block_size, "samples_per_step": self.samples_per_step,
                "stages": stages,
                "sources": {n: {"sequences": self.source_sizes[n], "fingerprint": fps.get(n)} for n in used}}

    def past_fingerprint(self, step: int, source_fingerprints: dict[str, str] | None = None) -> str:
        blob = json.dumps(self.past(step, source_fingerprints), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def explain_past_change(old: dict, new: dict) -> str:
    """Which part of a schedule's past differs between a checkpoint (`old`) and the resumed job (`new`)."""
    for key in ("seed", "block_size", "samples_per_step"):
        if old.get(key) != new.get(key):
            return f"data.{key} was {old.get(key)} in the checkpoint, now {new.get(key)}"
    old_st, new_st = old.get("stages", []), new.get("stages", [])
    for i in range(max(len(old_st), len(new_st))):
        a = old_st[i] if i < len(old_st) else None
        b = new_st[i] if i < len(new_st) else None
        if a != b:
            return (f"mixture.stages[{i}] was {a} in the checkpoint, now {b}: stages that already began cannot be "
                    "edited; append a new stage (start_step >= the resume step) instead")
    for name in sorted(set(old.get("sources", {})) | set(new.get("sources", {}))):
        a, b = old.get("sources", {}).get(name), new.get("sources", {}).get(name)
        if a != b:
            return f"source {name!r} changed since the checkpoint (was {a}, now {b}): its sequences would differ"
    return "the schedule's past differs from the checkpoint's"
