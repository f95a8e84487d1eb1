"""Shard listing (paths, globs, manifests, URLs), documents at rest (Parquet, JSONL), the extraction time cap,
and the generated crawl read back against its ground truth."""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenmill.config import ConfigError, InputSpec
from tokenmill.ingest import list_shards, read_documents
from tokenmill.ingest.pages import Page
from tokenmill.ingest.warcwrite import WarcFileWriter
from tokenmill.schema import DOC_SCHEMA


def read_all(spec: InputSpec, batch_size: int = 1000) -> list[dict]:
    rows = []
    for path in list_shards(spec):
        for table in read_documents(spec, path, batch_size):
            assert table.schema == DOC_SCHEMA and table.num_rows <= batch_size
            rows += table.to_pylist()
    return rows


def test_globs_urls_dedup_and_limit(small_crawl):
    files = sorted(str(p) for p in small_crawl.glob("crawl-*.warc.gz"))
    spec = InputSpec(paths=[f"{small_crawl}/crawl-*.warc.gz", files[1], files[1]])
    assert list_shards(spec) == files
    assert list_shards(InputSpec(paths=[f"{small_crawl}/crawl-*.warc.gz"], limit_files=2)) == files[:2]
    assert list_shards(InputSpec(paths=[f"file://{small_crawl}/crawl-0000[02].warc.gz"])) == [
        f"file://{files[0]}", f"file://{files[2]}"]


@pytest.mark.parametrize("bad", ["/nonexistent/x.warc.gz", "/nonexistent/*.warc.gz", "/nonexistent/x.paths.gz"])
def test_missing_input_is_a_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match=bad.replace("*", r"\*").replace(".", r"\.")):
        list_shards(InputSpec(paths=[bad]))


def test_paths_manifest_with_prefix(tmp_path, small_crawl, shared_data):
    manifest = tmp_path / "crawl.warc.paths.gz"
    manifest.write_bytes(gzip.compress(b"crawl-00001.warc.gz\ncrawl-00000.warc.gz\n\n"))
    spec = InputSpec(paths=[str(manifest)], prefix=f"{small_crawl}/")
    shards = list_shards(spec)
    assert shards == [f"{small_crawl}/crawl-00000.warc.gz", f"{small_crawl}/crawl-00001.warc.gz"]
    assert len(read_all(spec)) == 200
    real = shared_data / "commoncrawl/whirlwind_CC-MAIN-2024-22/CC-MAIN-2024-22.warc.paths.gz"
    prefix = "s3://commoncrawl/cc-index/table/cc-main/warc/crawl=CC-MAIN-2024-22/subset=warc/"
    listed = list_shards(InputSpec(paths=[str(real)], prefix=prefix))
    assert len(listed) == 300 and all(p.startswith(prefix) and p.endswith(".gz.parquet") for p in listed)


def test_generated_crawl_reads_back_to_its_ground_truth(small_crawl):
    truth = {json.loads(x)["url"]: json.loads(x) for x in (small_crawl / "ground_truth.jsonl").read_text().splitlines()}
    rows = read_all(InputSpec(paths=[f"{small_crawl}/*.warc.gz"], source="cc/DEMO-2026"), batch_size=64)
    assert len(rows) == len(truth) == 300
    expected = {"not_html": "ingest.not_html", "http_error": "ingest.http_error",
                "boilerplate_only": "ingest.empty_text"}
    by_url = {r["url"]: r for r in rows}
    for url, t in truth.items():
        r = by_url[url]
        assert r["warc_record_id"] == t["warc_record_id"] and r["warc_offset"] == t["warc_offset"]
        assert r["drop_reason"] == expected.get(t["kind"]), t
    for t in truth.values():  # same article through different sites, charsets and declarations: same text
        if t["kind"] == "exact_dup":
            assert by_url[t["url"]]["text"] == by_url[t["of_url"]]["text"]
    for t in truth.values():
        if t["kind"] == "inline_spam":
            assert t["char"] * t["run_length"] in by_url[t["url"]]["text"]
    ja = [by_url[u]["text"] for u, t in truth.items() if t["language"] == "ja" and t["kind"] == "clean"]
    assert ja and all("の" in x for x in ja)
    assert "\ufffd" not in "".join(r["text"] for r in rows)


