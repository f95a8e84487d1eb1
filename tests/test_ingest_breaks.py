"""Records that break the reader, each one counted row at its own offset, and the records after it read: a
too-large record whose length runs past the end, a header over the limit or missing its type or length, files
that cannot seek (HTTP with no length); and rows without a record id that share an offset get distinct ids."""

from __future__ import annotations

import pytest
from test_ingest_gaps import CORRUPT, A, B, C, members, rows

from tokenmill.ingest.warc import iter_raw_docs
from tokenmill.ingest.warcwrite import gzip_member, warc_record


def with_length(rec: bytes, n: int) -> bytes:
    head, rest = rec.split(b"Content-Length: ", 1)
    return head + b"Content-Length: %d" % n + rest[rest.index(b"\r\n"):]


def test_a_too_large_record_ending_just_past_the_end_is_caught(tmp_path):
    """Its stated end is past the end of the file by less than its header's length (stream_pos + Content-Length
    is inside the file): unread, fastwarc would skip to the end and C would vanish without a row."""
    size = len(A + B + C)
    b = with_length(B, size - len(A) - 10)
    path = tmp_path / "x.warc.wet"
    path.write_bytes(A + b + C)
    got = [(r.record_id, r.offset, r.drop_reason) for r in iter_raw_docs(str(path), "wet", 100)]  # B only
    assert got == [("r1", 0, None), (None, len(A), CORRUPT), ("r3", len(A + b), None)]


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
@pytest.mark.parametrize("past", [10, 10_000])
def test_a_too_large_record_past_the_end_of_a_stream_is_read_past(tmp_path, compress, past):
    """A single stream's size is not known, so fastwarc skips the unread record to the end, and the records
    it swallowed vanished: the stream is read again up to the next record. With none, the file ends inside it:
    one ingest.truncated_file row."""
    from fastwarc.stream_io import ZstdWriter

    def read(data: bytes) -> list[tuple[str | None, str | None]]:
        path = tmp_path / ("x.warc.wet." + ("gz" if compress == "gzip" else "zst"))
        if compress == "gzip":
            path.write_bytes(gzip_member(data))
        else:
            w = ZstdWriter(str(path))
            w.write(data)
            w.close()
        return [(r.record_id, r.drop_reason) for r in iter_raw_docs(str(path), "wet", 100)]

    too_large = ("r2", "ingest.too_large")
    assert read(A + with_length(B, len(B + C) + past) + C) == [("r1", None), too_large, ("r3", None)]
    assert read(A + with_length(B, len(B) + past)) == [("r1", None), too_large, (None, "ingest.truncated_file")]


def long_header(url_chars: int) -> bytes:
    return warc_record([("WARC-Type", "conversion"), ("WARC-Record-ID", "rlong"),
                        ("WARC-Target-URI", "https://ex.test/" + "u" * url_chars)], b"long header page")


@pytest.mark.parametrize("name", ["x.warc.wet", "x.warc.wet.gz"])
def test_a_40kb_header_is_read(tmp_path, name):
    """fastwarc's default max_header_len (32 KB) refused it; ours is MAX_HEADER_LEN."""
    data = A + long_header(40_000) + B + C
    got = rows(tmp_path, gzip_member(data) if name.endswith(".gz") else data, name)
    assert [(rid, reason) for rid, _, reason in got] == [("r1", None), ("rlong", None), ("r2", None), ("r3", None)]


def test_a_header_over_the_limit_is_one_row_at_its_offset(tmp_path):
    """Plain: the row is at the refused record (it was at the one before, and the record counted twice), and
    reading resumes after it. In a single stream too (decompressed again up to the next record)."""
    from tokenmill.ingest.warcgaps import MAX_HEADER_LEN

    long = long_header(MAX_HEADER_LEN + 1000)
    assert rows(tmp_path, A + long + B + C) == [("r1", 0, None), (None, len(A), CORRUPT), ("r2", len(A + long), None),
                                                 ("r3", len(A + long + B), None)]
    assert rows(tmp_path, gzip_member(A + long + B + C), "x.warc.wet.gz") == [("r1", None, None), (None, None, CORRUPT),
                                                                            ("r2", None, None), ("r3", None, None)]


