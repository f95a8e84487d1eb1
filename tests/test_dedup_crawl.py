"""Dedup and decontamination as pipeline stages on the generated crawl (real WARC files, real extraction, the
Ray runner), scored against the generator's ground truth: planted exact copies, near-duplicates at known
Jaccard, and planted benchmark passages."""

from __future__ import annotations

import json

import pytest
from pipeline_helpers import read_dir, write_job

from tokenmill.dedup.minhash import CLUSTER_ID
from tokenmill.ingest.generate import SYNTH_BENCHMARK, generate_crawl
from tokenmill.pipeline.runner import run_job

N_PAGES = 1500  # 15 blocks of the planted mix: 60 near-duplicate pairs at >= 0.8, 30 at <= 0.5


@pytest.fixture(scope="module")
def crawl_run(ray_local, tmp_path_factory):
    crawl = tmp_path_factory.mktemp("dedup-crawl")
    generate_crawl(crawl, n_docs=N_PAGES, n_files=3, seed=3)
    stages = [{"decontaminate": {"benchmarks": [{"name": SYNTH_BENCHMARK, "path": str(crawl / "benchmark.jsonl"),
                                                 "fields": ["question"]}]}},
              {"exact_dedup": {"partitions": 3}},
              {"minhash_dedup": {"partitions": 3}}]
    out = crawl / "out"
    result = run_job(write_job(crawl / "job.yaml", crawl, out, stages), progress=False)
    truth = [json.loads(line) for line in (crawl / "ground_truth.jsonl").read_text().splitlines()]
    rejected = {name: read_dir(out / "rejected" / name) for name in ("decontaminate", "exact_dedup", "minhash_dedup")}
    return result, truth, rejected, read_dir(out / "documents")


def _urls(table) -> set[str]:
    return set(table["url"].to_pylist()) if table is not None else set()


def test_every_planted_exact_copy_is_removed(crawl_run):
    _, truth, rejected, kept = crawl_run
    copies = [t for t in truth if t["kind"] == "exact_dup"]
    assert copies
    kept_urls = _urls(kept)
    for t in copies:  # one of the two pages survives, never both
        assert not (t["url"] in kept_urls and t["of_url"] in kept_urls), t["url"]
    assert {t["url"] for t in copies} & _urls(rejected["exact_dedup"])


def near_pairs(crawl_run, keep) -> list[tuple[str, str]]:
    _, truth, rejected, kept = crawl_run
    both = _urls(kept) | _urls(rejected["minhash_dedup"])  # pages that reached the MinHash stage
    return [(t["url"], t["of_url"]) for t in truth
            if t["kind"] == "near_dup" and keep(t["jaccard"]) and t["url"] in both and t["of_url"] in both]


def clusters(crawl_run) -> dict[str, str]:
    _, _, rejected, kept = crawl_run
    out = {}
    for table in (kept, rejected["minhash_dedup"]):
        if table is not None:
            out |= dict(zip(table["url"].to_pylist(), table[CLUSTER_ID].to_pylist(), strict=True))
    return out


def test_near_duplicates_at_or_above_08_are_merged(crawl_run):
    pairs, cl = near_pairs(crawl_run, lambda j: j >= 0.8), clusters(crawl_run)
    recall = sum(cl[a] == cl[b] for a, b in pairs) / len(pairs)
    print(f"near-duplicates >= 0.8: recall {recall:.3f} over {len(pairs)} pairs")
    assert len(pairs) >= 40 and recall >= 0.95, f"recall {recall:.3f} over {len(pairs)} pairs"


def test_pairs_at_or_below_05_are_kept_apart(crawl_run):
    pairs, cl = near_pairs(crawl_run, lambda j: j <= 0.5), clusters(crawl_run)
    rate = sum(cl[a] == cl[b] for a, b in pairs) / len(pairs)
    print(f"pairs <= 0.5: merge rate {rate:.3f} over {len(pairs)} pairs")
    assert len(pairs) >= 20 and rate <= 0.02, f"merge rate {rate:.3f} over {len(pairs)} pairs"


def test_planted_benchmark_passages_are_found_and_reported(crawl_run):
    result, truth, rejected, _ = crawl_run
    planted = {t["url"] for t in truth if t["kind"] == "benchmark"}
    reached = planted & (_urls(rejected["decontaminate"]) | _urls(crawl_run[3]) | _urls(rejected["exact_dedup"])
                         | _urls(rejected["minhash_dedup"]))
    assert reached and reached <= _urls(rejected["decontaminate"])
    report = result.stats["summaries"]["decontaminate"]
    assert report["documents_flagged"] == len(_urls(rejected["decontaminate"]))
    assert report["benchmarks"][SYNTH_BENCHMARK]["items_found"] >= 1
    found = {(m["url"], m["item"]) for m in report["matches"]}
    assert all((t["url"], t["item_index"]) in found for t in truth if t["url"] in reached)


def test_summaries_reach_the_run_report(crawl_run):
    s = crawl_run[0].stats["summaries"]
    assert s["exact_dedup"]["documents_removed"] == len(_urls(crawl_run[2]["exact_dedup"])) > 0
    assert s["minhash_dedup"]["documents_removed"] == len(_urls(crawl_run[2]["minhash_dedup"]))
    assert s["minhash_dedup"]["cluster_size_histogram"]


def test_rerun_skips_every_phase_and_keeps_the_same_documents(crawl_run):
    result, _, _, kept = crawl_run
    work = sorted((result.output / "work").rglob("*.*"))
    stamps = {p: p.stat().st_mtime_ns for p in work}
    again = run_job(result.output.parent / "job.yaml", progress=False)
    rewritten = [str(p) for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert work and not rewritten  # no exchange file written again
    assert sorted(read_dir(again.output / "documents")["id"].to_pylist()) == sorted(kept["id"].to_pylist())
    assert again.stats["summaries"] == result.stats["summaries"]
