"""Remote shards: range reads through fsspec (s3://, gs://, https://, file://) in verified blocks, with a bounded
cache, so training can stream shards from object storage.

A read of tokens [a, b) fetches the BLOCK_BYTES-aligned blocks that cover it, consecutive missing blocks in one
range request (no HEAD: a short answer means the file was cut short), checks each block's xxh3-64 against
dataset.json, and keeps it in an LRU cache: in memory
(`memory_bytes`) and, with a `cache_dir`, on disk (`disk_bytes`), keyed by the shard's sha256 so a cache is safe
to share between datasets and runs. Measured (benchmarks/tokenize.py, loopback HTTP, seq_len 2048, random order,
cold cache per run): ~76k sequences/s, 2.2x datatrove's DatatroveFileDataset over the same server.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import xxhash

from tokenmill.tokenize.format import BLOCK_BYTES, ShardError

DEFAULT_MEMORY_CACHE_BYTES = 256 << 20
DEFAULT_DISK_CACHE_BYTES = 4 << 30


class BlockCache:
    """LRU of verified blocks, in memory and optionally on disk, each bounded in bytes."""

    def __init__(self, cache_dir: str | None = None, memory_bytes: int = DEFAULT_MEMORY_CACHE_BYTES,
                 disk_bytes: int = DEFAULT_DISK_CACHE_BYTES) -> None:
        self.memory_bytes, self.disk_bytes = memory_bytes, disk_bytes
        self._mem: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._mem_used = 0
        self._lock = threading.Lock()
        self.dir = Path(cache_dir) if cache_dir else None
        self._disk: OrderedDict[Path, int] = OrderedDict()
        self._disk_used = 0
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            for p in sorted(self.dir.glob("*/*.blk"), key=lambda p: p.stat().st_mtime):
                self._disk[p] = p.stat().st_size
                self._disk_used += self._disk[p]
        self.hits = self.misses = 0

    def _file(self, key: tuple[str, int]) -> Path:
        assert self.dir is not None
        return self.dir / key[0][:16] / f"{key[1]:08d}.blk"

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            if key in self._mem:
                self._mem.move_to_end(key)
                self.hits += 1
                return self._mem[key]
        if self.dir is not None:
            p = self._file(key)
            try:
                data = p.read_bytes()
            except FileNotFoundError:
                data = None
            if data is not None:
                self.hits += 1
                self._put_mem(key, data)
                return data
        self.misses += 1
        return None

    def put(self, key: tuple[str, int], data: bytes) -> None:
        self._put_mem(key, data)
        if self.dir is not None and len(data) <= self.disk_bytes:
            p = self._file(key)
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f"{p.name}.tmp-{os.getpid()}-{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, p)
            with self._lock:
                self._disk_used += len(data) - self._disk.pop(p, 0)
                self._disk[p] = len(data)
                while self._disk_used > self.disk_bytes and self._disk:
                    old, size = self._disk.popitem(last=False)
                    self._disk_used -= size
                    old.unlink(missing_ok=True)

    def _put_mem(self, key: tuple[str, int], data: bytes) -> None:
        with self._lock:
            if key in self._mem:
                return
            self._mem[key] = data
            self._mem_used += len(data)
            while self._mem_used > self.memory_bytes and self._mem:
                _, old = self._mem.popitem(last=False)
                self._mem_used -= len(old)

    @property
    def disk_used(self) -> int:
        return self._disk_used


class RemoteShard:
    """Byte-range reads of one remote .bin, block-verified and cached."""

    def __init__(self, fs, path: str, url: str, entry: dict, itemsize: int, cache: BlockCache,
                 verify: bool) -> None:
        self.fs, self.path, self.url, self.cache, self.verify = fs, path, url, cache, verify
        self.size = entry["num_tokens"] * itemsize
        self.sha256 = entry["sha256"]
        self.blocks = entry.get("block_xxh3", [])

    def read_bytes(self, start: int, stop: int) -> memoryview:
        """Bytes [start, stop) of the shard (a view of the cached block when the range lies in one block)."""
        if start >= stop:
            return memoryview(b"")
        first, last = start // BLOCK_BYTES, (stop - 1) // BLOCK_BYTES
        blocks = self._blocks(first, last)
        off, end = start - first * BLOCK_BYTES, stop - last * BLOCK_BYTES
        if len(blocks) == 1:
            return memoryview(blocks[0])[off:end]
        return memoryview(b"".join([blocks[0][off:], *blocks[1:-1], blocks[-1][:end]]))

    def _blocks(self, first: int, last: int) -> list[bytes]:
        got: dict[int, bytes] = {}
        missing = []
        for b in range(first, last + 1):
            data = self.cache.get((self.sha256, b))
            if data is None:
                missing.append(b)
            else:
                got[b] = data
        for run in _runs(missing):  # consecutive missing blocks: one range request
            lo, hi = run[0] * BLOCK_BYTES, min(self.size, (run[-1] + 1) * BLOCK_BYTES)
            try:
                data = self.fs.cat_file(self.path, start=lo, end=hi)
            except FileNotFoundError:
                raise ShardError(f"{self.url}: shard file missing") from None
            except Exception as err:  # HTTP 416 and the like: the file is shorter than dataset.json says
                raise ShardError(f"{self.url}: range {lo}-{hi} failed ({err}); cut short or replaced?") from None
            if len(data) != hi - lo:
                raise ShardError(f"{self.url}: range {lo}-{hi} returned {len(data)} bytes (cut short?)")
            for b in run:
                block = data[(b - run[0]) * BLOCK_BYTES : (b - run[0] + 1) * BLOCK_BYTES]
                if self.verify and b < len(self.blocks) and xxhash.xxh3_64_hexdigest(block) != self.blocks[b]:
                    raise ShardError(f"{self.url}: block {b} (bytes {b * BLOCK_BYTES}-) fails its checksum "
                                     f"(corrupt shard)")
                self.cache.put((self.sha256, b), block)
                got[b] = block
        return [got[b] for b in range(first, last + 1)]


def _runs(blocks: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for b in blocks:
        if runs and runs[-1][-1] == b - 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    return runs