class StreamingFile:
    """A file that cannot seek, as fsspec's HTTPStreamFile (a server that sends no Content-Length): seeking to
    where it is is a no-op, anything else a ValueError."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "rb")

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, loc: int, whence: int = 0) -> int:
        if (loc, whence) == (0, 1) or (loc == self.f.tell() and whence == 0):
            return self.f.tell()
        raise ValueError("Cannot seek streaming HTTP file")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


@pytest.mark.parametrize("name", ["x.warc.wet", "x.warc.wet.gz", "x.warc.wet.zst"])
def test_a_file_that_cannot_seek_is_read(tmp_path, monkeypatch, name):
    """Remote files served without a length are read front to back: same rows, and a plain one still resyncs
    after a broken record (reading up to it again)."""
    from fastwarc.stream_io import ZstdWriter

    import tokenmill.ingest.warc as warc

    monkeypatch.setattr(warc, "_open", StreamingFile)
    data = A + with_length(B, 9_999) + C + A
    path = tmp_path / name
    if name.endswith(".zst"):
        w = ZstdWriter(str(path))
        w.write(data)
        w.close()
    else:
        path.write_bytes(gzip_member(data) if name.endswith(".gz") else data)
    got = [(r.record_id, r.drop_reason) for r in iter_raw_docs(str(path), "wet", 1 << 20)]
    assert got == ([("r1", None), (None, CORRUPT), ("r3", None), ("r1", None)] if name == "x.warc.wet" else
                   [("r1", None), (None, "ingest.truncated_file")])


def test_gap_rows_that_share_an_offset_get_distinct_ids(tmp_path):
    """Rows without a record id hash (path, offset, reason); a second such row adds its ordinal in the file.
    Here: two gap rows in a single stream (offset null), and a gap and a short record in one gzip member.
    Read in batches of 2, across which the ordinal still counts; records keep their ids."""
    import xxhash

    from tokenmill.config import InputSpec
    from tokenmill.ingest import read_documents

    junk = b"junk\r\n"
    stream = tmp_path / "stream.warc.wet.gz"
    stream.write_bytes(gzip_member(A + junk + B + junk + C))
    data, at = members([A, junk + B[:-30], C])
    member = tmp_path / "members.warc.wet.gz"
    member.write_bytes(data)
    for path, reasons, offsets in ((stream, [None, CORRUPT, None, CORRUPT, None], [None] * 5),
                                   (member, [None, CORRUPT, CORRUPT, None], [at[0], at[1], at[1], at[2]])):
        spec = InputSpec(paths=[str(path)], min_text_chars=0)
        got = [r for t in read_documents(spec, str(path), 2) for r in t.to_pylist()]
        assert [(r["drop_reason"], r["warc_offset"]) for r in got] == list(zip(reasons, offsets, strict=True))
        assert len({r["id"] for r in got}) == len(got)
        assert all(r["id"] == xxhash.xxh3_128_hexdigest(f"cc\x00{r['warc_record_id']}".encode())
                   for r in got if r["warc_record_id"])


def test_a_corrupt_member_in_a_file_that_cannot_seek_is_passed(tmp_path, monkeypatch):
    """Multi-member gzip served without a length: the next member is found reading front to back."""
    import tokenmill.ingest.warc as warc

    monkeypatch.setattr(warc, "_open", StreamingFile)
    data, at = members([A, B, C])
    broken = bytearray(data)
    broken[at[1] + 20] ^= 0xFF
    assert rows(tmp_path, bytes(broken), "x.warc.wet.gz") == [("r1", 0, None), (None, at[1], CORRUPT),
                                                               ("r3", at[2], None)]


@pytest.mark.parametrize("field", [b"WARC-Type: conversion\r\n", b"Content-Length: 60\r\n"], ids=["type", "length"])
@pytest.mark.parametrize("name", ["x.warc.wet", "x.warc.wet.gz"])
def test_a_whole_header_missing_its_type_or_length_is_one_row(tmp_path, field, name):
    """Not a header cut short (its blank line is there): one corrupt row, and the records after it are read,
    in a single stream too (they were lost under an ingest.truncated_file row)."""
    assert field in B
    b = B.replace(field, b"")
    data = A + b + C
    got = rows(tmp_path, gzip_member(data) if name.endswith(".gz") else data, name)
    plain = name == "x.warc.wet"
    assert got == [("r1", 0 if plain else None, None), ("r2", len(A) if plain else None, CORRUPT),
                   ("r3", len(A + b) if plain else None, None)]
