"""WARC / WET / WAT records → document rows (text still to extract for HTML), with every failure accounted.

Which records are documents: `response` (WARC; HTML → text), `conversion` (WET; text as is) and, in WAT files,
the `metadata` record of each response (WAT holds no page text: it becomes a row dropped as
`ingest.wat_no_text`, so a WAT input is accounted but yields nothing). `warcinfo`, `request`, `resource`,
`revisit` and other `metadata` records are not documents: they are skipped and not counted.

A document that cannot be read is a row with `text = ""` and a `drop_reason`: `ingest.too_large` (payload over
`max_record_bytes`, not read), `ingest.http_error` (status not 2xx), `ingest.not_html`, `ingest.corrupt_record`
(no URL, unreadable HTTP head or content encoding, bytes before the first record). A file that ends inside a
record (clipped gzip, short body) yields its good records, then one `ingest.truncated_file` row at the offset of
the broken record. fastwarc runs in quirks mode (LF-only headers, bad dates, as in ClueWeb09).

`warc_offset` is the byte offset of the record's gzip member (multi-member gzip, as Common Crawl writes) or of
the record (uncompressed); it is null in single-stream gzip files, where a record cannot be fetched alone.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
from fastwarc.warc import ArchiveIterator

PROBE_BYTES = 1 << 18  # to tell multi-member from single-stream gzip: does the first member end in 256 KB?
HTML_TYPES = ("text/html", "application/xhtml+xml")


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


def probe(path: str) -> tuple[bool, bool]:
    """(offsets are addressable, file starts with a WARC record) from the first PROBE_BYTES."""
    with _open(path) as f:
        head = f.read(PROBE_BYTES)
    if head[:4] in (b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18"):  # zstd, lz4: fastwarc reads them; not probed
        return False, True
    if head[:2] != b"\x1f\x8b":
        return True, head.lstrip()[:5] == b"WARC/"
    d = zlib.decompressobj(31)
    try:
        data = d.decompress(head, 64)
        if not d.eof:
            d.decompress(d.unconsumed_tail)
    except zlib.error:
        return False, False
    return d.eof and bool(d.unused_data), data.lstrip()[:5] == b"WARC/"  # a 2nd member follows: one per record


def _split_http(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, payload) of an HTTP response block; ValueError if unreadable."""
    end = block.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = block.find(b"\n\n"), 2
    if end < 0:
        raise ValueError("no end of HTTP headers")
    lines = block[:end].decode("latin-1").splitlines()
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].upper().startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers, block[end + sep:]


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        nl = data.index(b"\n", pos)
        size = int(data[pos:nl].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(data[nl + 1:nl + 1 + size])
        pos = nl + 1 + size + 2


def _decode_payload(headers: dict[str, str], payload: bytes) -> bytes:
    """Undo chunking and gzip/deflate, when the payload is still encoded. Many crawlers (Common Crawl, Nutch)
    store the decoded payload but keep or rename the headers, so a header alone is not proof."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            payload = _dechunk(payload)
        except ValueError:
            pass  # already de-chunked
    enc = headers.get("content-encoding", "").lower().strip()
    if enc in ("gzip", "x-gzip") and payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    elif enc == "deflate" and payload[:1] == b"\x78":
        payload = zlib.decompress(payload)
    elif enc in ("br", "zstd") and not payload.lstrip()[:1] == b"<":
        raise ValueError(f"unsupported content-encoding {enc}")
    return payload


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == "charset":
            return v.strip().strip("'\"") or None
    return None


def _response(doc: RawDoc, block: bytes) -> RawDoc:
    try:
        status, headers, payload = _split_http(block)
    except (ValueError, IndexError):
        doc.drop_reason = "ingest.corrupt_record"
        return doc
    if not 200 <= status < 300:
        doc.drop_reason = "ingest.http_error"
        return doc
    ctype = headers.get("content-type", "text/html")  # a missing type: sniffed as HTML, as browsers do
    if ctype.split(";")[0].strip().lower() not in HTML_TYPES:
        doc.drop_reason = "ingest.not_html"
        return doc
    try:
        doc.body = _decode_payload(headers, payload)
    except (ValueError, OSError, EOFError, zlib.error):
        doc.drop_reason = "ingest.corrupt_record"
        return doc
    doc.charset = _charset(ctype)
    return doc


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
    """Every document candidate of one WARC/WET/WAT file, in file order. Never raises on bad content."""
    addressable, starts_ok = probe(path)
    if not starts_ok:
        yield RawDoc(None, 0 if addressable else None, None, None, drop_reason="ingest.corrupt_record")
    last_pos = 0
    stream = _open(path)
    try:
        for rec in ArchiveIterator(stream, parse_http=False, quirks_mode=True):
            last_pos = rec.stream_pos
            h = rec.headers
            rtype = h.get("WARC-Type", "")
            is_doc = rtype in ("response", "conversion") or (rtype == "metadata" and fmt == "wat")
            doc = RawDoc(h.get("WARC-Target-URI"), last_pos if addressable else None, h.get("WARC-Record-ID"),
                         h.get("WARC-Date"))
            if rec.content_length > max_record_bytes:
                if is_doc:
                    doc.drop_reason = "ingest.too_large"
                    yield doc
                continue
            block = rec.reader.read()
            if len(block) < rec.content_length:  # the file ends inside this record
                doc.drop_reason = "ingest.truncated_file"
                yield doc
                return
            if not is_doc:
                continue
            if rtype == "metadata":
                wat = _wat(doc, block)
                if wat is not None:
                    yield wat
                continue
            if not doc.url or not doc.record_id:
                doc.drop_reason = "ingest.corrupt_record"
            elif rtype == "conversion":
                doc.text = block.decode("utf-8", errors="replace")
            else:
                doc = _response(doc, block)
            yield doc
    except (OSError, ValueError, EOFError, zlib.error):  # fastwarc: stream cannot be read or decompressed
        yield RawDoc(None, last_pos if addressable else None, None, None, drop_reason="ingest.truncated_file")
    finally:
        stream.close()
