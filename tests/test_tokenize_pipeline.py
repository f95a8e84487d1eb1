"""The tokenize step on Ray: train a tokenizer, encode document files by source, finalize; re-runs skip work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_tokenize_shards import NEOX, varied_docs

from tokenmill.cli import main
from tokenmill.config import ConfigError, validate
from tokenmill.schema import documents_from_pylist
from tokenmill.tokenize.pipeline import TokenizeConfig, tokenize_phases
from tokenmill.tokenize.shards import TokenDataset, open_datasets
from tokenmill.tokenize.tokenizer import load_tokenizer


def drive(phases, done_dir: Path) -> list[list[dict]]:
    """What the pipeline runner does with a phase generator: run each phase on Ray, send results back."""
    from tokenmill.pipeline.tasks import run_tasks

    out, results, n = [], None, 0
    while True:
        try:
            tasks = next(phases) if results is None else phases.send(results)
        except StopIteration:
            return out
        results = run_tasks(tasks, done_dir / f"phase-{n}", progress=False)
        out.append(results)
        n += 1


@pytest.fixture(scope="module")
def doc_files(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("docs")
    docs = varied_docs(240, seed=11)
    files = []
    for f in range(3):
        rows = docs[f * 80:(f + 1) * 80]
        for i, r in enumerate(rows):
            r["source"] = "cc/CC-MAIN-2024-22" if (i % 3 or f == 2) else "wiki/en"
            r["drop_reason"] = "gopher_rep.dup_line_frac" if i % 10 == 0 else None
            r["warc_path"], r["warc_offset"] = f"crawl/part-{f}.warc.gz", 1000 * i
        path = d / f"part-{f:05d}.parquet"
        pq.write_table(documents_from_pylist(rows), path)
        files.append(str(path))
    return files


def test_tokenize_phases_on_ray(ray_local, doc_files, tmp_path):
    cfg = validate(TokenizeConfig, {"train": {"vocab_size": 600, "max_docs": 150}, "seq_lens": [256]}, "job.yaml")
    out = tmp_path / "tokens"
    results = drive(tokenize_phases(cfg, doc_files, str(out)), tmp_path / "_done")
    assert len(results) == 3  # train, encode (one task per file), finalize (one task per source)
    assert len(results[1]) == 3 and {r["source"] for r in results[2]} == {"cc/CC-MAIN-2024-22", "wiki/en"}

    tok = load_tokenizer(out / "tokenizer.json")
    assert set(open_datasets(out)) == {"cc/CC-MAIN-2024-22", "wiki/en"}
    table = pq.read_table(doc_files).to_pylist()
    for src, slug in [("cc/CC-MAIN-2024-22", "cc_CC-MAIN-2024-22"), ("wiki/en", "wiki_en")]:
        ds = TokenDataset.open(out / slug)
        kept = {r["id"]: r["text"] for r in table if r["source"] == src and r["drop_reason"] is None}
        origin = {r["id"]: (r["warc_path"], r["warc_offset"]) for r in table}
        assert ds.source == src and ds.num_docs == len(kept) and ds.dtype == np.dtype("<u2")
        assert ds.vocab_size == 600 and ds.meta["tokenizer"]["sha256"]
        assert set(ds.meta["packing"]) == {"concat-256", "bestfit-256"}
        assert (out / slug / "tokenizer.json").read_bytes() == (out / "tokenizer.json").read_bytes()  # portable
        for s in range(ds.num_shards):
            toks = ds.tokens(s)
            for row in ds.index(s).to_pylist():
                ids = toks[row["token_start"]: row["token_start"] + row["token_count"]]
                assert ids[-1] == ds.eos_id and row["source"] == src
                assert (row["warc_path"], row["warc_offset"]) == origin[row["id"]]  # the crawl record, one hop
                assert tok.decode(ids[:-1].tolist()) == kept.pop(row["id"])
        assert not kept  # every kept document of the source is in its dataset, once

    # a re-run skips every finished task: nothing is rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = drive(tokenize_phases(cfg, doc_files, str(out)), tmp_path / "_done")
    assert again == results
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="job.yaml: tokenize: .*exactly one of"):
        validate(TokenizeConfig, {}, "job.yaml", prefix="tokenize")
    with pytest.raises(ConfigError, match="tokenize.seq_len: unknown key"):
        validate(TokenizeConfig, {"train": {}, "seq_len": 2048}, "job.yaml", prefix="tokenize")
    with pytest.raises(ConfigError, match="tokenizer file not found"):
        validate(TokenizeConfig, {"tokenizer": str(tmp_path / "nope.json")}, "job.yaml", prefix="tokenize")
    with pytest.raises(ConfigError, match="tokenize.train.vocab_size"):
        validate(TokenizeConfig, {"train": {"vocab_size": 10}}, "job.yaml", prefix="tokenize")


def test_tokenizer_is_checked_before_any_work(shared_data):
    neox = str(shared_data / NEOX)
    with pytest.raises(ConfigError, match="job.yaml: tokenize: .*no token '<nope>' to use as EOS"):
        validate(TokenizeConfig, {"tokenizer": neox, "eos_token": "<nope>"}, "job.yaml", prefix="tokenize")
    assert validate(TokenizeConfig, {"tokenizer": neox, "dtype": "uint16"}, "job.yaml").dtype == "uint16"


def test_tokenizer_train_cli_is_deterministic(doc_files, tmp_path):
    for name in ("a.json", "b.json"):
        assert main(["tokenizer", "train", *doc_files, "--out", str(tmp_path / name), "--vocab-size", "500",
                     "--max-docs", "100"]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    tok = load_tokenizer(tmp_path / "a.json")
    assert tok.get_vocab_size() == 500 and tok.token_to_id("<|endoftext|>") == 0
    text = pq.read_table(doc_files[0]).column("text")[3].as_py()
    assert tok.decode(tok.encode(text).ids) == text
    assert main(["tokenizer", "train", str(tmp_path / "missing"), "--out", str(tmp_path / "c.json")]) == 2
    dropped = pq.read_table(doc_files[0]).slice(0, 5)  # documents, every one dropped: nothing to learn from
    pq.write_table(dropped.set_column(dropped.schema.get_field_index("text"), "text",
                                      pa.nulls(5, pa.string())), tmp_path / "none-kept.parquet")
    assert main(["tokenizer", "train", str(tmp_path / "none-kept.parquet"), "--out", str(tmp_path / "d.json")]) == 2
    assert not (tmp_path / "d.json").exists()


def test_encode_file_counts_null_text_and_names_bad_files(shared_data, tmp_path):
    import pyarrow as pa

    from tokenmill.tokenize.pipeline import encode_file

    path = tmp_path / "bare.parquet"  # no id/url/source columns; one null text
    pq.write_table(pa.table({"text": ["hello world", None, "second doc"]}), path)
    cfg = TokenizeConfig(tokenizer=str(shared_data / NEOX))
    res = encode_file(str(path), 0, str(tmp_path / "out"), cfg.tokenizer, cfg)
    assert res["documents"] == 2 and res["skipped_null_or_dropped"] == 1 and res["sources"] == {"unknown": "unknown"}
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match="bad.parquet: not a readable Parquet"):
        encode_file(str(bad), 1, str(tmp_path / "out"), cfg.tokenizer, cfg)
    pq.write_table(pa.table({"body": ["x"]}), notext := tmp_path / "notext.parquet")
    with pytest.raises(ConfigError, match="notext.parquet: no `text` column"):
        encode_file(str(notext), 2, str(tmp_path / "out"), cfg.tokenizer, cfg)


def test_training_sample_spans_all_files(tmp_path):
    import pyarrow as pa

    from tokenmill.tokenize.tokenizer import iter_texts

    for i, n in enumerate([2, 50, 50]):  # a short first file passes its unused quota on
        pq.write_table(pa.table({"text": [f"f{i}-{j}" for j in range(n)]}), tmp_path / f"{i}.parquet")
    files = sorted(tmp_path.glob("*.parquet"))
    got = [t for batch in iter_texts(files, 30) for t in batch]
    assert [sum(t.startswith(f"f{i}-") for t in got) for i in range(3)] == [2, 18, 10]
    assert sum(map(len, iter_texts(files, None))) == 102
