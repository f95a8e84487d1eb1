"""Helpers for the filter tests: the real texts of ../shared/data, the generated crawl's texts, running a stage."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from tokenmill.schema import documents_from_pylist

JSONL_TEXTS = ("commoncrawl/text/dclm_agreement_data.jsonl.gz", "commoncrawl/text/dclm_majority_data.jsonl.gz",
               "commoncrawl/text/dolma_cc_en_head-0091.jsonl.gz", "commoncrawl/text/dolma_cc_en_head-0174.jsonl.gz",
               "commoncrawl/text/dolma_provided_documents_000.json.gz")


def wet_records(data: Path) -> list[tuple[str, str | None, str]]:
    """(url, WARC-Identified-Content-Language, text) of every WET conversion record that reads cleanly."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    out = []
    for path in sorted(data.glob("commoncrawl/**/*.wet.gz")):
        with open(path, "rb") as f:
            try:
                for r in ArchiveIterator(f, record_types=WarcRecordType.conversion):
                    out.append((r.headers.get("WARC-Target-URI"), r.headers.get("WARC-Identified-Content-Language"),
                                r.reader.read().decode("utf-8", "replace")))
            except Exception:  # the deliberately broken fixtures: keep what was read before the damage
                continue
    return out


def jsonl_texts(data: Path) -> list[str]:
    out = []
    for name in JSONL_TEXTS:
        with gzip.open(data / name, "rt", encoding="utf-8") as f:
            out.extend(json.loads(line)["text"] for line in f if line.strip())
    return out


def html_pages(data: Path) -> list[tuple[str, str]]:
    """(file name, main-content text) of the real HTML pages, decoded with resiliparse's charset detection."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    out = []
    for path in sorted(data.glob("html/**/*.html.gz")):
        raw = gzip.open(path, "rb").read()
        html = bytes_to_str(raw, detect_encoding(raw))
        out.append((path.name, extract_plain_text(html, main_content=True)))
    return out


@lru_cache(maxsize=2)
def real_texts(data: Path) -> tuple[tuple[str, str], ...]:
    """(origin, text) of every real text: WET records, DCLM/Dolma CC texts, extracted HTML pages."""
    return tuple([(f"wet:{u}", t) for u, _, t in wet_records(data)] + [(f"jsonl:{i}", t) for i, t in
                 enumerate(jsonl_texts(data))] + [(f"html:{n}", t) for n, t in html_pages(data)])


def crawl_texts(crawl: Path) -> list[tuple[dict, str, str]]:
    """(ground truth, text, url) of every page of a generated crawl that ingest keeps."""
    from tokenmill.config import InputSpec
    from tokenmill.ingest import read_documents

    truth = {}
    for line in (crawl / "ground_truth.jsonl").read_text().splitlines():
        d = json.loads(line)
        truth[d["warc_record_id"]] = d
    rows = []
    for path in sorted(crawl.glob("*.warc.gz")):
        for table in read_documents(InputSpec(paths=[str(path)]), str(path), 500):
            for r in table.to_pylist():
                if r["drop_reason"] is None:
                    rows.append((truth.get(r["warc_record_id"], {}), r["text"], r["url"]))
    return rows


def docs(texts: list[str], urls: list[str] | None = None) -> pa.Table:
    urls = urls or [f"https://example.com/{i}" for i in range(len(texts))]
    return documents_from_pylist([{"id": str(i), "text": t, "url": u} for i, (t, u) in
                                  enumerate(zip(texts, urls, strict=True))])


def drop_reasons(stage, texts: list[str]) -> list[str | None]:
    stage.setup()
    return stage.process(docs(texts))["drop_reason"].to_pylist()


def datatrove_reasons(dt_filter, texts: list[str], prefix: str, rename: dict | None = None) -> list[str | None]:
    """datatrove's decision for each text as one of our reasons (`prefix` + its reason), None when kept."""
    from datatrove.data import Document

    rename = rename or {}
    out = []
    for i, t in enumerate(texts):
        r = dt_filter.filter(Document(text=t, id=str(i)))
        out.append(None if r is True else prefix + rename.get(r[1], r[1]))
    return out
