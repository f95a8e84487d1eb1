"""WARC / WET / WAT records → document rows (text still to extract for HTML), with every failure accounted.

Which records are documents: `response` (WARC; HTML → text), `conversion` (WET; text as is) and, in WAT files,
the `metadata` record of each response (WAT holds no page text: it becomes a row dropped as
`ingest.wat_no_text`, so a WAT input is accounted but yields nothing). `warcinfo`, `request`, `resource`,
`revisit` and other `metadata` records are not documents: they are skipped and not counted.

A document that cannot be read is a row with `text = ""` and a `drop_reason`: `ingest.too_large` (payload over
`max_record_bytes`, not read), `ingest.http_error` (status not 2xx), `ingest.not_html`, `ingest.corrupt_record`
(no URL, unreadable HTTP head or content encoding, a whole WARC header without WARC-Type or Content-Length,
bytes before the first record or between two, a gzip member that does not inflate, a header over 256 KB). A
file that ends inside a record (clipped gzip, short body) yields its good records, then one
`ingest.truncated_file` row at the offset of the broken record. Multi-member gzip is split into members here and
fastwarc (quirks mode: LF-only headers, bad dates, as in ClueWeb09) parses each member's record: fed the whole
stream, fastwarc skips a corrupt member without a word (found by flipping bytes: 25 of 100 pages vanished).
Splitting costs ~40 µs per member in Python, hidden behind extraction by the pipelined reader.

fastwarc's quirks mode also skips, silently, every record whose version line it does not take ("WARX/1.0",
"WARC/1.O", a missing line, junk glued in front). Non-blank bytes between one record's end and the next
record (or the end of the data; a gzip member with no record at all) are one `ingest.corrupt_record` row at
the first such byte, or at its member (warcgaps.py; ~2 µs a page).

`warc_offset` is the byte offset of the record's gzip member (multi-member gzip, as Common Crawl writes) or of
the record (uncompressed); it is null in single-stream gzip files, where a record cannot be fetched alone.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
from fastwarc.stream_io import GzipReader, Lz4Reader, ZstdReader
from fastwarc.warc import ArchiveIterator

from tokenmill.ingest.http import response_doc
from tokenmill.ingest.warcgaps import MAX_HEADER_LEN, Gaps, Window

PROBE_BYTES = 1 << 18  # to tell multi-member from single-stream gzip: does the first member end in 256 KB?
GZIP_MAGIC = b"\x1f\x8b\x08"  # gzip header: magic and the deflate method
TRUNCATED, CORRUPT = "ingest.truncated_file", "ingest.corrupt_record"
MEMBER_CHUNK = 1 << 16  # bytes read at a time when splitting gzip members (small: unused_data is copied per member)
MEMBER_PEEK = 1 << 16  # compressed bytes enough to see whether a gzip member starts with "WARC/"
MEMBER_HEAD_SLACK = MAX_HEADER_LEN + (1 << 16)  # kept past max_record_bytes: a too-large record's WARC, HTTP heads


@dataclass
class RawDoc:
    """One document candidate: provenance, and either `text`, an HTML `body` to extract, or a `drop_reason`."""

    url: str | None
    offset: int | None
    record_id: str | None
    date: str | None
    text: str = ""
    body: bytes | None = None
    charset: str | None = None
    drop_reason: str | None = None


def _open(path: str):
    return fsspec.open(path, "rb", compression=None).open()


STREAM_MAGIC = {b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}
STREAM_READERS = {"gzip": GzipReader, "zstd": ZstdReader, "lz4": Lz4Reader}


def probe(path: str) -> tuple[str, bool]:
    """(layout, file starts with a WARC record) from the first PROBE_BYTES. Layout: "members" (multi-member
    gzip: one member per record, as Common Crawl writes), a single stream ("gzip", "zstd", "lz4") or "plain"."""
    with _open(path) as f:
        head = f.read(PROBE_BYTES)
    if head[:4] in STREAM_MAGIC:  # fastwarc's readers decompress them; not probed
        return STREAM_MAGIC[head[:4]], True
    if head[:2] != b"\x1f\x8b":
        return "plain", head.lstrip()[:5] == b"WARC/"
    d = zlib.decompressobj(31)
    try:
        data = d.decompress(head, 64)
        if not d.eof:
            d.decompress(d.unconsumed_tail)
    except zlib.error:
        return "members", False  # a corrupt first member: the member reader resyncs past it
    return ("members" if d.eof and d.unused_data else "gzip"), data.lstrip()[:5] == b"WARC/"


def _wat(doc: RawDoc, block: bytes) -> RawDoc | None:
    try:
        env = json.loads(block)["Envelope"]["WARC-Header-Metadata"]
    except (ValueError, KeyError, TypeError):
        return None
    if env.get("WARC-Type") != "response":
        return None
    doc.url, doc.record_id, doc.date = env.get("WARC-Target-URI"), env.get("WARC-Record-ID"), env.get("WARC-Date")
    doc.drop_reason = "ingest.wat_no_text"
    return doc


def iter_raw_docs(path: str, fmt: str, max_record_bytes: int) -> Iterator[RawDoc]:
    """Every document candidate of one WARC/WET/WAT file, in file order. Never raises on bad content.

    Multi-member gzip is split into members here (fastwarc would skip a corrupt member silently): a corrupt
    member is one `ingest.corrupt_record` row and reading resumes at the next member that starts a WARC record;
    a clipped last member is one `ingest.truncated_file` row. An uncompressed file resyncs at the next line
    starting "WARC/1."; so does a single-stream gzip/zstd/lz4 file after a record fastwarc refuses or skips to
    the end, but where its data ends or breaks, it ends. A record fastwarc skips without a word (mangled version
    line) is one `ingest.corrupt_record` row per gap of non-blank bytes."""
    layout, _ = probe(path)  # bytes before the first record are a gap like any other (below)
    if layout == "members":
        yield from _from_members(path, fmt, max_record_bytes)
        return
    yield from _from_file(path, fmt, max_record_bytes, layout)


def _from_file(path: str, fmt: str, max_record_bytes: int, layout: str):
    """A plain file resyncs at the next record after a break. A compressed stream is decompressed again up to
    the next record after one that fastwarc refused or that ran past the end unread; where its data ends or
    breaks, it ends. Decompressed here, not inside fastwarc, and read through a Window: what fastwarc skips can
    be looked at. A file that cannot seek (served over HTTP with no length) is read front to back, size unknown."""
    plain, start = layout == "plain", 0
    while start is not None:
        with _open(path) as f:
            size = _size(f) if plain else None
            stream = Window(_data(f, layout, start), start)
            gaps = Gaps(stream, start, size)
            broke = yield from _from_records(stream, gaps, fmt, max_record_bytes, plain)
        if broke is None:
            return
        broke_at, reason = broke
        start = _next_record(path, layout, broke_at + 1) if plain or reason != TRUNCATED else None
        if reason is None:  # the record has its row (too_large): one more only if the file ends inside it
            reason = None if start is not None else TRUNCATED
        elif start is not None:
            reason = CORRUPT
        if reason is not None:
            yield RawDoc(None, broke_at if plain else None, None, None, drop_reason=reason)


def _data(f, layout: str, pos: int):
    """The file's data (decompressed, for a stream) from offset `pos` in it on."""
    if layout == "plain":
        _seek(f, pos)
        return f
    reader = STREAM_READERS[layout](f)
    while pos > 0 and (chunk := reader.read(min(pos, 1 << 20))):
        pos -= len(chunk)
    return reader


