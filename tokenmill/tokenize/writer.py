"""Writing token shards: `ShardWriter` (one shard, atomic, checksummed while it streams) and
`write_token_dataset` (a whole dataset in-process, for tests, small jobs and other parts' fixtures).

Each document's ids are followed by one EOS; the index row's `token_count` includes it, so every token of a shard
belongs to exactly one document. A shard is complete when its sidecar `shard-NNNNN.json` exists: it is written
after the .bin and .idx.parquet have been renamed into place, and holds the shard's entry for dataset.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.io import _tmp_name, atomic_write_bytes, atomic_write_json
from tokenmill.tokenize.format import (
    FORMAT,
    INDEX_SCHEMA,
    META_NAME,
    ORIGIN_COLUMNS,
    StreamHasher,
    dtype_for_vocab,
    sha256_file,
    shard_names,
)

TOKENIZER_NAME = "tokenizer.json"  # copy of the tokenizer in each dataset folder
DEFAULT_MAX_SHARD_TOKENS = 1 << 28  # 256M tokens: 512 MB of uint16, block-checked in ~20 ms on first access


class ShardWriter:
    """Append documents' token ids to `shard-NNNNN.bin` and their rows to its index; `close()` renames both."""

    def __init__(self, folder: str | Path, number: int, dtype: np.dtype, eos_id: int, vocab_size: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.number, self.dtype, self.eos_id, self.vocab_size = number, np.dtype(dtype), eos_id, vocab_size
        self.bin_name, self.idx_name = shard_names(number)
        self._bin_tmp = _tmp_name(self.folder / self.bin_name)
        self._bin = open(self._bin_tmp, "wb")
        self._hasher = StreamHasher()
        self._rows: list[pa.RecordBatch] = []
        self.num_tokens = 0
        self.num_docs = 0

    def add_batch(self, ids: Sequence[Sequence[int]] | Sequence[np.ndarray], ids_meta: pa.Table | dict,
                  append_eos: bool = True) -> None:
        """Append documents: `ids[i]` are document i's ids (no EOS), `ids_meta` its id/url/source columns
        (and optionally warc_path/warc_offset)."""
        lengths = np.fromiter((len(x) for x in ids), np.int64, count=len(ids))
        flat = _flatten(ids, lengths, self.dtype, self.eos_id if append_eos else None)
        counts = lengths + 1 if append_eos else lengths
        if len(flat) and (int(flat.max()) >= self.vocab_size or int(flat.min()) < 0):
            wrong = (flat >= self.vocab_size) | (flat < 0)
            bad = int(np.searchsorted(np.cumsum(counts), int(np.argmax(wrong)), side="right"))
            raise ValueError(f"{self.folder / self.bin_name}: document {_col(ids_meta, 'id')[bad]!r} has a token "
                             f"id outside [0, {self.vocab_size})")
        starts = self.num_tokens + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._rows.append(pa.record_batch(
            [pa.array(_col(ids_meta, "id"), pa.string()), pa.array(_col(ids_meta, "url"), pa.string()),
             pa.array(_col(ids_meta, "source"), pa.string()), pa.array(starts, pa.int64()),
             pa.array(counts, pa.int64()), pa.array(_col(ids_meta, "warc_path"), pa.string()),
             pa.array(_col(ids_meta, "warc_offset"), pa.int64())], schema=INDEX_SCHEMA))
        data = flat.astype(self.dtype.newbyteorder("<"), copy=False).tobytes()
        self._bin.write(data)
        self._hasher.update(data)
        self.num_tokens += len(flat)
        self.num_docs += len(lengths)

    def close(self) -> dict:
        """Rename the shard into place and return (and write as the sidecar) its dataset.json entry."""
        self._bin.close()
        sha, blocks = self._hasher.finish()
        idx_path = self.folder / self.idx_name
        idx_tmp = _tmp_name(idx_path)
        pq.write_table(pa.Table.from_batches(self._rows, schema=INDEX_SCHEMA), idx_tmp, compression="zstd")
        entry = {"bin": self.bin_name, "idx": self.idx_name, "num_tokens": self.num_tokens,
                 "num_documents": self.num_docs, "sha256": sha, "block_xxh3": blocks,
                 "idx_sha256": sha256_file(idx_tmp)}
        os.replace(self._bin_tmp, self.folder / self.bin_name)  # a killed task never leaves a half shard
        os.replace(idx_tmp, idx_path)
        atomic_write_json(self.folder / sidecar_name(self.number), entry)
        return entry

    def abort(self) -> None:
        self._bin.close()
        if os.path.exists(self._bin_tmp):
            os.unlink(self._bin_tmp)


def sidecar_name(number: int) -> str:
    return f"shard-{number:05d}.json"


def _col(meta: pa.Table | dict, name: str) -> list:
    if isinstance(meta, pa.Table):
        return meta.column(name).to_pylist() if name in meta.column_names else [None] * meta.num_rows
    if name not in meta:
        return [None] * len(meta["id"])
    return list(meta[name])


def _flatten(ids: Sequence, lengths: np.ndarray, dtype: np.dtype, eos: int | None) -> np.ndarray:
    """All documents' ids in one int64 array, EOS after each (vectorized: one concatenate, one scatter)."""
    body = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids]) if len(ids) else np.zeros(0, np.int64)
    if eos is None:
        return body
    out = np.empty(len(body) + len(lengths), dtype=np.int64)
    ends = np.cumsum(lengths + 1) - 1  # position of each document's EOS
    mask = np.ones(len(out), bool)
    mask[ends] = False
    out[mask] = body
    out[ends] = eos
    return out


