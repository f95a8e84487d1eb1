"""Scale-out: the whole pipeline (cc-sample's stages + tokenize) on an embedded Ray with 1 and 2 worker CPUs.

Each run is a fresh child process (`ray.init(num_cpus=N)` once per process) over the same generated crawl, into a
fresh output folder; runs alternate 1, 2, 1, 2, ... and the best of each is kept. Per step (a segment of per-shard
stages, a global stage's phases, tokenize) the wall time is read back from the done-markers (`OUT/_done/**.json`:
each task's "seconds", written when it finished), and the exchange volume from the files each step leaves
(OUT/steps, OUT/work/<stage>, OUT/tokens). docs/s = documents into the step / its wall time.
Also recorded: CPU seconds of the run's process tree by kind (driver, Ray's gcs/raylet, workers), the report's
time alone, and an in-process CPU profile per stage. docs/scaling.md projects them to 1,000 nodes.

Measured here (2 vCPUs shared with other agents, load 2.2-3.1; results/scaling.json): warm, 2 workers do 1.43x the
docs/s of 1 end to end and 1.65x over the steps themselves; the driver's report is 2.1 s of the 8.4 s 1-worker
run, which bounds the end-to-end ratio at 1.57 (Amdahl). At load 6-8 the ratio was ~1.0: kernel autogroup gives
this session's processes one share of the CPU however many workers it starts.

    python -m benchmarks.scaling [--docs 4000] [--files 8] [--repeats 2]   (~1.5 min at repeats 1, ~3 at 2, idle)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import write_result

SHARED = Path(os.environ.get("TOKENMILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TOKENIZER = SHARED / "tokenizers" / "dolma_gpt-neox-style_byte-level-bpe_tokenizer.json"
WORKERS = (1, 2)
GOAL_SPEEDUP = 1.8  # issue 9: 2 workers on 2 cores should give >= 1.8x the docs/s of 1
STAGES = [  # jobs/cc-sample.yaml's stage list
    {"language": {"languages": ["en"], "min_score": 0.65}}, {"gopher_repetition": {}}, {"gopher_quality": {}},
    {"c4": {"filter_no_terminal_punct": False}}, {"fineweb_quality": {}}, {"repetition": {"max_char_run": 160}},
    {"pii": {}}, {"decontaminate": {"benchmarks": [], "ngram": 13, "mode": "drop"}}, {"exact_dedup": {}},
    {"minhash_dedup": {"keep": "earliest", "min_jaccard": 0.7}}]


def write_job(crawl: Path, out: Path, workers: int) -> Path:
    stages = json.loads(json.dumps(STAGES))
    stages[7]["decontaminate"]["benchmarks"] = [{"name": "synthetic_math", "path": str(crawl / "benchmark.jsonl")}]
    tokenize = {"tokenizer": str(TOKENIZER)} if TOKENIZER.is_file() else {"train": {"vocab_size": 8192}}
    spec = {"name": f"scaling-{workers}w", "output": str(out), "batch_size": 1000,
            "inputs": [{"paths": [f"{crawl}/*.warc.gz"], "source": "cc/SCALING"}],
            "ray": {"num_cpus": workers}, "stages": stages, "tokenize": {**tokenize, "seq_lens": [2048]}}
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def child(job: str, warm_job: str, workers: int) -> None:
    """In this process: start Ray (timed apart), run the job cold (new worker processes load their models), then
    its copy `warm_job` into a fresh folder on the same, now warm, workers; print both as one JSON line."""
    from tokenmill.pipeline.runner import run_job
    from tokenmill.ray_env import init_ray

    t0 = time.perf_counter()
    init_ray(None, workers)
    out = {"workers": workers, "ray_start_s": round(time.perf_counter() - t0, 3)}
    for name, path in (("cold", job), ("warm", warm_job)):
        load_before, cpu_before = os.getloadavg(), tree_cpu_s()
        result = run_job(path, progress=False)
        cpu = {k: round(v - cpu_before.get(k, 0.0), 3) for k, v in tree_cpu_s().items() if k != "gone"}
        out[name] = {"wall_s": result.seconds, "load_before": load_before, "load_after": os.getloadavg(),
                     "cpu_s": cpu, "cores_used": round(sum(cpu.values()) / result.seconds, 3),
                     "funnel": result.stats["funnel"], "tokens": result.stats.get("tokens")}
    print(json.dumps(out))


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def step_timings(out: Path) -> dict[str, dict]:
    """Per done-marker folder: tasks, summed task seconds, and wall = last finish - first start (from the marker's
    mtime minus its seconds)."""
    steps: dict[str, dict] = {}
    for marker in sorted((out / "_done").rglob("*.json")):
        rel = marker.parent.relative_to(out / "_done")
        key = rel.parts[0]  # phases of one global stage (or of tokenize) count as one step
        seconds = json.loads(marker.read_text())["seconds"]
        end = marker.stat().st_mtime
        s = steps.setdefault(key, {"tasks": 0, "task_s": 0.0, "start": end - seconds, "end": end})
        s["tasks"] += 1
        s["task_s"] += seconds
        s["start"], s["end"] = min(s["start"], end - seconds), max(s["end"], end)
    return {k: {"tasks": v["tasks"], "task_s": round(v["task_s"], 3), "wall_s": round(v["end"] - v["start"], 3)}
            for k, v in steps.items()}


def step_docs(key: str, steps: list[str], funnel: dict[str, dict], tokens: dict | None) -> int:
    """Documents entering a step. Segment folders are named `NN-stage+stage` (segment 00 also ingests), the last
    segment's folder `documents`; a global stage's phases are under its own name."""
    if key == "tokenize":
        return sum(v["num_documents"] for v in (tokens or {}).values())
    if key[:3].startswith("00-"):
        return funnel["ingest"]["docs_in"]
    if key[:2].isdigit():
        return funnel[key[3:].split("+")[0]]["docs_in"]
    if key == "documents":  # its first stage: the first one no numbered segment names
        named = {st for k in steps if k[:2].isdigit() for st in k[3:].split("+")}
        first = next((st for st in funnel if st != "ingest" and st not in named), "ingest")
        return funnel[first]["docs_in"]
    return funnel[key]["docs_in"] if key in funnel else 0


def volumes(out: Path) -> dict[str, int]:
    """Bytes each step leaves behind, and the number of exchange files of each global stage (an all-to-all
    exchange writes shards x partitions files: the object-store request count at scale)."""
    vol = {"steps_bytes": _bytes(out / "steps"), "documents_bytes": _bytes(out / "documents"),
           "rejected_bytes": _bytes(out / "rejected"), "tokens_bytes": _bytes(out / "tokens")}
    for work in sorted((out / "work").glob("*")) if (out / "work").is_dir() else []:
        vol[f"work_{work.name}_bytes"] = _bytes(work)
        vol[f"work_{work.name}_files"] = sum(1 for f in work.rglob("*") if f.is_file())
    return vol


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds incl. reaped children) for every process, from /proc (field k of proc(5) is
    fields[k - 3] after the command name)."""
    ticks, table = os.sysconf("SC_CLK_TCK"), {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / ticks)
    return table


