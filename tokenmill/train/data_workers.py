"""Loader worker processes that hand micro-batches over through shared memory.

Worker w of W reads micro-batches k = start + w, start + w + W, ... (round-robin, so workers × ranks are disjoint
and the order is fixed), planning only its own micro-batches (`MixtureMicroBatches.share`). Each worker owns
max(prefetch, 8 MiB) of slots in shared memory (an anonymous shared mapping under fork), each one micro-batch of
tokens in the stored dtype; it fills free slots with `MixtureMicroBatches.fill` and sends, per group of ~1 MiB of
tokens, the slot numbers and the small arrays (sample/source/sequence ids, spans) through its own pipe. The training
process takes micro-batches in order from worker (k - start) mod W, widens the slot into a fresh int64 tensor (the
one copy an inline read also makes) and hands slots back in batches. Measured on 2 shared cores (load ~4, seq
4096, 8-row micro-batches): ~22 us of the training process's CPU per micro-batch (inline reading costs ~40) and
first micro-batch after 30-40 ms; torch's DataLoader, which pickled every micro-batch through a queue, delivered
0.14x of a memmap read against this file's 0.5-0.65x. A worker's error (e.g. DataExhausted) is raised in the
training process at the micro-batch that hit it; abandoning the iterator stops the workers.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import traceback
from collections import deque
from collections.abc import Iterator

import numpy as np
import torch

from tokenmill.train.data import MixtureMicroBatches, as_tensors

PARENT_POLL_S = 1.0  # how often an idle worker checks that the training process is still alive
JOIN_TIMEOUT_S = 5.0  # a worker that does not stop within this after being told is terminated
SLOT_BYTES = 8 << 20  # shared memory per worker, at least `prefetch` micro-batches: long bursts of work between
# sleeps (with 4 slots of 64 KB, waking the worker for every micro-batch made it 2x slower on this loaded machine)


GROUP_BYTES = 1 << 20  # micro-batches are sent in groups of ~1 MiB of tokens: one wake-up of the reader per group


class WorkerError(RuntimeError):
    """A loader worker failed with an exception that could not be sent as itself."""


def _context():
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


META_COLUMNS = ("n_valid_B", "sample_B", "source_B", "seq_B", "epoch_B")  # packed per micro-batch, (G, 5, B)


def _shared_bytes(ctx, nbytes: int):
    """Memory shared with the workers: an anonymous shared mapping under fork (~0.02 ms; torch's share_memory_
    took 20-40 ms here), a torch shared-memory tensor (picklable) under spawn."""
    if ctx.get_start_method() == "fork":
        return mmap.mmap(-1, nbytes)
    return torch.empty(nbytes, dtype=torch.uint8).share_memory_()


def _byte_array(buf) -> np.ndarray:
    return buf.numpy() if isinstance(buf, torch.Tensor) else np.frombuffer(buf, dtype=np.uint8)


def _worker(dataset: MixtureMicroBatches, worker: int, ks: range, slots, conn, parent: int) -> None:
    try:
        _fill_slots(dataset, worker, ks, slots, conn, parent)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the training process stopped reading (it abandoned the loader, or died)


def _fill_slots(dataset: MixtureMicroBatches, worker: int, ks: range, slots, conn, parent: int) -> None:
    """Fill free slots with micro-batches `ks` in order and send them in groups; a list of slot numbers from the
    pipe frees them, None stops."""
    torch.set_num_threads(1)
    dataset.share = (ks.start, ks.step)
    B, L = dataset.layout.micro_batch, dataset.L
    slots_SBL = _byte_array(slots).view(dataset.token_dtype).reshape(-1, B, L)
    group = _group_size(len(slots_SBL), slots_SBL[0].nbytes)
    free, filled = list(range(len(slots_SBL))), []
    for k in ks:
        while not free:  # freed slots are read only when needed: Connection.poll costs ~10-40 us a call here
            msg = _message(conn, parent)
            if msg is None:
                return
            free += msg
        slot = free.pop()
        try:
            filled.append((k, slot, dataset.fill(k, slots_SBL[slot])))
        except Exception as err:  # noqa: BLE001 - every failure goes to the training process, which raises it
            conn.send(_pack(filled))  # the ones before it, then the error
            conn.send(("error", k, _picklable(err), traceback.format_exc()))
            return
        if len(filled) >= group or not free or k == ks[-1]:
            conn.send(_pack(filled))  # before waiting for free slots: the reader needs these to free any
            filled = []
    while _message(conn, parent) is not None:  # all sent: wait to be stopped so the slots stay valid until read
        pass


def _pack(filled: list[tuple[int, int, dict]]) -> tuple:
    """A group of micro-batches as a few arrays (pickling 7 arrays per micro-batch cost as much as filling it)."""
    ks_slots_G2 = np.array([(k, slot) for k, slot, _ in filled], dtype=np.int64).reshape(-1, 2)
    meta_G5B = np.stack([np.stack([b[c] for c in META_COLUMNS]) for _, _, b in filled]) if filled else None
    spans = [b["spans"] for _, _, b in filled if "spans" in b]
    offsets = np.cumsum([0] + [len(x) for x in spans]).tolist() if spans else None
    return "ok", ks_slots_G2, meta_G5B, np.concatenate(spans) if spans else None, offsets


def _group_size(n_slots: int, slot_bytes: int) -> int:
    return max(1, min(n_slots // 4, GROUP_BYTES // slot_bytes))


def _message(conn, parent: int) -> list[int] | None:
    """The next message from the training process; None when it says stop, closed the pipe, or died."""
    while not conn.poll(PARENT_POLL_S):
        if os.getppid() != parent:
            return None
    try:
        return conn.recv()
    except EOFError:
        return None


def _picklable(err: Exception) -> Exception:
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001
        return WorkerError(repr(err))


class _Worker:
    """The training process's end of one worker: its process, pipe and slots, and the slots read but not yet
    handed back (sent in groups of half the slots, or at once before waiting, so the worker is woken rarely)."""

    def __init__(self, ctx, dataset: MixtureMicroBatches, w: int, ks: range, prefetch: int) -> None:
        B, L = dataset.layout.micro_batch, dataset.L
        nbytes = B * L * dataset.token_dtype.itemsize
        n_slots = max(prefetch, SLOT_BYTES // nbytes, 1)
        slots = _shared_bytes(ctx, n_slots * nbytes)
        self.slots_SBL = _byte_array(slots).view(dataset.token_dtype).reshape(n_slots, B, L)
        self.conn, theirs = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker, args=(dataset, w, ks, slots, theirs, os.getpid()), daemon=True,
                                name=f"tokenmill-loader-{w}")
        self.proc.start()
        theirs.close()
        self.index = w
        self.read: list[int] = []  # slots copied out, not yet handed back
        self.ready: deque = deque()  # (k, slot, batch) received, not yet taken

    def receive(self, k: int, pin_memory: bool) -> dict:
        while not self.ready:
            self._wait(k)
        at, slot, batch = self.ready.popleft()
        assert at == k, f"loader worker sent micro-batch {at}, expected {k}"
        tokens_BL = torch.empty(self.slots_SBL.shape[1:], dtype=torch.int64, pin_memory=pin_memory)
        np.copyto(tokens_BL.numpy(), self.slots_SBL[slot])  # widen to int64: the only copy of the tokens here
        self.read.append(slot)
        return as_tensors(batch, tokens_BL)

    def _wait(self, k: int) -> None:
        if len(self.read) * 2 >= len(self.slots_SBL) or (self.read and not self.conn.poll()):
            self.conn.send(self.read)
            self.read = []
        try:
            msg = self.conn.recv()
        except EOFError:
            raise WorkerError(f"loader worker {self.proc.name} died (exit code {self.proc.exitcode}) before "
                              f"micro-batch {k}") from None
        if msg[0] == "error":
            _, at, err, tb = msg
            raise err from WorkerError(f"in loader worker {self.proc.name}, micro-batch {at}:\n{tb}")
        _, ks_slots_G2, meta_G5B, spans_N6, offsets = msg
        for g, (at, slot) in enumerate(ks_slots_G2.tolist()):
            batch = dict(zip(META_COLUMNS, meta_G5B[g], strict=True))
            batch.update(k=at, worker=self.index)
            if spans_N6 is not None:
                batch["spans"] = spans_N6[offsets[g]:offsets[g + 1]]
            self.ready.append((at, slot, batch))

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass  # the worker is gone already
        self.conn.close()  # a worker blocked sending to us gets a broken pipe and exits

    def join(self) -> None:
        self.proc.join(JOIN_TIMEOUT_S)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()


def worker_micro_batches(dataset: MixtureMicroBatches, start: int, stop: int, num_workers: int, prefetch: int,
                         pin_memory: bool = False) -> Iterator[dict]:
    """Micro-batches [start, stop) from `num_workers` processes, in order, as tensors."""
    ctx = _context()
    if ctx.get_start_method() == "fork":
        dataset.prepare()  # once here, shared copy-on-write, not once per worker
    workers: list[_Worker] = []
    try:
        for w in range(num_workers):
            workers.append(_Worker(ctx, dataset, w, range(start + w, stop, num_workers), prefetch))
        for k in range(start, stop):
            yield workers[(k - start) % num_workers].receive(k, pin_memory)
    finally:
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join()
