"""Decontamination: find evaluation-benchmark text in the training documents by word n-gram overlap.

  index   (one task)   every benchmark item's text (bench_items.py templates) → normalized words (ngrams.py) →
                       13-gram hashes, sorted with their (benchmark, item): `index.npz` (decontam_index.py);
  scan    (per shard)  every document's 13-gram hashes (whole batches), looked up by binary search in the index;
                       (shard, row, id, url, benchmark, item, n-grams matched) to `matches/shard-S.parquet`;
  report  (one task)   `contamination.json`: per benchmark the items found and the contaminated fraction, the
                       documents flagged, and which items were found in which documents (id, url);
  per shard            the flagged rows, by position (a clean document that shares a flagged one's id stays);
                       mode `drop`: they get `drop_reason = decontam.ngram_match`; mode `cut`: the matching spans
                       are cut out of the text (words are located in the original text, so case, spacing and
                       punctuation outside the spans are kept), and the rest is kept if it still has
                       `min_chars_after_cut` characters, else dropped as `decontam.too_short_after_cut`.

13-grams are the GPT-3 setting (Brown et al. 2020, appendix C); normalization makes matches survive changed case,
whitespace and punctuation. Items shorter than 13 words are matched whole down to `min_item_words` (8, GPT-3's
floor); shorter ones are counted as `items_too_short` (decontam_index.py).
Scan (GSM8K + MMLU + HumanEval: ~1.2M 13-grams, plus whole short items of 8-12 words): 13 MB/s on one shared
core, 3.2x a per-document Python loop with a set (benchmarks/dedup.py).
"""

from __future__ import annotations

import os
import re
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from tokenmill.dedup import common, decontam_index
from tokenmill.dedup.bench_items import BenchmarkSpec, benchmark_files, load_items
from tokenmill.dedup.decontam_index import NgramIndex
from tokenmill.dedup.ngrams import hash_words, normalize, words
from tokenmill.io import atomic_write_json, read_json
from tokenmill.schema import ID, TEXT, URL, set_column, with_drop_reason
from tokenmill.stage import GlobalStage, Phases, StageConfig, Task

REASON = "decontam.ngram_match"
REASON_SHORT = "decontam.too_short_after_cut"
BENCHMARKS_COL = "decontam.benchmarks"
CUT_CHARS_COL = "decontam.cut_chars"
SCAN_BATCH = 2048  # documents per vectorized scan batch
MAX_REPORTED_MATCHES = 10_000  # (benchmark, item, document) rows kept in contamination.json


class DecontamConfig(StageConfig):
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    ngram: int = Field(default=13, ge=1)  # GPT-3 (Brown et al. 2020), appendix C
    min_matches: int = Field(default=1, ge=1)  # n-grams a document must share with one item to be flagged
    mode: Literal["drop", "cut"] = "drop"
    min_chars_after_cut: int = Field(default=200, ge=0)  # shorter rests are mostly the item itself: drop them
    min_item_words: int = Field(default=8, ge=1)  # shorter items are matched whole down to this; GPT-3's floor


def index_path(workdir: str) -> str:
    return os.path.join(workdir, "index.npz")


def build_index(workdir: str, cfg: dict) -> dict:
    """Phase 1: the sorted gram hashes of every benchmark item, with (benchmark, item) for each."""
    c = DecontamConfig(**cfg)
    info = decontam_index.build([load_items(s) for s in c.benchmarks], c.ngram, c.min_item_words, index_path(workdir))
    names = [s.name for s in c.benchmarks]
    atomic_write_json(os.path.join(workdir, "benchmarks.json"), {"names": names, **dict(zip(names, info, strict=True))})
    return {"grams": sum(i["grams"] for i in info)}


def load_index(workdir: str) -> NgramIndex:
    return NgramIndex.load(index_path(workdir))


