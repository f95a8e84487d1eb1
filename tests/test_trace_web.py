"""`tokenmill trace serve` on loopback: the API's limits, and the page in headless Chromium (a real click).

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ending in NUL
on fds 3 and 4), so no Python browser package is needed. The screenshot is kept in tests/artifacts/.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from test_trace_search import indexed_dataset

from tokenmill.trace import web

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,1400", "--remote-debugging-pipe"]


@pytest.fixture(scope="module")
def server(shared_data, tmp_path_factory, ray_local):
    docs, out = indexed_dataset(shared_data, tmp_path_factory.mktemp("tokens"), ray_local)
    srv = web.make_server(out, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield docs, srv
    srv.shutdown()
    srv.server_close()


def post(url: str, body: bytes) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url + "api/trace", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def test_bound_to_loopback_and_api_answers(server):
    docs, srv = server
    assert srv.server_address[0] == "127.0.0.1"
    status, result, _ = post(srv.url, json.dumps({"text": "Quote: " + docs[8]["text"][:300]}).encode())
    assert status == 200 and result["documents"][0]["url"] == docs[8]["url"]
    with urllib.request.urlopen(srv.url + "api/info", timeout=10) as r:
        assert json.loads(r.read())["tokens"] > 100_000


def test_limits_answer_413_and_429(server):
    docs, srv = server
    status, body, _ = post(srv.url, b"x" * (web.MAX_BODY_BYTES + 1))
    assert status == 413 and "limit" in body["error"]
    status, body, _ = post(srv.url, json.dumps({"text": "word " * 5000}).encode())
    assert status == 413 and "limit" in body["error"]
    status, body, _ = post(srv.url, b"not json")
    assert status == 400
    srv.limiter.buckets.clear()
    codes = [post(srv.url, b'{"text": "a b c"}')[0] for _ in range(web.RATE_BURST + 2)]
    assert codes[: web.RATE_BURST] == [200] * web.RATE_BURST and codes[-1] == 429
    _, _, headers = post(srv.url, b'{"text": "a b c"}')
    assert int(headers["Retry-After"]) >= 1
    srv.limiter.buckets.clear()


def _pipe_fds(read_end: int, write_end: int) -> None:
    """In the child: Chromium reads commands on fd 3 and writes replies on fd 4 (inheritable copies)."""
    r, w = os.dup(read_end), os.dup(write_end)  # fresh numbers above 4, so dup2 never hits itself
    os.dup2(r, 3)
    os.dup2(w, 4)


class DevTools:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        self.proc = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _pipe_fds(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf, self._id, self.session = b"", 0, None

    def call(self, method: str, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open_page(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page never satisfied: {expression}")

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._w)
        os.close(self._r)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_page_highlights_spans_and_a_click_shows_the_source(server, tmp_path):
    docs, srv = server
    doc = docs[17]
    copied = doc["text"][300:520]
    output = f"The model wrote this: {copied} Nothing else here is from the training data, purple zebra."
    browser = DevTools(tmp_path / "profile")
    try:
        browser.open_page(srv.url + "?q=" + urllib.parse.quote(output))
        browser.wait_for("document.body.dataset.state === 'traced'")
        marked = browser.evaluate("[...document.querySelectorAll('mark.span')].map(m => m.textContent).join('')")
        assert len(marked) > 0.8 * len(copied.strip()) and marked.split()[2] in copied
        rect = browser.evaluate("(() => { const m = [...document.querySelectorAll('mark.span')]"
                                ".sort((a, b) => b.textContent.length - a.textContent.length)[0];"
                                " m.scrollIntoView(); const r = m.getClientRects()[0];"  # first line of the span
                                " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        browser.click(*rect)  # a real mouse event at the span's position
        browser.wait_for("document.body.dataset.state === 'span-shown'")
        shown = browser.evaluate("document.getElementById('documents').innerText")
        assert doc["url"] in shown and "aeb" in shown
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / "trace_web.png")
        assert (ARTIFACTS / "trace_web.png").stat().st_size > 10_000
    finally:
        browser.close()


def test_run_directory_names_its_dataset_and_samples(server, tmp_path):
    docs, srv = server
    dataset = Path(srv.tracer.dataset)
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "train.yaml").write_text(f"data:\n  sources: {{web: {dataset}}}\n")
    (run / "samples.jsonl").write_text(json.dumps({"text": "first sample"}) + "\n{damaged\n")
    (run / "samples" / "b.txt").write_text("second sample")
    assert web.find_dataset(run) == [dataset]
    assert web.load_samples(run) == ["first sample", "second sample"]
    with pytest.raises(web.ConfigError, match="names one"):
        web.find_dataset(tmp_path / "samples-only")