def _kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if pid == os.getpid():
        return "driver"
    if "gcs_server" in cmd or "raylet" in cmd:
        return "ray_infra"
    return "workers"  # Ray workers (ray::...), their extraction children, Ray's small helper processes


def tree_cpu_s(root: int | None = None) -> dict[str, float]:
    """CPU seconds of the process tree under `root` (default: this process), by kind."""
    table, root = _proc_table(), root or os.getpid()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        kind = _kind(pid)
        out[kind] = out.get(kind, 0.0) + table.get(pid, (0, 0.0))[1]
    return out


def _tree_cpu_s() -> float:
    return sum(tree_cpu_s().values())


def stage_profile(job: Path, n_shards: int) -> dict[str, dict]:
    """CPU seconds per stage in this process (CPU time of this process and its extraction child, so other load on the machine counts less) for
    ingest and the first segment's per-shard stages over the first `n_shards` files: which stage the CPU goes to."""
    import pyarrow.compute as pc

    from tokenmill.ingest import read_documents
    from tokenmill.pipeline.plan import build_plan
    from tokenmill.pipeline.runner import list_job_shards
    from tokenmill.schema import DROP_REASON

    plan = build_plan(job)
    files = [f for _, f in list_job_shards(plan)][:n_shards]
    t0 = _tree_cpu_s()
    tables = [b for f in files for b in read_documents(plan.job.inputs[0], f, plan.job.batch_size)]
    profile = {"ingest": {"docs_in": sum(t.num_rows for t in tables), "cpu_s": _tree_cpu_s() - t0,
                          "input_bytes": sum(Path(f).stat().st_size for f in files)}}
    tables = [t.filter(pc.is_null(t[DROP_REASON])) for t in tables]
    for spec in plan.segments()[0]:
        stage = spec.build()
        t0 = _tree_cpu_s()
        stage.setup()
        setup_s = _tree_cpu_s() - t0
        t0 = _tree_cpu_s()
        outs = [stage.process(t) for t in tables]
        profile[spec.name] = {"docs_in": sum(t.num_rows for t in tables), "cpu_s": _tree_cpu_s() - t0,
                              "setup_cpu_s": round(setup_s, 3)}
        tables = [t.filter(pc.is_null(t[DROP_REASON])) for t in outs]
    for p in profile.values():  # /proc counts children in 10 ms ticks: a rate below that resolution is None
        p["docs_per_cpu_s"] = round(p["docs_in"] / p["cpu_s"], 1) if p["cpu_s"] >= 0.02 else None
        p["cpu_s"] = round(p["cpu_s"], 3)
    return profile


