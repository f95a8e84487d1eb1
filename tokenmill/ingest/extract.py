"""HTML → text, with charset handling and a hard time cap per page.

Charset: the HTTP header's charset if Python knows it, else resiliparse's `detect_encoding` (which reads <meta>
and sniffs the bytes); the bytes are decoded with `errors="replace"`, and a page whose text is more than
`BAD_CHARSET_FRAC` U+FFFD is dropped as `ingest.bad_charset`. Text: resiliparse `extract_plain_text` (main
content or everything) or trafilatura's `extract`.

The time cap cannot be a SIGALRM: resiliparse's main-content extraction is C code that does not return to the
interpreter, and it is quadratic in nesting depth — a 550 KB page of 50,000 nested <div>s takes 61 s here, and
a SIGALRM handler only runs after it returns (measured: 80 s). So pages are extracted in a child process that
receives a batch of pages and sends back one result per page; when a page takes longer than the cap, the parent
kills the child, marks the page `ingest.extract_timeout`, starts a new child and goes on with the rest of the
batch. Cost of the child on the generated crawl: see benchmarks/ingest.py.
"""

from __future__ import annotations

import atexit
import codecs
import multiprocessing as mp
import threading
from dataclasses import dataclass

BAD_CHARSET_FRAC = 0.02  # > 2% replacement characters: the bytes are not in the charset we decoded them with


@dataclass(frozen=True)
class ExtractOptions:
    extractor: str = "resiliparse"  # or "trafilatura"
    main_content: bool = True


def _python_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("'\"")).name
    except LookupError:
        return None


def decode_html(body: bytes, declared: str | None) -> str:
    """Decode with the declared charset if valid, else the detected one; invalid bytes become U+FFFD."""
    from resiliparse.parse.encoding import detect_encoding

    enc = _python_codec(declared) or _python_codec(detect_encoding(body)) or "utf-8"
    if enc in ("iso8859-1", "latin-1", "ascii"):  # WHATWG: these labels mean windows-1252
        enc = "cp1252"
    text = body.decode(enc, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def extract_one(body: bytes, declared: str | None, opts: ExtractOptions) -> tuple[str, str | None]:
    """(text, drop_reason) for one HTML payload, in this process (no time cap)."""
    try:
        html = decode_html(body, declared)
        if html and html.count("\ufffd") > BAD_CHARSET_FRAC * len(html):
            return "", "ingest.bad_charset"
        if opts.extractor == "trafilatura":
            import trafilatura

            text = trafilatura.extract(html, include_comments=False, include_tables=True) or ""
        else:
            from resiliparse.extract.html2text import extract_plain_text

            text = extract_plain_text(html, main_content=opts.main_content, alt_texts=False, comments=False)
    except Exception:  # noqa: BLE001 - a parser failure on one page is that page's drop reason
        return "", "ingest.extract_error"
    return text, None


def _child_loop(conn, opts: ExtractOptions) -> None:
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        for body, declared in batch:
            conn.send(extract_one(body, declared, opts))


class Extractor:
    """Extract batches of pages in a child process, each page within `timeout_s` seconds."""

    def __init__(self, opts: ExtractOptions, timeout_s: float) -> None:
        self.opts, self.timeout_s = opts, timeout_s
        self.proc = None
        self.conn = None
        self.restarts = 0

    def _start(self) -> None:
        # fork is ~100x faster to start, but unsafe in a process with other threads (a Ray worker): spawn there
        ctx = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
        if ctx.get_start_method() == "fork":  # import once here, not in every child
            import resiliparse.extract.html2text  # noqa: F401
            if self.opts.extractor == "trafilatura":
                import trafilatura  # noqa: F401
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child_loop, args=(child, self.opts), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.conn.close()
            self.proc = self.conn = None

    def extract(self, pages: list[tuple[bytes, str | None]]) -> list[tuple[str, str | None]]:
        """One (text, drop_reason) per (body, declared charset), in order."""
        out: list[tuple[str, str | None]] = []
        while len(out) < len(pages):
            if self.proc is None:
                self._start()
            self.conn.send(pages[len(out):])
            while len(out) < len(pages):
                if not self.conn.poll(self.timeout_s):
                    out.append(("", "ingest.extract_timeout"))
                    self._kill()
                    self.restarts += 1
                    break
                try:
                    out.append(self.conn.recv())
                except EOFError:  # the child died (out of memory, a crash in C code): blame this page
                    out.append(("", "ingest.extract_error"))
                    self._kill()
                    break
        return out

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.conn.send(None)
                self.proc.join(timeout=5)
            except (OSError, ValueError):
                pass
            self._kill()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SHARED: dict[tuple[ExtractOptions, float], Extractor] = {}


def shared_extractor(opts: ExtractOptions, timeout_s: float) -> Extractor:
    """One child per process and options, reused by every shard this worker reads (a spawn costs ~1 s)."""
    key = (opts, timeout_s)
    if key not in _SHARED:
        _SHARED[key] = Extractor(opts, timeout_s)
    return _SHARED[key]


@atexit.register
def _close_shared() -> None:
    for e in _SHARED.values():
        e.close()
