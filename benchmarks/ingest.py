"""WARC → text: tokenmill's reader vs datatrove's WarcReader + Trafilatura, on the same generated crawl, plus
extraction quality on real pages with ground truth.

Throughput: documents/s and compressed MB/s over every shard of a generated crawl (default 1,000 pages in 2
files; `--docs` scales it), tokenmill with resiliparse (its default) and with trafilatura, datatrove with its
default Trafilatura extractor (favour_precision, deduplicate, 1 s sandboxed timeout). Alternating, after a warm-up.

Quality, on `shared/data/html`: scrapinghub's article-extraction-benchmark (181 pages; token F1 of the text vs
`articleBody`) and trafilatura's own eval sample (150 pages; F1 over `with` snippets found and `without`
snippets wrongly kept), on all pages and on the odd-indexed half (held out while tuning), for tokenmill's
resiliparse path before (`resiliparse_plain`) and after its boilerplate pass. The same bytes → str decoding is
used for every extractor.

    python -m benchmarks.ingest [--docs 1000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.common import alternate, write_result
from tokenmill.config import InputSpec
from tokenmill.ingest import list_shards, read_documents
from tokenmill.ingest.extract import ExtractOptions, decode_html, extract_one
from tokenmill.ingest.generate import generate_crawl

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "html"
GOAL_SPEEDUP = 10.0  # the goal: >= 10x datatrove's documents/s
GOAL_F1_GAP = 0.02  # ... with F1 no more than 0.02 below trafilatura's


def run_tokenmill(crawl: Path, extractor: str) -> int:
    spec = InputSpec(paths=[f"{crawl}/*.warc.gz"], extractor=extractor)
    return sum(t["drop_reason"].null_count for s in list_shards(spec) for t in read_documents(spec, s, 1000))


def run_datatrove(crawl: Path) -> int:
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    reader = WarcReader(str(crawl), glob_pattern="*.warc.gz")
    return sum(1 for _ in Trafilatura().run(reader.run()))


def tokens(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def token_f1(pred: str, gold: str) -> float:
    p, g = tokens(pred), tokens(gold)
    overlap = sum((p & g).values())
    if not overlap:
        return 0.0
    prec, rec = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * prec * rec / (prec + rec)


def extractors() -> dict:
    from datatrove.pipeline.extractors import Trafilatura
    from resiliparse.extract.html2text import extract_plain_text

    from tokenmill.ingest.boilerplate import SKIP_ELEMENTS

    dt = Trafilatura()
    return {
        "tokenmill_resiliparse": lambda b: extract_one(b, None, ExtractOptions("resiliparse", True))[0],
        # the config before the article-node + pruning pass (tokenmill/ingest/boilerplate.py): before/after
        "resiliparse_plain": lambda b: extract_plain_text(decode_html(b, None), main_content=True, alt_texts=False,
                                                          comments=False, skip_elements=SKIP_ELEMENTS),
        "tokenmill_trafilatura": lambda b: extract_one(b, None, ExtractOptions("trafilatura", True))[0],
        "datatrove_trafilatura": lambda b: dt.extract(decode_html(b, None)) or "",
    }


def snippet_f1(rows: list[tuple[str, dict]]) -> float:
    """trafilatura's eval: `with` snippets found are hits, `without` snippets found are false positives."""
    tp = fn = fp = 0
    for text, v in rows:
        found = sum(s in text for s in v["with"])
        tp, fn, fp = tp + found, fn + len(v["with"]) - found, fp + sum(s in text for s in v["without"])
    prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return round(2 * prec * rec / max(prec + rec, 1e-9), 4)