def _size(f) -> int | None:
    try:
        size = f.seek(0, 2)
        f.seek(0)
    except (ValueError, OSError):  # fsspec's HTTPStreamFile: "Cannot seek streaming HTTP file"
        return None
    return size


def _seek(f, pos: int) -> None:
    """Seek a freshly opened file to `pos`; one that cannot seek is read up to it."""
    try:
        f.seek(pos)
    except (ValueError, OSError):
        while pos > f.tell() and f.read(min(pos - f.tell(), 1 << 20)):
            pass


def _from_members(path: str, fmt: str, max_record_bytes: int) -> Iterator[RawDoc]:
    for offset, data, status in _gzip_members(path, max_record_bytes + MEMBER_HEAD_SLACK):
        if data is None:
            reason = TRUNCATED if status == "truncated" else CORRUPT
            yield RawDoc(None, offset, None, None, drop_reason=reason)
            continue
        broke = yield from _from_records(io.BytesIO(data), Gaps(data), fmt, max_record_bytes, True, offset)
        if broke is not None:  # a complete member whose record is malformed
            yield RawDoc(None, offset, None, None, drop_reason=CORRUPT)


def _from_records(stream, gaps: Gaps, fmt: str, max_record_bytes: int, addressable: bool,
                  member_offset: int | None = None):
    """Yield the documents of the records in `stream`; return None if it ends cleanly, else where it broke and
    the row's reason unless reading resumes after it: `ingest.truncated_file` (the data ends, or cannot be read
    or decompressed, inside a record) or `ingest.corrupt_record` (fastwarc refused a record: a header longer
    than MAX_HEADER_LEN; at its first byte, the first non-blank one after the last record's end).
    Offsets: `member_offset` when reading one gzip member, else fastwarc's position (exact in plain files: it
    counts from the start of the file, not from where `stream` was seeked to). Non-blank bytes fastwarc
    skipped before a record or after the last (`gaps`) are one `ingest.corrupt_record` row, in file order."""
    pos = member_offset if member_offset is not None else stream.tell()
    try:
        for rec in ArchiveIterator(stream, parse_http=False, quirks_mode=True, max_header_len=MAX_HEADER_LEN):
            pos = member_offset if member_offset is not None else rec.stream_pos
            if (at := gaps.next(rec)) is not None:
                yield _gap_row(at, addressable, member_offset)
            h = rec.headers
            rtype = h.get("WARC-Type")
            doc = RawDoc(h.get("WARC-Target-URI"), pos if addressable else None, h.get("WARC-Record-ID"),
                         h.get("WARC-Date"))
            if rtype is None or "Content-Length" not in h:
                if gaps.end < 0:  # a header cut short (no blank line ends it): the data ends inside it
                    return pos, TRUNCATED
                if "Content-Length" not in h:
                    gaps.end = -1  # its body, of unknown length, is not a gap
                doc.drop_reason = CORRUPT  # a whole header without its type or length: the next record is read
                yield doc
                continue
            is_doc = rtype in ("response", "conversion") or (rtype == "metadata" and fmt == "wat")
            if rec.content_length > max_record_bytes:
                if gaps.past_end(rec):  # unread, it would swallow the rest of the file
                    return pos, TRUNCATED
                if is_doc:
                    doc.drop_reason = "ingest.too_large"
                    yield doc
                continue
            block = rec.reader.read()
            if len(block) < rec.content_length:  # the data ends inside this record
                return pos, TRUNCATED
            if is_doc:
                yield from _document(doc, rtype, block)
    except (OSError, ValueError, EOFError, zlib.error):
        if gaps.window is not None and gaps.window.failed:  # the file cannot be read or decompressed
            return pos, TRUNCATED
        at = gaps.skipped()  # fastwarc refused the record after the last one (pos is that one's)
        return (pos if at is None else at), CORRUPT
    if gaps.window is not None and gaps.end > stream.tell():  # a record, unread (too_large), ran past the end
        return pos, None
    if (at := gaps.skipped()) is not None:
        yield _gap_row(at, addressable, member_offset)
    return None


