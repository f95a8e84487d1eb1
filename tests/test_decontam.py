"""Decontamination against the real GSM8K, MMLU and HumanEval files, planted (with changed case, whitespace and
punctuation) into real Common Crawl text; and the real CC documents on their own."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenmill.config import ConfigError
from tokenmill.dedup.bench_items import BenchmarkSpec, load_items
from tokenmill.dedup.decontam import (
    BENCHMARKS_COL,
    REASON,
    REASON_SHORT,
    Decontaminate,
    contaminated_spans,
    load_index,
)
from tokenmill.dedup.local import run_global_locally
from tokenmill.schema import documents_from_pylist

PER_BENCHMARK = 12
PUNCT = list(",.;:!?\"'()-—…«»")


@pytest.fixture(scope="module")
def specs(shared_data) -> list[dict]:
    b = shared_data / "benchmarks"
    return [{"name": "gsm8k", "path": str(b / "gsm8k" / "test.jsonl")},
            {"name": "mmlu", "path": str(b / "mmlu" / "test")},
            {"name": "humaneval", "path": str(b / "humaneval" / "HumanEval.jsonl.gz")}]


@pytest.fixture(scope="module")
def real_cc(shared_data) -> list[dict]:
    """Real Common Crawl text: Dolma CC docs, DCLM-labelled CC pages, and a real CC-MAIN-2016-50 WET file."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    text = shared_data / "commoncrawl" / "text"
    docs = []
    for name in ("dolma_cc_en_head-0091.jsonl.gz", "dolma_cc_en_head-0174.jsonl.gz",
                 "dolma_provided_documents_000.json.gz", "dclm_agreement_data.jsonl.gz", "dclm_majority_data.jsonl.gz"):
        with gzip.open(text / name, "rt", encoding="utf-8") as f:
            for k, line in enumerate(f):
                r = json.loads(line)
                docs.append({"id": f"{name}:{k}", "url": r.get("id") or r.get("url"), "text": r["text"]})
    wet = shared_data / "commoncrawl" / "wet" / "ccscalatools_CC-MAIN-2016-50" / "filter_test_1.wet.gz"
    with open(wet, "rb") as f:
        for k, rec in enumerate(ArchiveIterator(f, record_types=WarcRecordType.conversion)):
            docs.append({"id": f"wet:{k}", "url": rec.headers.get("WARC-Target-URI"),
                         "text": rec.reader.read().decode("utf-8", "replace")})
    return docs


def mutate(text: str, rng: np.random.Generator) -> str:
    """Change case, whitespace runs and punctuation, but never where a word starts or ends."""
    out = []
    for word in text.split():
        r = rng.random()
        word = word.upper() if r < 0.3 else word.lower() if r < 0.5 else word.title() if r < 0.6 else word
        chars = [c for c in word if not (c in PUNCT and rng.random() < 0.5)]  # drop some punctuation
        if chars and rng.random() < 0.3:
            chars.insert(int(rng.integers(0, len(chars) + 1)), str(rng.choice(PUNCT)))  # add some
        out.append("".join(chars))
        out.append(str(rng.choice([" ", "  ", "\n", " \t ", "\n\n"])))
    return "".join(out)


def write_docs(rows: list[dict], path) -> str:
    pq.write_table(documents_from_pylist(rows), str(path))
    return str(path)


