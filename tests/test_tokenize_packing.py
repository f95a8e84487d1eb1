"""Packing: best-fit splits only documents longer than a sequence and truncates less than concatenation;
every sequence maps back to its documents."""

from __future__ import annotations

import numpy as np
import pytest
from test_tokenize_shards import NEOX, varied_docs

from tokenmill.tokenize.packing import PackedSequences, best_fit_decreasing
from tokenmill.tokenize.shards import TokenDataset, write_token_dataset

SEQ_LEN = 2048


@pytest.fixture(scope="module")
def crawl_dataset(shared_data, tmp_path_factory):
    out = write_token_dataset(tmp_path_factory.mktemp("crawl") / "ds", varied_docs(600, seed=7),
                              shared_data / NEOX, max_shard_tokens=150_000)
    return TokenDataset.open(out)


def _doc_table(ds: TokenDataset):
    """(shard, start, count) of every document."""
    shard = np.concatenate([np.full(ds.index(s).num_rows, s) for s in range(ds.num_shards)])
    start = np.concatenate([ds.index(s).column("token_start").to_numpy() for s in range(ds.num_shards)])
    count = np.concatenate([ds.index(s).column("token_count").to_numpy() for s in range(ds.num_shards)])
    return shard, start, count


def test_bestfit_splits_only_long_documents_and_truncates_less(crawl_dataset):
    ds = crawl_dataset
    concat = PackedSequences(ds, SEQ_LEN, "concat")
    best = PackedSequences(ds, SEQ_LEN, "bestfit")
    print(f"\nseq_len {SEQ_LEN}, {ds.num_docs} docs, {ds.num_tokens} tokens: "
          f"concat truncation {concat.truncation_rate:.3f} waste {concat.waste_rate:.4f}; "
          f"bestfit truncation {best.truncation_rate:.3f} waste {best.waste_rate:.4f}")
    assert best.truncation_rate < concat.truncation_rate
    shard, start, count = _doc_table(ds)
    L = SEQ_LEN + 1
    assert best.truncation_rate == pytest.approx((count > L).mean())
    # every plan segment lies inside one document; each short document is exactly one segment (never split)
    plan = np.asarray(best.plan)
    key_docs = shard * 2**40 + start
    key_segs = plan["shard"].astype(np.int64) * 2**40 + plan["start"]
    doc_of_seg = np.searchsorted(key_docs, key_segs, side="right") - 1
    assert (plan["start"] + plan["length"] <= start[doc_of_seg] + count[doc_of_seg]).all()
    segs_per_doc = np.bincount(doc_of_seg, minlength=len(count))
    assert (segs_per_doc[count <= L] == 1).all()
    assert (np.bincount(doc_of_seg, weights=plan["length"], minlength=len(count)) == count).all()  # all tokens
    assert (segs_per_doc[count > L] == np.ceil(count[count > L] / L)).all()
    # sequences are full-length at most and padded with the pad id
    lengths = np.bincount(plan["seq"], weights=plan["length"])
    assert lengths.max() <= L and len(lengths) == len(best)
    assert best.waste_rate == pytest.approx(1 - lengths.sum() / (len(best) * L))


def test_sequences_map_back_to_document_tokens(crawl_dataset):
    ds = crawl_dataset
    for mode in ("concat", "bestfit"):
        ps = PackedSequences(ds, SEQ_LEN, mode)
        for i in np.random.default_rng(2).integers(0, len(ps), 40).tolist():
            seq = ps[i]
            assert seq.dtype == np.int64 and seq.shape == (SEQ_LEN + 1,)
            n = ps.n_valid(i)
            assert (seq[n:] == ds.pad_id).all()
            spans = ps.docs(i)
            assert spans[0].seq_start == 0 and spans[-1].seq_stop == n
            assert all(a.seq_stop == b.seq_start for a, b in zip(spans, spans[1:], strict=False))
            for sp in spans:
                shard, row = _find(ds, sp.doc_id)
                doc_start = row["token_start"]
                want = ds.read(shard, doc_start + sp.doc_token_start,
                               doc_start + sp.doc_token_start + sp.seq_stop - sp.seq_start)
                assert np.array_equal(seq[sp.seq_start:sp.seq_stop], want)
        if mode == "concat":
            assert all(ps.n_valid(i) == SEQ_LEN + 1 for i in range(len(ps)))


