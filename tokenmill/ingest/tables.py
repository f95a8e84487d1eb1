"""Documents at rest: Parquet and JSON Lines files with a `text` column, read in batches into `DOC_SCHEMA`.

Core columns present in the file are kept (a tokenmill output read back keeps its provenance); missing ones are
filled: `source` = spec.source, `warc_path` = this file, `warc_offset` = the row's index in the file (Parquet) or
the line's byte offset in the decompressed file (JSONL), and `id` = xxh3-128 of (source, the file's `id` field) or,
where it is absent or null, of (source, file, that row index / line offset): two copies of a text are two documents
with two ids (a text-derived id gave both the same id, and dedup then dropped or kept them as one). A JSONL line that is not a JSON object with a string `text` is a row dropped as
`ingest.corrupt_record`, never a crash; a clipped .gz keeps the lines read and adds one `ingest.truncated_file` row.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from tokenmill.config import ConfigError
from tokenmill.schema import DOC_SCHEMA, ID, SOURCE, TEXT, WARC_OFFSET, WARC_PATH, documents_from_pylist

_LINE_OFFSET = "\x00line_offset"  # a JSONL row's own byte offset, kept beside its fields (never a column name)


def _hash_ids(source: str, keys: list[str | None]) -> list[str]:
    return [xxhash.xxh3_128_hexdigest(f"{source}\x00{k}".encode()) for k in keys]


def _conform(table: pa.Table, path: str, source: str, positions: list[int]) -> pa.Table:
    """Cast/fill `table` (which has a string `text` column) to DOC_SCHEMA. `positions`: each row's place in the
    file (Parquet row index, JSONL line offset), the default `warc_offset` and the id key without an `id`."""
    n = table.num_rows
    cols = {}
    for field in DOC_SCHEMA:
        if field.name in table.column_names and field.name != ID:
            cols[field.name] = table[field.name].cast(field.type)
        else:
            cols[field.name] = pa.nulls(n, field.type)
    if SOURCE not in table.column_names:
        cols[SOURCE] = pa.array([source] * n, pa.string())
    if WARC_PATH not in table.column_names:
        cols[WARC_PATH] = pa.array([path] * n, pa.string())
    if WARC_OFFSET not in table.column_names:
        cols[WARC_OFFSET] = pa.array(positions, pa.int64())
    given = table[ID].cast(pa.string()).to_pylist() if ID in table.column_names else [None] * n
    keys = [k if k is not None else f"{path}\x00{pos}" for k, pos in zip(given, positions, strict=True)]
    cols[ID] = pa.array(_hash_ids(source, keys), pa.string())
    cols[TEXT] = pc.fill_null(cols[TEXT], "")
    return pa.table(cols, schema=DOC_SCHEMA)


def read_parquet(path: str, source: str, batch_size: int) -> Iterator[pa.Table]:
    with fsspec.open(path, "rb") as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as err:
            raise ConfigError(f"{path}: not a readable Parquet file: {err}") from None
        if TEXT not in pf.schema_arrow.names:
            raise ConfigError(f"{path}: no `{TEXT}` column (columns: {pf.schema_arrow.names})")
        row = 0
        for batch in pf.iter_batches(batch_size=batch_size):
            table = pa.Table.from_batches([batch])
            yield _conform(table, path, source, list(range(row, row + table.num_rows)))
            row += table.num_rows


def read_jsonl(path: str, source: str, batch_size: int) -> Iterator[pa.Table]:
    """Line by line (bounded memory; one bad line costs one row, not the file)."""
    good: list[dict] = []
    bad: list[dict] = []
    offset = 0
    with fsspec.open(path, "rb", compression="infer") as f:
        lines = iter(f)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                break
            except (OSError, EOFError, zlib.error):  # a clipped or corrupt .gz: what was read is kept
                bad.append({WARC_OFFSET: offset, TEXT: "", "drop_reason": "ingest.truncated_file"})
                break
            line_offset, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict) or not isinstance(obj.get(TEXT), str):
                    raise ValueError("not an object with a string `text`")
                obj.setdefault(WARC_OFFSET, line_offset)
                obj[_LINE_OFFSET] = line_offset
                good.append(obj)
            except ValueError:
                bad.append({WARC_OFFSET: line_offset, TEXT: "", "drop_reason": "ingest.corrupt_record"})
            if len(good) + len(bad) >= batch_size:
                yield _jsonl_table(good, bad, path, source)
                good, bad = [], []
    if good or bad:
        yield _jsonl_table(good, bad, path, source)


def _jsonl_table(good: list[dict], bad: list[dict], path: str, source: str) -> pa.Table:
    parts = []
    try:
        good_table = _good_table(good, path, source)
    except UnicodeEncodeError:  # `"\ud800"` is valid JSON but no UTF-8: such a line is a corrupt record
        good, bad = _split_unencodable(good, bad)
        good_table = _good_table(good, path, source)
    if good_table is not None:
        parts.append(good_table)
    if bad:
        for b in bad:
            b.update({SOURCE: source, WARC_PATH: path})
            b[ID] = _hash_ids(source, [f"{path}\x00{b[WARC_OFFSET]}"])[0]
        parts.append(documents_from_pylist(bad))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _good_table(good: list[dict], path: str, source: str) -> pa.Table | None:
    if not good:
        return None
    positions = [g[_LINE_OFFSET] for g in good]
    cols = {name: [g.get(name) for g in good] for name in DOC_SCHEMA.names if any(name in g for g in good)}
    if ID in cols:
        cols[ID] = [None if v is None else str(v) for v in cols[ID]]
    try:
        return _conform(pa.table(cols), path, source, positions)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a core column with mixed types: keep text and id only
        return _conform(pa.table({k: cols[k] for k in (TEXT, ID, WARC_OFFSET) if k in cols}), path, source,
                        positions)


def _split_unencodable(good: list[dict], bad: list[dict]) -> tuple[list[dict], list[dict]]:
    """Move lines holding a string that is not valid Unicode (a lone surrogate) from `good` to `bad`."""
    ok = []
    for g in good:
        try:
            for name in DOC_SCHEMA.names:
                if isinstance(g.get(name), str):
                    g[name].encode("utf-8")
            ok.append(g)
        except UnicodeEncodeError:
            bad.append({WARC_OFFSET: g[_LINE_OFFSET], TEXT: "", "drop_reason": "ingest.corrupt_record"})
    return ok, bad