def write_warc(path, pages: list[bytes]) -> None:
    with WarcFileWriter(str(path), 0, 0, "test", path.name) as w:
        for i, body in enumerate(pages):
            w.write_page(i, Page(f"https://ex.test/{i}", "ex.test", f"/{i}", 200, "text/html; charset=utf-8", body,
                                 "utf-8", "header", "2026-03-01T00:00:00Z"))


def test_pathological_page_hits_the_time_cap_and_the_rest_go_on(tmp_path):
    """50,000 nested <div>s: resiliparse's main-content pass takes ~60 s on it (quadratic in depth)."""
    normal = b"<html><body><article><h1>Title</h1><p>" + b"Plain words in a paragraph. " * 40 + b"</p></article>"
    deep = b"<html><body>" + b"<div>" * 50_000 + b"x" + b"</div>" * 50_000 + b"</body></html>"
    path = tmp_path / "patho.warc.gz"
    write_warc(path, [normal, deep, normal + b"<p>again</p>", b"<html></html>"])
    spec = InputSpec(paths=[str(path)], extract_timeout_s=1.0)
    t0 = time.perf_counter()
    rows = read_all(spec, batch_size=10)
    assert time.perf_counter() - t0 < 20
    assert [r["drop_reason"] for r in rows] == [None, "ingest.extract_timeout", None, "ingest.empty_text"]
    assert "Plain words" in rows[2]["text"]


def test_a_killed_extraction_child_loses_no_page():
    import os
    import signal

    from tokenmill.ingest.extract import ExtractOptions, Extractor

    pages = [(b"<html><body><p>page %d has some words</p></body></html>" % i, "utf-8") for i in range(300)]
    with Extractor(ExtractOptions(main_content=False), timeout_s=5.0) as ex:
        ex.submit(pages)
        os.kill(ex.proc.pid, signal.SIGKILL)
        out = ex.collect()
        assert ex.restarts == 1
    reasons = Counter(r for _, r in out)
    assert reasons[None] >= 299 and set(reasons) <= {None, "ingest.extract_error"}
    assert all(f"page {i} has" in t for i, (t, r) in enumerate(out) if r is None)


def test_size_and_length_caps(tmp_path):
    page = b"<html><body><p>" + b"long text here " * 1000 + b"</p></body></html>"
    path = tmp_path / "caps.warc.gz"
    write_warc(path, [page, page[:200] + b"</p></body></html>"])
    rows = read_all(InputSpec(paths=[str(path)], max_record_bytes=5000))
    assert [r["drop_reason"] for r in rows] == ["ingest.too_large", None]
    rows = read_all(InputSpec(paths=[str(path)], max_text_chars=1000, main_content=False))
    assert [r["drop_reason"] for r in rows] == ["ingest.text_too_long", None]


def test_parquet_documents(tmp_path):
    path = tmp_path / "docs.parquet"
    texts = [f"document number {i} " * 3 for i in range(25)]
    pq.write_table(pa.table({"text": texts, "url": [f"u{i}" for i in range(25)], "extra": list(range(25))}), path)
    rows = read_all(InputSpec(paths=[str(path)], source="web/x"), batch_size=10)
    assert [r["text"] for r in rows] == texts and rows[3]["url"] == "u3" and rows[3]["warc_offset"] == 3
    assert rows[0]["source"] == "web/x" and len({r["id"] for r in rows}) == 25
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="bad.parquet.*text"):
        read_all(InputSpec(paths=[str(tmp_path / "bad.parquet")]))


def test_jsonl_documents_with_bad_lines(tmp_path):
    lines = [json.dumps({"id": 7, "text": "seven", "url": "https://a"}), "{not json", json.dumps({"text": "no id"}),
             json.dumps({"title": "no text"}), json.dumps(["a list"])]
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    rows = read_all(InputSpec(paths=[str(path)], source="s"), batch_size=2)
    assert Counter(r["drop_reason"] for r in rows) == {None: 2, "ingest.corrupt_record": 3}
    kept = [r for r in rows if r["drop_reason"] is None]
    assert [r["text"] for r in kept] == ["seven", "no id"] and kept[0]["url"] == "https://a"
    assert kept[0]["warc_offset"] == 0 and kept[1]["warc_offset"] == len(lines[0]) + len(lines[1]) + 2


