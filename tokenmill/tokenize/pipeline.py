"""The tokenize step of a pipeline job: the `tokenize:` section of a job spec and its phases of Ray tasks.

    [train the tokenizer on the first `max_docs` documents]  (one task, when `train:` is given)
    → encode: one task per document file; batch encoding (tiktoken's BPE core when it gives HF's ids, see
      fastbpe.py; HF `encode_batch` otherwise) at document granularity, EOS after each document,
      rows grouped by `source` into OUT/<source slug>/shard-<file index>.bin (one shard per file and source)
    → finalize: one task per source, writing its dataset.json and the packing plans asked for.

Every output is written atomically; a re-run skips tasks whose done-marker exists (the runner's job). Measured:
see benchmarks/results/tokenize.json (tokenize + pack vs datatrove's DocumentTokenizer, same tokenizer).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from tokenmill.config import ConfigError, Strict
from tokenmill.stage import Phases, Task
from tokenmill.tokenize.fastbpe import FastBPE
from tokenmill.tokenize.format import ORIGIN_COLUMNS, dtype_for_vocab, source_slug
from tokenmill.tokenize.tokenizer import (
    DEFAULT_SPECIAL_TOKENS,
    load_tokenizer,
    tokenizer_facts,
    tokenizer_sha256,
)
from tokenmill.tokenize.writer import ShardWriter, copy_tokenizer, dataset_meta, read_sidecars, write_meta

GUARD_DOCS = 32  # documents of each file also encoded by HF to check the fast path (~2% of a 2,000-doc file)
ENCODE_BATCH_DOCS = 512  # documents per encode_batch call: large enough to use both Rust threads, small in memory


class TrainTokenizer(Strict):
    vocab_size: int = Field(default=8192, ge=260)
    max_docs: int | None = Field(default=100_000, ge=1)  # train on the first N kept documents (file order)
    special_tokens: list[str] = Field(default_factory=lambda: list(DEFAULT_SPECIAL_TOKENS))


class TokenizeConfig(Strict):
    """`tokenize:` in a job spec. Give `tokenizer` (a tokenizer.json) or `train` (settings), not both."""

    tokenizer: str | None = None
    train: TrainTokenizer | None = None
    eos_token: str | None = None  # None: the tokenizer's <|endoftext|>, </s>, ... whichever it has
    dtype: Literal["auto", "uint16", "uint32"] = "auto"  # auto: uint16 when every id fits, else uint32
    seq_lens: list[int] = Field(default_factory=list)  # packing plans to precompute, e.g. [2048]
    packing: list[Literal["concat", "bestfit"]] = Field(default_factory=lambda: ["concat", "bestfit"])
    batch_docs: int = Field(default=ENCODE_BATCH_DOCS, ge=1)
    # auto: tiktoken's BPE core when it gives HF's ids for this tokenizer (fastbpe.py), checked per file; else HF
    encoder: Literal["auto", "hf"] = "auto"

    @model_validator(mode="after")
    def _one_tokenizer(self) -> TokenizeConfig:
        if (self.tokenizer is None) == (self.train is None):
            raise ValueError("give exactly one of `tokenizer: path/to/tokenizer.json` or `train: {vocab_size: N}`")
        if self.tokenizer is not None:
            self._check_tokenizer()
        if any(s < 1 for s in self.seq_lens):
            raise ValueError(f"seq_lens must be positive, got {self.seq_lens}")
        if self.train is not None and self.dtype == "uint16" and self.train.vocab_size > 65536:
            raise ValueError(f"dtype uint16 cannot hold vocab_size {self.train.vocab_size}; use auto or uint32")
        return self


    def _check_tokenizer(self) -> None:
        """Before any work: the file loads, has the EOS token, and its ids fit the dtype asked for."""
        if not Path(self.tokenizer).is_file():
            raise ValueError(f"tokenizer file not found: {self.tokenizer}")
        try:
            _, _, vocab = tokenizer_facts(load_tokenizer(self.tokenizer), self.eos_token)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        if self.dtype == "uint16" and vocab > 65536:
            raise ValueError(f"dtype uint16 cannot hold the {vocab} ids of {self.tokenizer}; use auto or uint32")


def tokenize_phases(config: TokenizeConfig, doc_files: list[str], out_dir: str) -> Phases:
    out = Path(out_dir)
    tok_path = config.tokenizer
    if config.train is not None:
        tok_path = str(out / "tokenizer.json")
        t = config.train
        yield [Task("train-tokenizer", train_task, (list(doc_files), tok_path, t.vocab_size,
                                                    tuple(t.special_tokens), t.max_docs))]
    assert tok_path is not None
    tasks = [Task(f"encode-{i:05d}", encode_file, (f, i, str(out), tok_path, config)) for i, f in
             enumerate(doc_files)]
    results = yield tasks
    sources: dict[str, str] = {}
    for r in results or []:
        sources.update(r.get("sources", {}))
    facts = (results or [{}])[0].get("tokenizer", {})
    yield [Task(f"finalize-{slug}", finalize_dataset, (str(out / slug), src, tok_path, config, facts))
           for slug, src in sorted(sources.items())]


def train_task(doc_files: list[str], out: str, vocab_size: int, special: tuple[str, ...],
               max_docs: int | None) -> dict:
    from tokenmill.tokenize.tokenizer import train_tokenizer

    path = train_tokenizer(doc_files, out, vocab_size=vocab_size, special_tokens=special, max_docs=max_docs,
                           allow_empty=True)  # filters that kept nothing: the run still ends with its report
    return {"tokenizer": str(path), "sha256": tokenizer_sha256(path)}


def _token_dtype(config: TokenizeConfig, vocab: int, tok_path: str) -> np.dtype:
    if config.dtype == "auto":
        return dtype_for_vocab(vocab)
    if config.dtype == "uint16" and vocab > 65536:
        raise ConfigError(f"{tok_path}: vocab of {vocab} ids does not fit tokenize.dtype uint16; use auto")
    return np.dtype(config.dtype).newbyteorder("<")


def encode_file(doc_file: str, index: int, out_dir: str, tok_path: str, config: TokenizeConfig) -> dict:
    """Tokenize one Parquet document file into one shard per source found in it."""
    tok = load_tokenizer(tok_path)
    eos, pad, vocab = tokenizer_facts(tok, config.eos_token)
    dtype = _token_dtype(config, vocab, tok_path)
    facts = {"eos_id": eos, "pad_id": pad, "vocab_size": vocab, "dtype": dtype.name, "path": tok_path,
             "sha256": tokenizer_sha256(tok_path)}
    encode = Encoder(tok, tok_path, config.encoder)
    shards = SourceShards(Path(out_dir), index, dtype, eos, vocab)
    skipped = docs = 0
    try:
        for batch, n_skipped in kept_batches(doc_file, config.batch_docs):
            skipped += n_skipped
            if len(batch):
                ids = encode(batch.column("text").to_pylist(), batch.column("id").to_pylist())
                shards.add(batch, ids)
                docs += len(batch)
        tokens = shards.close()
    except BaseException:
        shards.abort()
        raise
    return {"file": doc_file, "documents": docs, "skipped_null_or_dropped": skipped, "sources": shards.sources,
            "tokens": tokens, "encoder": encode.report(), "tokenizer": facts}


def kept_batches(doc_file: str, batch_docs: int) -> Iterator[tuple[pa.RecordBatch, int]]:
    """(batch of kept documents with id/url/source/text/warc_path/warc_offset, rows skipped: null text or a
    drop_reason). Columns a document file lacks come back as nulls."""
    try:
        pf = pq.ParquetFile(doc_file)
    except Exception as err:
        raise ConfigError(f"{doc_file}: not a readable Parquet document file: {err}") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise ConfigError(f"{doc_file}: no `text` column to tokenize")
    cols = [c for c in ("id", "url", "source", "text", "drop_reason", *ORIGIN_COLUMNS) if c in names]
    for batch in pf.iter_batches(batch_size=batch_docs, columns=cols):
        keep = pc.is_valid(batch.column("text"))
        if "drop_reason" in cols:
            keep = pc.and_(keep, pc.is_null(batch.column("drop_reason")))
        kept = batch.filter(keep)
        for name, typ in (("id", pa.string()), ("url", pa.string()), ("source", pa.string()),
                          ("warc_path", pa.string()), ("warc_offset", pa.int64())):
            if name not in cols:
                kept = kept.append_column(name, pa.nulls(len(kept), typ))
        yield kept, len(batch) - len(kept)


class SourceShards:
    """This file's shard of every source it holds: OUT/<source slug>/shard-<file index>.bin."""

    def __init__(self, out: Path, index: int, dtype: np.dtype, eos: int, vocab: int) -> None:
        self.out, self.index, self.dtype, self.eos, self.vocab = out, index, dtype, eos, vocab
        self.writers: dict[str, ShardWriter] = {}
        self.sources: dict[str, str] = {}  # slug -> source

    def add(self, batch: pa.RecordBatch, ids: list[list[int]]) -> None:
        groups = pc.dictionary_encode(pc.fill_null(batch.column("source"), "unknown"))
        group_of_row = groups.indices.to_numpy()
        for k, src in enumerate(groups.dictionary.to_pylist()):
            rows = np.flatnonzero(group_of_row == k)
            slug = source_slug(src)
            self.sources[slug] = src
            if slug not in self.writers:
                self.writers[slug] = ShardWriter(self.out / slug, self.index, self.dtype, self.eos, self.vocab)
            meta = batch.take(rows)
            self.writers[slug].add_batch([ids[r] for r in rows], {
                "id": meta.column("id").to_pylist(), "url": meta.column("url").to_pylist(),
                "source": [src] * len(rows), **{c: meta.column(c).to_pylist() for c in ORIGIN_COLUMNS}})

    def close(self) -> dict[str, int]:
        return {slug: w.close()["num_tokens"] for slug, w in self.writers.items()}

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()


