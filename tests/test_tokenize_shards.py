"""Token shards: write → read round trips, index coverage, uint16/uint32, corruption refused, remote reads."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tokenmill.tokenize.export import export_dataset
from tokenmill.tokenize.format import ShardError
from tokenmill.tokenize.httpserve import serve_directory
from tokenmill.tokenize.packing import PackedSequences
from tokenmill.tokenize.shards import TokenDataset, write_token_dataset
from tokenmill.tokenize.tokenizer import load_tokenizer, train_tokenizer_from_texts

NEOX = "tokenizers/dolma_gpt-neox-style_byte-level-bpe_tokenizer.json"


def varied_docs(n: int, seed: int = 0, source: str = "cc/test") -> list[dict]:
    """Documents of widely varying length: generated articles (1-6 joined), as the crawl generator makes them."""
    from tokenmill.ingest.synth import article_text, make_article, render_blocks

    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        lang = ["en", "de", "fr", "es", "ja"][int(rng.integers(0, 5))]
        parts = [article_text(render_blocks(make_article(lang, seed, rng), seed))
                 for _ in range(int(rng.integers(1, 7)) if rng.random() < 0.3 else 1)]
        docs.append({"id": f"doc-{seed}-{i}", "url": f"https://site{i % 13}.example/{i}", "source": source,
                     "text": "\n\n".join(parts)})
    return docs


def real_docs(shared_data: Path) -> list[dict]:
    """Real Common Crawl text (DCLM's human-labelled pages, CCNet docs)."""
    docs = []
    for name in ("text/dclm_agreement_data.jsonl.gz", "text/dolma_cc_en_head-0091.jsonl.gz"):
        with gzip.open(shared_data / "commoncrawl" / name, "rt") as f:
            for i, line in enumerate(f):
                docs.append({"id": f"{name}:{i}", "url": f"https://example.org/{name}/{i}", "source": "cc/real",
                             "text": json.loads(line)["text"]})
    return docs


@pytest.fixture(scope="module")
def neox_dataset(shared_data, tmp_path_factory):
    docs = real_docs(shared_data)
    out = write_token_dataset(tmp_path_factory.mktemp("neox") / "ds", docs, shared_data / NEOX,
                              max_shard_tokens=60_000)
    return TokenDataset.open(out), docs, load_tokenizer(shared_data / NEOX)


def test_round_trip_real_tokenizer_uint16(neox_dataset):
    ds, docs, tok = neox_dataset
    assert ds.dtype == np.dtype("<u2") and ds.vocab_size == 50280 and ds.num_shards > 1
    assert ds.num_docs == len(docs) and ds.meta["tokenizer"]["sha256"]
    by_id = {d["id"]: d["text"] for d in docs}
    seen = 0
    for s in range(ds.num_shards):
        toks = ds.tokens(s)
        for row in ds.index(s).to_pylist():
            ids = toks[row["token_start"] : row["token_start"] + row["token_count"]]
            assert ids[-1] == ds.eos_id  # the EOS belongs to its document
            text = by_id[row["id"]]
            want = tok.normalizer.normalize_str(text) if tok.normalizer else text
            assert tok.decode(ids[:-1].tolist(), skip_special_tokens=False) == want
            seen += 1
    assert seen == len(docs)


def test_every_token_maps_to_exactly_one_document(neox_dataset):
    ds, _, _ = neox_dataset
    rng = np.random.default_rng(1)
    for s in range(ds.num_shards):
        idx = ds.index(s)
        start = idx.column("token_start").to_numpy()
        count = idx.column("token_count").to_numpy()
        # the documents tile the shard: contiguous, no gap, no overlap, to the last token
        assert start[0] == 0 and (start[1:] == start[:-1] + count[:-1]).all()
        assert start[-1] + count[-1] == ds.shard_tokens[s]
        for t in rng.integers(0, ds.shard_tokens[s], 20).tolist():
            docs = ds.documents_at(s, t, t + 1)
            assert len(docs) == 1 and docs[0]["token_start"] <= t < docs[0]["token_start"] + docs[0]["token_count"]
            assert docs[0]["url"].startswith("https://example.org/")


def test_uint32_when_vocab_exceeds_65535(tmp_path):
    base = train_tokenizer_from_texts((d["text"] for d in varied_docs(60)), tmp_path / "base.json", 400)
    tok = load_tokenizer(base)
    tok.add_tokens([f"<x{i}>" for i in range(66_000)])  # ids now run past 65,535
    big = tmp_path / "big.json"
    tok.save(str(big))
    docs = [{"id": f"d{i}", "url": None, "source": "s", "text": f"hello <x{65_990 + i}> world <x{i}>"}
            for i in range(5)]
    ds = TokenDataset.open(write_token_dataset(tmp_path / "ds", docs, big))
    assert ds.dtype == np.dtype("<u4") and ds.vocab_size > 65_536
    toks = ds.tokens(0)
    assert int(toks.max()) > 65_535
    row = ds.index(0).to_pylist()[4]
    assert tok.decode(toks[row["token_start"]: row["token_start"] + row["token_count"] - 1].tolist(),
                      skip_special_tokens=False).replace(" ", "") == docs[4]["text"].replace(" ", "")


@pytest.fixture()
def small_dataset(tmp_path):
    rng = np.random.default_rng(3)
    pairs = [({"id": f"d{i}", "url": f"u{i}", "source": "s"}, rng.integers(0, 900, int(rng.integers(1, 400))))
             for i in range(400)]
    return write_token_dataset(tmp_path / "ds", pairs, vocab_size=1000, eos_id=999, max_shard_tokens=30_000)


def test_flipped_byte_is_refused_naming_the_file(small_dataset):
    shard = small_dataset / "shard-00001.bin"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    ds = TokenDataset.open(small_dataset)  # sizes still match: opening is cheap and passes
    ds.read(0, 0, 10)  # other shards are fine
    with pytest.raises(ShardError, match="shard-00001.bin: block 0 .*checksum"):
        ds.read(1, 0, 10)
    with pytest.raises(ShardError, match="shard-00001.bin: sha256"):
        ds.verify_sha256(1)
    with pytest.raises(ShardError, match="shard-00001.bin: sha256"):
        export_dataset(TokenDataset.open(small_dataset, verify=False), small_dataset.parent / "x", "megatron")
    with pytest.raises(ShardError, match="shard-00001.bin"):
        TokenDataset.open(f"file://{small_dataset}").read(1, 0, len(data) // 2)
    assert TokenDataset.open(small_dataset, verify=False).read(1, 0, 10).shape == (10,)


def test_cut_short_shard_is_refused_on_open(small_dataset):
    shard = small_dataset / "shard-00002.bin"
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(ShardError, match="shard-00002.bin.*cut short"):
        TokenDataset.open(small_dataset)
    with pytest.raises(ShardError, match="shard-00002.bin.*cut short"):
        TokenDataset.open(f"file://{small_dataset}").read(2, 0, 4)


def test_corrupt_index_and_bad_meta_are_refused(small_dataset):
    idx = small_dataset / "shard-00000.idx.parquet"
    idx.write_bytes(idx.read_bytes()[:-3] + b"xyz")
    with pytest.raises(ShardError, match="shard-00000.idx.parquet"):
        TokenDataset.open(small_dataset).index(0)
    meta = json.loads((small_dataset / "dataset.json").read_text())
    del meta["shards"]
    (small_dataset / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ShardError, match="dataset.json: missing or malformed field 'shards'"):
        TokenDataset.open(small_dataset)
    (small_dataset / "dataset.json").write_text("{not json")
    with pytest.raises(ShardError, match="dataset.json"):
        TokenDataset.open(small_dataset)


def test_remote_reads_match_local_over_loopback_http(small_dataset, tmp_path):
    local = TokenDataset.open(small_dataset)
    with serve_directory(small_dataset.parent) as base:
        remote = TokenDataset.open(f"{base}/ds", cache_dir=str(tmp_path / "cache"))
        assert remote.is_remote and remote.num_tokens == local.num_tokens
        for mode in ("concat", "bestfit"):
            loc, rem = PackedSequences(local, 64, mode), PackedSequences(remote, 64, mode)
            assert len(loc) == len(rem) > 100
            for i in np.random.default_rng(0).integers(0, len(loc), 50).tolist():
                assert np.array_equal(loc[i], rem[i])
                assert loc.docs(i) == rem.docs(i)
        assert np.array_equal(remote.tokens(1), local.tokens(1))
        assert any((tmp_path / "cache").rglob("*.blk"))  # verified blocks cached on disk
        bounded = TokenDataset.open(f"{base}/ds", cache_dir=str(tmp_path / "small"), cache_bytes=70_000)
        for s in range(bounded.num_shards):
            assert np.array_equal(bounded.tokens(s), local.tokens(s))
        on_disk = sum(p.stat().st_size for p in (tmp_path / "small").rglob("*.blk"))
        assert 0 < on_disk <= 70_000


def test_object_store_style_url_reads_match_local(small_dataset):
    """fsspec's in-memory filesystem stands in for s3:// or gs:// (bucket paths, protocol stripped)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for f in small_dataset.iterdir():
        fs.pipe(f"/tm-bucket/ds/{f.name}", f.read_bytes())
    remote, local = TokenDataset.open("memory://tm-bucket/ds"), TokenDataset.open(small_dataset)
    a, b = PackedSequences(remote, 64, "bestfit"), PackedSequences(local, 64, "bestfit")
    assert len(a) == len(b)
    for i in range(0, len(a), 11):
        assert np.array_equal(a[i], b[i]) and a.docs(i) == b.docs(i)
    fs.rm("/tm-bucket", recursive=True)


def test_out_of_range_ids_are_refused_naming_the_document(tmp_path):
    pairs = [({"id": "ok", "url": None, "source": "s"}, [1, 2]), ({"id": "bad", "url": None, "source": "s"}, [70_000])]
    with pytest.raises(ValueError, match="document 'bad' has a token id outside \\[0, 1000\\)"):
        write_token_dataset(tmp_path / "ds", pairs, vocab_size=1000, eos_id=999)


def test_corrupt_remote_shards_are_refused_naming_the_url(small_dataset):
    short = small_dataset / "shard-00001.bin"
    short.write_bytes(short.read_bytes()[:-9])
    flipped = small_dataset / "shard-00002.bin"
    data = bytearray(flipped.read_bytes())
    data[100] ^= 1
    flipped.write_bytes(bytes(data))
    (small_dataset / "shard-00000.bin").unlink()
    with serve_directory(small_dataset.parent) as base:
        remote = TokenDataset.open(f"{base}/ds")  # opening reads dataset.json only
        assert remote.index(0).num_rows > 0  # indexes are intact
        with pytest.raises(ShardError, match=r"http://127.0.0.1:\d+/ds/shard-00001.bin: .*cut short"):
            remote.read(1, 0, 10)
        with pytest.raises(ShardError, match=r"/ds/shard-00002.bin: block 0 .*checksum"):
            remote.read(2, 0, 10)
        with pytest.raises(ShardError, match=r"/ds/shard-00000.bin: shard file missing"):
            remote.read(0, 0, 10)


def test_an_index_written_before_origin_columns_reads_them_as_nulls(tmp_path):
    """Datasets tokenized before warc_path/warc_offset joined the index still open, with null origins."""
    import pyarrow.parquet as pq

    from tokenmill.tokenize.format import INDEX_SCHEMA

    docs = [{"id": f"d{i}", "url": f"https://x.test/{i}", "source": "s", "ids": [5, 6, 7 + i]} for i in range(4)]
    write_token_dataset(tmp_path, ((d, d["ids"]) for d in docs), vocab_size=64, eos_id=0)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    idx = tmp_path / meta["shards"][0]["idx"]
    pq.write_table(pq.read_table(idx).drop_columns(["warc_path", "warc_offset"]), idx)
    for entry in meta["shards"]:
        entry.pop("idx_sha256", None)
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    table = TokenDataset.open(tmp_path).index(0)
    assert table.schema.names == INDEX_SCHEMA.names
    assert table.column("warc_path").null_count == table.num_rows == 4
    assert table.column("id").to_pylist() == ["d0", "d1", "d2", "d3"]