def dataset_meta(source: str, shards: list[dict], *, dtype: np.dtype, eos_id: int, pad_id: int, vocab_size: int,
                 tokenizer: dict | None = None, packing: dict | None = None) -> dict:
    return {
        "format": FORMAT,
        "source": source,
        "tokenizer": tokenizer or {},
        "vocab_size": int(vocab_size),
        "dtype": np.dtype(dtype).name,
        "eos_id": int(eos_id),
        "pad_id": int(pad_id),
        "num_tokens": int(sum(s["num_tokens"] for s in shards)),
        "num_documents": int(sum(s["num_documents"] for s in shards)),
        "packing": packing or {},
        "shards": shards,
    }


def copy_tokenizer(folder: str | Path, tok_path: str | Path) -> None:
    """Put the tokenizer.json beside the shards, so a dataset copied elsewhere (or to object storage) decodes."""
    atomic_write_bytes(Path(folder) / TOKENIZER_NAME, Path(tok_path).read_bytes())


def write_meta(folder: str | Path, meta: dict) -> Path:
    path = Path(folder) / META_NAME
    atomic_write_json(path, meta)
    return path


def write_token_dataset(
    out_dir: str | Path,
    docs: Iterable[tuple[dict, Sequence[int] | np.ndarray] | dict],
    tokenizer_path: str | Path | None = None,
    *,
    source: str | None = None,
    vocab_size: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    max_shard_tokens: int = DEFAULT_MAX_SHARD_TOKENS,
    packing: Iterable[tuple[str, int]] = (),
    batch_docs: int = 1024,
) -> Path:
    """Write a tokenized dataset from `(doc, ids)` pairs (doc: dict with id, url, source; ids without EOS) or
    from dicts with a `text` (encoded with the tokenizer). Without a tokenizer give `vocab_size` and `eos_id`.
    Starts a new shard when one would pass `max_shard_tokens`. `packing`: (mode, seq_len) plans to precompute.
    """
    tok_info, tok = {}, None
    if tokenizer_path is not None:
        from tokenmill.tokenize.tokenizer import load_tokenizer, special_ids, tokenizer_sha256
        from tokenmill.tokenize.tokenizer import vocab_size as tok_vocab

        tok = load_tokenizer(tokenizer_path)
        tok_info = {"path": str(tokenizer_path), "sha256": tokenizer_sha256(tokenizer_path)}
        vocab_size = vocab_size or tok_vocab(tok)
        eos, pad = special_ids(tok)
        eos_id, pad_id = eos if eos_id is None else eos_id, pad if pad_id is None else pad_id
    if vocab_size is None or eos_id is None:
        raise ValueError("write_token_dataset: give a tokenizer_path, or vocab_size and eos_id")
    pad_id = eos_id if pad_id is None else pad_id
    dtype = dtype_for_vocab(vocab_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = []
    writer = ShardWriter(out, 0, dtype, eos_id, vocab_size)
    for metas, ids in _batches(docs, tok, batch_docs):
        source = source or next((m.get("source") for m in metas if m.get("source")), None)
        cum = np.cumsum([len(x) + 1 for x in ids])
        done = 0
        while done < len(ids):  # fill the shard document by document; a new one when the next would overflow
            room = max_shard_tokens - writer.num_tokens + (cum[done - 1] if done else 0)
            take = max(int(np.searchsorted(cum, room, side="right")), done + (writer.num_docs == 0))
            if take > done:
                writer.add_batch(ids[done:take], {k: [m.get(k) for m in metas[done:take]]
                                                  for k in ("id", "url", "source", *ORIGIN_COLUMNS)})
                done = take
            if done < len(ids):
                shards.append(writer.close())
                writer = ShardWriter(out, len(shards), dtype, eos_id, vocab_size)
    shards.append(writer.close())
    meta = dataset_meta(source or "unknown", shards, dtype=dtype, eos_id=eos_id, pad_id=pad_id,
                        vocab_size=vocab_size, tokenizer=tok_info)
    if tokenizer_path is not None:
        copy_tokenizer(out, tokenizer_path)
    write_meta(out, meta)
    for mode, seq_len in packing:
        from tokenmill.tokenize.packing import PackedSequences

        PackedSequences(str(out), seq_len, mode)  # computes the plan and records it in dataset.json
    return out


def _batches(docs: Iterable, tok, batch_docs: int):
    metas: list[dict] = []
    ids: list = []
    texts: list[str] = []
    for d in docs:
        if isinstance(d, dict):
            if tok is None:
                raise ValueError("write_token_dataset: documents given as text need a tokenizer_path")
            metas.append(d)
            texts.append(d["text"])
        else:
            metas.append(d[0])
            ids.append(d[1])
        if len(metas) >= batch_docs:
            yield metas, _encoded(ids, texts, tok)
            metas, ids, texts = [], [], []
    if metas:
        yield metas, _encoded(ids, texts, tok)


def _encoded(ids: list, texts: list[str], tok) -> list:
    if texts:
        if ids:
            raise ValueError("write_token_dataset: mix of (doc, ids) pairs and text dicts in one call")
        return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    return ids


def read_sidecars(folder: str | Path) -> list[dict]:
    """Entries of every complete shard in `folder`, in shard-number order (the pipeline's finalize step)."""
    out = []
    for p in sorted(Path(folder).glob("shard-[0-9]*.json")):
        out.append(json.loads(p.read_text()))
    return out
