"""The mixture data loader: micro-batch k of a run → its global sample indices → (source, sequence) → tokens.

Micro-batch numbering: step s holds global samples [s·G, (s+1)·G) (G = global batch). Rank r of W takes the
contiguous slice [s·G + r·G/W, s·G + (r+1)·G/W), cut into micro-batches of `micro_batch_size`. The k-th micro-batch
of a rank is therefore a pure function of (k, r), so workers take disjoint micro-batches round-robin and resuming at
step s starts at k = s·M.

Per micro-batch (B rows, L = seq_len + 1 tokens) the work is slicing a `ChunkPlan` (tokenmill/train/data_plan.py:
the mixture lookup, the packing-plan lookup and the document spans for provenance, computed with NumPy for 8192 of
the rank's samples at once) and one copy per plan segment from the shard memmaps into the output: the int64
tensor itself inline, or a shared-memory slot of the stored dtype in a worker process
(tokenmill/train/data_workers.py), which the training process widens into the int64 tensor (the same one copy).
Measured (benchmarks/loader.py, seq 4096, 8-row micro-batches, 2 shared cores, load ~4): inline 1.18x the rate of
a bare memmap read of the same bytes with document spans (was 0.41x: per-row bisect and per-call NumPy overhead);
worker processes 0.5-0.65x (were 0.14-0.16x through torch's DataLoader). Workers cost more CPU in all than an
inline read (a ~20 us/micro-batch hand-over in the training process plus the worker's own read); they pay off only
with idle cores or slow (remote) reads: here every process of the run shares one scheduler group's CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tokenmill.train.data_plan import SPAN_COLUMNS, ChunkPlan, SourceReader  # noqa: F401 - SPAN_COLUMNS re-exported
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

    def rank_samples(self, local_J: np.ndarray) -> np.ndarray:
        """Global sample indices of this rank's samples local_J (rank-local numbering: micro-batch k holds
        rank-local samples [k·B, (k+1)·B))."""
        step_J, j_J = np.divmod(local_J.astype(np.int64), self.per_rank)
        return step_J * self.global_batch + self.rank * self.per_rank + j_J

    def row_in_step(self, k: int) -> int:
        """Row of micro-batch k's first sample inside its global batch."""
        return self.rank * self.per_rank + (k % self.micro_per_step) * self.micro_batch


LOCATE_CHUNK_SAMPLES = 8192  # rank samples located per vectorized call: ~1 us/sample (vs ~20 at 512 samples)


