"""Bytes fastwarc skips between records are counted: a record whose version line is mangled is one
ingest.corrupt_record row (fastwarc's quirks mode drops it without a word), blank lines between records are not."""

from __future__ import annotations

import gzip
import zlib
from collections import Counter

import pytest

from tokenmill.ingest.warc import iter_raw_docs
from tokenmill.ingest.warcwrite import gzip_member, warc_record

CORRUPT = "ingest.corrupt_record"


def record(i: int, version: bytes | None = b"WARC/1.1") -> bytes:
    """One WET conversion record; `version` replaces its first line (None: no version line at all)."""
    rec = warc_record([("WARC-Type", "conversion"), ("WARC-Record-ID", f"r{i}"),
                       ("WARC-Target-URI", f"https://ex.test/{i}")], f"page {i} text ".encode() * (3 + i))
    head, rest = rec.split(b"\r\n", 1)
    assert head == b"WARC/1.1"
    return rest if version is None else version + b"\r\n" + rest


def rows(tmp_path, data: bytes, name: str = "x.warc.wet") -> list[tuple[str | None, int | None, str | None]]:
    path = tmp_path / name
    path.write_bytes(data)
    return [(r.record_id, r.offset, r.drop_reason) for r in iter_raw_docs(str(path), "wet", 1 << 20)]


A, B, C = record(1), record(2), record(3)

MANGLED = {  # the middle record, broken as named: it is lost, and counted where its bytes start
    "WARX/1.0": record(2, b"WARX/1.0"),
    "WARC/1.O": record(2, b"WARC/1.O"),
    "lowercase": record(2, b"warc/1.1"),
    "version line with junk": record(2, b"WARC/1.1 junk"),
    "no version line": record(2, None),
    "garbage glued to the version line": b"xyz" + B,
}


@pytest.mark.parametrize("middle", MANGLED.values(), ids=MANGLED.keys())
def test_mangled_record_in_a_plain_file_is_one_counted_row(tmp_path, middle):
    assert rows(tmp_path, A + middle + C) == [("r1", 0, None), (None, len(A), CORRUPT), ("r3", len(A + middle), None)]


def test_mangled_first_and_last_records_are_counted(tmp_path):
    first = record(1, b"WARX/1.0")
    assert rows(tmp_path, first + B + C) == [(None, 0, CORRUPT), ("r2", len(first), None), ("r3", len(first + B), None)]
    assert rows(tmp_path, A + B + record(3, b"WARX/1.0")) == [("r1", 0, None), ("r2", len(A), None),
                                                               (None, len(A + B), CORRUPT)]


def test_garbage_lines_between_records_are_counted_once(tmp_path):
    junk = b"some garbage\r\nmore garbage\r\n"
    assert rows(tmp_path, A + junk + B + C) == [("r1", 0, None), (None, len(A), CORRUPT),
                                                 ("r2", len(A + junk), None), ("r3", len(A + junk + B), None)]


SPACING = {  # valid files seen in the wild: none of these loses anything
    "stray blank lines": A + b"\r\n\r\n\r\n" + B + b"\n\n" + C + b"\r\n \t\n",
    "many blank lines": A + b"\r\n" * 50 + B + C,
    "no trailer": A[:-4] + B[:-2] + C,
    "LF-only headers": A + B.replace(b"\r\n", b"\n") + C,
    "spaces around header values": A + B.replace(b": ", b":    ") + C,
}


@pytest.mark.parametrize("data", SPACING.values(), ids=SPACING.keys())
def test_blank_bytes_between_records_are_not_counted(tmp_path, data):
    assert [(rid, reason) for rid, _, reason in rows(tmp_path, data)] == [("r1", None), ("r2", None), ("r3", None)]


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_mangled_record_in_a_single_stream_is_one_counted_row(tmp_path, compress):
    """Single-stream gzip (or zstd): no offsets (a record cannot be fetched alone), but the same rows."""
    from fastwarc.stream_io import ZstdWriter

    def stream(data: bytes) -> bytes:
        if compress == "gzip":
            return gzip_member(data)
        path = tmp_path / "w.zst"
        w = ZstdWriter(str(path))
        w.write(data)
        w.close()
        return path.read_bytes()

    name = "x.warc.wet." + ("gz" if compress == "gzip" else "zst")
    for data, want in ((A + record(2, b"WARX/1.0") + C, [("r1", None), (None, CORRUPT), ("r3", None)]),
                       (A + B + record(3, None), [("r1", None), ("r2", None), (None, CORRUPT)]),
                       (b"junk\r\n" + A + B, [(None, CORRUPT), ("r1", None), ("r2", None)]),
                       (A + b"\r\n" * 9 + B + b"\n", [("r1", None), ("r2", None)])):
        got = rows(tmp_path, stream(data), name)
        assert [(rid, reason) for rid, _, reason in got] == want and {off for _, off, _ in got} == {None}


