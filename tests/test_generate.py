"""The synthetic crawl: deterministic bytes, parseable WARC, and planted cases that are what the labels say."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator

from tokenmill.ingest.generate import NEAR_DUP_JACCARDS, generate_crawl

ARTICLE = re.compile(r"<article>(.*?)</article>", re.S)
BLOCK = re.compile(r"<(h1|p|li)>(.*?)</\1>", re.S)


def truth(crawl: Path) -> list[dict]:
    return [json.loads(line) for line in (crawl / "ground_truth.jsonl").read_text().splitlines()]


def fetch(crawl: Path, row: dict):
    """The response record at the recorded offset, read alone (as a range request would)."""
    with open(crawl / row["warc_file"], "rb") as f:
        f.seek(row["warc_offset"])
        rec = next(iter(ArchiveIterator(f, parse_http=True)))
        return rec, rec.reader.read()


def article_text(crawl: Path, row: dict) -> str:
    """The article's blocks, one per line, parsed independently of the generator's own renderer."""
    _, body = fetch(crawl, row)
    doc = body.decode(row["charset"])
    inner = ARTICLE.search(doc).group(1)
    return "\n".join(html.unescape(m.group(2)) for m in BLOCK.finditer(inner))


def jaccard5(a: str, b: str) -> float:
    def sh(t: str) -> set:
        w = t.split()
        return {tuple(w[i:i + 5]) for i in range(len(w) - 4)}
    sa, sb = sh(a), sh(b)
    return len(sa & sb) / len(sa | sb)


def test_same_seed_same_bytes_any_workers_other_seed_other_bytes(tmp_path):
    a, b, c = (generate_crawl(tmp_path / n, n_docs=120, n_files=2, seed=s, workers=w).parent
               for n, s, w in (("a", 3, 1), ("b", 3, 2), ("c", 4, 1)))  # b: one process per file
    names = sorted(p.name for p in a.iterdir())
    assert names == ["benchmark.jsonl", "crawl-00000.warc.gz", "crawl-00001.warc.gz", "ground_truth.jsonl"]
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    assert (a / "crawl-00000.warc.gz").read_bytes() != (c / "crawl-00000.warc.gz").read_bytes()


def test_warc_records_parse_with_fastwarc_and_offsets_refetch(small_crawl):
    rows = truth(small_crawl)
    assert len(rows) == 300
    counts = Counter()
    first_types = []
    for path in sorted(small_crawl.glob("crawl-*.warc.gz")):
        recs = list(ArchiveIterator(open(path, "rb"), parse_http=False))
        first_types.append(recs[0].headers["WARC-Type"])
        counts.update(r.headers["WARC-Type"] for r in recs)
    assert first_types == ["warcinfo"] * 3
    assert counts == {"warcinfo": 3, "request": 300, "response": 300}
    for row in rows[::37]:
        rec, _ = fetch(small_crawl, row)
        assert rec.headers["WARC-Record-ID"] == row["warc_record_id"]
        assert rec.headers["WARC-Target-URI"] == row["url"]
        with open(small_crawl / row["warc_file"], "rb") as f:
            f.seek(row["warc_offset"])
            assert next(iter(ArchiveIterator(f, parse_http=False))).verify_block_digest()
    assert len({r["url"] for r in rows}) == 300


def test_planted_mix_languages_and_charsets(small_crawl):
    rows = truth(small_crawl)
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["exact_dup"] == 9 and kinds["near_dup"] == 21 and kinds["clean"] == 3 * 84
    for k in ("spam_page", "inline_spam", "boilerplate_only", "benchmark", "http_error", "not_html"):
        assert kinds[k] == 3, k
    langs = Counter(r["language"] for r in rows)
    assert set(langs) == {"en", "de", "fr", "es", "ja"} and langs["en"] > 120
    charsets = {r["charset"] for r in rows}
    assert {"utf-8", "windows-1252", "iso-8859-1"} <= charsets
    for row in rows:  # every HTML page decodes with its charset and declares it where the label says
        if row["charset"] is None:
            continue
        rec, body = fetch(small_crawl, row)
        doc = body.decode(row["charset"])
        in_header = "charset=" in rec.http_headers["Content-Type"]
        in_meta = "charset" in doc[:400]
        assert (in_header, in_meta) == {"header": (True, False), "meta": (False, True), "both": (True, True),
                                        "none": (False, False)}[row["charset_declared"]], row


def test_near_dups_have_the_recorded_jaccard_spread(small_crawl):
    rows = truth(small_crawl)
    by_url = {r["url"]: r for r in rows}
    got = {}
    for row in rows:
        if row["kind"] in ("near_dup", "exact_dup"):
            mine, theirs = article_text(small_crawl, row), article_text(small_crawl, by_url[row["of_url"]])
            assert row["url"] != row["of_url"]
            if row["kind"] == "exact_dup":
                assert mine == theirs
            else:
                j = jaccard5(mine, theirs)
                assert j == pytest.approx(row["jaccard"], abs=1e-4)
                assert abs(j - row["target_jaccard"]) < 0.05, row
                got.setdefault(row["target_jaccard"], []).append(j)
    assert sorted(got) == sorted(NEAR_DUP_JACCARDS)


def test_spam_and_benchmark_plants_are_in_the_html(small_crawl):
    rows = truth(small_crawl)
    questions = [json.loads(x)["question"] for x in (small_crawl / "benchmark.jsonl").read_text().splitlines()]
    for row in rows:
        if row["kind"] not in ("inline_spam", "spam_page", "benchmark", "http_error", "boilerplate_only"):
            continue
        rec, body = fetch(small_crawl, row)
        doc = html.unescape(body.decode(row["charset"]))
        if row["kind"] == "inline_spam":
            runs = re.findall(re.escape(row["char"]) + "+", doc)
            assert max(map(len, runs)) == row["run_length"]
        elif row["kind"] == "spam_page":
            assert row["pattern"] * row["repeats"] in doc
        elif row["kind"] == "benchmark":
            assert row["benchmark"] == "synthetic_math" and questions[row["item_index"]] in doc
        elif row["kind"] == "http_error":
            assert rec.http_headers.status_code == row["status"] >= 400
        else:
            assert "<article>" not in doc and "<nav>" in doc


def test_given_benchmark_items_are_planted(tmp_path):
    items = {"quiz": ["What is the capital of the small island nation described in chapter four & why?"]}
    out = generate_crawl(tmp_path, n_docs=100, n_files=1, seed=1, benchmark_items=items).parent
    assert not (out / "benchmark.jsonl").exists()
    rows = [r for r in truth(out) if r["kind"] == "benchmark"]
    assert rows and rows[0]["benchmark"] == "quiz" and rows[0]["item_index"] == 0
    _, body = fetch(out, rows[0])
    assert items["quiz"][0] in html.unescape(body.decode(rows[0]["charset"]))


def test_cli_crawl_generate(tmp_path, capsys):
    from tokenmill.cli import main

    assert main(["crawl-generate", str(tmp_path / "c"), "--docs", "100", "--files", "2", "--seed", "5"]) == 0
    assert len(truth(tmp_path / "c")) == 100 and "100 pages" in capsys.readouterr().out