def summarize(run: dict, out: Path, workers: int) -> dict:
    """Per-step timings and volumes, and `amdahl_wall_s`: the wall time on an otherwise idle machine with a core
    per worker, estimated from the CPU the run used (driver + Ray CPU counted serial, the workers' split evenly)."""
    funnel = {s["stage"]: s for s in run.pop("funnel")}
    run["funnel"] = {k: {c: s[c] for c in ("docs_in", "docs_kept", "bytes_in", "bytes_kept")} for k, s in funnel.items()}
    run["steps"] = step_timings(out)
    for key, s in run["steps"].items():
        s["docs_in"] = step_docs(key, list(run["steps"]), funnel, run["tokens"])
        s["docs_per_s"] = round(s["docs_in"] / s["wall_s"], 1) if s["wall_s"] else None
    run["docs_in"] = funnel["ingest"]["docs_in"]
    run["docs_out"] = funnel[list(funnel)[-1]]["docs_kept"]
    run["docs_per_s"] = round(run["docs_in"] / run["wall_s"], 1)
    run["steps_wall_s"] = round(sum(s["wall_s"] for s in run["steps"].values()), 3)  # the report etc. excluded
    run["driver_s"] = round(run["wall_s"] - run["steps_wall_s"], 3)
    run["volumes"] = volumes(out)
    cpu = run["cpu_s"]
    serial = cpu.get("driver", 0) + cpu.get("ray_infra", 0)
    run["amdahl_wall_s"] = round(serial + cpu.get("workers", 0) / workers, 3)
    return run


