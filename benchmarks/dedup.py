"""Dedup and decontamination speed: tokenmill vs datatrove and datasketch on the same documents.

  1. MinHash signatures (5-grams, 112 64-bit hashes), docs/s: tokenmill's batch path (normalize → shingle →
     sign → band hashes) vs datatrove's MinhashDedupSignature (get_shingles + get_signature per document, its
     FineWeb defaults) vs datasketch MinHash(scheme="affine64") fed the same normalized 5-grams. Alternating runs.
  2. Clustering: the whole MinHashDedup stage (all phases, then the per-shard pass) on generated documents with
     10% planted near-duplicates, 10k and 100k docs (1M with --scale 1m); every task runs in its own forked
     process, and we report the peak RSS of the largest task (and per phase): it should stay flat as the corpus
     grows, because shards have a fixed size and the default partition count is one per shard. Also the number
     of files and bytes the phases wrote (`work_files`): with one exchange file per producer task it grows as
     the shard count S, not S².
  3. Decontamination scan MB/s (13-grams against GSM8K+MMLU+HumanEval) vs a per-document Python set lookup.

    python -m benchmarks.dedup [--sig-docs 1000] [--scale small|100k|1m]   (small = 10k docs, ~1.5 min)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import resource
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import regex
import xxhash

from benchmarks.common import alternate, write_result
from tokenmill.dedup import decontam
from tokenmill.dedup.minhash import MinHashDedup
from tokenmill.dedup.ngrams import (
    PUNCTUATION_RE,
    band_hashes,
    doc_shingles,
    minhash_params,
    minhash_signatures,
    words,
)
from tokenmill.schema import documents_from_pylist
from tokenmill.stage import GlobalStage, ShardInfo

SIZES = {"small": [10_000], "100k": [10_000, 100_000], "1m": [10_000, 100_000, 1_000_000]}
SHARD_DOCS = 5_000  # documents per input shard in the clustering runs (fixed: memory per task must not grow)
PUNCT = regex.compile(PUNCTUATION_RE)
SHARED = Path(os.environ.get("TOKENMILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def synth_docs(n: int, seed: int = 0, words_per_doc: int = 300, dup_frac: float = 0.1) -> list[str]:
    """Zipf-distributed words over a 50k vocabulary; `dup_frac` of the documents are copies with 1% of the words
    replaced (5-gram Jaccard ~0.9 to their source)."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:05d}" for i in range(50_000)], dtype=object)
    p = 1.0 / np.arange(1, len(vocab) + 1)
    ids = rng.choice(len(vocab), size=(n, words_per_doc), p=p / p.sum())
    n_dup = int(n * dup_frac)
    src = rng.integers(0, n - n_dup, n_dup)
    ids[n - n_dup:] = ids[src]
    edits = rng.random((n_dup, words_per_doc)) < 0.01
    ids[n - n_dup:][edits] = rng.integers(0, len(vocab), int(edits.sum()))
    return [" ".join(row) for row in vocab[ids]]


def tokenmill_signatures(texts: pa.Array) -> np.ndarray:
    a_K, b_K = minhash_params(112, 1)
    out = []
    for lo in range(0, len(texts), 4096):
        h, off = doc_shingles(texts.slice(lo, 4096), 5)
        out.append(band_hashes(minhash_signatures(h, off, a_K, b_K), 14, 8))
    return np.concatenate(out)


def datatrove_signatures(texts: list[str]) -> list:
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    sig = MinhashDedupSignature(tempfile.mkdtemp(), config=MinhashConfig())
    # datatrove 0.10 passes str to xxhash, which xxhash>=4 refuses; hash the same bytes it meant to
    sig._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode())
    return [sig.get_signature(sig.get_shingles(t)) for t in texts]


def datasketch_signatures(texts: pa.Array) -> list:
    from datasketch import MinHash

    flat, off = words(texts)
    w = flat.to_pylist()
    out = []
    for d in range(len(off) - 1):
        doc = w[off[d]:off[d + 1]]
        m = MinHash(num_perm=112, seed=1, scheme="affine64", hashfunc=xxhash.xxh3_64_intdigest)
        m.update_batch([" ".join(doc[i:i + 5]).encode() for i in range(max(len(doc) - 4, 1))])
        out.append(m.hashvalues)
    return out


