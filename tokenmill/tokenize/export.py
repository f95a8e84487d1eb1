"""Export a tokenized dataset for other trainers. The token bytes are the same in every format (little-endian ids,
EOS after each document), so an export is a streamed copy plus each format's document index.

* datatrove (`DatatroveFolderDataset`, nanotron): per shard `<slug>_NNNNN.ds` (the tokens), `.ds.index` (uint64
  end of each document, in tokens) and `.ds.metadata` (`tokenizer|token_size`, token count, human count).
* megatron (Megatron-LM / Megatron-core `IndexedDataset`, "MMIDIDX" version 1): one `<slug>.bin` + `<slug>.idx`;
  each document is one sequence. The .idx is: magic `MMIDIDX\\x00\\x00`, <Q version 1, <B dtype code (8 = uint16,
  4 = int32: Megatron has no uint32, and ids < 2^31 have the same bytes), <Q sequence count, <Q document count
  (sequences + 1), int32 sequence lengths, int64 byte pointers, int64 document indices (0..n).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np

from tokenmill.io import atomic_path
from tokenmill.tokenize.format import ShardError, source_slug
from tokenmill.tokenize.shards import TokenDataset

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_VERSION = 1
MEGATRON_DTYPE_CODE = {2: 8, 4: 4}  # token bytes -> Megatron DType code (uint16, int32)
COPY_CHUNK = 16 << 20


def _copy_tokens(ds: TokenDataset, shard: int, f) -> None:
    """Copy a shard's bytes into `f`, checking its whole-file sha256 on the way."""
    if ds.is_remote:
        data = ds.tokens(shard).tobytes()  # block-checked as it arrived
        sha = hashlib.sha256(data).hexdigest()
        f.write(data)
    else:
        h = hashlib.sha256()
        with open(ds.path(ds.shards[shard]["bin"]), "rb") as src:
            while chunk := src.read(COPY_CHUNK):
                h.update(chunk)
                f.write(chunk)
        sha = h.hexdigest()
    if sha != ds.shards[shard]["sha256"]:
        raise ShardError(f"{ds.path(ds.shards[shard]['bin'])}: sha256 does not match dataset.json (corrupt shard)")


def export_datatrove(ds: TokenDataset, out: Path) -> list[Path]:
    slug = source_slug(ds.source)
    written = []
    tok_name = ds.meta.get("tokenizer", {}).get("path") or "tokenmill"
    for s in range(ds.num_shards):
        base = out / f"{slug}_{s:05d}.ds"
        idx = ds.index(s)
        ends = (idx.column("token_start").to_numpy() + idx.column("token_count").to_numpy()).astype("<u8")
        with atomic_path(base) as tmp, open(tmp, "wb") as f:
            _copy_tokens(ds, s, f)
        with atomic_path(f"{base}.index") as tmp:
            Path(tmp).write_bytes(ends.tobytes())
        n = int(ds.shard_tokens[s])
        with atomic_path(f"{base}.metadata") as tmp:
            Path(tmp).write_text(f"{tok_name}|{ds.dtype.itemsize}\n{n}\n{n / 1e6:.1f}M")
        written.append(base)
    return written


def megatron_index(lengths: np.ndarray, itemsize: int) -> bytes:
    """The .idx bytes for documents of `lengths` tokens, stored back to back, one sequence each."""
    n = len(lengths)
    pointers = np.zeros(n, "<i8")
    if n:
        pointers[1:] = np.cumsum(lengths[:-1].astype(np.int64)) * itemsize
    header = MEGATRON_MAGIC + struct.pack("<Q", MEGATRON_VERSION) + struct.pack("<B", MEGATRON_DTYPE_CODE[itemsize])
    header += struct.pack("<Q", n) + struct.pack("<Q", n + 1)
    return header + lengths.astype("<i4").tobytes() + pointers.tobytes() + np.arange(n + 1, dtype="<i8").tobytes()


def export_megatron(ds: TokenDataset, out: Path) -> list[Path]:
    if ds.vocab_size > 2**31:
        raise ValueError(f"{ds.root}: vocab of {ds.vocab_size} ids does not fit Megatron's int32")
    prefix = out / source_slug(ds.source)
    with atomic_path(f"{prefix}.bin") as tmp, open(tmp, "wb") as f:
        for s in range(ds.num_shards):
            _copy_tokens(ds, s, f)
    lengths = np.concatenate([ds.index(s).column("token_count").to_numpy() for s in range(ds.num_shards)])
    with atomic_path(f"{prefix}.idx") as tmp:
        Path(tmp).write_bytes(megatron_index(lengths, ds.dtype.itemsize))
    return [Path(f"{prefix}.bin"), Path(f"{prefix}.idx")]


def export_dataset(dataset: str | TokenDataset, out: str | Path, fmt: str) -> str:
    """Export `dataset` (folder, URL or TokenDataset) to folder `out` in `fmt` ("datatrove" or "megatron")."""
    ds = dataset if isinstance(dataset, TokenDataset) else TokenDataset.open(dataset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "datatrove":
        files = export_datatrove(ds, out)
    elif fmt == "megatron":
        files = export_megatron(ds, out)
    else:
        raise ValueError(f"unknown export format {fmt!r}: use datatrove or megatron")
    return f"exported {ds.num_docs} documents, {ds.num_tokens} tokens ({fmt}) to {out}: " + \
        ", ".join(p.name for p in files)
