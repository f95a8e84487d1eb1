"""The token-shard format (DESIGN.md "Token shards"): names, dtypes, checksums. No I/O policy lives here.

A tokenized dataset is a folder:

    dataset.json              format, source, tokenizer sha256, vocab size, dtype, EOS/pad ids, token and doc
                              counts, packing plans with their rates, and every shard with its checksums
    shard-NNNNN.bin           flat little-endian uint16 (vocab <= 65,536) or uint32 token ids; every document is
                              followed by one EOS token, which belongs to that document
    shard-NNNNN.idx.parquet   one row per document: id, url, source, token_start, token_count (EOS included),
                              warc_path, warc_offset (the crawl record it came from; null where unknown)
    tokenizer.json            a copy of the tokenizer (dataset.json "tokenizer" has its original path and sha256)
    packing-MODE-SEQLEN.npy   packing plans (tokenmill.tokenize.packing), when computed

Each shard entry in dataset.json carries the sha256 of the whole .bin (checked lazily on first access of a
local shard) and an xxh3-64 per `BLOCK_BYTES` block (checked on every remote range read, which never sees
the whole file). Shard numbers may have gaps (one shard per pipeline task that saw the source); the list in
dataset.json is the truth, and `TokenDataset` numbers its shards 0..num_shards-1 in that order.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash

FORMAT = "tokenmill.tokens/1"
META_NAME = "dataset.json"
BLOCK_BYTES = 1 << 20  # 1 MiB: the unit of remote fetches, cache entries and checks (1 per 512k uint16 tokens)
UINT16_MAX_VOCAB = 1 << 16  # ids 0..65535 fit in uint16
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<｜end▁of▁sentence｜>", "<eos>", "[SEP]")
PAD_CANDIDATES = ("<|pad|>", "<|padding|>", "<pad>", "[PAD]", "<｜▁pad▁｜>")

INDEX_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("token_start", pa.int64()),  # offset of the document's first token in its shard
        pa.field("token_count", pa.int64()),  # tokens of the document, its trailing EOS included
        pa.field("warc_path", pa.string()),  # output -> document -> crawl record in one hop (trace, quarantine)
        pa.field("warc_offset", pa.int64()),
    ]
)
ORIGIN_COLUMNS = ("warc_path", "warc_offset")  # absent from indexes written before they were added: read as nulls


def conform_index(table: pa.Table) -> pa.Table:
    """An index table read from disk in INDEX_SCHEMA's shape: columns an older writer did not know are nulls."""
    for field in INDEX_SCHEMA:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


class ShardError(ValueError):
    """A shard or dataset on disk is missing, cut short or corrupt. The message names the file."""


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= UINT16_MAX_VOCAB else np.dtype("<u4")


def shard_names(number: int) -> tuple[str, str]:
    """File names of shard `number`: (tokens, index)."""
    return f"shard-{number:05d}.bin", f"shard-{number:05d}.idx.parquet"


def source_slug(source: str | None) -> str:
    """Folder name of a source: `cc/CC-MAIN-2024-22` → `cc_CC-MAIN-2024-22`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source or "unknown").strip("._")
    return slug or "unknown"


def sha256_file(path: str | Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def block_hashes(data: bytes | memoryview) -> list[str]:
    """xxh3-64 (hex) of each BLOCK_BYTES block of `data`."""
    mv = memoryview(data)
    return [xxhash.xxh3_64_hexdigest(mv[i : i + BLOCK_BYTES]) for i in range(0, len(mv), BLOCK_BYTES)]


class StreamHasher:
    """sha256 of the whole stream and xxh3-64 per BLOCK_BYTES block, fed in arbitrary pieces while writing."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.blocks: list[str] = []
        self._block = xxhash.xxh3_64()
        self._in_block = 0
        self.nbytes = 0

    def update(self, data: bytes | memoryview) -> None:
        mv = memoryview(data).cast("B")
        self.sha.update(mv)
        self.nbytes += len(mv)
        while len(mv):
            take = min(len(mv), BLOCK_BYTES - self._in_block)
            self._block.update(mv[:take])
            self._in_block += take
            mv = mv[take:]
            if self._in_block == BLOCK_BYTES:
                self._flush()

    def _flush(self) -> None:
        self.blocks.append(self._block.hexdigest())
        self._block = xxhash.xxh3_64()
        self._in_block = 0

    def finish(self) -> tuple[str, list[str]]:
        if self._in_block:
            self._flush()
        return self.sha.hexdigest(), self.blocks


def special_id(vocab: dict[str, int], candidates: tuple[str, ...]) -> int | None:
    for tok in candidates:
        if tok in vocab:
            return vocab[tok]
    return None
