"""`tokenmill demo`: the loop end to end on a generated crawl, on an embedded local Ray.

    generated crawl (WARC, planted duplicates/spam/contamination) → jobs/cc-sample.yaml pipeline
    → documents, rejected/, report (→ token shards → tiny MoE/MLA training → trace, when those steps are in the job)
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tokenmill.config import ConfigError, PipelineJob, validate

REPO = Path(__file__).resolve().parents[1]
SAMPLE_JOB = REPO / "jobs" / "cc-sample.yaml"


def demo_job(crawl: Path, out: Path) -> PipelineJob:
    """jobs/cc-sample.yaml with its inputs pointed at the generated crawl and its output under `out`."""
    if not SAMPLE_JOB.exists():
        raise ConfigError(f"{SAMPLE_JOB} not found: run the demo from a checkout of the tokenmill repository")
    spec = yaml.safe_load(SAMPLE_JOB.read_text())
    for inp in spec["inputs"]:
        inp["paths"] = [str(crawl / "crawl-*.warc.gz")]
    spec["output"] = str(out / "pipeline")
    return validate(PipelineJob, spec, str(SAMPLE_JOB))


def run_demo(out: str | Path = "out/demo", docs: int = 2000, full: bool = False, address: str | None = None) -> dict:
    from tokenmill.ingest.generate import generate_crawl
    from tokenmill.pipeline.runner import run_job

    out = Path(out)
    t0 = time.perf_counter()
    crawl = out / "crawl"
    if not (crawl / "ground_truth.jsonl").exists():
        print(f"[demo] generating a crawl of {docs} pages in {crawl}")
        generate_crawl(crawl, n_docs=docs, n_files=4, seed=0)
    print("[demo] running the pipeline (jobs/cc-sample.yaml) on an embedded Ray")
    result = run_job(demo_job(crawl, out), address=address)
    print(result.summary())
    print(f"[demo] finished in {time.perf_counter() - t0:.0f}s. Open the report: xdg-open {result.report}")
    return {"crawl": str(crawl), "pipeline": str(result.output), "report": str(result.report)}