def _find(ds: TokenDataset, doc_id: str):
    for s in range(ds.num_shards):
        rows = ds.index(s).to_pylist()
        for r in rows:
            if r["id"] == doc_id:
                return s, r
    raise KeyError(doc_id)


def test_plan_is_stored_and_reloaded_by_memory_map(crawl_dataset):
    ps = PackedSequences(crawl_dataset.root, SEQ_LEN, "bestfit")
    assert isinstance(ps.plan, np.memmap)
    again = TokenDataset.open(crawl_dataset.root).meta["packing"][f"bestfit-{SEQ_LEN}"]
    assert again["truncation_rate"] == ps.truncation_rate and again["num_sequences"] == len(ps)


def test_best_fit_decreasing_is_best_fit():
    # items 6,5,4,3,2 into bins of 10: 6→A(4 left) 5→B(5) 4→A(0) 3→B(2) 2→B(0)
    assert best_fit_decreasing(np.array([2, 6, 3, 5, 4]), 10).tolist() == [1, 0, 1, 1, 0]
    sizes = np.random.default_rng(0).integers(1, 100, 5000)
    bins = best_fit_decreasing(sizes, 100)
    assert np.bincount(bins, weights=sizes).max() <= 100
    assert bins.max() + 1 <= int(np.ceil(sizes.sum() / 100 * 1.02)) + 1  # near the lower bound


def test_pickled_sequences_reopen_the_plan_instead_of_copying_it(crawl_dataset):
    import pickle

    ps = PackedSequences(crawl_dataset.root, SEQ_LEN, "bestfit")
    blob = pickle.dumps(ps)
    assert len(blob) < ps.plan.nbytes / 4  # no plan, no tokens, no index in the pickle
    again = pickle.loads(blob)
    assert len(again) == len(ps) and isinstance(again.plan, np.memmap)
    for i in (0, len(ps) // 2, len(ps) - 1):
        assert np.array_equal(again[i], ps[i]) and again.docs(i) == ps.docs(i)


def test_concat_rows_from_sizes_equal_the_stored_plan(crawl_dataset):
    from tokenmill.tokenize.packing import concat_rows

    ps = PackedSequences(crawl_dataset, SEQ_LEN, "concat")
    assert np.array_equal(concat_rows(crawl_dataset.shard_tokens, SEQ_LEN), np.asarray(ps.plan))


def test_bestfit_truncates_less_on_the_generated_crawl(small_crawl, shared_data, tmp_path):
    """The synthetic crawl, through the real ingest (WARC → HTML → text), tokenized and packed both ways."""
    from tokenmill.config import InputSpec
    from tokenmill.ingest import list_shards, read_documents

    spec = InputSpec(paths=[str(small_crawl / "crawl-*.warc.gz")], source="cc/GEN")
    docs = [r for path in list_shards(spec) for t in read_documents(spec, path, 200)
            for r in t.to_pylist() if r["drop_reason"] is None and r["text"]]
    assert len(docs) > 200
    ds = TokenDataset.open(write_token_dataset(tmp_path / "gen", docs, shared_data / NEOX))
    rates = {}
    for mode in ("concat", "bestfit"):
        ps = PackedSequences(ds, 512, mode)
        rates[mode] = (ps.truncation_rate, ps.waste_rate)
    print(f"\ngenerated crawl, {len(docs)} pages, {ds.num_tokens} tokens, seq_len 512: "
          f"concat truncation {rates['concat'][0]:.3f} waste {rates['concat'][1]:.4f}; "
          f"bestfit truncation {rates['bestfit'][0]:.3f} waste {rates['bestfit'][1]:.4f}")
    assert rates["bestfit"][0] < rates["concat"][0]