def _gap_row(at: int, addressable: bool, member_offset: int | None) -> RawDoc:
    offset = member_offset if member_offset is not None else at if addressable else None
    return RawDoc(None, offset, None, None, drop_reason=CORRUPT)


def _document(doc: RawDoc, rtype: str, block: bytes) -> Iterator[RawDoc]:
    if rtype == "metadata":
        wat = _wat(doc, block)
        if wat is not None:
            yield wat
        return
    if not doc.url or not doc.record_id:
        doc.drop_reason = CORRUPT
    elif rtype == "conversion":
        doc.text = block.decode("utf-8", errors="replace")
    else:
        doc = response_doc(doc, block)
    yield doc


def _gzip_members(path: str, keep: int) -> Iterator[tuple[int, bytes | None, str]]:
    """(offset, decompressed bytes, "ok") per gzip member; (offset, None, "corrupt" | "truncated") for a member
    that does not inflate or is cut off. Only the first `keep` bytes of a member are kept (a too-large record
    needs its headers only). Reads MEMBER_CHUNK at a time: memory stays bounded. After a corrupt member the
    file is opened again at the next one (read up to it if it cannot seek)."""
    at: int | None = 0
    while at is not None:
        with _open(path) as f:
            _seek(f, at)
            at = yield from _members_from(path, f, at, keep)


