"""The mixture data loader: micro-batch k of a run → its global sample indices → (source, sequence) → tokens.

Micro-batch numbering: step s holds global samples [s·G, (s+1)·G) (G = global batch). Rank r of W takes the
contiguous slice [s·G + r·G/W, s·G + (r+1)·G/W), cut into micro-batches of `micro_batch_size`. The k-th micro-batch
of a rank is therefore a pure function of (k, r): a map-style Dataset over k, so DataLoader workers receive
disjoint micro-batches round-robin and return them in order, and resuming at step s starts at k = s·M. With no
workers, a thread prefetches `prefetch` micro-batches ahead (NumPy copies release the GIL). Sequences come from
`tokenmill.tokenize.packing.PackedSequences`, the token-shard reader; each row carries its document spans for the
provenance log. Measured (benchmarks/loader.py): see the module's results in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from tokenmill.train.mixture import MixtureSchedule

DOC_FIELDS = ("doc_id", "url", "seq_start", "seq_stop", "doc_token_start")


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


class MixtureMicroBatches(Dataset):
    """Map-style dataset: item k is rank-local micro-batch k as a dict of tensors plus document spans."""

    def __init__(self, sources: dict, schedule: MixtureSchedule, layout: RankLayout, with_docs: bool = True,
                 max_steps: int | None = None) -> None:
        self.sources = sources  # name -> PackedSequences (picklable; memmaps reopen in each worker)
        self.schedule = schedule
        self.layout = layout
        self.with_docs = with_docs
        self.max_steps = max_steps

    def __len__(self) -> int:
        return (self.max_steps or 0) * self.layout.micro_per_step

    def __getitem__(self, k: int) -> dict:
        sample_B = self.layout.sample_indices(k)
        src_B, seq_B, epoch_B = self.schedule.locate(sample_B)
        names = [self.schedule.sources[s] for s in src_B]
        tokens_BL = np.stack([self.sources[n][int(q)] for n, q in zip(names, seq_B)])
        n_valid_B = np.array([self.sources[n].n_valid(int(q)) for n, q in zip(names, seq_B)], dtype=np.int64)
        info = get_worker_info()
        batch = {
            "k": k,
            "tokens_BL": torch.from_numpy(tokens_BL),
            "n_valid_B": torch.from_numpy(n_valid_B),
            "sample_B": torch.from_numpy(sample_B),
            "source_B": torch.from_numpy(src_B),
            "seq_B": torch.from_numpy(seq_B),
            "epoch_B": torch.from_numpy(epoch_B),
            "worker": -1 if info is None else info.id,
        }
        if self.with_docs:
            batch["docs"] = [[(d.doc_id, d.url, d.seq_start, d.seq_stop, d.doc_token_start)
                              for d in self.sources[n].docs(int(q))] for n, q in zip(names, seq_B)]
        return batch


class _Sequential(torch.utils.data.Sampler):
    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def _identity(x):
    return x


def _thread_prefetch(items: Iterator, depth: int) -> Iterator:
    """Run `items` in a background thread, `depth` ahead; exceptions are re-raised in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                q.put(item)
        except BaseException as err:  # noqa: BLE001 — handed to the consumer, which re-raises it
            q.put(err)
        q.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def micro_batches(dataset: MixtureMicroBatches, start_step: int, stop_step: int, num_workers: int = 0,
                  prefetch: int = 2, pin_memory: bool = False) -> Iterator[dict]:
    """This rank's micro-batches for steps [start_step, stop_step), in order."""
    M = dataset.layout.micro_per_step
    sampler = _Sequential(start_step * M, stop_step * M)
    if num_workers == 0:
        return _thread_prefetch((dataset[k] for k in sampler), prefetch)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=num_workers,
                        prefetch_factor=prefetch, collate_fn=_identity, pin_memory=pin_memory,
                        persistent_workers=False, multiprocessing_context="fork" if _can_fork() else None)
    return iter(loader)


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
