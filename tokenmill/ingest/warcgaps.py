"""Bytes fastwarc skips between WARC records, found so that no record is lost without a row.

fastwarc's quirks mode resyncs at the next line starting "WARC/" and says nothing about what it passed over: a
record whose version line it does not take ("WARX/1.0", "WARC/1.O", "warc/1.1", "WARC/1.1 junk", no version
line, junk glued in front) vanishes. So the reader asks `Gaps` at every record start, and at the end, whether
the bytes since the previous record's end hold anything but blanks. A record ends Content-Length bytes after
the blank line that closes its header (CRLF or LF-only), found exactly in the bytes themselves: a gzip member
(in memory), or a file read through `Window` (uncompressed, or decompressed by fastwarc's readers), which
keeps the bytes from the previous record's end on: a read-ahead buffer, not the file. Stray blank lines
between records, LF-only headers and a missing "\r\n\r\n" trailer count for nothing.

Cost, reader alone (iter_raw_docs) on generate_crawl(n_docs=2000, seed=0), 2 records a page, these Gaps vs a
no-op one in one process, interleaved, best of 9, on 2 busy cores: +1.4 to 2.4 µs a page over three runs (one
run: gzip members 48.4 → 50.6 µs, uncompressed 15.8 → 17.6, single-stream gzip 22.7 → 24.4, zstd 19.1 →
21.5). Reading through Window rather than letting fastwarc open the file itself adds under 0.5 µs more; end
to end (benchmarks.ingest's run_tokenmill, 1,000 pages) best of 8: 5,308 vs 5,322 pages/s.
"""

from __future__ import annotations

import re

MAX_HEADER_LEN = 1 << 18  # passed to fastwarc as max_header_len; it raises on a longer header. Its default, 32 KB,
#                           refused a 40 KB URL; a longer limit costs nothing (0.55 µs a record at 32 KB and 1 MB)
MAX_HEADER_BYTES = MAX_HEADER_LEN + 64  # where header_end stops looking (slack: the blank line itself)
BLANK_LINE = re.compile(rb"\n\r?\n")  # the empty line that ends a header, CRLF or LF-only (quirks mode)
WINDOW_MAX = 8 << 20  # bytes a Window holds past `keep` before judging them: a garbage run is not held whole
WINDOW_TAIL = 1 << 20  # still held then: fastwarc's read-ahead (64 KB) and a header (256 KB) are well inside
READ_PIECE = 1 << 14  # what a decompressor holds when it breaks is lost: 64 KB pieces lost 32 KB of a clipped
#                       zstd file that fastwarc (reading it itself) did not; 16 KB pieces lose none of it


def header_end(buf, start: int) -> int:
    """Offset just past the blank line ending the WARC header that starts at `start`; -1 if none is near."""
    m = BLANK_LINE.search(buf, start, start + MAX_HEADER_BYTES)  # 0.4 µs; two bytes.find: 1.0 µs
    return m.end() if m else -1


def first_non_blank(chunk: bytes) -> int | None:
    rest = chunk.lstrip()  # ASCII whitespace: the CRLFs between records, stray blank lines
    return len(chunk) - len(rest) if rest else None


class Gaps:
    """Skipped bytes in `data` (a gzip member's bytes, or a Window) from offset `base` on. `size`: the file's, if
    known (a gzip member holds only the head of a too-large record)."""

    __slots__ = ("buf", "end", "size", "window")

    def __init__(self, data, base: int = 0, size: int | None = None) -> None:
        self.window = data if isinstance(data, Window) else None
        self.buf = data.buf if self.window is not None else data  # a Window's buffer starts at window.base
        self.end, self.size = base, size

    def next(self, rec) -> int | None:
        """Where the bytes before record `rec` stop being blank (None: they are), then note where it ends."""
        start, shift = rec.stream_pos, (self.window.base if self.window is not None else 0)
        at = self.skipped(start) if start > self.end >= 0 else None
        head = header_end(self.buf, start - shift)
        self.end = head + shift + rec.content_length if head >= 0 else -1  # -1: a header we cannot find
        if self.window is not None:  # it forgets what comes before the record's end
            self.window.keep, self.window.junk = (self.end if self.end >= 0 else start), None
        return at

    def past_end(self, rec) -> bool:
        """The record, not read (too large), says it runs past the end of the file. Its end is where `next` put
        it (the body starts after the header: stream_pos + content_length falls short by the header's length)."""
        if self.size is None:
            return False
        return (self.end if self.end >= 0 else rec.stream_pos + rec.content_length) > self.size

    def skipped(self, upto: int | None = None) -> int | None:
        """Offset of the first non-blank byte between the end of the record seen last and `upto` (default: the
        end of the data), if there is one."""
        shift = self.window.base if self.window is not None else 0
        if upto is None:
            upto = shift + len(self.buf)
        if self.end < 0 or upto <= self.end:
            return None
        if self.window is not None and self.window.junk is not None:  # in what it already let go
            at, self.window.junk = self.window.junk, None
            return at
        lo = max(self.end, shift)
        at = first_non_blank(self.buf[lo - shift:upto - shift])
        return None if at is None else lo + at


class Window:
    """A reader over another (a file, or fastwarc's decompressing reader) that keeps what it read from offset
    `keep` on in `buf`: enough to look at the bytes between two records. Offsets count the bytes it returns."""

    def __init__(self, inner, pos: int = 0) -> None:
        self.inner, self.buf, self.base, self.pos, self.keep = inner, bytearray(), pos, pos, pos
        self.junk: int | None = None  # the first non-blank byte of those let go past WINDOW_MAX
        self.failed = False  # `inner` raised (a read or decompression error), as opposed to fastwarc itself

    def read(self, n: int = -1) -> bytes:
        try:
            chunk = self.inner.read(READ_PIECE if n < 0 else min(n, READ_PIECE))  # short: fastwarc asks again
        except BaseException:
            self.failed = True
            raise
        self.buf += chunk
        self.pos += len(chunk)
        drop = min(self.keep, self.pos) - self.base
        if drop > 0:
            del self.buf[:drop]  # in place: Gaps holds this bytearray
            self.base += drop
        if len(self.buf) > WINDOW_MAX:
            self._let_go(len(self.buf) - WINDOW_TAIL)
        return chunk

    def _let_go(self, n: int) -> None:
        if self.junk is None and (at := first_non_blank(bytes(self.buf[:n]))) is not None:
            self.junk = self.base + at
        del self.buf[:n]
        self.base += n

    def tell(self) -> int:
        return self.pos