def scan_shard(path: str, shard: int, workdir: str, cfg: dict) -> dict:
    """Phase 2: (document, item) pairs sharing at least `min_matches` n-grams, for one shard."""
    c = DecontamConfig(**cfg)
    index = load_index(workdir)
    names = common.document_columns(path)
    table = pq.read_table(path, columns=[c for c in (ID, URL, TEXT) if c in names])
    if URL not in names:
        table = table.append_column(URL, pa.nulls(table.num_rows, pa.string()))
    docs, codes = [], []
    for lo in range(0, table.num_rows, SCAN_BATCH):
        flat, off = words(table[TEXT].slice(lo, SCAN_BATCH))
        doc, pos, _, _ = index.matches(hash_words(flat), off)
        docs.append(doc + lo)
        codes.append((index.bench[pos].astype(np.int64) << 32) | index.item[pos].astype(np.int64))
    doc, code = (np.concatenate(docs), np.concatenate(codes)) if docs else (np.zeros(0, np.int64),) * 2
    pairs, counts = np.unique(np.stack([doc, code], axis=1), axis=0, return_counts=True) if len(doc) else \
        (np.zeros((0, 2), np.int64), np.zeros(0, np.int64))
    pairs = pairs[counts >= c.min_matches]
    counts = counts[counts >= c.min_matches]
    rows = pa.array(pairs[:, 0])
    names = pa.array([s.name for s in c.benchmarks])
    matches = pa.table({"shard": pa.array(np.full(len(pairs), shard, np.int64)), "row": rows,
                        ID: table[ID].take(rows), URL: table[URL].take(rows),
                        "benchmark": names.take(pa.array(pairs[:, 1] >> 32)),
                        "item": pa.array(pairs[:, 1] & 0xFFFFFFFF), "ngrams": pa.array(counts)})
    common.write_parquet(matches, os.path.join(workdir, "matches", f"shard-{shard:05d}.parquet"))
    text_bytes = pc.sum(pc.binary_length(table[TEXT].cast(pa.large_binary()))).as_py() or 0
    return {"shard": shard, "documents": table.num_rows, "bytes": text_bytes, "flagged": len(np.unique(pairs[:, 0]))}


def write_report(workdir: str, scans: list[dict]) -> dict:
    """Phase 3: contamination.json from every shard's matches."""
    info = read_json(os.path.join(workdir, "benchmarks.json"))
    m = common.read_parquets(common.shard_files(os.path.join(workdir, "matches", "shard-*.parquet")))
    per_bench = {}
    for name in info["names"]:
        sel = m.filter(pc.equal(m["benchmark"], name)) if m is not None else None
        found = len(set(sel["item"].to_pylist())) if sel is not None else 0
        docs = len(set(zip(sel["shard"].to_pylist(), sel["row"].to_pylist(), strict=True))) if sel is not None else 0
        per_bench[name] = {**info[name], "items_found": found, "documents": docs,
                           "contaminated_fraction": round(found / info[name]["items"], 6) if info[name]["items"] else 0.0}
    listed = m.slice(0, MAX_REPORTED_MATCHES).drop_columns(["shard", "row"]).to_pylist() if m is not None else []
    report = {"documents_scanned": sum(s["documents"] for s in scans), "bytes_scanned": sum(s["bytes"] for s in scans),
              "documents_flagged": sum(s["flagged"] for s in scans), "benchmarks": per_bench,
              "matches": listed, "matches_total": m.num_rows if m is not None else 0}
    atomic_write_json(os.path.join(workdir, "contamination.json"), report)
    return {"documents_flagged": report["documents_flagged"]}