def test_jsonl_lone_surrogate_is_a_counted_corrupt_record(tmp_path):
    """`"\\ud800"` is valid JSON but not UTF-8: that line is dropped and counted, the file goes on."""
    lines = [json.dumps({"text": "fine"}), '{"text": "cut emoji \\ud83d"}', '{"text": "ok", "url": "\\udfff"}',
             json.dumps({"text": "also fine"})]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = read_all(InputSpec(paths=[str(path)], source="s"))
    assert Counter(r["drop_reason"] for r in rows) == {None: 2, "ingest.corrupt_record": 2}
    assert sorted(r["text"] for r in rows if r["drop_reason"] is None) == ["also fine", "fine"]


def test_copies_of_a_text_are_distinct_documents(tmp_path):
    """Without an id (or with a null one) the id comes from the row's place in the file, not from its text:
    two copies are two documents, and dedup sees two ids. A given id is still what the id is derived from."""
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps(d) + "\n" for d in
                             [{"text": "copy"}, {"text": "copy"}, {"text": "copy", "id": None}, {"text": "x", "id": 7}]))
    pq.write_table(pa.table({"text": ["copy", "copy"], "id": [None, None]}), tmp_path / "docs.parquet")
    for name, n in (("docs.jsonl", 4), ("docs.parquet", 2)):
        rows = read_all(InputSpec(paths=[str(tmp_path / name)], source="s"), batch_size=1)
        assert len({r["id"] for r in rows}) == n, name
    again = read_all(InputSpec(paths=[str(jsonl)], source="s"))
    assert [r["id"] for r in again] == [r["id"] for r in read_all(InputSpec(paths=[str(jsonl)], source="s"))]
    (tmp_path / "moved.jsonl").write_text('{"text": "other", "id": 7}\n')
    assert read_all(InputSpec(paths=[str(tmp_path / "moved.jsonl")], source="s"))[0]["id"] == again[3]["id"]


def test_documents_at_rest_get_the_same_text_limits(tmp_path):
    path = tmp_path / "limits.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["ok text", "   \n ", "x" * 50]) + "\n")
    rows = read_all(InputSpec(paths=[str(path)], max_text_chars=20))
    assert [r["drop_reason"] for r in rows] == [None, "ingest.empty_text", "ingest.text_too_long"]
    assert [r["text"] for r in rows] == ["ok text", "", ""]


def test_real_jsonl_documents(shared_data):
    for name in ("dolma_cc_en_head-0091.jsonl.gz", "dolma_provided_documents_000.json.gz"):
        rows = read_all(InputSpec(paths=[str(shared_data / "commoncrawl/text" / name)]))
        assert len(rows) == 10 and all(r["drop_reason"] is None and r["text"] for r in rows)


def test_a_reader_stopped_early_leaves_the_next_one_working(small_crawl):
    spec = InputSpec(paths=[f"{small_crawl}/*.warc.gz"])
    first = list_shards(spec)[0]
    reader = read_documents(spec, first, 10)
    assert next(reader).num_rows == 10
    reader.close()  # a consumer that stops after one table, with the next batch in flight
    rows = [r for t in read_documents(spec, first, 30) for r in t.to_pylist()]
    assert len(rows) == 100 and sum(r["drop_reason"] is None for r in rows) >= 90


@pytest.mark.parametrize("body,declared,expected", [
    ("<p>Grüße aus München</p>".encode("cp1252"), None, "<p>Grüße aus München</p>"),  # detected
    ("<p>Grüße aus München</p>".encode(), "iso-8859-1", "<p>Grüße aus München</p>"),  # valid UTF-8 wins
    ("<p>日本語のテキストです。</p>".encode("shift_jis"), "shift_jis", "<p>日本語のテキストです。</p>"),
    ("<p>日本語のテキストです。</p>".encode("euc-jp"), None, "<p>日本語のテキストです。</p>"),
    ("\ufeff<p>bom</p>".encode(), None, "<p>bom</p>"),
])
def test_charset_decoding(body, declared, expected):
    from tokenmill.ingest.extract import decode_html

    assert decode_html(body, declared) == expected


def test_binary_garbage_served_as_html_is_a_bad_charset():
    import random

    from tokenmill.ingest.extract import ExtractOptions, extract_one

    garbage = random.Random(0).randbytes(5000)
    assert extract_one(garbage, "utf-8", ExtractOptions()) == ("", "ingest.bad_charset")


