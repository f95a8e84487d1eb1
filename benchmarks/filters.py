"""Filters: documents/s of the FineWeb heuristic stack, tokenmill vs datatrove, same documents, one run.

The stack is FineWeb's: Gopher repetition -> Gopher quality -> C4 (filter_no_terminal_punct=False, rewrites the
text) -> FineWeb quality, each later filter seeing only what the earlier ones kept. datatrove runs it document
by document, as its pipeline does; tokenmill runs each stage on batches (`--batch-size`) with fresh stage
objects every timed run, so its word cache starts cold and warms over the batches like a worker's would.
Both must reach the same decision on every document; the count of differences is part of the result.

Also measured: language ID (lid.176, whole text) and quality scoring (a fastText bigram model trained here on the
DCLM-labelled texts), batched vs one `predict` per document as datatrove does; and the repetition detector.

Input: the real CC texts of ../shared/data (WET records, DCLM/Dolma texts, extracted HTML pages: 1,210 docs,
4.7 MB), plus `--crawl-docs N` pages of the generated crawl to scale up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from benchmarks.common import alternate, write_result  # noqa: E402


def load_texts(data: Path, crawl_docs: int) -> list[str]:
    from filters_helpers import crawl_texts, real_texts

    texts = [t for _, t in real_texts(data)]
    if crawl_docs:
        from tokenmill.ingest.generate import generate_crawl

        out = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
        generate_crawl(out, n_docs=crawl_docs, n_files=max(1, crawl_docs // 2000), seed=11)
        texts += [t for _, t, _ in crawl_texts(out)]
    return texts


def tokenmill_stack(texts: list[str], batch_size: int) -> list[str | None]:
    from filters_helpers import docs

    from tokenmill.filters.c4 import C4Filter
    from tokenmill.filters.fineweb import FineWebQualityFilter
    from tokenmill.filters.gopher import GopherQualityFilter, GopherRepetitionFilter
    from tokenmill.filters.words import shared_splitter

    shared_splitter("en").clear()  # every timed run starts cold: no word cache from an earlier run
    stages = [GopherRepetitionFilter(), GopherQualityFilter(), C4Filter(), FineWebQualityFilter()]
    for s in stages:
        s.setup()
    reasons: list[str | None] = []
    for k in range(0, len(texts), batch_size):
        table = docs(texts[k : k + batch_size])
        for s in stages:
            table = s.process(table)
        reasons += table["drop_reason"].to_pylist()
    return reasons


def datatrove_stack(texts: list[str]) -> list[str | None]:
    from datatrove.data import Document
    from datatrove.pipeline import filters as f

    stack = [f.GopherRepetitionFilter(), f.GopherQualityFilter(), f.C4QualityFilter(filter_no_terminal_punct=False),
             f.FineWebQualityFilter()]
    reasons = []
    for i, t in enumerate(texts):
        doc, reason = Document(text=t, id=str(i)), None
        for flt in stack:
            r = flt.filter(doc)
            if r is not True:
                reason = r[1]
                break
        reasons.append(reason)
    return reasons


def per_doc_scores(model, texts: list[str], label: str | None, prepare=None) -> list[float]:
    """One fastText `predict` per document: datatrove's LanguageFilter/FastTextClassifierFilter way."""
    out = []
    for t in texts:
        labels, probs = model.predict(prepare(t) if prepare else t.replace("\n", " "), k=-1 if label else 1)
        out.append(float(dict(zip(labels, probs, strict=True)).get(label, 0.0)) if label else float(probs[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--crawl-docs", type=int, default=0, help="add this many generated crawl pages (scale up)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    from tokenmill.filters.language import LanguageFilter
    from tokenmill.filters.quality import QualityFilter, normalize, train_classifier
    from tokenmill.filters.repetition import RepetitionFilter

    texts = load_texts(Path(a.data), a.crawl_docs)
    n, mb = len(texts), sum(len(t.encode()) for t in texts) / 1e6
    print(f"{n} docs, {mb:.1f} MB")

    ours, theirs = tokenmill_stack(texts, a.batch_size), datatrove_stack(texts)
    differ = sum((x is None) != (y is None) for x, y in zip(ours, theirs, strict=True))
    stack = alternate({"tokenmill": lambda: tokenmill_stack(texts, a.batch_size),
                       "datatrove": lambda: datatrove_stack(texts)}, repeats=a.repeats, warmup=0)

    lang = LanguageFilter(languages=[])
    lang.setup()
    from filters_helpers import docs

    table = docs(texts)
    lid = alternate({"tokenmill": lambda: lang.process(table),
                     "per_doc": lambda: per_doc_scores(lang._model, texts, None)}, repeats=a.repeats)

    labelled = str(Path(a.data) / "commoncrawl/text/dclm_majority_data.jsonl.gz")
    model_path = str(Path(tempfile.mkdtemp()) / "hq.bin")
    train_classifier([labelled], [labelled], model_path, label_field="label", holdout=0.0, epochs=5)
    quality = QualityFilter(model_path=model_path, threshold=0.5)
    quality.setup()
    qual = alternate({"tokenmill": lambda: quality.process(table),
                      "per_doc": lambda: per_doc_scores(quality._model, texts, "__label__hq", normalize)},
                     repeats=a.repeats)

    rep = RepetitionFilter()
    t0 = time.perf_counter()
    rep.process(table)
    rep_s = time.perf_counter() - t0

    metrics = {
        "docs": n, "megabytes": round(mb, 2),
        "fineweb_stack_docs_per_s": {k: round(n / v, 1) for k, v in stack.items()},
        "fineweb_stack_kept": {"tokenmill": sum(r is None for r in ours), "datatrove": sum(r is None for r in theirs)},
        "fineweb_stack_decisions_differing": differ,
        "language_id_docs_per_s": {k: round(n / v, 1) for k, v in lid.items()},
        "quality_scoring_docs_per_s": {k: round(n / v, 1) for k, v in qual.items()},
        "repetition_docs_per_s": round(n / rep_s, 1),
    }
    print(metrics)
    write_result(
        "filters",
        input=f"{n} real CC texts from ../shared/data ({mb:.1f} MB)"
        + (f" incl. {a.crawl_docs} generated pages" if a.crawl_docs else ""),
        metrics=metrics,
        ratios={"fineweb_stack_tokenmill_vs_datatrove": stack["datatrove"] / stack["tokenmill"],
                "language_id_batched_vs_per_doc": lid["per_doc"] / lid["tokenmill"],
                "quality_scoring_batched_vs_per_doc": qual["per_doc"] / qual["tokenmill"]},
        goal={"fineweb_stack_tokenmill_vs_datatrove": ">= 3x at identical decisions",
              "fineweb_stack_decisions_differing": 0},
    )


if __name__ == "__main__":
    main()
