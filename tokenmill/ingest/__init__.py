"""Common Crawl sources: path lists, WARC/WET/WAT records, HTML → text, charset handling.

    list_shards(spec)                       # paths, globs, fsspec URLs, *.paths.gz manifests → sorted shard list
    read_documents(spec, path, batch_size)  # one shard → pyarrow Tables with exactly DOC_SCHEMA

Every document candidate becomes exactly one row: kept (drop_reason null) or dropped with an `ingest.*` reason
and empty text (see `warc.py` for which records are documents, `extract.py` for HTML → text and the time cap,
`tables.py` for Parquet/JSONL). Row ids: hex xxh3-128 of f"{source}\\x00{WARC-Record-ID}", stable across runs;
rows without a record id (a truncated file, leading garbage) hash (source, path, offset, reason) instead; where
several share those (gap rows in a single stream, whose offsets are null; a gap and a broken record in one gzip
member), the second and later add their ordinal among them.
The synthetic crawl for tests and demos is `generate.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from tokenmill.config import InputSpec
from tokenmill.ingest.extract import ExtractOptions, shared_extractor
from tokenmill.ingest.paths import list_shards, shard_format
from tokenmill.ingest.warc import RawDoc, iter_raw_docs
from tokenmill.schema import DOC_SCHEMA, DROP_REASON, TEXT, with_drop_reason

__all__ = ["list_shards", "read_documents", "shard_format"]


def read_documents(spec: InputSpec, path: str, batch_size: int) -> Iterator[pa.Table]:
    """Stream shard `path` of `spec` as tables of at most `batch_size` rows, each with exactly DOC_SCHEMA."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    fmt = shard_format(path, spec.format)
    if fmt in ("parquet", "jsonl"):
        from tokenmill.ingest import tables

        reader = tables.read_parquet if fmt == "parquet" else tables.read_jsonl
        for table in reader(path, spec.source, batch_size):
            table = apply_text_limits(table, spec)
            yield from (table.slice(k, batch_size) for k in range(0, table.num_rows, batch_size))
        return
    opts = ExtractOptions(spec.extractor, spec.main_content)
    extractor = shared_extractor(opts, spec.extract_timeout_s)
    prev: list[RawDoc] | None = None
    seen: Counter[str] = Counter()  # rows without a record id so far in this file, by key
    try:
        for batch in _batches(iter_raw_docs(path, fmt, spec.max_record_bytes), batch_size):
            # the child extracts `prev` while this generator parsed `batch` (and the consumer used the last table)
            table = _finish(prev, extractor.collect(), spec, path, seen) if prev is not None else None
            extractor.submit([(d.body, d.charset) for d in batch if d.body is not None and d.drop_reason is None])
            prev = batch
            if table is not None:
                yield table
        if prev is not None:
            batch, prev = prev, None
            yield _finish(batch, extractor.collect(), spec, path, seen)
    finally:
        extractor.abandon()  # no-op unless the reader stopped (or failed) with a batch in flight


def _batches(docs: Iterator[RawDoc], size: int) -> Iterator[list[RawDoc]]:
    batch: list[RawDoc] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _finish(docs: list[RawDoc], results: list[tuple[str, str | None]], spec: InputSpec, path: str,
            seen: Counter[str]) -> pa.Table:
    """The batch's table, with the extraction `results` of its HTML pages filled in."""
    pending = [d for d in docs if d.body is not None and d.drop_reason is None]
    for d, (text, reason) in zip(pending, results, strict=True):
        d.text, d.drop_reason, d.body = text, reason, None
    keys = [d.record_id or _keyless(f"{path}\x00{d.offset}\x00{d.drop_reason}", seen) for d in docs]
    n = len(docs)
    table = pa.table({
        "id": pa.array([xxhash.xxh3_128_hexdigest(f"{spec.source}\x00{k}".encode()) for k in keys], pa.string()),
        "url": pa.array([d.url for d in docs], pa.string()),
        "source": pa.array([spec.source] * n, pa.string()),
        "warc_path": pa.array([path] * n, pa.string()),
        "warc_offset": pa.array([d.offset for d in docs], pa.int64()),
        "warc_record_id": pa.array([d.record_id for d in docs], pa.string()),
        "warc_date": pa.array([d.date for d in docs], pa.string()),
        "text": pa.array([d.text for d in docs], pa.large_string()),
        "language": pa.nulls(n, pa.string()),
        "language_score": pa.nulls(n, pa.float32()),
        "drop_reason": pa.array([d.drop_reason for d in docs], pa.string()),
    }, schema=DOC_SCHEMA)
    return apply_text_limits(table, spec)


def _keyless(key: str, seen: Counter[str]) -> str:
    """The id key of a row without a record id: `key`, then `key` and its ordinal for a second one and later."""
    n = seen[key]
    seen[key] = n + 1
    return f"{key}\x00{n}" if n else key


def apply_text_limits(table: pa.Table, spec: InputSpec) -> pa.Table:
    """Drop (vectorized) texts shorter than `min_text_chars` once stripped (`ingest.empty_text`) or longer than
    `max_text_chars` (`ingest.text_too_long`); every dropped row's text becomes ""."""
    text = table[TEXT]
    short = pc.less(pc.utf8_length(pc.utf8_trim_whitespace(text)), max(spec.min_text_chars, 1))
    long = pc.greater(pc.utf8_length(text), spec.max_text_chars)
    reasons = pc.if_else(short, "ingest.empty_text", pc.if_else(long, "ingest.text_too_long", None))
    table = with_drop_reason(table, reasons)
    blank = pc.if_else(pc.is_valid(table[DROP_REASON]), pa.scalar("", pa.large_string()), table[TEXT])
    return table.set_column(table.schema.get_field_index(TEXT), TEXT, blank)
