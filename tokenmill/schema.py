"""The Arrow schema of a document batch: the single source of truth for column names.

Every stage receives and returns a `pyarrow.Table` whose first columns are `DOC_SCHEMA`. Filters append their
signal columns (e.g. `gopher_rep.dup_line_frac`) and set `drop_reason`; they never delete rows.
"""

from __future__ import annotations

import pyarrow as pa

ID = "id"  # stable: xxh3-128 of (source, WARC-Record-ID), hex; identical across runs
URL = "url"
SOURCE = "source"  # e.g. "cc/CC-MAIN-2024-22"; one tokenized dataset per source
WARC_PATH = "warc_path"  # the file the record came from, as the job named it (local path or URL)
WARC_OFFSET = "warc_offset"  # byte offset of the record (its gzip member) in that file
WARC_RECORD_ID = "warc_record_id"
WARC_DATE = "warc_date"  # ISO-8601 string as in the WARC header; sorts chronologically
TEXT = "text"
LANGUAGE = "language"
LANGUAGE_SCORE = "language_score"
DROP_REASON = "drop_reason"  # null = kept; "family.rule" otherwise, e.g. "gopher_rep.dup_line_frac"

DOC_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(URL, pa.string()),
        pa.field(SOURCE, pa.string()),
        pa.field(WARC_PATH, pa.string()),
        pa.field(WARC_OFFSET, pa.int64()),
        pa.field(WARC_RECORD_ID, pa.string()),
        pa.field(WARC_DATE, pa.string()),
        pa.field(TEXT, pa.large_string()),
        pa.field(LANGUAGE, pa.string()),
        pa.field(LANGUAGE_SCORE, pa.float32()),
        pa.field(DROP_REASON, pa.string()),
    ]
)

CORE_COLUMNS = tuple(DOC_SCHEMA.names)


def empty_documents() -> pa.Table:
    return DOC_SCHEMA.empty_table()


def documents_from_pylist(rows: list[dict]) -> pa.Table:
    """Build a document table from dicts; missing core columns are null. Handy in tests and readers."""
    cols = {name: [r.get(name) for r in rows] for name in CORE_COLUMNS}
    return pa.table(cols, schema=DOC_SCHEMA)


def set_column(table: pa.Table, name: str, values: pa.Array | list) -> pa.Table:
    """Replace column `name` if present, else append it."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, arr) if i >= 0 else table.append_column(name, arr)


def with_drop_reason(table: pa.Table, reasons: list[str | None] | pa.Array) -> pa.Table:
    """Set `drop_reason` where it is still null (a row keeps the first reason it was dropped for)."""
    import pyarrow.compute as pc

    new = reasons if isinstance(reasons, pa.Array | pa.ChunkedArray) else pa.array(reasons, pa.string())
    merged = pc.coalesce(table[DROP_REASON], new.cast(pa.string()))
    return set_column(table, DROP_REASON, merged)