@pytest.fixture(scope="module")
def planted(specs, real_cc, tmp_path_factory):
    """PER_BENCHMARK items of each benchmark, mutated, inside real CC documents; decontaminated (drop mode)."""
    rng = np.random.default_rng(5)
    rows, truth = [], {}
    for spec in specs:
        items = load_items(BenchmarkSpec(**spec))
        long_enough = [k for k, t in enumerate(items) if len(t.split()) >= 20]
        for k in rng.choice(long_enough, PER_BENCHMARK, replace=False).tolist():
            host = real_cc[int(rng.integers(0, len(real_cc)))]["text"]
            cut = int(rng.integers(0, len(host) + 1))
            doc_id = f"planted-{spec['name']}-{k}"
            rows.append({"id": doc_id, "url": f"https://example.org/{doc_id}",
                         "text": host[:cut] + "\n" + mutate(items[k], rng) + "\n" + host[cut:]})
            truth[doc_id] = (spec["name"], k)
    tmp = tmp_path_factory.mktemp("decontam")
    paths = [write_docs(rows[0::2] + real_cc[0::2], tmp / "a.parquet"),
             write_docs(rows[1::2] + real_cc[1::2], tmp / "b.parquet")]
    stage = Decontaminate(benchmarks=specs)
    stage.check()
    out = run_global_locally(stage, paths, str(tmp / "work"), batch_size=128)
    return truth, pa.concat_tables(out), stage.summary(str(tmp / "work")), str(tmp / "work")


def test_every_planted_item_is_found(planted):
    truth, table, summary, _ = planted
    by_id = {r["id"]: r for r in table.to_pylist()}
    for doc_id, (bench, _) in truth.items():
        assert by_id[doc_id]["drop_reason"] == REASON, doc_id
        assert bench in by_id[doc_id][BENCHMARKS_COL].split(",")
    found = {(m["id"], m["benchmark"], m["item"]) for m in summary["matches"]}
    assert all((d, b, k) in found for d, (b, k) in truth.items())  # the right item, not just the benchmark
    for bench in ("gsm8k", "mmlu", "humaneval"):
        info = summary["benchmarks"][bench]
        assert info["items_found"] >= PER_BENCHMARK
        assert info["contaminated_fraction"] == pytest.approx(info["items_found"] / info["items"], abs=1e-6)


def test_real_common_crawl_is_not_flagged_without_a_reason(planted, real_cc):
    truth, table, _, workdir = planted
    index = load_index(workdir)
    flagged = [r for r in table.to_pylist() if r["drop_reason"] is not None and r["id"] not in truth]
    for r in flagged:  # each one must show the benchmark text it shares
        spans = contaminated_spans(r["text"], index)
        print(f"flagged real CC document {r['id']} ({r['url']}) for {r[BENCHMARKS_COL]}: "
              + " | ".join(repr(r["text"][a:b][:200]) for a, b in spans))
        assert spans, f"{r['id']} flagged but no matching span"
    assert len(flagged) <= 0.01 * len(real_cc), [r["id"] for r in flagged]


def test_cut_mode_removes_the_item_and_keeps_the_rest(specs, real_cc, tmp_path):
    gsm = [specs[0]]
    item = load_items(BenchmarkSpec(**specs[0]))[7]
    host = max(real_cc[:40], key=lambda d: len(d["text"]))["text"]
    rows = [{"id": "long", "text": host[:2000] + "\n" + mutate(item, np.random.default_rng(1)) + "\n" + host[2000:4000]},
            {"id": "short", "text": "Homework help: " + item},
            {"id": "clean", "text": host}]
    stage = Decontaminate(benchmarks=gsm, mode="cut", min_chars_after_cut=200)
    out = run_global_locally(stage, [write_docs(rows, tmp_path / "in.parquet")], str(tmp_path / "w"))[0]
    by_id = {r["id"]: r for r in out.to_pylist()}
    assert by_id["short"]["drop_reason"] == REASON_SHORT
    assert by_id["long"]["drop_reason"] is None and by_id["clean"]["drop_reason"] is None
    assert by_id["clean"]["text"] == host
    index = load_index(str(tmp_path / "w"))
    assert contaminated_spans(by_id["long"]["text"], index) == []
    assert host[:1000] in by_id["long"]["text"] and len(by_id["long"]["text"]) >= 2000