class Encoder:
    """Batch encoding for one file: the fast path when allowed, guarded by HF on the file's first documents."""

    def __init__(self, tok, tok_path: str, mode: str) -> None:
        self.tok, self.fast, self.why = tok, None, "encoder: hf"
        if mode == "auto":
            self.fast, self.why = FastBPE.from_file(tok_path)
        self._to_check = GUARD_DOCS if self.fast is not None else 0

    def __call__(self, texts: list[str], doc_ids: list) -> list[list[int]]:
        if self.fast is None:
            return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]
        ids = self.fast.encode_batch(texts)
        if self._to_check:
            n = min(self._to_check, len(texts))
            ref = [e.ids for e in self.tok.encode_batch(texts[:n], add_special_tokens=False)]
            self._to_check -= n
            bad = next((k for k in range(n) if ref[k] != ids[k]), None)
            if bad is not None:  # never seen; the reference decides, for the whole file
                self.fast, self.why = None, f"fast path differs from HF on document {doc_ids[bad]}"
                return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]
        return ids

    def report(self) -> str:
        return "fast (tiktoken BPE, checked against HF)" if self.fast is not None else f"hf ({self.why})"


def finalize_dataset(folder: str, source: str, tok_path: str, config: TokenizeConfig, facts: dict | None = None
                     ) -> dict:
    """Write dataset.json from the shards' sidecars, then the packing plans (which add their rates to it).
    `facts`: the tokenizer's ids, vocab size, dtype and sha256 as the encode tasks found them (else read again)."""
    if not facts:
        eos, pad, vocab = tokenizer_facts(load_tokenizer(tok_path), config.eos_token)
        facts = {"eos_id": eos, "pad_id": pad, "vocab_size": vocab, "sha256": tokenizer_sha256(tok_path),
                 "dtype": _token_dtype(config, vocab, tok_path).name}
    shards = read_sidecars(folder)
    meta = dataset_meta(source, shards, dtype=np.dtype(facts["dtype"]), eos_id=facts["eos_id"],
                        pad_id=facts["pad_id"], vocab_size=facts["vocab_size"],
                        tokenizer={"path": tok_path, "sha256": facts["sha256"]})
    copy_tokenizer(folder, tok_path)
    write_meta(folder, meta)
    from tokenmill.tokenize.packing import PackedSequences
    from tokenmill.tokenize.shards import TokenDataset

    ds = TokenDataset.open(folder, verify=False)  # just written from the sidecars' checksums
    rates = {}
    for seq_len in config.seq_lens:
        for mode in config.packing:
            ps = PackedSequences(ds, seq_len, mode)
            rates[f"{mode}-{seq_len}"] = {k: ps.stats[k] for k in ("num_sequences", "truncation_rate",
                                                                   "waste_rate")}
    return {"folder": folder, "source": source, "num_tokens": meta["num_tokens"],
            "num_documents": meta["num_documents"], "packing": rates}
