"""Span index build speed vs infini-gram's indexer, and trace latency for 500-token outputs.

Input: a corpus of real text remixed to size — the 181 articles of shared/data's article-extraction benchmark,
split into sentences, tokenized with the GPT-NeoX BPE (uint16), and composed into documents of 8-40 random
sentences until the requested token count (each sentence then recurs ~N/200k times: heavy repetition, like
boilerplate on the web). 20 articles are held out. An output is ~250 tokens copied from a corpus document plus
~250 tokens of a held-out article: spans of every length, and novel text.

Measured, in one process, alternating after a warm-up:
  build   tokenmill `build_suffix_array` (one core) vs infini-gram 2.6's indexer (`--cpus 2`) on the same
          uint16 shard array; tokens/s (wall), and CPU seconds (steadier when the machine is shared).
  engine  our maximal-span search (longest match from every position, counts, up to 10 positions per span)
          vs infini-gram's `attribute` (OLMoTrace's engine) on the same array and output ids; p50 ms.
  trace   the whole `Tracer.trace(text)` (tokenize, spans, counts, documents, snippets, BM25): p50/p99 ms.

    python -m benchmarks.trace              # 10M tokens
    python -m benchmarks.trace --big        # also 100M tokens (minutes: two 100M index builds)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import alternate, write_result

DATA = Path(os.environ.get("TOKENMILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TOKENIZER = DATA / "tokenizers" / "dolma_gpt-neox-style_byte-level-bpe_tokenizer.json"
ARTICLES = DATA / "html" / "scrapinghub_aeb" / "ground-truth.json"
HELD_OUT = 20  # articles kept out of the corpus: the novel half of each output
QUERIES = 40  # outputs per latency measurement


def sentences_and_held_out(tok) -> tuple[list[list[int]], list[dict], list[str]]:
    truth = list(json.loads(ARTICLES.read_text()).values())
    sents = [s for a in truth[HELD_OUT:] for s in re.split(r"(?<=[.!?])\s+", a["articleBody"]) if s.strip()]
    ids = [e.ids for e in tok.encode_batch([" " + s for s in sents], add_special_tokens=False)]
    return ids, truth[HELD_OUT:], [a["articleBody"] for a in truth[:HELD_OUT]]


def corpus_docs(sent_ids: list[list[int]], n_tokens: int, seed: int):
    """(doc meta, ids) pairs of 8-40 random sentences, until n_tokens; also returns each doc's sentence list."""
    rng = np.random.default_rng(seed)
    total, d, docs = 0, 0, []
    while total < n_tokens:
        picks = rng.integers(0, len(sent_ids), rng.integers(8, 41))
        ids = np.concatenate([np.asarray(sent_ids[i], np.uint16) for i in picks])
        docs.append(({"id": f"doc{d}", "url": f"https://example.org/remix/{d}", "source": "aeb-remix"}, ids))
        total += ids.size + 1
        d += 1
    return docs


