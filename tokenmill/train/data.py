"""The mixture data loader: micro-batch k of a run → its global sample indices → (source, sequence) → tokens.

Micro-batch numbering: step s holds global samples [s·G, (s+1)·G) (G = global batch). Rank r of W takes the
contiguous slice [s·G + r·G/W, s·G + (r+1)·G/W), cut into micro-batches of `micro_batch_size`. The k-th micro-batch
of a rank is therefore a pure function of (k, r): a map-style Dataset over k, so DataLoader workers receive
disjoint micro-batches round-robin and return them in order, and resuming at step s starts at k = s·M. With no
workers the training process reads inline (a prefetch thread was 2-3x slower: it fights the consumer for the GIL);
with workers, each keeps `prefetch` micro-batches ahead. Sequences come from
`tokenmill.tokenize.packing.PackedSequences`, the token-shard reader; each row carries its document spans for the
provenance log. Measured (benchmarks/loader.py, seq 4096, 8-row micro-batches, loaded 2-core machine): inline
154M tokens/s = 0.41x a bare memmap read of the same bytes (0.54x without document spans); 1-2 workers 52-62M
tokens/s (0.14-0.16x: the pipe to the training process dominates).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from tokenmill.train.mixture import MixtureSchedule


@dataclass(frozen=True)
class RankLayout:
    """Where rank `rank`'s micro-batches sit inside each global batch."""

    global_batch: int
    micro_batch: int
    rank: int = 0
    world_size: int = 1

    @property
    def per_rank(self) -> int:
        return self.global_batch // self.world_size

    @property
    def micro_per_step(self) -> int:
        return self.per_rank // self.micro_batch

    def sample_indices(self, k: int) -> np.ndarray:
        """Global sample indices of this rank's micro-batch k (k counts from step 0)."""
        step, m = divmod(k, self.micro_per_step)
        first = step * self.global_batch + self.rank * self.per_rank + m * self.micro_batch
        return np.arange(first, first + self.micro_batch, dtype=np.int64)

    def row_in_step(self, k: int) -> int:
        """Row of micro-batch k's first sample inside its global batch."""
        return self.rank * self.per_rank + (k % self.micro_per_step) * self.micro_batch


LOCATE_CHUNK_STEPS = 64  # steps of sample → (source, sequence) lookups computed in one vectorized call


SPAN_COLUMNS = ("row", "shard", "doc_row", "seq_start", "seq_stop", "doc_token_start")  # batch["spans"] columns


class _ShardIndex:
    """One shard's document token ranges as Python lists (built once per process): for the handful of documents
    in a row, `bisect` on a list beats NumPy's per-call overhead (~4x here)."""

    def __init__(self, table) -> None:
        starts = table.column("token_start").to_numpy()
        self.starts = starts.tolist()
        self.ends = (starts + table.column("token_count").to_numpy()).tolist()


def document_spans(index: _ShardIndex, shard: int, row: int, start: int, length: int, pos: int,
                   out: list[tuple]) -> None:
    """Append the spans (SPAN_COLUMNS) of the documents overlapping tokens [start, start + length) of `shard`,
    placed at `pos` in `row`."""
    stop = start + length
    first = max(bisect_right(index.starts, start) - 1, 0)
    for d in range(first, bisect_left(index.starts, stop)):
        a, b = max(index.starts[d], start), min(index.ends[d], stop)
        if a < b:
            out.append((row, shard, d, pos + a - start, pos + b - start, a - index.starts[d]))