def test_wat_response_metadata_is_accounted_not_kept(tmp_path):
    """WAT holds no page text: each response's metadata record is one row dropped as ingest.wat_no_text."""
    from tokenmill.ingest.warcwrite import gzip_member, warc_record

    def meta(rtype: str, rid: str) -> bytes:
        env = {"Envelope": {"WARC-Header-Metadata": {"WARC-Type": rtype, "WARC-Record-ID": rid,
                                                     "WARC-Target-URI": "https://ex.test/", "WARC-Date": "2024"}}}
        return gzip_member(warc_record([("WARC-Type", "metadata"), ("WARC-Record-ID", f"<urn:uuid:m-{rid}>"),
                                        ("Content-Type", "application/json")], json.dumps(env).encode()))

    path = tmp_path / "x.warc.wat.gz"
    path.write_bytes(meta("request", "a") + meta("response", "b") + meta("metadata", "c") + b"{not a warc")
    rows = read_all(InputSpec(paths=[str(path)]))
    assert [(r["warc_record_id"], r["drop_reason"]) for r in rows] == [
        ("b", "ingest.wat_no_text"), (None, "ingest.corrupt_record")]  # the garbage after the last member


def test_clipped_and_corrupted_gzip_never_crash_and_are_counted(small_crawl, tmp_path):
    """Clip the file anywhere: good records, then one truncated_file row. Corrupt a gzip member in the middle:
    a corrupt_record row, and reading resumes at the next member."""
    import random

    data = (small_crawl / "crawl-00000.warc.gz").read_bytes()
    full = read_all(InputSpec(paths=[str(small_crawl / "crawl-00000.warc.gz")]))
    rng = random.Random(0)
    for k in range(6):
        path = tmp_path / f"clip{k}.warc.gz"
        path.write_bytes(data[: rng.randrange(1000, len(data) - 10)])
        rows = read_all(InputSpec(paths=[str(path)]))
        assert rows[-1]["drop_reason"] == "ingest.truncated_file"
        assert [r["id"] for r in rows[:-1]] == [r["id"] for r in full[: len(rows) - 1]]
    mid = full[50]["warc_offset"]  # a response member in the middle: flip a byte inside its deflate data
    broken = bytearray(data)
    broken[mid + 40] ^= 0xFF
    path = tmp_path / "flip.warc.gz"
    path.write_bytes(bytes(broken))
    rows = read_all(InputSpec(paths=[str(path)]))
    reasons = Counter(r["drop_reason"] for r in rows)
    assert reasons["ingest.corrupt_record"] >= 1 and "ingest.truncated_file" not in reasons
    assert {r["id"] for r in full[60:]} <= {r["id"] for r in rows}  # everything after the break is read


def test_uncompressed_file_resyncs_after_a_broken_record(small_crawl, tmp_path):
    plain = gzip.decompress((small_crawl / "crawl-00000.warc.gz").read_bytes())
    at = [i for i in range(len(plain)) if plain.startswith(b"WARC/1.1\r\nWARC-Type: response", i)][50]
    broken = plain[:at] + plain[at:].replace(b"Content-Length: ", b"Content-Length: 99", 1)  # overstated length
    path = tmp_path / "broken.warc"
    path.write_bytes(broken)
    rows = read_all(InputSpec(paths=[str(path)]))
    assert Counter(r["drop_reason"] for r in rows)["ingest.corrupt_record"] == 1 and len(rows) == 100
    assert rows[-1]["drop_reason"] != "ingest.truncated_file"


def test_clipped_jsonl_gz_and_unreadable_parquet(tmp_path):
    lines = "".join(json.dumps({"text": f"document {i} " * 20}) + "\n" for i in range(200)).encode()
    gz = gzip.compress(lines)
    path = tmp_path / "clipped.jsonl.gz"
    path.write_bytes(gz[: len(gz) // 2])
    rows = read_all(InputSpec(paths=[str(path)]), batch_size=50)
    assert rows[-1]["drop_reason"] == "ingest.truncated_file" and 0 < len(rows) - 1 < 200
    assert all(r["drop_reason"] is None for r in rows[:-1])
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="bad.parquet: not a readable Parquet file"):
        read_all(InputSpec(paths=[str(bad)]))
