"""HTML → text, with charset handling and a hard time cap per page.

Charset: the HTTP header's charset if Python knows it, else resiliparse's `detect_encoding` (which reads <meta>
and sniffs the bytes); the bytes are decoded with `errors="replace"`, and a page whose text is more than
`BAD_CHARSET_FRAC` U+FFFD is dropped as `ingest.bad_charset`. Text: main content by resiliparse after
boilerplate.py's article-node / boilerplate-block / tail passes, everything by resiliparse `extract_plain_text`
(`main_content=False`), or trafilatura's `extract`.

The time cap cannot be a SIGALRM: resiliparse's main-content extraction is C code that does not return to the
interpreter, and it is quadratic in nesting depth — a 550 KB page of 50,000 nested <div>s takes 61 s here, and
a SIGALRM handler only runs after it returns (measured: 80 s). So pages are extracted in a child process that
receives a batch of pages and sends back one result per page; when a page takes longer than the cap, the parent
kills the child, marks the page `ingest.extract_timeout`, starts a new child and goes on with the rest of the
batch. The parent parses the next batch while the child extracts this one (`submit` / `collect`): read_documents
runs at ~4,800 pages/s end to end on the generated crawl here, 12.8x datatrove's WarcReader + Trafilatura
(10-25x across runs on this shared machine), with article F1 0.956 / 0.922 vs trafilatura's 0.960 / 0.925 on
scrapinghub's / trafilatura's real pages (benchmarks/ingest.py).
"""

from __future__ import annotations

import atexit
import codecs
import multiprocessing as mp
import queue
import threading
import time
from dataclasses import dataclass

BAD_CHARSET_FRAC = 0.02  # > 2% replacement characters: the bytes are not in the charset we decoded them with
POLL_S = 0.05  # how often a waiting parent checks the child's progress against the time cap
MAX_FRUITLESS_RESTARTS = 3  # a child that dies this often with no page done is broken, not unlucky


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
    """UTF-8 if the bytes are valid UTF-8 (other encodings' non-ASCII text almost never is, while pages that
    declare latin-1 but send UTF-8 are common); else the declared charset if Python knows it, else the detected
    one. Invalid bytes become U+FFFD."""
    try:
        text = body.decode("utf-8")
        return text[1:] if text.startswith("\ufeff") else text
    except UnicodeDecodeError:
        pass
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

            from tokenmill.ingest.boilerplate import extract_main_text

            text = (extract_main_text(html) if opts.main_content else
                    extract_plain_text(html, main_content=False, alt_texts=False, comments=False))
    except Exception:  # noqa: BLE001 - a parser failure on one page is that page's drop reason
        return "", "ingest.extract_error"
    return text, None


def _child_loop(conn, progress, opts: ExtractOptions) -> None:
    """Receive batches; send ("done", i, text, reason) per page from a sender thread, so extraction goes on
    while the parent is busy elsewhere. `progress` = [page being extracted, its start time or -1]: shared
    memory, readable by the parent even while this process is stuck in C code holding its GIL."""
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def sender() -> None:
        while (msg := outbox.get()) is not None:
            conn.send(msg)

    threading.Thread(target=sender, daemon=True).start()
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            batch = None
        if batch is None:
            outbox.put(None)
            return
        for i, (body, declared) in enumerate(batch):
            progress[0], progress[1] = i, time.monotonic()
            result = extract_one(body, declared, opts)
            progress[1] = -1.0
            outbox.put(("done", i, *result))


class Extractor:
    """Extract batches of pages in a child process, each page within `timeout_s` seconds.

    `submit(pages)` hands a batch to the child and returns at once; `collect()` waits for its results. Between
    the two the caller reads the next batch from the WARC (and its consumer works on the previous table), so
    parsing and extraction overlap. One batch is in flight at a time. When the page the child is on has run
    past the cap (or the child died), the child is killed, that page dropped, and the pages whose results had
    not arrived yet are sent to a new child.
    """

    def __init__(self, opts: ExtractOptions, timeout_s: float) -> None:
        self.opts, self.timeout_s = opts, timeout_s
        self.proc = self.conn = self.progress = None
        self.inflight: list[tuple[bytes, str | None]] | None = None
        self.restarts = 0

    def _start(self) -> None:
        # fork is ~100x faster to start, but unsafe in a process with other threads (a Ray worker): spawn there
        ctx = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
        if ctx.get_start_method() == "fork":  # import once here, not in every child
            import resiliparse.extract.html2text  # noqa: F401
            if self.opts.extractor == "trafilatura":
                import trafilatura  # noqa: F401
        parent, child = ctx.Pipe()
        self.progress = ctx.RawArray("d", [0.0, -1.0])
        self.proc = ctx.Process(target=_child_loop, args=(child, self.progress, self.opts), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.conn.close()
            self.proc = self.conn = None

    def _send(self, pages: list[tuple[bytes, str | None]]) -> None:
        if self.proc is None:
            self._start()
        try:
            self.conn.send(pages)
        except OSError:  # the idle child died (killed from outside): start another
            self._kill()
            self._start()
            self.conn.send(pages)

    def submit(self, pages: list[tuple[bytes, str | None]]) -> None:
        if self.inflight is not None:
            raise RuntimeError("Extractor.submit: collect() the batch in flight first")
        self.inflight = pages
        if pages:
            self._send(pages)

    def collect(self) -> list[tuple[str, str | None]]:
        """One (text, drop_reason) per page of the batch in flight, in order."""
        pages, self.inflight = self.inflight or [], None
        res: list[tuple[str, str | None] | None] = [None] * len(pages)
        todo = list(range(len(pages)))  # the child's page i is pages[todo[i]]
        remaining, fruitless = len(pages), 0
        while remaining:
            try:
                if self.conn.poll(POLL_S):
                    _, i, text, reason = self.conn.recv()
                    res[todo[i]] = (text, reason)
                    remaining, fruitless = remaining - 1, 0
                    continue
            except (EOFError, OSError):
                pass  # the child died: handled below
            dead = not self.proc.is_alive() or self.conn.closed
            page, started = int(self.progress[0]), self.progress[1]
            running = started >= 0 and res[todo[page]] is None
            if not dead and not (running and time.monotonic() - started > self.timeout_s):
                continue
            if running:
                res[todo[page]] = ("", "ingest.extract_timeout" if not dead else "ingest.extract_error")
                remaining -= 1
            self._kill()
            self.restarts += 1
            fruitless = 0 if running else fruitless + 1
            if fruitless > MAX_FRUITLESS_RESTARTS:
                raise RuntimeError(f"the extraction child died {fruitless} times without finishing a page")
            todo = [k for k in range(len(pages)) if res[k] is None]
            if todo:
                self._send([pages[k] for k in todo])
        return res  # type: ignore[return-value]

    def abandon(self) -> None:
        """Forget the batch in flight (its reader stopped early): kill the child so no stale result remains."""
        if self.inflight is not None:
            self.inflight = None
            self._kill()

    def extract(self, pages: list[tuple[bytes, str | None]]) -> list[tuple[str, str | None]]:
        self.submit(pages)
        return self.collect()

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