def outputs(tok, docs, held_out: list[str], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for q in range(QUERIES):
        _, ids = docs[int(rng.integers(len(docs)))]
        start = int(rng.integers(0, max(ids.size - 250, 1)))
        copied = tok.decode(ids[start : start + 250].tolist())
        novel_ids = tok.encode(held_out[q % len(held_out)], add_special_tokens=False).ids[:250]
        out.append(copied + " " + tok.decode(novel_ids))
    return out


def infini_gram_build(tokens: np.ndarray, work: Path) -> float:
    """Run infini-gram's indexer (its step 2, suffix array) on our token array; returns seconds."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    (work / "index").mkdir()
    tokens.astype("<u2").tofile(work / "index" / "tokenized.0")  # step 1 (tokenize) is skipped when present
    np.zeros(1, np.uint64).tofile(work / "index" / "offset.0")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(work / "data"),
                    "--save_dir", str(work / "index"), "--token_dtype", "u16", "--cpus", "2", "--mem", "8",
                    "--ulimit", "4096"], check=True, capture_output=True)
    return time.perf_counter() - t0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def our_engine(tokens, sa, ids):
    from tokenmill.trace.search import _maximal
    from tokenmill.trace.suffix_array import find_ranges, longest_matches

    m = ids.size
    starts, ends = _maximal(np.arange(m), np.arange(m) + longest_matches(tokens, sa, ids), 1)
    lo, hi = find_ranges(tokens, sa, ids, starts, ends - starts)
    return [sa[a : min(b, a + 10)] for a, b in zip(lo, hi, strict=True)]


def measure(n_tokens: int, tok, sents, held_out, work: Path, repeats: int) -> dict:
    from infini_gram.engine import InfiniGramEngine

    from tokenmill.tokenize.shards import TokenDataset, write_token_dataset
    from tokenmill.trace.index import build_span_index
    from tokenmill.trace.search import Tracer
    from tokenmill.trace.suffix_array import build_suffix_array

    docs = corpus_docs(sents, n_tokens, seed=n_tokens)
    ds_dir = work / f"tokens-{n_tokens}"
    write_token_dataset(ds_dir, iter(docs), TOKENIZER)
    tokens = np.asarray(TokenDataset.open(ds_dir).tokens(0))
    cpu: dict[str, list[float]] = {"tokenmill": [], "infini_gram": []}

    def ours() -> None:
        c0 = time.process_time()
        build_suffix_array(tokens)
        cpu["tokenmill"].append(time.process_time() - c0)

    def theirs() -> None:
        c0 = _children_cpu()
        infini_gram_build(tokens, work / "ig")
        cpu["infini_gram"].append(_children_cpu() - c0)

    best = alternate({"tokenmill": ours, "infini_gram": theirs}, repeats=repeats, warmup=1 if repeats > 1 else 0)
    t0 = time.perf_counter()
    build_span_index(ds_dir, num_cpus=2)
    index_s = time.perf_counter() - t0
    tracer = Tracer(ds_dir)
    texts = outputs(tok, docs, held_out, seed=1)
    ids_list = [tracer.encode(t)[0] for t in texts]
    shard = tracer.index.shards[0]
    engine = InfiniGramEngine(index_dir=str(work / "ig" / "index"), eos_token_id=tracer.index.datasets[0].eos_id,
                              token_dtype="u16")
    ours_ms, ig_ms, trace_ms = [], [], []
    for text, ids in zip(texts, ids_list, strict=True):
        t0 = time.perf_counter()
        our_engine(shard.tokens, shard.sa, ids)
        t1 = time.perf_counter()
        engine.attribute(input_ids=ids.tolist(), delim_ids=[], min_len=1, max_cnt=10, enforce_bow=False)
        t2 = time.perf_counter()
        tracer.trace(text)
        t3 = time.perf_counter()
        ours_ms.append((t1 - t0) * 1e3)
        ig_ms.append((t2 - t1) * 1e3)
        trace_ms.append((t3 - t2) * 1e3)
    shutil.rmtree(ds_dir)
    shutil.rmtree(work / "ig")
    return {
        "tokens": int(tokens.size),
        "build_tokens_per_s": {"tokenmill": round(tokens.size / best["tokenmill"]),
                               "infini_gram": round(tokens.size / best["infini_gram"])},
        "build_s": {k: round(v, 2) for k, v in best.items()},
        "build_cpu_s": {k: round(min(v), 2) for k, v in cpu.items()},  # robust to other load on the machine
        "span_index_ray_s": round(index_s, 2),
        "output_tokens_mean": round(float(np.mean([i.size for i in ids_list])), 1),
        "engine_p50_ms": {"tokenmill": round(float(np.percentile(ours_ms[1:], 50)), 2),
                          "infini_gram": round(float(np.percentile(ig_ms[1:], 50)), 2)},
        "trace_p50_ms": round(float(np.percentile(trace_ms[1:], 50)), 1),
        "trace_p99_ms": round(float(np.percentile(trace_ms[1:], 99)), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=10_000_000, help="corpus size of the default measurement")
    p.add_argument("--big", action="store_true", help="also measure at 100M tokens (several minutes)")
    a = p.parse_args()
    from tokenmill.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(TOKENIZER)
    sents, _, held_out = sentences_and_held_out(tok)
    sizes = [a.tokens] + ([100_000_000] if a.big else [])
    metrics, ratios = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        for n in sizes:
            m = measure(n, tok, sents, held_out, Path(tmp), repeats=2 if n <= 20_000_000 else 1)
            label = f"{n // 1_000_000}M"
            metrics[label] = m
            print(label, json.dumps(m), flush=True)
            b = m["build_tokens_per_s"]
            ratios[f"build_{label}_tokens_per_s_vs_infini_gram"] = b["tokenmill"] / b["infini_gram"]
            c = m["build_cpu_s"]
            ratios[f"build_{label}_cpu_s_infini_gram_over_tokenmill"] = c["infini_gram"] / c["tokenmill"]
            e = m["engine_p50_ms"]
            ratios[f"span_engine_{label}_speedup_vs_infini_gram_attribute"] = e["infini_gram"] / e["tokenmill"]
    write_result(
        "trace",
        input=f"{'+'.join(metrics)} uint16 tokens of remixed real article sentences (GPT-NeoX BPE); "
              f"{QUERIES} outputs of ~500 tokens (250 copied + 250 held-out text)",
        metrics=metrics, ratios=ratios,
        goal={"build_vs_infini_gram": ">= 2x", "trace_p50_ms_at_100M": "< 100"},
    )


if __name__ == "__main__":
    main()
