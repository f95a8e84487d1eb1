"""`tokenmill demo`: the whole loop end to end on a generated crawl, on an embedded local Ray, on CPU.

    two generated crawl snapshots (WARC; planted duplicates, spam, contamination)
    → jobs/cc-sample.yaml: ingest → filters → decontamination → dedup → token shards for two sources
    → jobs/train-tiny.yaml: a tiny MoE/MLA model; the data mix changes mid-run (resume with --mix)
    → a generated output traced back to its training documents; trace step / spikes from the provenance log
    → the pipeline and training reports
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tokenmill.config import ConfigError, PipelineJob, validate

REPO = Path(__file__).resolve().parents[1]
SAMPLE_JOB = REPO / "jobs" / "cc-sample.yaml"
TRAIN_JOB = REPO / "jobs" / "train-tiny.yaml"
SNAPSHOTS = ("a", "b")
PROMPT_WORDS = 12  # the sample's prompt: the opening words of a training document  # two generated crawl snapshots: two sources, two token datasets to mix


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


def demo_train_job(out: Path, tokens: Path, steps: int) -> Path:
    """Write OUT/train-tiny.yaml: jobs/train-tiny.yaml on the two sources, 80/20 at first."""
    spec = yaml.safe_load(TRAIN_JOB.read_text())
    spec["run_dir"] = str(out / "train")
    spec["data"]["sources"] = {s: str(tokens / f"cc_DEMO-2026-{s}") for s in SNAPSHOTS}
    spec["data"]["stages"] = [{"start_step": 0, "weights": {"a": 0.8, "b": 0.2}}]
    spec["max_steps"] = steps
    spec["checkpoint"] = {"every": steps // 2, "keep_last": 2}
    path = out / "train-tiny.yaml"
    path.write_text(f"# jobs/train-tiny.yaml as the demo ran it\n{yaml.safe_dump(spec, sort_keys=False)}")
    return path


def train_with_mix_change(out: Path, tokens: Path, steps: int) -> Path:
    """Train half the steps, stop, append a stage that flips the mix to 20/80, resume to the end."""
    from tokenmill.train.loop import train_from_spec

    job = demo_train_job(out, tokens, steps)
    half = steps // 2
    print(f"[demo] training the tiny MoE/MLA model: steps 0-{half} with mix a:b = 80:20")
    train_from_spec(str(job), max_steps=half)
    mix = out / "mix.yaml"
    mix.write_text(yaml.safe_dump({"stages": [{"start_step": half, "weights": {"a": 0.2, "b": 0.8}}]}))
    print(f"[demo] resuming at step {half} with --mix {mix}: a:b = 20:80 from now on")
    train_from_spec(str(job), resume=True, mix=str(mix))
    return out / "train"


def trace_a_sample(run: Path, tokens: Path, documents: Path) -> dict:
    """Prompt the model with the opening words of a kept document, sample, and trace the output back."""
    import json

    import pyarrow.parquet as pq

    from tokenmill.trace.index import build_span_index
    from tokenmill.trace.search import Tracer
    from tokenmill.train.generate import generate_text

    first = pq.read_table(sorted(documents.glob("*.parquet"))[0], columns=["text"])["text"][0].as_py()
    prompt = " ".join(first.split()[:PROMPT_WORDS])
    output = prompt + generate_text(str(run), prompt, max_new_tokens=48, temperature=0.8, seed=0)
    (run / "samples.jsonl").write_text(json.dumps({"prompt": prompt, "text": output}) + "\n")
    build_span_index(str(tokens))
    result = {"prompt": prompt, "output": output, **Tracer(str(tokens)).trace(output, top=3)}
    (run / "trace.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def run_demo(out: str | Path = "out/demo", docs: int = 2000, full: bool = True, address: str | None = None,
             train_steps: int = 120) -> dict:
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
    done = {"crawl": str(crawl), "pipeline": str(result.output), "report": str(result.report)}
    if full:
        tokens = result.output / "tokens"
        run = train_with_mix_change(out, tokens, steps=train_steps)
        traced = trace_a_sample(run, tokens, result.output / "documents")
        from tokenmill.trace.run_report import write_train_report

        done |= {"train": str(run), "train_report": str(write_train_report(run)), "trace": str(run / "trace.json")}
        spans = traced.get("spans", [])
        print(f"[demo] generated: {traced['output'][:160]!r}")
        print(f"[demo] traced {len(spans)} spans back to the training documents: {run / 'trace.json'}")
        print(f"[demo] what step {train_steps - 1} trained on:  tokenmill trace step {run} {train_steps - 1}")
        print(f"[demo] loss spikes and their documents:  tokenmill trace spikes {run}")
        print(f"[demo] trace any output in a browser:  tokenmill trace serve {run}")
        print(f"[demo] training report: {done['train_report']}")
    print(f"[demo] finished in {time.perf_counter() - t0:.0f}s. Open the report: xdg-open {result.report}")
    return done