def _members_from(path: str, f, fpos: int, keep: int):
    """The members of `f`, which is at `fpos`, as _gzip_members; after a corrupt one, return where to resume."""
    buf = f.read(MEMBER_CHUNK)
    while buf:
        start, d, parts, kept = fpos, zlib.decompressobj(31), [], 0
        try:
            while True:
                out = d.decompress(buf)
                if kept < keep:
                    parts.append(out)
                    kept += len(out)
                if d.eof:
                    break
                fpos, buf = fpos + len(buf), f.read(MEMBER_CHUNK)
                if not buf:
                    yield start, None, "truncated"
                    return None
        except zlib.error:
            yield start, None, "corrupt"
            return _next_member(path, start + 1)
        fpos += len(buf) - len(d.unused_data)
        buf = d.unused_data or f.read(MEMBER_CHUNK)
        yield start, b"".join(parts), "ok"
    return None


def _starts_warc(data: bytes) -> bool:
    try:
        head = zlib.decompressobj(31).decompress(data, 16)
    except zlib.error:
        return False
    return head.lstrip().startswith(b"WARC/")


def _next_member(path: str, pos: int) -> int | None:
    """Offset of the first gzip member at or after `pos` that starts a WARC record; None if there is none.
    Reads front to back (a file that cannot seek is read up to `pos`)."""
    with _open(path) as f:
        _seek(f, pos)
        base, buf = pos, b""
        while True:
            more = f.read(1 << 20)
            buf += more
            at = buf.find(GZIP_MAGIC)
            while at >= 0 and (not more or at + MEMBER_PEEK <= len(buf)):  # enough of it read to look
                if _starts_warc(buf[at:at + MEMBER_PEEK]):
                    return base + at
                at = buf.find(GZIP_MAGIC, at + 1)
            if not more:
                return None
            cut = at if at >= 0 else max(len(buf) - len(GZIP_MAGIC) + 1, 0)  # a magic split across reads is found
            base, buf = base + cut, buf[cut:]


def _next_record(path: str, layout: str, pos: int) -> int | None:
    """Offset of the next line starting "WARC/1." at or after `pos` in the file's data; None if none (or if a
    stream breaks before one)."""
    with _open(path) as f:
        base, tail = max(pos - 1, 0), b""
        try:
            data = _data(f, layout, base)
            while True:
                chunk = tail + data.read(1 << 20)
                at = chunk.find(b"\nWARC/1.")
                if at >= 0:
                    return base + at + 1
                if len(chunk) <= len(tail):
                    return None
                tail = chunk[-7:]  # a marker split across two reads is still found
                base += len(chunk) - len(tail)
        except (OSError, ValueError, EOFError, zlib.error):
            return None
