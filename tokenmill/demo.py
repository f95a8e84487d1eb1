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
SNAPSHOTS = ("a", "b")  # two generated crawl snapshots: two sources, two token datasets to mix


def demo_job(crawl: Path, out: Path) -> Path:
    """Write OUT/cc-sample.yaml: jobs/cc-sample.yaml pointed at the generated crawl, output under `out`."""
    if not SAMPLE_JOB.exists():
        raise ConfigError(f"{SAMPLE_JOB} not found: run the demo from a checkout of the tokenmill repository")
    spec = yaml.safe_load(SAMPLE_JOB.read_text().replace("out/sample-crawl", str(crawl)))
    spec["output"] = str(out / "pipeline")
    validate(PipelineJob, spec, str(SAMPLE_JOB))
    path = out / "cc-sample.yaml"
    path.write_text(f"# jobs/cc-sample.yaml as the demo ran it\n{yaml.safe_dump(spec, sort_keys=False)}")
    return path


def run_demo(out: str | Path = "out/demo", docs: int = 2000, full: bool = False, address: str | None = None) -> dict:
    from tokenmill.ingest.generate import generate_crawl
    from tokenmill.pipeline.runner import run_job

    out = Path(out)
    t0 = time.perf_counter()
    crawl = out / "crawl"
    for seed, snapshot in enumerate(SNAPSHOTS):
        if not (crawl / snapshot / "ground_truth.jsonl").exists():
            print(f"[demo] generating crawl snapshot {snapshot}: {docs // 2} pages in {crawl / snapshot}")
            generate_crawl(crawl / snapshot, n_docs=docs // 2, n_files=4, seed=seed)
    print("[demo] running the pipeline (jobs/cc-sample.yaml) on an embedded Ray")
    result = run_job(demo_job(crawl, out), address=address)
    print(result.summary())
    print(f"[demo] finished in {time.perf_counter() - t0:.0f}s. Open the report: xdg-open {result.report}")
    return {"crawl": str(crawl), "pipeline": str(result.output), "report": str(result.report)}
