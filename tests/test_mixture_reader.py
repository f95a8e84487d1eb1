"""The loader's vectorized reads against the per-sequence reference (`PackedSequences[i]` and `.docs(i)`): same
tokens, same valid lengths, same document spans, for concat and best-fit packing over several shards; worker
processes deliver exactly what an inline read does, stop cleanly when abandoned, and raise a source's exhaustion
as DataExhausted."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from tokenmill.tokenize.packing import PackedSequences
from tokenmill.tokenize.writer import write_token_dataset
from tokenmill.train.data import MixtureMicroBatches, RankLayout, micro_batches
from tokenmill.train.mixture import DataExhausted, MixStage, MixtureSchedule

SEQ_LEN = 64
G, MB = 8, 4


def _source(folder, name: str, seed: int) -> str:
    """Documents of 5-150 tokens (some longer than a sequence) in shards of ~1500 tokens."""
    rng = np.random.default_rng(seed)
    docs = [({"id": f"{name}-{i}", "url": f"https://{name}.example/{i}", "source": name},
             rng.integers(1, 4000, size=int(rng.integers(5, 150)))) for i in range(120)]
    return str(write_token_dataset(folder / name, docs, vocab_size=5000, eos_id=0, source=name,
                                   max_shard_tokens=1500))


@pytest.fixture(scope="module", params=["concat", "bestfit"])
def packed(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"reader-{request.param}")
    out = {name: PackedSequences(_source(root, name, seed), SEQ_LEN, packing=request.param)
           for seed, name in enumerate(("web", "code"))}
    assert all(p.ds.num_shards >= 3 for p in out.values())
    return out


def _schedule(packed, **kw) -> MixtureSchedule:
    stages = [MixStage(0, {"web": 0.6, "code": 0.4}), MixStage(5, {"web": 0.25, "code": 0.75})]
    return MixtureSchedule({n: len(p) for n, p in packed.items()}, stages, seed=11, samples_per_step=G, **kw)


def _reference_spans(p: PackedSequences, seq: int) -> list[tuple]:
    """(doc_id, seq_start, seq_stop, doc_token_start) from PackedSequences.docs, the per-sequence reference."""
    return [(d.doc_id, d.seq_start, d.seq_stop, d.doc_token_start) for d in p.docs(seq)]


def test_tokens_and_spans_match_the_per_sequence_reference(packed):
    schedule = _schedule(packed)
    data = MixtureMicroBatches(packed, schedule, RankLayout(G, MB), max_steps=30)
    rows = 0
    for k in range(0, 60, 7):
        mb = data[k]
        spans = mb["spans"]
        assert (np.diff(spans[:, 0]) >= 0).all()  # sorted by row, as the provenance writer needs
        for r in range(MB):
            p = packed[schedule.sources[int(mb["source_B"][r])]]
            seq = int(mb["seq_B"][r])
            np.testing.assert_array_equal(mb["tokens_BL"][r], p[seq])
            assert mb["n_valid_B"][r] == p.n_valid(seq)
            got = [(p.ds.index(int(sh)).column("id")[int(d)].as_py(), a, b, t)
                   for _, sh, d, a, b, t in spans[spans[:, 0] == r].tolist()]
            assert got == _reference_spans(p, seq)
            rows += 1
    assert rows == 9 * MB


def test_workers_deliver_exactly_the_inline_batches(packed):
    schedule = _schedule(packed)
    data = MixtureMicroBatches(packed, schedule, RankLayout(G, MB), max_steps=12)
    inline = list(micro_batches(data, 2, 12, num_workers=0))
    by_workers = list(micro_batches(data, 2, 12, num_workers=2, prefetch=3))
    assert [b["k"] for b in by_workers] == list(range(2 * G // MB, 12 * G // MB))
    assert {b["worker"] for b in by_workers} == {0, 1}
    for a, b in zip(inline, by_workers, strict=True):
        for key in ("tokens_BL", "n_valid_B", "sample_B", "source_B", "seq_B", "epoch_B"):
            assert a[key].dtype == b[key].dtype and (a[key] == b[key]).all(), key
        np.testing.assert_array_equal(a["spans"], b["spans"])


def test_abandoned_workers_stop(packed):
    data = MixtureMicroBatches(packed, _schedule(packed), RankLayout(G, MB), max_steps=40)
    batches = micro_batches(data, 0, 40, num_workers=2, prefetch=2)
    next(batches)
    assert len(mp.active_children()) >= 2
    batches.close()  # what a training loop that breaks out early leaves behind, once collected
    assert not [p for p in mp.active_children() if p.name.startswith("tokenmill-loader")]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_source_running_out_raises_data_exhausted(packed, workers):
    schedule = _schedule(packed, on_exhausted="stop")
    steps = 2 * len(packed["code"]) // G + 4  # past the end of "code"
    data = MixtureMicroBatches(packed, schedule, RankLayout(G, MB), max_steps=steps)
    seen = 0
    with pytest.raises(DataExhausted, match="'code' ran out"):
        for mb in micro_batches(data, 0, steps, num_workers=workers):
            assert (mb["epoch_B"] == 0).all()
            seen += 1
    assert seen > 0


def test_remote_sources_read_the_same_as_local(packed, tmp_path):
    """Sources opened by URL (fsspec range reads, here file://) give the same micro-batches as local memmaps."""
    from tokenmill.tokenize.shards import TokenDataset

    remote = {n: PackedSequences(TokenDataset.open(f"file://{p.ds.root}", cache_dir=str(tmp_path / n)), SEQ_LEN,
                                 packing=p.mode) for n, p in packed.items()}
    assert all(p.ds.is_remote for p in remote.values())
    local = MixtureMicroBatches(packed, _schedule(packed), RankLayout(G, MB), max_steps=6)
    by_url = MixtureMicroBatches(remote, _schedule(remote), RankLayout(G, MB), max_steps=6)
    for k in range(0, 12, 5):
        a, b = local[k], by_url[k]
        np.testing.assert_array_equal(a["tokens_BL"], b["tokens_BL"])
        np.testing.assert_array_equal(a["spans"], b["spans"])
