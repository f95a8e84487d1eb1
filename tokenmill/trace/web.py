"""`tokenmill trace serve`: a local web page to trace outputs (stdlib http.server, one static page, no framework).

    GET  /                 the page (static/index.html, app.js, style.css); `?q=TEXT` traces TEXT on load
    GET  /api/info         the dataset, its size, and sample outputs to pick from (if the run has any)
    POST /api/trace        {"text": ..., "fuzzy": bool} → the `Tracer.trace` result as JSON

Bound to 127.0.0.1 unless told otherwise. Requests are bounded: a body over MAX_BODY_BYTES or an output over
MAX_OUTPUT_TOKENS gets 413, and each client address gets RATE_PER_MINUTE traces (burst RATE_BURST), then 429
with Retry-After. One trace runs at a time (the index is shared); a 500-token trace takes tens of ms.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tokenmill.config import ConfigError
from tokenmill.trace.index import dataset_roots
from tokenmill.trace.search import MAX_OUTPUT_TOKENS, Tracer

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
MAX_BODY_BYTES = 64 * 1024  # ~4x the text of MAX_OUTPUT_TOKENS tokens
RATE_PER_MINUTE = 60  # traces per client per minute; a person clicking never gets near this
RATE_BURST = 10
MAX_SAMPLES = 50  # sample outputs offered on the page
TOP_DOCUMENTS = 50  # documents returned per trace (the page lists them per span)


class RateLimiter:
    """Token bucket per client address."""

    def __init__(self, per_minute: float = RATE_PER_MINUTE, burst: int = RATE_BURST) -> None:
        self.rate, self.burst = per_minute / 60.0, burst
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 if allowed now, else the seconds to wait."""
        with self.lock:
            now = time.monotonic()
            tokens, last = self.buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self.buckets[client] = (tokens - 1, now)
                return 0.0
            self.buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate


def find_dataset(target: str | Path) -> Path | list[Path]:
    """A tokenized dataset (or folder of them) as given, or the datasets a training run directory names."""
    target = Path(target)
    try:
        dataset_roots(target)
        return target
    except ConfigError:
        pass
    named: list[Path] = []
    for spec in sorted(target.glob("*.json")) + sorted(target.glob("*.yaml")) + sorted(target.glob("*.yml")):
        for word in re.findall(r"[^\s\"',{}\[\]]+", spec.read_text(errors="replace")):
            if (Path(word) / "dataset.json").is_file() and Path(word) not in named:
                named.append(Path(word))
    if not named:
        raise ConfigError(f"{target}: neither a tokenized dataset nor a run directory whose spec names one")
    return named


def load_samples(target: Path) -> list[str]:
    """Sample outputs from a run directory: samples.jsonl ({"text": ...} per line) and samples/*.txt."""
    out: list[str] = []
    jsonl = target / "samples.jsonl"
    if jsonl.is_file():
        for line in jsonl.read_text(errors="replace").splitlines():
            try:
                out.append(str(json.loads(line)["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a damaged line is skipped; the page still works
    out += [p.read_text(errors="replace") for p in sorted((target / "samples").glob("*.txt"))]
    return out[:MAX_SAMPLES]


class TraceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: str | Path, host: str, port: int) -> None:
        self.target = Path(target)
        self.tracer = Tracer(find_dataset(target))
        self.samples = load_samples(self.target)
        self.limiter = RateLimiter()
        self.trace_lock = threading.Lock()
        super().__init__((host, port), TraceHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class TraceHandler(BaseHTTPRequestHandler):
    server: TraceServer

    def log_message(self, format: str, *args) -> None:  # quiet: one line per request is noise here
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict, extra: dict | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8", extra)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/info":
            index = self.server.tracer.index
            return self._json(200, {"dataset": self.server.tracer.dataset, "tokens": index.num_tokens,
                                    "shards": len(index.shards), "samples": self.server.samples,
                                    "max_output_tokens": MAX_OUTPUT_TOKENS})
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        file = STATIC / name
        if "/" in name or file.suffix not in STATIC_TYPES or not file.is_file():
            return self._json(404, {"error": f"no such page: {path}"})
        self._send(200, file.read_bytes(), STATIC_TYPES[file.suffix])

    def do_POST(self) -> None:
        if self.path != "/api/trace":
            return self._json(404, {"error": f"no such endpoint: {self.path}"})
        wait = self.server.limiter.allow(self.client_address[0])
        if wait:
            return self._json(HTTPStatus.TOO_MANY_REQUESTS,
                              {"error": f"too many traces: at most {RATE_PER_MINUTE} a minute; retry in "
                                        f"{wait:.0f} s"}, {"Retry-After": str(max(1, round(wait)))})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              {"error": f"request is {length} bytes; the limit is {MAX_BODY_BYTES}"})
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
            text = request["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            return self._json(400, {"error": f"expected JSON {{\"text\": ...}}: {err}"})
        try:
            with self.server.trace_lock:
                result = self.server.tracer.trace(text, top=TOP_DOCUMENTS, fuzzy=bool(request.get("fuzzy")))
        except ConfigError as err:  # the output is over MAX_OUTPUT_TOKENS
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": str(err)})
        result["text"] = text
        self._json(200, result)


def make_server(target: str | Path, host: str = "127.0.0.1", port: int = 8765) -> TraceServer:
    """The server, bound and ready (port 0 picks a free one); call serve_forever() on it."""
    return TraceServer(target, host, port)


def serve(target: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    server = make_server(target, host, port)
    print(f"tracing against {server.tracer.dataset} ({server.tracer.index.num_tokens:,} tokens): {server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