class MixtureMicroBatches(Dataset):
    """Map-style dataset: item k is rank-local micro-batch k as a dict of arrays, with `spans` (SPAN_COLUMNS) saying
    which document rows of which shard fill which token range of which row (ids and urls are looked up only when
    the provenance log is written)."""

    def __init__(self, sources: dict, schedule: MixtureSchedule, layout: RankLayout, with_docs: bool = True,
                 max_steps: int | None = None) -> None:
        self.sources = sources  # name -> PackedSequences (picklable; memmaps reopen in each worker)
        self.schedule = schedule
        self.layout = layout
        self.with_docs = with_docs
        self.max_steps = max_steps
        self._token_dtype = np.result_type(*[p.ds.dtype for p in sources.values()])
        self._reset()

    def _reset(self) -> None:
        self._chunk: tuple[int, tuple] | None = None
        self._shard_index: dict[tuple[str, int], _ShardIndex] = {}
        self._tokens: dict[tuple[str, int], np.ndarray] = {}
        self._plans: dict[str, tuple[np.ndarray, ...]] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_chunk", "_shard_index", "_tokens", "_plans"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def __len__(self) -> int:
        return (self.max_steps or 0) * self.layout.micro_per_step

    def _locate(self, sample_B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """schedule.locate, computed LOCATE_CHUNK_STEPS steps at a time (fixed costs amortized over rows)."""
        G = self.layout.global_batch
        chunk = int(sample_B[0]) // (G * LOCATE_CHUNK_STEPS)
        if self._chunk is None or self._chunk[0] != chunk:
            first = chunk * G * LOCATE_CHUNK_STEPS
            chunk_samples = np.arange(first, first + G * LOCATE_CHUNK_STEPS)
            self._chunk = (chunk, self.schedule.locate(chunk_samples, check_exhausted=False))
        offset = int(sample_B[0]) - chunk * G * LOCATE_CHUNK_STEPS
        found = tuple(a[offset:offset + len(sample_B)] for a in self._chunk[1])
        if offset + len(sample_B) > G * LOCATE_CHUNK_STEPS or (found[2] > 0).any():
            return self.schedule.locate(sample_B)  # straddles chunks, or a new epoch: raises if the job says stop
        return found

    def _read(self, name: str, shard: int, start: int, stop: int) -> np.ndarray:
        ds = self.sources[name].ds
        if ds.is_remote:
            return ds.read(shard, start, stop)
        mm = self._tokens.get((name, shard))
        if mm is None:
            # verifies the shard's sha256 once; a plain ndarray view slices ~3x faster than the memmap subclass
            mm = self._tokens[(name, shard)] = np.asarray(ds.tokens(shard))
        return mm[start:stop]

    def _segments(self, name: str, seq: np.ndarray) -> list[list[tuple[int, int, int]]]:
        """(shard, start, length) ranges of each sequence in `seq`, looked up for all rows at once."""
        cols = self._plans.get(name)
        if cols is None:
            plan = self.sources[name].plan  # rows (seq, shard, start, length) sorted by seq
            cols = self._plans[name] = tuple(np.ascontiguousarray(plan[k]) for k in ("seq", "shard", "start",
                                                                                       "length"))
        seq_col, shard, start, length = cols
        lo = seq_col.searchsorted(seq, side="left")
        hi = seq_col.searchsorted(seq + 1, side="left")
        if (hi - lo == 1).all():  # concat packing: one range per sequence
            return [[t] for t in zip(shard[lo].tolist(), start[lo].tolist(), length[lo].tolist(), strict=False)]
        return [list(zip(shard[a:b].tolist(), start[a:b].tolist(), length[a:b].tolist(), strict=False))
                for a, b in zip(lo.tolist(), hi.tolist(), strict=False)]

    def _index(self, name: str, shard: int) -> _ShardIndex:
        idx = self._shard_index.get((name, shard))
        if idx is None:
            idx = self._shard_index[(name, shard)] = _ShardIndex(self.sources[name].ds.index(shard))
        return idx

    def __getitem__(self, k: int) -> dict:
        sample_B = self.layout.sample_indices(k)
        src_B, seq_B, epoch_B = self._locate(sample_B)
        B = len(sample_B)
        L = next(iter(self.sources.values())).L
        info = get_worker_info()
        # in a worker: the stored dtype (uint16/uint32), 4x fewer bytes through the pipe, widened by as_tensors;
        # inline: int64 at once (one copy, not two)
        tokens_BL = np.empty((B, L), dtype=np.int64 if info is None else self._token_dtype)
        n_valid_B = np.zeros(B, dtype=np.int64)
        spans: list[tuple] = []
        for s in np.unique(src_B).tolist():
            name = self.schedule.sources[s]
            packed = self.sources[name]
            rows = np.flatnonzero(src_B == s)
            for r, segments in zip(rows.tolist(), self._segments(name, seq_B[rows]), strict=False):
                pos = 0
                for shard, start, length in segments:
                    tokens_BL[r, pos:pos + length] = self._read(name, shard, start, start + length)
                    if self.with_docs:
                        document_spans(self._index(name, shard), shard, r, start, length, pos, spans)
                    pos += length
                tokens_BL[r, pos:] = packed.ds.pad_id
                n_valid_B[r] = pos
        batch = {  # NumPy, not tensors: pickled through the worker pipe, ~5x cheaper than torch's shared memory
            "k": k, "tokens_BL": tokens_BL, "n_valid_B": n_valid_B, "sample_B": sample_B,
            "source_B": np.ascontiguousarray(src_B), "seq_B": np.ascontiguousarray(seq_B),
            "epoch_B": np.ascontiguousarray(epoch_B), "worker": -1 if info is None else info.id,
        }
        if self.with_docs:
            spans.sort()  # by row, then shard and position
            batch["spans"] = np.array(spans, dtype=np.int64).reshape(-1, len(SPAN_COLUMNS))
        return batch


def as_tensors(batch: dict, pin_memory: bool = False) -> dict:
    """The micro-batch's arrays as tensors (zero-copy; pinned for fast host-to-GPU copies when asked)."""
    out = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) and k != "spans" else v for k, v in batch.items()}
    out["tokens_BL"] = torch.from_numpy(batch["tokens_BL"].astype(np.int64, copy=False))
    if pin_memory:
        out["tokens_BL"] = out["tokens_BL"].pin_memory()
    return out


class _Sequential(torch.utils.data.Sampler):
    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def _identity(x):
    return x


def micro_batches(dataset: MixtureMicroBatches, start_step: int, stop_step: int, num_workers: int = 0,
                  prefetch: int = 2, pin_memory: bool = False) -> Iterator[dict]:
    """This rank's micro-batches for steps [start_step, stop_step), in order."""
    M = dataset.layout.micro_per_step
    sampler = _Sequential(start_step * M, stop_step * M)
    if num_workers == 0:  # inline: a prefetch thread measured 2-3x slower here (it fights the consumer for the GIL)
        return (as_tensors(dataset[k], pin_memory) for k in sampler)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=num_workers,
                        prefetch_factor=prefetch, collate_fn=_identity,
                        persistent_workers=False, multiprocessing_context="fork" if _can_fork() else None)
    return (as_tensors(b, pin_memory) for b in loader)


def _can_fork() -> bool:
    import multiprocessing as mp

    return "fork" in mp.get_all_start_methods()


def step_batches(batches: Iterator[dict], micro_per_step: int) -> Iterator[list[dict]]:
    """Group micro-batches into steps (lists of `micro_per_step`)."""
    group: list[dict] = []
    for b in batches:
        group.append(b)
        if len(group) == micro_per_step:
            yield group
            group = []
