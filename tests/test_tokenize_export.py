"""Exports read back by datatrove's own reader and by an independent Megatron MMIDIDX reader written from the spec."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tokenmill.cli import main
from tokenmill.tokenize.export import export_dataset
from tokenmill.tokenize.shards import TokenDataset, write_token_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(5)
    pairs = [({"id": f"d{i}", "url": f"u{i}", "source": "cc/x"}, rng.integers(0, 5000, int(rng.integers(1, 300))))
             for i in range(300)]
    out = write_token_dataset(tmp_path_factory.mktemp("exp") / "ds", pairs, vocab_size=5001, eos_id=5000,
                              max_shard_tokens=20_000)
    return TokenDataset.open(out)


def test_datatrove_reader_reads_the_export(dataset, tmp_path):
    from datatrove.utils.dataset import DatatroveFileDataset

    export_dataset(dataset, tmp_path, "datatrove")
    seq_len = 31
    for s in range(dataset.num_shards):
        path = tmp_path / f"cc_x_{s:05d}.ds"
        dt = DatatroveFileDataset(str(path), seq_len, token_size=2, return_positions=True)
        tokens = dataset.tokens(s)
        idx = dataset.index(s)
        doc_start = np.repeat(idx.column("token_start").to_numpy(), idx.column("token_count").to_numpy())
        assert len(dt) == len(tokens) // (seq_len + 1) > 0
        for i in [0, 1, len(dt) // 2, len(dt) - 1]:
            item = dt[i]
            window = slice(i * (seq_len + 1), (i + 1) * (seq_len + 1))
            assert np.array_equal(item["input_ids"].numpy(), tokens[window].astype(np.int64))
            # datatrove's positions (from our .ds.index) restart at every document start and at the window's
            want = np.arange(window.start, window.stop) - np.maximum(doc_start[window], window.start)
            assert np.array_equal(item["positions"].numpy()[:seq_len], want[:seq_len])
    meta = (tmp_path / "cc_x_00000.ds.metadata").read_text().splitlines()
    assert meta[0].endswith("|2") and int(meta[1]) == dataset.shard_tokens[0]


def read_mmidx(prefix):
    """Megatron's MMIDIDX index, parsed from the format description (not from tokenmill's writer)."""
    raw = open(f"{prefix}.idx", "rb").read()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, = struct.unpack_from("<Q", raw, 9)
    code, = struct.unpack_from("<B", raw, 17)
    n_seq, n_doc = struct.unpack_from("<QQ", raw, 18)
    off = 34
    lengths = np.frombuffer(raw, "<i4", n_seq, off)
    off += 4 * n_seq
    pointers = np.frombuffer(raw, "<i8", n_seq, off)
    off += 8 * n_seq
    docs = np.frombuffer(raw, "<i8", n_doc, off)
    assert off + 8 * n_doc == len(raw)
    dtype = {8: np.uint16, 4: np.int32}[code]
    data = np.memmap(f"{prefix}.bin", dtype=dtype, mode="r")
    return version, lengths, pointers, docs, data


def test_megatron_export_reads_back_document_by_document(dataset, tmp_path):
    assert main(["export", str(dataset.root), "--format", "megatron", "--out", str(tmp_path)]) == 0
    version, lengths, pointers, docs, data = read_mmidx(tmp_path / "cc_x")
    assert version == 1 and len(lengths) == dataset.num_docs and docs.tolist() == list(range(dataset.num_docs + 1))
    k = 0
    for s in range(dataset.num_shards):
        tokens = dataset.tokens(s)
        for row in dataset.index(s).to_pylist():
            got = data[pointers[k] // 2: pointers[k] // 2 + lengths[k]]
            assert np.array_equal(got, tokens[row["token_start"]: row["token_start"] + row["token_count"]])
            assert got[-1] == dataset.eos_id
            k += 1
    assert k == len(lengths)
