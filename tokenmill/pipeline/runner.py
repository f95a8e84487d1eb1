"""Run a pipeline job on Ray: plan → shards → segments (per-shard tasks) and global barriers → report.

    OUT/job.json                 fingerprint + shard list (a changed config is refused)
    OUT/steps/NN-name/           intermediate documents, one Parquet file per shard
    OUT/documents/               the final documents (Parquet, loadable by datasets/pandas/polars/DuckDB)
    OUT/rejected/<stage>/        dropped documents with their drop_reason and the stage's signal columns
    OUT/work/<stage>/            a global stage's exchange files (buckets, clusters, indexes)
    OUT/tokens/<source>/         token shards, when the job has a `tokenize:` section
    OUT/_done/...                done-markers with each task's counts (what makes re-runs skip finished work)
    OUT/report/stats.json, index.html
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tokenmill.config import ConfigError, PipelineJob
from tokenmill.pipeline import manifest
from tokenmill.pipeline.plan import Plan, StageSpec, build_plan
from tokenmill.pipeline.segment import SegmentShard, run_segment, shard_output
from tokenmill.pipeline.stats import aggregate
from tokenmill.pipeline.tasks import run_tasks
from tokenmill.ray_env import init_ray
from tokenmill.stage import Phases, Task


@dataclass
class RunResult:
    output: Path
    documents: list[str]
    stats: dict
    report: Path
    seconds: float

    def summary(self) -> str:
        f = self.stats["funnel"]
        lines = [f"done in {self.seconds:.1f}s: {f[0]['docs_in'] if f else 0} records in, "
                 f"{self.stats['documents_out']} documents out"]
        lines += [f"  documents: {self.output / 'documents'}", f"  rejected:  {self.output / 'rejected'}",
                  f"  stats:     {self.output / 'report' / 'stats.json'}", f"  report:    {self.report}"]
        if self.stats.get("tokens"):
            lines.append(f"  tokens:    {self.output / 'tokens'}")
        return "\n".join(lines)


def list_job_shards(plan: Plan, skip_remote: bool = False) -> list[tuple[int, str]]:
    """(input index, file) for every shard, in a stable order. Raises ConfigError for a missing input.

    `skip_remote`: leave out inputs named only by URLs (a real crawl's manifest is fetched over the network).
    """
    from tokenmill.ingest import list_shards

    out = []
    for i, spec in enumerate(plan.job.inputs):
        if skip_remote and all("://" in p for p in spec.paths):
            continue
        files = list_shards(spec)
        if not files:
            raise ConfigError(f"{plan.spec_path}: inputs[{i}].paths matched no files: {spec.paths}")
        out += [(i, f) for f in files]
    return out


def check_job(job: str | Path | PipelineJob, offline: bool = False) -> Plan:
    """Everything `run` validates before work starts: the spec, stage params, models, lists, inputs, output.

    `offline`: do not list remote inputs; local ones are listed.
    """
    plan = build_plan(job)
    list_job_shards(plan, skip_remote=offline)
    return plan


def _stage_keys(stages: list[StageSpec]) -> list[str]:
    seen: dict[str, int] = {}
    keys = []
    for s in stages:
        seen[s.name] = seen.get(s.name, 0) + 1
        keys.append(s.name if seen[s.name] == 1 else f"{s.name}#{seen[s.name]}")
    return keys


def _drive(phases: Phases, done_dir: Path, desc: str, retries: int, progress: bool) -> None:
    results = None
    phase = 0
    while True:
        try:
            tasks = next(phases) if results is None else phases.send(results)
        except StopIteration:
            return
        results = run_tasks(tasks, done_dir / f"phase-{phase}", max_retries=retries,
                            desc=f"{desc} phase {phase}", progress=progress)
        phase += 1


def run_job(job: str | Path | PipelineJob, address: str | None = None, progress: bool = True) -> RunResult:
    t0 = time.perf_counter()
    plan = build_plan(job)
    shards = list_job_shards(plan)
    out = Path(plan.job.output)
    manifest.claim_output(out, plan.job, plan.spec_path, [{"input": i, "path": p} for i, p in shards])
    manifest.clean_stale_temporaries(out)
    init_ray(address or plan.job.ray.address, plan.job.ray.num_cpus)
    retries = plan.job.ray.max_retries

    keys = _stage_keys(plan.stages)
    segments = plan.segments()
    results: list[list[dict]] = []
    summaries: dict[str, dict] = {}
    inputs = [p for _, p in shards]
    pos = 0
    for n, seg in enumerate(segments):
        seg_keys = keys[pos:pos + len(seg)]
        pos += len(seg)
        last = n == len(segments) - 1
        step_dir = out / "documents" if last else out / "steps" / f"{n:02d}-{'+'.join(seg_keys) or 'ingest'}"
        workdir = None
        if seg and seg[0].is_global:
            workdir = out / "work" / seg_keys[0]
            stage = seg[0].build()
            _drive(stage.prepare(inputs, str(workdir)), out / "_done" / seg_keys[0], seg_keys[0], retries, progress)
            summaries[seg_keys[0]] = stage.summary(str(workdir))
        tasks = []
        for idx, path in enumerate(inputs):
            shard = SegmentShard(
                index=idx, source_path=path, input_spec=plan.job.inputs[shards[idx][0]] if n == 0 else None,
                stages=tuple(seg), stage_keys=tuple(seg_keys), out_path=shard_output(step_dir, idx),
                rejected_dir=str(out / "rejected"), batch_size=plan.job.batch_size,
                rejected_sample_rate=plan.job.rejected.sample_rate,
                global_workdir=str(workdir) if workdir else None)
            tasks.append(Task(shard.name, run_segment, (shard,)))
        results.append(run_tasks(tasks, out / "_done" / step_dir.name, max_retries=retries,
                                 desc=step_dir.name, progress=progress))
        inputs = [r["output"] for r in results[-1]]

    tokens = None
    if plan.job.tokenize is not None:
        from tokenmill.tokenize.pipeline import TokenizeConfig, tokenize_phases

        cfg = TokenizeConfig.model_validate(plan.job.tokenize)
        _drive(tokenize_phases(cfg, inputs, str(out / "tokens")), out / "_done" / "tokenize", "tokenize", retries,
               progress)
        tokens = _token_summary(out / "tokens")

    stats = aggregate(plan, keys, results, summaries, tokens)
    from tokenmill.pipeline.report import write_report

    report = write_report(out, stats)
    return RunResult(out, inputs, stats, report, time.perf_counter() - t0)


def _token_summary(tokens_dir: Path) -> dict:
    from tokenmill.io import read_json

    return {p.parent.name: {k: read_json(p).get(k) for k in ("num_tokens", "num_documents", "dtype", "vocab_size")}
            for p in sorted(tokens_dir.glob("*/dataset.json"))}
