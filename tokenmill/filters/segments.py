"""Batch text operations in Arrow/NumPy: split every document into lines or paragraphs at once, find repeated
segments and n-grams per document, count characters — the shared machinery of the Gopher/FineWeb/C4 rules.

Python's notion of whitespace (`str.isspace`, 29 code points) differs from RE2's `\\s` (ASCII only), so the
patterns below spell Python's whitespace out: `text.strip()`, `str.splitlines()` and `line.strip() != ""` in
datatrove then mean exactly the same here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PY_WS = "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
# str.splitlines() boundaries (\r\n counts once)
LINE_BREAK = "\\r\\n|[\\n\\r\\x0b\\x0c\\x1c\\x1d\\x1e\\x{85}\\x{2028}\\x{2029}]"


class Segments:
    """Every document's segments flattened: `flat[i]` belongs to document `doc[i]`; `count[d]` per document."""

    def __init__(self, lists: pa.Array, n_docs: int) -> None:
        self.flat = pc.list_flatten(lists)
        self.doc = pc.list_parent_indices(lists).to_numpy()
        self.count = np.bincount(self.doc, minlength=n_docs)
        self.n_docs = n_docs

    def lengths(self) -> np.ndarray:
        return pc.utf8_length(self.flat).to_numpy(zero_copy_only=False).astype(np.int64)

    def mask_to_counts(self, mask: np.ndarray) -> np.ndarray:
        """Per-document number of segments where `mask` is true."""
        return np.bincount(self.doc[mask], minlength=self.n_docs)

    def select(self, mask: np.ndarray) -> Segments:
        out = Segments.__new__(Segments)
        out.flat = self.flat.filter(pa.array(mask))
        out.doc = self.doc[mask]
        out.count = np.bincount(out.doc, minlength=self.n_docs)
        out.n_docs = self.n_docs
        return out

    def duplicates(self) -> tuple[np.ndarray, np.ndarray]:
        """datatrove's `find_duplicates` for every document: (# repeated segments, # chars in them).

        A segment is repeated if an identical one came earlier in the same document.
        """
        if len(self.flat) == 0:
            z = np.zeros(self.n_docs, np.int64)
            return z, z.copy()
        codes = pc.dictionary_encode(self.flat).indices.to_numpy().astype(np.int64)
        repeated = ~first_occurrence(self.doc, codes)
        n = self.mask_to_counts(repeated)
        chars = np.bincount(self.doc[repeated], weights=self.lengths()[repeated], minlength=self.n_docs)
        return n, chars.astype(np.int64)


def split(arr: pa.Array, pattern: str, n_docs: int) -> Segments:
    """`re.split(pattern, text)` for every document."""
    return Segments(pc.split_pattern_regex(arr, pattern), n_docs)


def split_plain(arr: pa.Array, sep: str, n_docs: int) -> Segments:
    """`text.split(sep)` for every document."""
    return Segments(pc.split_pattern(arr, sep), n_docs)


def is_blank(flat: pa.Array) -> np.ndarray:
    """`s.strip() == ""` for every segment."""
    return pc.match_substring_regex(flat, f"^{PY_WS}*$").to_numpy(zero_copy_only=False)


def char_length(arr: pa.Array) -> np.ndarray:
    return pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)


def count(arr: pa.Array, needle: str) -> np.ndarray:
    """`text.count(needle)` (non-overlapping) for every document."""
    return pc.count_substring(arr, needle).to_numpy(zero_copy_only=False).astype(np.int64)


GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)  # mixes the group into a hashed key (Fibonacci hashing)


def first_occurrence(group: np.ndarray, key: np.ndarray, hashed: bool = False) -> np.ndarray:
    """(N,) True where `(group[i], key[i])` has not occurred at an earlier index (a hash table, O(N)).

    `hashed`: keys are 64-bit hashes; the group is mixed in (a collision needs 2**-64 luck) instead of packed.
    """
    if len(key) == 0:
        return np.zeros(0, bool)
    if hashed:
        with np.errstate(over="ignore"):
            combined = (key.view(np.uint64) ^ (group.astype(np.uint64) * GOLDEN64)).view(np.int64)
    else:
        combined = pack(group, key)
    return ~pd.Series(combined, copy=False).duplicated().to_numpy()


def pack(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """One int64 per (group, key) pair of non-negative ints; exact (raises if it cannot be)."""
    width = int(key.max()) + 1 if len(key) else 1
    if len(group) and (int(group.max()) + 1) * width >= 1 << 62:
        raise OverflowError("too many distinct keys to pack")  # internal: batches are far smaller
    return group.astype(np.int64) * width + key


def top_ngram_chars(keys: np.ndarray, doc: np.ndarray, chars: np.ndarray, n_docs: int) -> np.ndarray:
    """datatrove's `find_top_duplicate` for every document: chars of the most frequent n-gram x its count.

    `keys` are 64-bit n-gram hashes. Ties go to the n-gram seen first (Counter.most_common(1) keeps insertion order). 0 where a document has
    no n-gram. `doc` must be non-decreasing (flat positions in document order).
    """
    out = np.zeros(n_docs, np.int64)
    if len(keys) == 0:
        return out
    # factorize numbers (doc, n-gram) pairs in order of first occurrence: grouped by doc, earliest first
    with np.errstate(over="ignore"):
        combined = (keys.view(np.uint64) ^ (doc.astype(np.uint64) * GOLDEN64)).view(np.int64)
    code, _ = pd.factorize(combined)
    cnt = np.bincount(code)
    first = np.full(len(cnt), len(code), np.int64)
    np.minimum.at(first, code, np.arange(len(code)))
    udoc = doc[first]
    score = cnt * (len(cnt) + 1) - np.arange(len(cnt))  # highest count, then lowest code (earliest)
    bounds = np.flatnonzero(np.r_[True, udoc[1:] != udoc[:-1]])
    best = np.maximum.reduceat(score, bounds)
    pick = np.flatnonzero(score == np.repeat(best, np.diff(np.r_[bounds, len(score)])))
    out[udoc[pick]] = cnt[pick] * chars[first[pick]]
    return out