def contaminated_spans(text: str, index: NgramIndex) -> list[tuple[int, int]]:
    """Character spans of `text` covered by grams found in the index (merged, sorted)."""
    toks = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    norm = normalize(pa.array([text[a:b] for a, b in toks], pa.large_string())).to_pylist()
    word_tok = [(k, w) for k, t in enumerate(norm) for w in t.split()]  # a token may lose all its characters
    if not word_tok:
        return []
    tok_of_W = np.array([k for k, _ in word_tok])
    _, _, start, length = index.matches(hash_words(pa.array([w for _, w in word_tok])), np.array([0, len(word_tok)]))
    spans: list[tuple[int, int]] = []
    for w, k in sorted(zip(start.tolist(), length.tolist(), strict=True)):
        a, b = toks[tok_of_W[w]][0], toks[tok_of_W[w + k - 1]][1]
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def cut_spans(text: str, spans: list[tuple[int, int]]) -> str:
    pieces, pos = [], 0
    for a, b in spans:
        pieces.append(text[pos:a])
        pos = b
    pieces.append(text[pos:])
    return "".join(pieces).strip()


class Decontaminate(GlobalStage):
    """Drop (or cut) documents that contain n-grams of evaluation benchmark items."""

    name = "decontaminate"
    Config = DecontamConfig

    def check(self) -> None:
        for spec in self.config.benchmarks:
            if spec.path is not None:
                benchmark_files(spec)  # raises ConfigError naming the missing file

    def prepare(self, inputs: list[str], workdir: str) -> Phases:
        cfg = self.config.model_dump()
        yield [Task("index", build_index, (workdir, cfg))]
        scans = yield [Task(f"scan-{i:05d}", scan_shard, (p, i, workdir, cfg)) for i, p in enumerate(inputs)]
        yield [Task("report", write_report, (workdir, scans))]

    def setup(self) -> None:
        assert self.workdir is not None and self.shard is not None, "the runner sets workdir and shard"
        self.row_offset = 0  # an instance set up again for another shard starts at its first row
        m = common.read_parquets([os.path.join(self.workdir, "matches", f"shard-{self.shard.index:05d}.parquet")])
        names: dict[int, tuple[str, set[str]]] = {}
        for row, doc_id, bench in zip(m["row"].to_pylist(), m[ID].to_pylist(), m["benchmark"].to_pylist(), strict=True):
            names.setdefault(row, (doc_id, set()))[1].add(bench)  # flagged documents only: few
        self._flagged = common.sorted_by_row(pa.table({
            "row": pa.array(list(names), pa.int64()), ID: pa.array([v[0] for v in names.values()], pa.string()),
            BENCHMARKS_COL: pa.array([",".join(sorted(v[1])) for v in names.values()], pa.string())}))
        self._index = load_index(self.workdir) if self.config.mode == "cut" else None

    def process(self, table: pa.Table) -> pa.Table:
        idx = common.batch_lookup(self, self._flagged, table)
        table = set_column(table, BENCHMARKS_COL, common.column_from(self._flagged, BENCHMARKS_COL, idx, pa.string()))
        if self.config.mode == "drop":
            return with_drop_reason(table, pa.array(np.where(idx >= 0, REASON, None), pa.string()))
        return self._cut(table, np.flatnonzero(idx >= 0))

    def _cut(self, table: pa.Table, rows: np.ndarray) -> pa.Table:
        texts = table[TEXT].to_pylist()
        cut = np.zeros(table.num_rows, np.int64)
        reasons: list[str | None] = [None] * table.num_rows
        for r in rows:
            spans = contaminated_spans(texts[r], self._index)
            new = cut_spans(texts[r], spans)
            cut[r] = len(texts[r]) - len(new)
            texts[r] = new
            if len(new) < self.config.min_chars_after_cut:
                reasons[r] = REASON_SHORT
        table = set_column(table, TEXT, pa.array(texts, table.schema.field(TEXT).type))
        table = set_column(table, CUT_CHARS_COL, pa.array(cut))
        return with_drop_reason(table, pa.array(reasons, pa.string()))

    def summary(self, workdir: str) -> dict:
        report = read_json(os.path.join(workdir, "contamination.json"))
        return {k: report[k] for k in ("documents_scanned", "documents_flagged", "benchmarks")} | {
            "matches": report["matches"][:100]}