def bench_signatures(n: int) -> dict:
    texts = synth_docs(n, seed=1)
    arr = pa.array(texts, pa.large_string())
    best = alternate({"tokenmill": lambda: tokenmill_signatures(arr), "datatrove": lambda: datatrove_signatures(texts),
                      "datasketch": lambda: datasketch_signatures(arr)}, repeats=2, warmup=1)
    return {f"signature_docs_per_s_{k}": round(n / v, 1) for k, v in best.items()}


def _run_task(fn, args):
    result = fn(*args)
    return result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB


def run_isolated(stage: GlobalStage, inputs: list[str], workdir: str, procs: int = 2) -> tuple[float, dict, float]:
    """All phases and the per-shard pass, each task in a fresh process forked from a clean server.
    Returns (seconds, {phase: max task peak RSS MiB}, peak RSS MiB of a task that does nothing)."""
    ctx = mp.get_context("forkserver")  # a small clean parent: a task's peak RSS is its own, not the bench's
    ctx.set_forkserver_preload(["benchmarks.dedup"])
    peak: dict[str, float] = {}
    t0 = time.perf_counter()
    with ctx.Pool(procs, maxtasksperchild=1) as pool:
        phases, results = stage.prepare(inputs, workdir), None
        while True:
            try:
                tasks = next(phases) if results is None else phases.send(results)
            except StopIteration:
                break
            out = pool.starmap(_run_task, [(t.fn, t.args) for t in tasks])
            results = [r for r, _ in out]
            kind = re.sub(r"(-\d+)+$", "", tasks[0].key)
            peak[kind] = max([peak.get(kind, 0.0)] + [m for _, m in out])
        out = pool.starmap(_run_task, [(_shard_pass, (stage.config, workdir, i, p)) for i, p in enumerate(inputs)])
        peak["shard-pass"] = max(m for _, m in out)
        baseline = pool.apply(_run_task, (_noop, ()))[1]
    return time.perf_counter() - t0, peak, baseline


def _noop() -> dict:
    return {}


def _shard_pass(config, workdir: str, i: int, path: str) -> dict:
    st = MinHashDedup(config)
    st.workdir, st.shard = workdir, ShardInfo(i, f"shard-{i:05d}", path)
    st.setup()
    dropped = 0
    for b in pq.ParquetFile(path).iter_batches(batch_size=1000):
        dropped += st.process(pa.Table.from_batches([b]))["drop_reason"].null_count
    return {"rows": dropped}


def _write_corpus(n: int, out: str) -> list[str]:
    paths = []
    for s, lo in enumerate(range(0, n, SHARD_DOCS)):
        texts = synth_docs(min(SHARD_DOCS, n - lo), seed=100 + s)
        rows = [{"id": f"{s:05d}-{k:06d}", "text": t, "warc_date": "2024-01-01"} for k, t in enumerate(texts)]
        paths.append(os.path.join(out, f"in-{s:05d}.parquet"))
        pq.write_table(documents_from_pylist(rows), paths[-1])
    return paths


