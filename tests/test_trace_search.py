"""Trace outputs back to training documents on a real tokenized dataset (181 real news articles, GPT-NeoX BPE)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokenmill.config import ConfigError
from tokenmill.tokenize.shards import write_token_dataset
from tokenmill.trace.index import build_span_index, sa_names
from tokenmill.trace.search import MIN_SPAN_TOKENS, Tracer, trace_text_command
from tokenmill.trace.view import render_text

TOKENIZER = "tokenizers/dolma_gpt-neox-style_byte-level-bpe_tokenizer.json"
ARTICLES = "html/scrapinghub_aeb/ground-truth.json"


def articles(shared_data) -> list[dict]:
    truth = json.loads((shared_data / ARTICLES).read_text())
    return [{"id": k, "url": v["url"], "source": "aeb", "text": v["articleBody"], "warc_path": "aeb.warc.gz",
             "warc_offset": 4096 * i} for i, (k, v) in enumerate(truth.items())]


def indexed_dataset(shared_data, out, ray_local) -> tuple:
    """The articles as a 3-shard tokenized dataset with its span index."""
    docs = articles(shared_data)
    write_token_dataset(out, docs, shared_data / TOKENIZER, max_shard_tokens=80_000)
    build_span_index(out)
    return docs, out


@pytest.fixture(scope="module")
def dataset(shared_data, tmp_path_factory, ray_local):
    return indexed_dataset(shared_data, tmp_path_factory.mktemp("tokens"), ray_local)


@pytest.fixture(scope="module")
def tracer(dataset):
    return Tracer(dataset[1])


def test_index_files_beside_each_shard(dataset):
    docs, out = dataset
    meta = json.loads((out / "dataset.json").read_text())
    assert len(meta["shards"]) >= 3
    for entry in meta["shards"]:
        sa_bin, sa_json = sa_names(entry["bin"])
        info = json.loads((out / sa_json).read_text())
        assert info["shard_sha256"] == entry["sha256"] and info["num_tokens"] == entry["num_tokens"]
        assert (out / sa_bin).stat().st_size == 4 * entry["num_tokens"]
    unigram = np.load(out / "span-unigram.npy")
    assert unigram.sum() == meta["num_tokens"]


def test_copied_sentence_is_attributed_to_its_document(dataset, tracer):
    docs, _ = dataset
    doc = docs[17]
    sentence = doc["text"][doc["text"].index(". ", 200) + 2 :][:240]
    output = f"Here is what I think. {sentence} Purple zebras negotiate quietly."
    result = tracer.trace(output, top=5)
    longest = max(result["spans"], key=lambda s: s["tokens"])
    assert longest["text"] in output and len(longest["text"]) > 0.8 * len(sentence)
    assert longest["count"] >= 1
    first = result["documents"][0]
    assert first["id"] == doc["id"] and first["url"] == doc["url"] and first["source"] == "aeb"
    assert (first["warc_path"], first["warc_offset"]) == (doc["warc_path"], doc["warc_offset"])  # to the crawl
    assert f"crawl record aeb.warc.gz @ {doc['warc_offset']}" in render_text(result)
    snippet = next(s for s in first["snippets"] if s["span"] == longest["id"])
    assert snippet["match"].strip() == longest["text"].strip()
    assert snippet["match"].strip() in doc["text"] and snippet["before"].strip()[-20:] in doc["text"]


def test_random_tokens_match_no_long_span(tracer):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50_000, 300)
    assert tracer.longest(ids).max() <= 3
    text = tracer.tokenizer.decode(ids.tolist())
    assert all(s["tokens"] < MIN_SPAN_TOKENS + 2 for s in tracer.trace(text)["spans"])


def test_span_counts_match_the_token_streams(dataset, tracer):
    """Each kept span's count equals a brute-force count over every shard's tokens."""
    docs, _ = dataset
    output = docs[3]["text"][:600] + " and " + docs[90]["text"][:400]
    ids, _ = tracer.encode(output)
    result = tracer.trace(output)
    assert result["spans"]
    for span in result["spans"][:5]:
        window = ids[span["token_start"] : span["token_start"] + span["tokens"]]
        brute = 0
        for shard in tracer.index.shards:
            views = np.lib.stride_tricks.sliding_window_view(np.asarray(shard.tokens), len(window))
            brute += int((views == window).all(axis=1).sum())
        assert span["count"] == brute


def test_terminal_and_json_views(dataset):
    docs, out = dataset
    output = "As reported: " + docs[5]["text"][:300]
    text_view = trace_text_command(str(out), output, top=3)
    assert "[[" in text_view and docs[5]["url"] in text_view
    as_json = json.loads(trace_text_command(str(out), output, as_json=True, top=3))
    assert as_json["documents"][0]["url"] == docs[5]["url"]


def test_fuzzy_ranks_the_paraphrased_document_first(dataset, tracer):
    docs, out = dataset
    words = docs[40]["text"].split()[:200]
    for i in range(0, 200, 25):
        words[i] = "zebra"  # every 25th word changed: no long verbatim span survives everywhere
    result = tracer.trace(" ".join(words), fuzzy=True, top=3)
    assert result["fuzzy"][0]["id"] == docs[40]["id"] and result["fuzzy"][0]["jaccard"] > 0.05
    assert list(out.glob("shard-*.minhash.npy"))  # cached beside the shards


def test_stale_or_missing_index_is_refused(shared_data, tmp_path):
    write_token_dataset(tmp_path, articles(shared_data)[:5], shared_data / TOKENIZER)
    with pytest.raises(ConfigError, match="trace index"):
        Tracer(tmp_path)
    with pytest.raises(ConfigError, match=f"`tokenmill trace index {tmp_path}`"):  # a run's list: name the dataset
        Tracer([tmp_path])


def test_output_over_the_limit_is_refused(tracer):
    with pytest.raises(ConfigError, match="limit"):
        tracer.trace("word " * 5000)


def test_rerun_keeps_fresh_shards_and_rebuilds_a_damaged_one(shared_data, tmp_path, ray_local):
    write_token_dataset(tmp_path, articles(shared_data)[:30], shared_data / TOKENIZER, max_shard_tokens=8_000)
    build_span_index(tmp_path)
    sa_jsons = sorted(tmp_path.glob("shard-*.sa.json"))
    assert len(sa_jsons) >= 3
    before = {p: p.stat().st_mtime_ns for p in sa_jsons}
    sa_jsons[0].write_text("{damaged")
    build_span_index(tmp_path)
    assert json.loads(sa_jsons[0].read_text())["num_tokens"] > 0
    assert all(p.stat().st_mtime_ns == before[p] for p in sa_jsons[1:])


def test_corrupt_shard_is_named_not_indexed(shared_data, tmp_path, ray_local):
    write_token_dataset(tmp_path, articles(shared_data)[:10], shared_data / TOKENIZER)
    shard = tmp_path / "shard-00000.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="shard-00000.bin"):
        build_span_index(tmp_path)
    assert not (tmp_path / "shard-00000.sa.bin").exists()


def test_cli_trace_text(dataset, capsys, tmp_path):
    from tokenmill.cli import main

    docs, out = dataset
    assert main(["trace", "text", str(out), "Quoted: " + docs[12]["text"][:250], "--json", "--top", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["documents"][0]["url"] == docs[12]["url"]
    assert main(["trace", "text", str(out / "missing")]) == 2
    for name, body in (("absent.txt", None), ("latin1.txt", "caf\xe9".encode("latin-1"))):
        path = tmp_path / name
        if body is not None:
            path.write_bytes(body)
        assert main(["trace", "text", str(out), "--file", str(path)]) == 2  # one line, not a traceback
        assert name in capsys.readouterr().err