def one_run(crawl: Path, root: Path, workers: int, n: int) -> dict:
    outs = {kind: root / f"out-{workers}w-{n}-{kind}" for kind in ("cold", "warm")}
    jobs = {kind: write_job(crawl, out, workers) for kind, out in outs.items()}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--child", str(jobs["cold"]),
                           str(jobs["warm"]), str(workers)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode:
        raise RuntimeError(f"{workers}-worker run failed:\n{proc.stderr[-4000:]}")
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    from tokenmill.pipeline.report import rebuild_report

    t0, cpu0 = time.perf_counter(), time.process_time()
    rebuild_report(outs["warm"])  # what the driver spends on the report at the end of every run, timed alone
    run["warm"]["report_s"] = round(time.perf_counter() - t0, 3)
    run["warm"]["report_cpu_s"] = round(time.process_time() - cpu0, 3)
    for kind, out in outs.items():
        summarize(run[kind], out, workers)
        print(f"  {workers} worker(s), run {n} {kind}: {run[kind]['wall_s']:.1f} s, {run[kind]['docs_per_s']} "
              f"docs/s, {run[kind]['cores_used']} cores used, CPU {run[kind]['cpu_s']} "
              f"(load {run[kind]['load_before'][0]:.1f})", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=4000, help="pages in the generated crawl")
    ap.add_argument("--files", type=int, default=8, help="WARC files (= shards = tasks per step)")
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs per worker count")
    ap.add_argument("--profile-shards", type=int, default=8, help="files in the in-process CPU profile")
    ap.add_argument("--child", nargs=3, metavar=("JOB", "WARM_JOB", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    from tokenmill.ingest.generate import generate_crawl

    with tempfile.TemporaryDirectory(prefix="tm-scaling-") as tmp:
        root = Path(tmp)
        crawl = root / "crawl"
        generate_crawl(crawl, n_docs=args.docs, n_files=args.files, seed=0, source="cc/SCALING")
        warc_bytes = sum(f.stat().st_size for f in crawl.glob("*.warc.gz"))
        print(f"crawl: {args.docs} pages, {args.files} files, {warc_bytes / 1e6:.1f} MB gz", flush=True)
        from tokenmill.plots import pyplot

        pyplot()  # matplotlib's import, once, before the report timings
        profile = stage_profile(write_job(crawl, root / "profile", 1), args.profile_shards)
        print("CPU per stage (in process): " + ", ".join(f"{k} {v['docs_per_cpu_s']} docs/cpu-s"
                                                         for k, v in profile.items()), flush=True)
        runs = {w: [] for w in WORKERS}
        for n in range(args.repeats):
            for w in WORKERS:
                runs[w].append(one_run(crawl, root, w, n + 1))
    best = {kind: {w: min((r[kind] for r in rs), key=lambda r: r["wall_s"]) for w, rs in runs.items()}
            for kind in ("cold", "warm")}
    metrics = {"warc_bytes": warc_bytes, "docs": args.docs, "files": args.files,
               "tokenizer": TOKENIZER.name if TOKENIZER.is_file() else "trained (vocab 8192)",
               "cpu_count": os.cpu_count(), "stage_cpu_profile": profile,
               "runs": {f"{w}w": rs for w, rs in runs.items()},
               "best": {kind: {f"{w}w": b for w, b in bw.items()} for kind, bw in best.items()}}
    lo, hi = min(WORKERS), max(WORKERS)
    ratios = {}
    for kind in ("warm", "cold"):
        b = best[kind]
        ratios[f"docs_per_s_{hi}w_vs_{lo}w_{kind}"] = b[hi]["docs_per_s"] / b[lo]["docs_per_s"]
        ratios[f"amdahl_{hi}w_vs_{lo}w_{kind}"] = b[lo]["amdahl_wall_s"] / b[hi]["amdahl_wall_s"]
        ratios[f"steps_wall_{hi}w_vs_{lo}w_{kind}"] = b[lo]["steps_wall_s"] / b[hi]["steps_wall_s"]
        for key, s in b[hi]["steps"].items():
            base = b[lo]["steps"].get(key)
            if base and s["wall_s"] and base["wall_s"] and key[:2] in ("00", "to"):  # the two big steps
                ratios[f"step_{key.split('+')[0]}_{hi}w_vs_{lo}w_{kind}"] = base["wall_s"] / s["wall_s"]
    path = write_result("scaling", input=f"generated crawl, {args.docs} pages in {args.files} WARC files "
                        f"({warc_bytes / 1e6:.1f} MB gz); cc-sample stages + tokenize",
                        metrics=metrics, ratios=ratios, goal={f"docs_per_s_{hi}w_vs_{lo}w_warm": f">= {GOAL_SPEEDUP}"})
    print(json.dumps(ratios, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