@pytest.mark.parametrize("mode", ["drop", "cut"])
def test_a_clean_row_sharing_a_flagged_rows_id_stays(specs, real_cc, tmp_path, mode):
    """Flags are keyed by row: of two rows with one id only the contaminated one is dropped (or cut)."""
    item = load_items(BenchmarkSpec(**specs[0]))[3]
    clean = real_cc[5]["text"]
    rows = [{"id": "same", "text": clean}, {"id": "same", "text": "Homework help: " + item},
            {"id": "other", "text": real_cc[6]["text"]}]
    stage = Decontaminate(benchmarks=[specs[0]], mode=mode)
    out = run_global_locally(stage, [write_docs(rows, tmp_path / "in.parquet")], str(tmp_path / "w"), batch_size=2)[0]
    assert out["drop_reason"].to_pylist() == [None, REASON if mode == "drop" else REASON_SHORT, None]
    assert out[BENCHMARKS_COL].to_pylist() == [None, "gsm8k", None] and out["text"][0].as_py() == clean
    assert stage.summary(str(tmp_path / "w"))["benchmarks"]["gsm8k"]["documents"] == 1


def test_missing_benchmark_file_fails_check(tmp_path):
    stage = Decontaminate(benchmarks=[{"name": "gsm8k", "path": str(tmp_path / "nope" / "test.jsonl")}])
    with pytest.raises(ConfigError, match="nope/test.jsonl"):
        stage.check()


def test_templates_and_formats(tmp_path):
    (tmp_path / "q.csv").write_text("question,answer\nWhat is two plus two in the usual arithmetic,four\n")
    (tmp_path / "q.jsonl").write_text(json.dumps({"query": "Pick one", "choices": ["red", "blue"], "gold": 1}) + "\n")
    pq.write_table(pa.table({"prompt": ["def f():"], "canonical_solution": ["    return 1"], "test": ["x"]}),
                   tmp_path / "h.parquet")
    assert load_items(BenchmarkSpec(name="x", path=str(tmp_path / "q.csv"))) == [
        "What is two plus two in the usual arithmetic\nfour"]
    assert load_items(BenchmarkSpec(name="x", path=str(tmp_path / "q.jsonl"))) == ["Pick one\nred\nblue"]
    assert load_items(BenchmarkSpec(name="humaneval", path=str(tmp_path / "h.parquet"))) == ["def f():\n    return 1"]
    with pytest.raises(ValueError, match="exactly one"):
        BenchmarkSpec(name="x")


def test_short_items_are_matched_whole_down_to_min_item_words(specs, real_cc, tmp_path):
    from tokenmill.dedup.ngrams import words

    items = load_items(BenchmarkSpec(**specs[1]))  # MMLU: some question+choices have fewer than 13 words
    _, off = words(pa.array(items))
    lens = np.diff(off)
    short = np.flatnonzero((lens >= 8) & (lens < 13)).tolist()[:6]
    tiny = int(np.flatnonzero(lens < 8)[0])
    rng = np.random.default_rng(2)
    rows = [{"id": f"short-{k}", "text": real_cc[k]["text"] + "\n" + mutate(items[k], rng)} for k in short]
    rows.append({"id": "tiny", "text": real_cc[50]["text"] + "\n" + items[tiny]})
    stage = Decontaminate(benchmarks=[specs[1]])
    out = run_global_locally(stage, [write_docs(rows, tmp_path / "in.parquet")], str(tmp_path / "w"))[0]
    by_id = {r["id"]: r for r in out.to_pylist()}
    assert len(short) == 6 and all(by_id[f"short-{k}"]["drop_reason"] == REASON for k in short)
    assert by_id["tiny"]["drop_reason"] is None  # under 8 words: everyday phrases, never matched
    info = stage.summary(str(tmp_path / "w"))["benchmarks"]["mmlu"]
    assert info["items_too_short"] == int((lens < 8).sum()) > 0  # counted, not indexed
    index = load_index(str(tmp_path / "w"))
    assert set(index.lengths.tolist()) == {13} | set(lens[(lens >= 8) & (lens < 13)].tolist())


def test_offline_dataset_name_is_a_config_error(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(ConfigError, match="cannot load dataset 'openai/gsm8k'"):
        load_items(BenchmarkSpec(name="gsm8k", dataset="openai/gsm8k", subset="main"))
