"""The HTTP part of a WARC `response` record: status, headers, payload (de-chunked, gunzipped when still
encoded), and the charset the headers declare. Any failure is the record's drop reason, never an exception."""

from __future__ import annotations

import gzip
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenmill.ingest.warc import RawDoc

HTML_TYPES = ("text/html", "application/xhtml+xml")


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


def response_doc(doc: RawDoc, block: bytes) -> RawDoc:
    """Fill `doc.body` and `doc.charset` from an HTTP response block, or set its drop reason."""
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
