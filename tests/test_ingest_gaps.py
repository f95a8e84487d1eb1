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