def members(parts: list[bytes]) -> tuple[bytes, list[int]]:
    """Multi-member gzip, one member per part, as Common Crawl writes: (file bytes, member offsets)."""
    gz = [gzip_member(p) for p in parts]
    return b"".join(gz), [sum(map(len, gz[:i])) for i in range(len(gz))]


def test_mangled_gzip_member_is_one_counted_row(tmp_path):
    """A complete member whose record fastwarc does not see (it yields nothing, and ends "cleanly")."""
    data, at = members([A, record(2, b"WARX/1.0"), C])
    assert rows(tmp_path, data, "x.warc.wet.gz") == [("r1", at[0], None), (None, at[1], CORRUPT), ("r3", at[2], None)]
    data, at = members([A, B, record(3, None)])
    assert rows(tmp_path, data, "x.warc.wet.gz") == [("r1", at[0], None), ("r2", at[1], None), (None, at[2], CORRUPT)]
    data, at = members([A, b"junk\r\n" + B, C])  # the record is read, the junk line before it counted
    assert rows(tmp_path, data, "x.warc.wet.gz") == [("r1", at[0], None), (None, at[1], CORRUPT), ("r2", at[1], None),
                                                     ("r3", at[2], None)]


def test_blank_and_empty_gzip_members_are_not_counted(tmp_path):
    data, at = members([A, b"\r\n", b"", B + b"\r\n\r\n"])
    assert rows(tmp_path, data, "x.warc.wet.gz") == [("r1", at[0], None), ("r2", at[3], None)]


@pytest.mark.parametrize("overstated", [b"9", b"99999"], ids=["short block", "too large to read"])
def test_a_length_past_the_end_resyncs_and_offsets_point_at_records(tmp_path, overstated):
    """A record whose Content-Length runs past the end of the file is one corrupt row; reading resumes at the
    next record, and the offsets there are still the records' own (they were counted twice from the resync
    point). Read or not (over max_record_bytes), the records it would swallow are read."""
    records = [record(i) for i in range(6)]
    records[2] = records[2].replace(b"Content-Length: ", b"Content-Length: " + overstated, 1)
    data = b"".join(records)
    got = rows(tmp_path, data)
    assert [reason for _, _, reason in got] == [None, None, CORRUPT, None, None, None]
    assert [data[off:off + 19] for _, off, _ in got] == [b"WARC/1.1\r\nWARC-Type"] * 6


def split_members(data: bytes) -> list[bytes]:
    out = []
    while data:
        d = zlib.decompressobj(31)
        out.append(d.decompress(data))
        data = d.unused_data
    return out


def test_real_crawl_with_one_mangled_response(shared_data, tmp_path):
    """Common Crawl's own file (16 responses), its 5th response's version line mangled: as a gzip member and
    uncompressed, 15 pages are read and the 16th is one corrupt row at that record's offset."""
    recs = split_members((shared_data / "commoncrawl/warc/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz").read_bytes())
    k = [i for i, r in enumerate(recs) if b"WARC-Type: response" in r[:200]][4]
    recs[k] = recs[k].replace(b"WARC/1.0\r\n", b"WARX/1.0\r\n", 1)
    gz = [gzip_member(r) for r in recs]
    for data, name, offset in ((b"".join(gz), "cc.warc.gz", sum(map(len, gz[:k]))),
                               (b"".join(recs), "cc.warc", sum(map(len, recs[:k])))):
        got = rows(tmp_path, data, name)
        assert [r for r in got if r[2] is not None] == [(None, offset, CORRUPT)], name
        assert sum(r[2] is None and r[0] is not None for r in got) == 15, name


def inflate_what_inflates(data: bytes) -> bytes:
    """Every gzip member's bytes, up to where a clipped or corrupt one stops."""
    out, d = [], zlib.decompressobj(31)
    try:
        while data:
            out.append(d.decompress(data))
            data = d.unused_data
            if not d.eof:
                break
            d = zlib.decompressobj(31)
    except zlib.error:
        pass
    return b"".join(out)


def test_real_files_uncompressed_show_no_gap_their_gzip_does_not(shared_data, tmp_path):
    """No false gaps on real crawls (LF-only ClueWeb09 headers, WARC/0.18, wget, the broken CC fragments):
    uncompressed, every file reads to the same drop reasons as its gzip (members or a single stream)."""
    files = sorted(f for d in ("commoncrawl", "other_crawls") for f in (shared_data / d).glob("**/*.w*.gz")
                   if ".paths." not in f.name)
    assert len(files) == 22  # 10 multi-member, 12 single-stream (SOURCES.md)
    for path in files:
        fmt = "wat" if ".wat" in path.name else "wet"
        plain = tmp_path / path.name.removesuffix(".gz")
        plain.write_bytes(inflate_what_inflates(path.read_bytes()))
        reasons = [Counter(r.drop_reason for r in iter_raw_docs(str(p), fmt, 5_000_000)) for p in (path, plain)]
        assert reasons[0] == reasons[1], path.name