def quality() -> dict:
    """Mean token F1 per extractor on both real-page sets (skipped when shared/data is absent), on all pages and
    on the odd-indexed half alone (`heldout`; see boilerplate.py for how held out it is)."""
    if not DATA.is_dir():
        return {}
    out: dict = {}
    truth = json.loads((DATA / "scrapinghub_aeb/ground-truth.json").read_text())
    pages = [gzip.decompress((DATA / f"scrapinghub_aeb/html/{k}.html.gz").read_bytes()) for k in truth]
    gold = [v["articleBody"] for v in truth.values()]
    evald = list(json.loads((DATA / "trafilatura_eval_sample/evaldata_subset.json").read_text()).values())
    evalpages = [gzip.decompress((DATA / "trafilatura_eval_sample" / (v["file"] + ".gz")).read_bytes()) for v in evald]
    for name, fn in extractors().items():
        f1 = [token_f1(fn(p), g) for p, g in zip(pages, gold, strict=True)]
        out[f"aeb_f1_{name}"] = round(sum(f1) / len(f1), 4)
        out[f"aeb_f1_heldout_{name}"] = round(sum(f1[1::2]) / len(f1[1::2]), 4)
        rows = [(fn(p), v) for p, v in zip(evalpages, evald, strict=True)]
        out[f"trafeval_f1_{name}"] = snippet_f1(rows)
        out[f"trafeval_f1_heldout_{name}"] = snippet_f1(rows[1::2])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=1000, help="pages in the generated crawl")
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        crawl = Path(tmp)
        generate_crawl(crawl, n_docs=args.docs, n_files=args.files, seed=0)
        mb = sum(p.stat().st_size for p in crawl.glob("*.warc.gz")) / 1e6
        # this first pass is also the warm-up (imports, extraction children)
        counts = {"tokenmill_resiliparse": run_tokenmill(crawl, "resiliparse"),
                  "tokenmill_trafilatura": run_tokenmill(crawl, "trafilatura"), "datatrove": run_datatrove(crawl)}
        times = alternate({
            "tokenmill_resiliparse": lambda: run_tokenmill(crawl, "resiliparse"),
            "tokenmill_trafilatura": lambda: run_tokenmill(crawl, "trafilatura"),
            "datatrove": lambda: run_datatrove(crawl),
        }, repeats=args.repeats, warmup=0)
    metrics: dict = {"input_mb_compressed": round(mb, 2), "pages": args.docs}
    for name, t in times.items():
        metrics[f"{name}_docs_per_s"] = round(args.docs / t, 1)
        metrics[f"{name}_mb_per_s"] = round(mb / t, 2)
        metrics[f"{name}_rows_out"] = counts[name]
    metrics.update(quality())
    ratios = {"docs_per_s_tokenmill_vs_datatrove": times["datatrove"] / times["tokenmill_resiliparse"],
              "docs_per_s_tokenmill_trafilatura_vs_datatrove": times["datatrove"] / times["tokenmill_trafilatura"]}
    if "aeb_f1_tokenmill_resiliparse" in metrics:
        ratios["aeb_f1_gap_vs_trafilatura"] = (metrics["aeb_f1_tokenmill_resiliparse"]
                                               - metrics["aeb_f1_datatrove_trafilatura"])
        ratios["trafeval_f1_gap_vs_trafilatura"] = (metrics["trafeval_f1_tokenmill_resiliparse"]
                                                    - metrics["trafeval_f1_datatrove_trafilatura"])
        for s in ("aeb", "trafeval"):
            ratios[f"{s}_heldout_f1_gap_vs_trafilatura"] = (metrics[f"{s}_f1_heldout_tokenmill_resiliparse"]
                                                           - metrics[f"{s}_f1_heldout_datatrove_trafilatura"])
    path = write_result("ingest", input=f"generated crawl, {args.docs} pages in {args.files} WARC files "
                        f"({mb:.1f} MB gz); shared/data/html (181 + 150 real pages)", metrics=metrics, ratios=ratios,
                        goal={"docs_per_s_tokenmill_vs_datatrove": f">= {GOAL_SPEEDUP}",
                              "f1_gap_vs_trafilatura": f">= -{GOAL_F1_GAP}"})
    print(json.dumps(json.loads(path.read_text()), indent=2))


if __name__ == "__main__":
    main()
