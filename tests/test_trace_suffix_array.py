"""The suffix array and its batched search agree with brute force, for uint16 and uint32 token streams."""

from __future__ import annotations

import numpy as np
import pytest

from tokenmill.trace.suffix_array import build_suffix_array, count, find_ranges, longest_matches


def _stream(dtype, vocab: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, n).astype(dtype)
    tokens[n // 2 : n // 2 + 40] = tokens[10:50]  # a repeated passage, so long spans occur twice
    return tokens


def _brute_count(tokens: np.ndarray, span: np.ndarray) -> int:
    L = len(span)
    windows = np.lib.stride_tricks.sliding_window_view(tokens, L)
    return int((windows == span).all(axis=1).sum())


CASES = [
    (np.uint16, 7),  # tiny alphabet: many long repeats
    (np.uint16, 65535),  # full uint16 range
    (np.uint32, 129_280),  # DeepSeek-V3's vocabulary, beyond infini-gram's uint16 cap
    (np.uint32, 1 << 30),  # sparse huge ids (the sorting path)
]


@pytest.mark.parametrize("dtype,vocab", CASES)
def test_suffix_array_is_sorted_suffixes(dtype, vocab):
    tokens = _stream(dtype, vocab, 1500, seed=1)
    sa, unigram = build_suffix_array(tokens)
    expected = sorted(range(len(tokens)), key=lambda i: tokens[i:].tolist())
    assert sa.tolist() == expected
    assert unigram.sum() == len(tokens)
    if vocab < 1 << 24:
        assert unigram[int(tokens[0])] == (tokens == tokens[0]).sum()


@pytest.mark.parametrize("dtype,vocab", CASES)
def test_counts_equal_brute_force(dtype, vocab):
    tokens = _stream(dtype, vocab, 4000, seed=2)
    sa, _ = build_suffix_array(tokens)
    rng = np.random.default_rng(3)
    for L in (1, 2, 3, 8, 40):
        for start in rng.integers(0, len(tokens) - L, 6):
            span = tokens[start : start + L]
            assert count(tokens, sa, span) == _brute_count(tokens, span)
    absent = np.array([vocab - 1, 0, vocab - 1, 0, 1], dtype=np.int64)
    assert count(tokens, sa, absent) == _brute_count(tokens, absent.astype(tokens.dtype))


def test_located_positions_are_the_occurrences():
    tokens = _stream(np.uint16, 5, 3000, seed=4)
    sa, _ = build_suffix_array(tokens)
    span = tokens[100:104]
    lo, hi = find_ranges(tokens, sa, span, [0], [len(span)])
    found = np.sort(sa[lo[0] : hi[0]])
    windows = np.lib.stride_tricks.sliding_window_view(tokens, len(span))
    assert found.tolist() == np.flatnonzero((windows == span).all(axis=1)).tolist()


@pytest.mark.parametrize("dtype,vocab", [(np.uint16, 40), (np.uint32, 129_280)])
def test_longest_matches_are_maximal(dtype, vocab):
    tokens = _stream(dtype, vocab, 3000, seed=5)
    sa, _ = build_suffix_array(tokens)
    rng = np.random.default_rng(6)
    query = np.concatenate([tokens[200:260], rng.integers(0, vocab, 30)]).astype(np.int64)
    lengths = longest_matches(tokens, sa, query)
    assert lengths[0] >= 60  # the copied passage is found whole
    for i, L in enumerate(lengths):
        if L:
            assert _brute_count(tokens, query[i : i + L].astype(tokens.dtype)) > 0
        if i + L < len(query):
            assert _brute_count(tokens, query[i : i + L + 1].astype(tokens.dtype)) == 0


def test_empty_inputs():
    sa, _ = build_suffix_array(np.zeros(0, np.uint16))
    assert sa.size == 0
    tokens = np.array([3, 1, 3], np.uint16)
    sa, _ = build_suffix_array(tokens)
    assert longest_matches(tokens, sa, np.zeros(0, np.int64)).size == 0
    assert longest_matches(tokens, sa, np.array([3, 1, 3, 3])).tolist() == [3, 2, 1, 1]


def test_three_byte_ranks_when_more_than_65536_distinct_ids():
    """> 65,536 distinct ids in one shard: ranks take 3 bytes; the order must still be token order."""
    rng = np.random.default_rng(7)
    tokens = rng.permutation(129_280)[:80_000].astype(np.uint32)
    tokens = np.concatenate([tokens, tokens[:500], rng.integers(0, 129_280, 500).astype(np.uint32)])
    sa, _ = build_suffix_array(tokens)
    assert np.array_equal(np.sort(sa), np.arange(len(tokens)))
    for a, b in zip(sa[:-1].tolist(), sa[1:].tolist(), strict=True):
        k = 0
        while a + k < len(tokens) and b + k < len(tokens) and tokens[a + k] == tokens[b + k]:
            k += 1
        assert b + k < len(tokens) and (a + k == len(tokens) or tokens[a + k] < tokens[b + k])
    span = tokens[100:110]
    assert count(tokens, sa, span) == 2