def test_clipped_zstd_keeps_every_record_fastwarc_reads_itself(small_crawl, tmp_path):
    """Read through a Window, a clipped single-stream file still gives every whole record before the break:
    what a decompressor holds at the break is lost (read in 64 KB pieces, 6 of 61 pages were, here)."""
    from fastwarc.stream_io import ZstdWriter
    from fastwarc.warc import ArchiveIterator

    data = gzip.decompress((small_crawl / "crawl-00000.warc.gz").read_bytes())
    full = tmp_path / "full.warc.zst"
    w = ZstdWriter(str(full))
    for i in range(0, len(data), 1 << 16):
        w.write(data[i:i + (1 << 16)])
    w.close()
    clipped = tmp_path / "clipped.warc.zst"
    clipped.write_bytes(full.read_bytes()[: full.stat().st_size * 65 // 100])
    native = 0
    with open(clipped, "rb") as f:
        try:
            for rec in ArchiveIterator(f, parse_http=False, quirks_mode=True):
                whole = "Content-Length" in rec.headers and len(rec.reader.read()) == rec.content_length
                native += whole and rec.headers.get("WARC-Type") == "response"
        except OSError:  # fastwarc's own decompressor, at the break
            pass
    got = [r.drop_reason for r in iter_raw_docs(str(clipped), "warc", 1 << 22)]
    assert got[-1] == "ingest.truncated_file" and len(got) - 1 == native > 50


@pytest.mark.parametrize("filler,reason", [(b"\x00" * 300_000 + b"\r\n", [CORRUPT]), (b"\r\n" * 150_000, [])],
                         ids=["zeroed block", "blank run"])
def test_a_long_gap_is_judged_without_holding_it(tmp_path, monkeypatch, filler, reason):
    """A Window lets go of a long gap past WINDOW_MAX (a zeroed disk block, here 300 KB over a 64 KB cap) and
    remembers only whether it held anything: it never holds more than WINDOW_MAX."""
    import tokenmill.ingest.warcgaps as warcgaps

    monkeypatch.setattr(warcgaps, "WINDOW_MAX", 1 << 16)
    monkeypatch.setattr(warcgaps, "WINDOW_TAIL", 1 << 15)
    held, read = [], warcgaps.Window.read

    def read_and_note(self, n=-1):
        chunk = read(self, n)
        held.append(len(self.buf))
        return chunk

    monkeypatch.setattr(warcgaps.Window, "read", read_and_note)
    got = rows(tmp_path, A + filler + B + C)
    assert [reason for _, _, reason in got] == [None, *reason, None, None]
    assert got[1][1] == (len(A) if reason else len(A + filler))
    assert len(held) > 10 and max(held) <= 1 << 16  # the filler alone is 300 KB


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
def test_a_too_large_record_past_the_end_of_a_stream_is_a_truncated_file(tmp_path, compress, past):
    """A single stream's size is not known, so fastwarc skips the unread record to the end: the records it
    swallowed are one ingest.truncated_file row (the file ends inside that record), not nothing."""
    from fastwarc.stream_io import ZstdWriter

    data = A + with_length(B, len(B + C) + past) + C
    path = tmp_path / ("x.warc.wet." + ("gz" if compress == "gzip" else "zst"))
    if compress == "gzip":
        path.write_bytes(gzip_member(data))
    else:
        w = ZstdWriter(str(path))
        w.write(data)
        w.close()
    got = [(r.record_id, r.drop_reason) for r in iter_raw_docs(str(path), "wet", 100)]
    assert got == [("r1", None), ("r2", "ingest.too_large"), (None, "ingest.truncated_file")]


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
    reading resumes after it. Single stream: nothing can be read after it, but the row says what happened."""
    from tokenmill.ingest.warcgaps import MAX_HEADER_LEN

    long = long_header(MAX_HEADER_LEN + 1000)
    assert rows(tmp_path, A + long + B + C) == [("r1", 0, None), (None, len(A), CORRUPT), ("r2", len(A + long), None),
                                                 ("r3", len(A + long + B), None)]
    assert rows(tmp_path, gzip_member(A + long + B + C), "x.warc.wet.gz") == [("r1", None, None), (None, None, CORRUPT)]


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
