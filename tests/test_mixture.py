"""The mixture schedule (tokenmill.train.mixture): exact counts, no repeats within an epoch, appending stages,
the realized mix, epochs, and the fingerprint of the past. Pure functions: no files, no model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tokenmill.config import ConfigError
from tokenmill.train.config import MixStageSpec, check_stages
from tokenmill.train.mixture import (
    DataExhausted,
    MixStage,
    MixtureSchedule,
    explain_past_change,
    feistel_permute,
)

SIZES = {"web": 5000, "code": 3000, "math": 2000}
G = 10  # samples per step
STAGES = [MixStage(0, {"web": 0.6, "code": 0.3, "math": 0.1}),
          MixStage(40, {"web": 0.5, "code": 0.5}),  # first mid-run change
          MixStage(100, {"web": 0.2, "code": 0.3, "math": 0.5})]  # second mid-run change


def schedule(stages=STAGES, sizes=SIZES, **kw) -> MixtureSchedule:
    return MixtureSchedule(sizes, stages, seed=kw.pop("seed", 7), samples_per_step=kw.pop("g", G), **kw)


def test_counts_per_block_are_exact():
    s = schedule()
    assert all(s.counts_in_block(b) == {"web": 6, "code": 3, "math": 1} for b in range(40))
    assert all(s.counts_in_block(b) == {"web": 5, "code": 5} for b in range(40, 100))
    assert all(s.counts_in_block(b) == {"web": 2, "code": 3, "math": 5} for b in range(100, 130))


def test_two_changes_counts_and_no_repeat_within_epoch():
    s = schedule()
    src, seq, epoch = s.locate(np.arange(130 * G))
    names = np.array(s.sources)[src]
    for lo, hi, want in [(0, 40, {"web": 240, "code": 120, "math": 40}), (40, 100, {"web": 300, "code": 300}),
                         (100, 130, {"web": 60, "code": 90, "math": 150})]:
        assert dict(Counter(names[lo * G: hi * G])) == want
    assert (epoch == 0).all()
    for name in SIZES:
        picked = seq[names == name]
        assert len(np.unique(picked)) == len(picked), f"{name}: a sequence repeated within the epoch"
        assert picked.min() >= 0 and picked.max() < SIZES[name]


def test_appending_a_stage_at_resume_sees_exactly_the_full_schedule():
    first_two = schedule(STAGES[:2])  # the run before the resume: it did not know the second change
    full = schedule(STAGES)
    before = np.arange(0, 100 * G)
    for a, b in zip(first_two.locate(before), full.locate(before), strict=False):
        np.testing.assert_array_equal(a, b)
    resumed = schedule(STAGES)  # a fresh process after the resume: needs only the step
    after = np.arange(100 * G, 130 * G)
    for a, b in zip(resumed.locate(after), full.locate(after), strict=False):
        np.testing.assert_array_equal(a, b)
    # and the appended stage continues each source's stream where it stopped: no repeat, no skip
    src, seq, _ = full.locate(np.arange(130 * G))
    web = seq[src == full.sources.index("web")]
    assert len(set(web.tolist())) == len(web)


def test_realized_mix_matches_weights_within_one_sample_per_source():
    weights = {"web": 0.37, "code": 0.41, "math": 0.22}  # not multiples of 1/8: blocks get varying counts
    s = schedule([MixStage(0, weights)], g=8)
    src, _, _ = s.locate(np.arange(8 * 2000))
    names = np.array(s.sources)[src]
    for window in (80, 800, 8000):
        for start in range(0, len(names) - window + 1, window):
            counts = Counter(names[start:start + window].tolist())
            for name, w in weights.items():
                # exact per block, low-discrepancy across blocks: within 2 samples of w·n in any aligned window
                assert abs(counts[name] - w * window) <= 2, (window, start, name, counts[name])


def test_blocks_are_shuffled_but_deterministic():
    a, b = schedule(), schedule()
    np.testing.assert_array_equal(a.locate(np.arange(400))[0], b.locate(np.arange(400))[0])
    other_seed = schedule(seed=8).locate(np.arange(400))
    assert (a.locate(np.arange(400))[1] != other_seed[1]).any()
    first_block = np.array(a.sources)[a.locate(np.arange(G))[0]]
    assert sorted(Counter(first_block.tolist()).items()) == [("code", 3), ("math", 1), ("web", 6)]


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 4099])
def test_feistel_is_a_bijection(n):
    out = feistel_permute(np.arange(n), n, key=12345)
    assert sorted(out.tolist()) == list(range(n))
    if n >= 1000:
        assert (out != np.arange(n)).mean() > 0.9  # actually shuffled


def test_wrap_starts_a_new_epoch_with_a_fresh_permutation():
    sizes = {"web": 30, "code": 3000, "math": 3000}
    s = schedule([MixStage(0, {"web": 1.0})], sizes=sizes)
    src, seq, epoch = s.locate(np.arange(90))
    assert epoch.tolist() == [0] * 30 + [1] * 30 + [2] * 30
    for e in range(3):
        assert sorted(seq[epoch == e].tolist()) == list(range(30))
    assert (seq[epoch == 0] != seq[epoch == 1]).any()


def test_exhausted_source_stops_when_asked():
    sizes = {"web": 30, "code": 3000, "math": 3000}
    s = schedule([MixStage(0, {"web": 1.0})], sizes=sizes, on_exhausted="stop")
    s.locate(np.arange(30))
    with pytest.raises(DataExhausted, match="'web' ran out of its 30 sequences at sample 30 \\(step 3\\)"):
        s.locate(np.arange(30, 40))


def test_fingerprint_of_the_past():
    two = schedule(STAGES[:2])
    three = schedule(STAGES)
    assert two.past_fingerprint(100) == three.past_fingerprint(100)  # stage 2 starts at 100: still the future
    assert two.past_fingerprint(101) != three.past_fingerprint(101)
    edited = schedule([STAGES[0], MixStage(40, {"web": 0.4, "code": 0.6}), STAGES[2]])
    assert edited.past_fingerprint(100) != three.past_fingerprint(100)
    why = explain_past_change(three.past(100), edited.past(100))
    assert why.startswith("mixture.stages[1] was {'start_step': 40, 'weights': {'web': 0.5, 'code': 0.5}}")


def test_a_new_source_in_a_new_stage_keeps_the_past():
    sizes = {**SIZES, "extra": 100}
    with_extra = schedule([*STAGES, MixStage(130, {"extra": 0.5, "web": 0.5})], sizes=sizes)
    base = schedule(STAGES)
    idx = np.arange(130 * G)
    np.testing.assert_array_equal(np.array(base.sources)[base.locate(idx)[0]],
                                  np.array(with_extra.sources)[with_extra.locate(idx)[0]])
    np.testing.assert_array_equal(base.locate(idx)[1], with_extra.locate(idx)[1])


def test_stage_errors_name_the_key():
    sources = {"web": "a", "code": "b"}
    stages = [MixStageSpec(start_step=0, weights={"web": 1}), MixStageSpec(start_step=5, weights={"web": 1}),
              MixStageSpec(start_step=5, weights={"code": 1})]
    with pytest.raises(ConfigError, match=r"job.yaml: data.stages\[2\].start_step=5 must be after the "
                       r"previous stage \(job.yaml: data.stages\[1\]"):
        check_stages(stages, sources, "job.yaml")
    with pytest.raises(ConfigError, match=r"data.stages\[0\].weights.math: unknown source"):
        check_stages([MixStageSpec(start_step=0, weights={"math": 1})], sources, "job.yaml")
    with pytest.raises(ConfigError, match="first stage must start at 0"):
        check_stages([MixStageSpec(start_step=3, weights={"web": 1})], sources, "job.yaml")