def bench_clustering(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:  # the corpus is built in a child: the parent stays small for the forks
            inputs = pool.apply(_write_corpus, (n, tmp))
        stage = MinHashDedup()  # default partitions: one per shard
        seconds, peak, baseline = run_isolated(stage, inputs, os.path.join(tmp, "work"))
        s = stage.summary(os.path.join(tmp, "work"))
        files = [f.stat().st_size for f in Path(tmp, "work").rglob("*") if f.is_file()]
    return {f"cluster_{n}_seconds": round(seconds, 2), f"cluster_{n}_docs_per_s": round(n / seconds, 1),
            f"cluster_{n}_peak_task_rss_mib": round(max(peak.values()), 1),
            f"cluster_{n}_peak_rss_by_phase_mib": {k: round(v, 1) for k, v in peak.items()},
            f"cluster_{n}_idle_task_rss_mib": round(baseline, 1),
            f"cluster_{n}_removed": s["documents_removed"], f"cluster_{n}_planted": n // 10,
            f"cluster_{n}_shards": len(inputs), f"cluster_{n}_work_files": len(files),
            f"cluster_{n}_work_bytes": sum(files)}


def bench_decontam(n: int) -> dict:
    specs = [{"name": "gsm8k", "path": str(SHARED / "benchmarks/gsm8k/test.jsonl")},
             {"name": "mmlu", "path": str(SHARED / "benchmarks/mmlu/test")},
             {"name": "humaneval", "path": str(SHARED / "benchmarks/humaneval/HumanEval.jsonl.gz")}]
    cfg = decontam.DecontamConfig(benchmarks=specs).model_dump()
    texts = synth_docs(n, seed=7, dup_frac=0.0)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "in.parquet")
        pq.write_table(documents_from_pylist([{"id": str(k), "text": t} for k, t in enumerate(texts)]), path)
        decontam.build_index(tmp, cfg)
        index_set = set(decontam.load_index(tmp).hashes.tolist())
        def python_set():  # the usual per-document loop: normalize, 13-gram strings hashed, looked up in a set
            hits = 0
            for t in pq.read_table(path, columns=["text"])["text"].to_pylist():
                w = PUNCT.sub("", unicodedata.normalize("NFKC", t).lower()).split()
                hits += any(xxhash.xxh3_64_intdigest(" ".join(w[i:i + 13]).encode()) in index_set
                            for i in range(len(w) - 12))
            return hits

        best = alternate({"tokenmill": lambda: decontam.scan_shard(path, 0, tmp, cfg), "python_set": python_set},
                         repeats=2, warmup=1)
    return {f"decontam_scan_mb_per_s_{k}": round(mb / v, 2) for k, v in best.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sig-docs", type=int, default=1000, help="documents for the signature comparison")
    ap.add_argument("--scale", choices=["small", "100k", "1m"], default="small",
                    help="clustering corpus sizes: small=10k, 100k=10k+100k, 1m=10k+100k+1M")
    ap.add_argument("--decontam-docs", type=int, default=5000)
    a = ap.parse_args(argv)
    metrics = bench_signatures(a.sig_docs)
    print(metrics, file=sys.stderr)
    for n in SIZES[a.scale]:
        metrics |= bench_clustering(n)
        print(metrics, file=sys.stderr)
    if SHARED.is_dir():
        metrics |= bench_decontam(a.decontam_docs)
    ratios = {"signatures_vs_datatrove": metrics["signature_docs_per_s_tokenmill"]
              / metrics["signature_docs_per_s_datatrove"],
              "signatures_vs_datasketch": metrics["signature_docs_per_s_tokenmill"]
              / metrics["signature_docs_per_s_datasketch"]}
    if "decontam_scan_mb_per_s_tokenmill" in metrics:
        ratios["decontam_scan_vs_python_set"] = (metrics["decontam_scan_mb_per_s_tokenmill"]
                                                 / metrics["decontam_scan_mb_per_s_python_set"])
    if "cluster_100000_peak_task_rss_mib" in metrics:
        ratios["peak_task_rss_100k_vs_10k"] = (metrics["cluster_100000_peak_task_rss_mib"]
                                               / metrics["cluster_10000_peak_task_rss_mib"])
    if "cluster_1000000_peak_task_rss_mib" in metrics:
        ratios["peak_task_rss_1m_vs_10k"] = (metrics["cluster_1000000_peak_task_rss_mib"]
                                             / metrics["cluster_10000_peak_task_rss_mib"])
    path = write_result("dedup", input=f"{a.sig_docs} generated 300-word docs (signatures); 10% near-dup corpora "
                        f"of {SIZES[a.scale]} docs in {SHARD_DOCS}-doc shards (clustering); {a.decontam_docs} docs (decontam)",
                        metrics=metrics, ratios=ratios,
                        goal={"signatures_vs_datatrove": ">= 10", "peak_task_rss_100k_vs_10k": "~1 (flat)",
                              "peak_task_rss_1m_vs_10k": "~1 (flat)"})
    print(path)
    print(metrics)


if __name__ == "__main__":
    main()
