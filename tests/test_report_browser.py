"""Both reports (a pipeline run's and a training run's) open in headless Chromium with every image loaded.

Chromium is driven over the DevTools pipe by test_trace_web.DevTools (no Python browser package). Screenshots are
kept in tests/artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import json

import pytest
from pipeline_helpers import write_job
from test_report_train import PLOTS, train_spiked_run
from test_trace_web import ARTIFACTS, CHROMIUM, DevTools

from tokenmill.pipeline.runner import run_job
from tokenmill.trace.run_report import write_train_report

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")

IMAGES_JS = ("JSON.stringify([...document.images].map(i => ({id: i.id, src: i.getAttribute('src'), "
             "complete: i.complete, width: i.naturalWidth})))")
LOADED_JS = "document.readyState === 'complete' && [...document.images].every(i => i.complete)"


def images_in_browser(page, profile, screenshot: str) -> list[dict]:
    """Open the page from disk and return each <img>'s id, src and naturalWidth once all have settled."""
    browser = DevTools(profile)
    try:
        browser.open_page(page.resolve().as_uri())
        browser.wait_for(LOADED_JS)
        images = json.loads(browser.evaluate(IMAGES_JS))
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / screenshot)
        return images
    finally:
        browser.close()


def test_pipeline_report_images_load(ray_local, small_crawl, tmp_path):
    job = write_job(tmp_path / "job.yaml", small_crawl, tmp_path / "out", [{"language": {}}, {"pii": {}}])
    page = run_job(job, progress=False).report
    images = images_in_browser(page, tmp_path / "profile", "report_pipeline.png")
    assert {"plot-funnel", "plot-drops"} <= {i["id"] for i in images}
    broken = [i for i in images if i["width"] == 0]
    assert not broken, f"images that did not load: {broken}"
    assert (ARTIFACTS / "report_pipeline.png").stat().st_size > 10_000


def test_training_report_images_load(tmp_path):
    page = write_train_report(train_spiked_run(tmp_path))
    images = images_in_browser(page, tmp_path / "profile", "report_train.png")
    assert {i["id"] for i in images} == {f"plot-{name}" for name in PLOTS}
    broken = [i for i in images if i["width"] == 0]
    assert not broken, f"images that did not load: {broken}"
    (page.parent / "mix.png").unlink()  # the check can fail: a missing plot shows as naturalWidth 0
    assert [i["id"] for i in images_in_browser(page, tmp_path / "profile2", "report_train_missing.png")
            if i["width"] == 0] == ["plot-mix"]
