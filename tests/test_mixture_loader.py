"""The mixture loader over real token shards: tokens show their source, and DataLoader workers × ranks split the
single-process sample sequence into disjoint parts whose union is the whole."""

from __future__ import annotations

import numpy as np
import pytest
from test_train_fixtures import ORIGIN_BASE, ORIGIN_SPAN, make_origin_dataset

from tokenmill.tokenize.packing import PackedSequences
from tokenmill.train.data import MixtureMicroBatches, RankLayout, micro_batches
from tokenmill.train.mixture import MixStage, MixtureSchedule

SEQ_LEN = 16
G, MB = 8, 2


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("origin")
    return {name: PackedSequences(str(make_origin_dataset(root / name, name)), SEQ_LEN)
            for name in ("web", "code", "math")}


def _schedule(packed) -> MixtureSchedule:
    stages = [MixStage(0, {"web": 0.5, "code": 0.25, "math": 0.25}), MixStage(6, {"web": 0.25, "code": 0.75})]
    return MixtureSchedule({n: len(p) for n, p in packed.items()}, stages, seed=3, samples_per_step=G)


def _collect(packed, rank: int, world: int, workers: int, steps: int = 12) -> list[dict]:
    data = MixtureMicroBatches(packed, _schedule(packed), RankLayout(G, MB, rank, world), max_steps=steps)
    return list(micro_batches(data, 0, steps, num_workers=workers, prefetch=2))


def test_tokens_show_their_source(packed):
    for mb in _collect(packed, 0, 1, 0, steps=4):
        for row, src in zip(mb["tokens_BL"].numpy(), mb["source_B"].tolist(), strict=False):
            name = ["code", "math", "web"][src]
            body = row[row != 0]  # EOS = 0
            assert ((body >= ORIGIN_BASE[name]) & (body < ORIGIN_BASE[name] + ORIGIN_SPAN)).all()
        for row, shard, doc_row, seq_start, seq_stop, _ in mb["spans"].tolist():
            name = ["code", "math", "web"][int(mb["source_B"][row])]
            doc_id = packed[name].ds.index(shard).column("id")[doc_row].as_py()
            assert doc_id.startswith(name) and 0 <= seq_start < seq_stop <= SEQ_LEN + 1


def test_two_workers_two_ranks_are_disjoint_and_cover_the_single_process_sequence(packed):
    single = _collect(packed, 0, 1, 0)
    single_pairs = [(s, q) for mb in single for s, q in zip(mb["source_B"].tolist(), mb["seq_B"].tolist(), strict=False)]
    single_samples = np.concatenate([mb["sample_B"].numpy() for mb in single])
    np.testing.assert_array_equal(single_samples, np.arange(12 * G))
    seen: dict[int, tuple[int, int]] = {}
    owners: dict[int, tuple[int, int]] = {}
    for rank in range(2):
        for mb in _collect(packed, rank, 2, workers=2):
            assert mb["worker"] in (0, 1)
            for i, s, q in zip(mb["sample_B"].tolist(), mb["source_B"].tolist(), mb["seq_B"].tolist(), strict=False):
                assert i not in seen, f"sample {i} seen by rank/worker {owners[i]} and {(rank, mb['worker'])}"
                seen[i], owners[i] = (s, q), (rank, mb["worker"])
    assert sorted(seen) == list(range(12 * G))
    assert [seen[i] for i in range(12 * G)] == single_pairs
    assert len(set(owners.values())) == 4  # every (rank, worker) did part of the work