class MixtureMicroBatches:
    """Item k is rank-local micro-batch k as a dict of arrays, with `spans` (SPAN_COLUMNS) saying which document
    rows of which shard fill which token range of which row (ids and urls are looked up only when the provenance
    log is written). `fill(k, tokens_BL)` writes the tokens into a caller's array (int64, or the stored dtype)."""

    def __init__(self, sources: dict, schedule: MixtureSchedule, layout: RankLayout, with_docs: bool = True,
                 max_steps: int | None = None) -> None:
        self.sources = sources  # name -> PackedSequences (picklable; memmaps reopen in each worker)
        self.schedule = schedule
        self.layout = layout
        self.with_docs = with_docs
        self.max_steps = max_steps
        self.token_dtype = np.result_type(*[p.ds.dtype for p in sources.values()])
        self.L = next(iter(sources.values())).L
        self.share = (0, 1)  # (offset, stride): this reader serves micro-batches k = offset mod stride (a worker's)
        self._reset()

    def _reset(self) -> None:
        self._chunk: ChunkPlan | None = None
        self._readers: dict[int, SourceReader] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_chunk", "_readers"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def __len__(self) -> int:
        return (self.max_steps or 0) * self.layout.micro_per_step

    def prepare(self) -> None:
        """Build every source's lookup arrays now: before forking workers, which then share them."""
        for s in range(len(self.schedule.sources)):
            reader = self._reader(s)
            if self.with_docs:
                reader.docs()

    def _reader(self, s: int) -> SourceReader:
        reader = self._readers.get(s)
        if reader is None:
            reader = self._readers[s] = SourceReader(self.sources[self.schedule.sources[s]])
        return reader

    def _plan(self, k: int) -> tuple[ChunkPlan, int]:
        """The chunk plan holding micro-batch k, and k's first row in it: `schedule.locate` and the plan lookups
        run on LOCATE_CHUNK_SAMPLES of this rank's samples at a time (their fixed costs amortized over rows); a
        worker's chunks hold only its own micro-batches (`share`)."""
        B = self.layout.micro_batch
        per_chunk = max(LOCATE_CHUNK_SAMPLES // B, 1)
        offset, stride = self.share
        if (k - offset) % stride:
            raise ValueError(f"micro-batch {k} is not in this reader's share {self.share} (offset, stride)")
        chunk, i = divmod((k - offset) // stride, per_chunk)
        if self._chunk is None or self._chunk.key != (offset, stride, chunk):
            mb_M = offset + stride * np.arange(chunk * per_chunk, (chunk + 1) * per_chunk)
            sample_C = self.layout.rank_samples((mb_M[:, None] * B + np.arange(B)).ravel())
            located = self.schedule.locate(sample_C, check_exhausted=False)
            self._chunk = None  # a failed lookup must not leave the previous chunk in place
            self._chunk = ChunkPlan((offset, stride, chunk), sample_C, located, self._reader, self.L, self.with_docs)
        return self._chunk, i * B

    def fill(self, k: int, tokens_BL: np.ndarray) -> dict:
        """Write micro-batch k's tokens into tokens_BL (B, L) and return the rest of the batch."""
        plan, lo = self._plan(k)
        B, L = tokens_BL.shape
        hi = lo + B
        if self.schedule.on_exhausted == "stop" and (plan.epoch_C[lo:hi] > 0).any():
            self.schedule.locate(plan.sample_C[lo:hi])  # a source ran out: raises DataExhausted, the job's message
        shards, a, b = plan.shard_tokens, plan.segment_offsets[lo], plan.segment_offsets[hi]
        for r, s, shard, start, n, pos in zip(*(col[a:b] for col in plan.segments), strict=True):
            arr = shards[s][shard]
            tokens_BL[r - lo, pos:pos + n] = arr[start:start + n] if arr is not None else \
                self._readers[s].ds.view(shard, start, start + n)  # remote: cached blocks
        for r in plan.short_rows[plan.short_offsets[lo]:plan.short_offsets[hi]]:  # best-fit rows with room: pad
            tokens_BL[r - lo, plan.n_valid_C[r]:] = plan.pad_C[r]
        n_valid_B = plan.n_valid_C[lo:hi].copy()
        batch = {"k": k, "n_valid_B": n_valid_B, "sample_B": plan.sample_C[lo:hi].copy(),
                 "source_B": plan.src_C[lo:hi].copy(), "seq_B": plan.seq_C[lo:hi].copy(),
                 "epoch_B": plan.epoch_C[lo:hi].copy(), "worker": -1}
        if self.with_docs:
            spans_N6 = plan.spans_N6[plan.span_offsets[lo]:plan.span_offsets[hi]].copy()
            spans_N6[:, 0] -= lo
            batch["spans"] = spans_N6
        return batch

    def __getitem__(self, k: int) -> dict:
        """Micro-batch k with int64 tokens_BL, as NumPy arrays."""
        tokens_BL = np.empty((self.layout.micro_batch, self.L), dtype=np.int64)
        return {**self.fill(k, tokens_BL), "tokens_BL": tokens_BL}


def as_tensors(batch: dict, tokens_BL: torch.Tensor | None = None) -> dict:
    """The micro-batch's arrays as tensors (zero-copy), `spans` stays NumPy; tokens_BL replaced when given."""
    out = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) and k != "spans" else v for k, v in batch.items()}
    if tokens_BL is not None:
        out["tokens_BL"] = tokens_BL
    return out


def _inline(dataset: MixtureMicroBatches, start: int, stop: int, pin_memory: bool) -> Iterator[dict]:
    B, L = dataset.layout.micro_batch, dataset.L
    for k in range(start, stop):
        tokens_BL = torch.empty((B, L), dtype=torch.int64, pin_memory=pin_memory)  # filled in place: one copy
        yield as_tensors(dataset.fill(k, tokens_BL.numpy()), tokens_BL)


def micro_batches(dataset: MixtureMicroBatches, start_step: int, stop_step: int, num_workers: int = 0,
                  prefetch: int = 2, pin_memory: bool = False) -> Iterator[dict]:
    """This rank's micro-batches for steps [start_step, stop_step), in order; read inline (num_workers=0: a
    prefetch thread measured 2-3x slower, it fights the consumer for the GIL) or by worker processes, each
    keeping `prefetch` micro-batches ahead in shared memory."""
    M = dataset.layout.micro_per_step
    if num_workers == 0:
        return _inline(dataset, start_step * M, stop_step * M, pin_memory)
    from tokenmill.train.data_workers import worker_micro_batches

    return worker_micro_batches(dataset, start_step * M, stop_step * M, num_workers, prefetch, pin_memory)


def step_batches(batches: Iterator[dict], micro_per_step: int) -> Iterator[list[dict]]:
    """Group micro-batches into steps (lists of `micro_per_step`)."""
    group: list[dict] = []
    for b in batches:
        group.append(b)
        if len(group) == micro_per_step:
            yield group
            group = []
