"""A loopback HTTP file server with byte-range support, in a background thread: the "object storage" that tests
and benchmarks stream token shards from (Python's own `http.server` ignores `Range`).

    with serve_directory(tmp_path) as base_url:
        ds = TokenDataset.open(f"{base_url}/my-dataset")
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """GET/HEAD of files under the served folder, honouring a single `Range: bytes=a-b` (206 replies)."""

    protocol_version = "HTTP/1.1"  # keep-alive: fsspec reuses connections

    def log_message(self, format: str, *args) -> None:  # quiet in tests
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path) or not os.path.isfile(path):
            self.send_error(404, "not found")
            return None
        size = os.path.getsize(path)
        m = _RANGE.match(self.headers.get("Range", "") or "")
        start, stop = 0, size
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                stop = min(int(m.group(2)) + 1, size) if m.group(2) else size
            else:
                start = max(size - int(m.group(2)), 0)
            if start >= size or start >= stop:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        f = open(path, "rb")
        f.seek(start)
        self._remaining = stop - start
        return f

    def copyfile(self, source, outputfile) -> None:
        left = self._remaining
        while left > 0:
            chunk = source.read(min(left, 1 << 20))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


@contextlib.contextmanager
def serve_directory(root: str | Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `root` over HTTP on loopback in a daemon thread; yields the base URL; stops on exit."""
    handler = partial(RangeRequestHandler, directory=str(root))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="tokenmill-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
