"""Pathological documents the FineWeb stack lets through: character runs, short periodic patterns, pages of one
character class, extreme compressibility.

Gopher/FineWeb rules are ratios over the whole page, so a normal article carrying one inline run of 800 "m"
passes all four (the run is one "word", one line, <20% of the chars). These detectors are counts, which do not
dilute with document length:

* `repetition.char_run` — the longest run of one non-space character (code points, NumPy over the batch).
* `repetition.char_period` — the longest stretch of text with a period of 2..`max_char_period` characters
  ("ab ab ab", "click here! click here! "), whitespace-only stretches ignored.
* `repetition.word_period` — the longest stretch of whitespace-split words repeating with a period of
  1..`max_word_period` words (a sentence pasted 20 times).
* `repetition.char_class` — one non-letter class (digits, or punctuation+symbols) over most of the non-space
  characters, or one character over a large share of them.
* `repetition.compression` — zlib ratio (compressed/raw bytes) of a long page below a floor.

Defaults were set from the real texts in ../shared/data (331 HTML pages extracted with resiliparse, 810 DCLM/Dolma
CC texts, 69 WET records): the largest clean value of each signal is listed next to its threshold, with a
margin of 1.6x or more; none of them drops a clean page (tests/test_filters_repetition.py), all planted spam of
the synthetic crawl is dropped. Speed: 303 docs/s on the 1,210 real texts (4.9 MB; `python -m benchmarks.filters`).
"""

from __future__ import annotations

import unicodedata
import zlib
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.filters.base import FilterStage
from tokenmill.stage import StageConfig

_WS = np.array([c for c in range(0x3001) if chr(c).isspace()], np.uint32)  # all 29 are below U+3001


class RepetitionConfig(StageConfig):
    # "clean max" = the largest value over the 1,210 real texts of ../shared/data (see the module docstring)
    # runs of one character: clean max 97 ("!!!…" in a Dolma text); FineWeb passes a run of 800 "m"
    max_char_run: int = 160  # drop a run longer than this; the synthetic crawl plants 200..2000
    max_char_period: int = 16  # periods 2..16 chars ("ab ab ", "click here! ", "$$$ ")
    max_periodic_chars: int = 256  # clean max 97 (the same rules of "_" and "!")
    max_word_period: int = 8  # periods 1..8 whitespace-split words
    max_periodic_words: int = 64  # clean max 32 (a repeated two-word menu entry)
    # character classes over non-space chars, for pages with at least `min_class_chars` of them
    min_class_chars: int = 200
    max_digit_frac: float = 0.6  # clean max 0.38 (a results table)
    max_symbol_frac: float = 0.5  # punctuation + symbols; clean max 0.13
    max_top_char_frac: float = 0.3  # one character; clean max 0.18
    # zlib compressed/raw bytes for pages of at least `min_compress_bytes`; clean min 0.127 (a results table)
    min_compress_bytes: int = 2000
    min_compression_ratio: float = 0.05


class RepetitionFilter(FilterStage):
    name = "repetition"
    Config = RepetitionConfig
    score_columns: ClassVar[tuple[str, ...]] = ("repetition.char_run", "repetition.char_period_chars",
                                                "repetition.word_period_words", "repetition.compression_ratio")
    signal_types: ClassVar[dict[str, pa.DataType]] = {
        "repetition.char_run": pa.int64(), "repetition.char_period_chars": pa.int64(),
        "repetition.word_period_words": pa.int64()}

    def filter_batch(self, texts: list[str]):
        cfg, n = self.config, len(texts)
        cps, doc = code_points(texts)
        run = longest_char_run(cps, doc, n)
        period = longest_periodic(cps, doc, n, range(2, cfg.max_char_period + 1), skip_ws=True)
        wids, wdoc = word_ids(texts)
        wperiod = longest_periodic(wids, wdoc, n, range(1, cfg.max_word_period + 1), skip_ws=False)
        classes = char_classes(cps, doc, n)
        ratio = compression_ratios(texts, cfg.min_compress_bytes)
        nonspace = np.maximum(classes["nonspace"], 1)
        big = classes["nonspace"] >= cfg.min_class_chars
        rules = [
            ("char_run", run > cfg.max_char_run),
            ("char_period", period > cfg.max_periodic_chars),
            ("word_period", wperiod > cfg.max_periodic_words),
            ("char_class", big & ((classes["digit"] / nonspace > cfg.max_digit_frac)
                                  | (classes["symbol"] / nonspace > cfg.max_symbol_frac)
                                  | (classes["top"] / nonspace > cfg.max_top_char_frac))),
            ("compression", ratio < cfg.min_compression_ratio),
        ]
        reasons: list[str | None] = [None] * n
        for rule, fails in rules:
            for i in np.flatnonzero(fails).tolist():
                reasons[i] = reasons[i] or f"repetition.{rule}"
        signals = {"repetition.char_run": run, "repetition.char_period_chars": period,
                   "repetition.word_period_words": wperiod, "repetition.compression_ratio": ratio,
                   "repetition.top_char_frac": classes["top"] / nonspace}
        return signals, reasons


def code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one (C,) uint32 code-point array and the (C,) document of each code point."""
    joined = "".join(texts).encode("utf-32-le", errors="surrogatepass")
    cps = np.frombuffer(joined, np.uint32)
    lengths = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    return cps, np.repeat(np.arange(len(texts)), lengths)


def longest_char_run(cps: np.ndarray, doc: np.ndarray, n: int) -> np.ndarray:
    """(D,) longest run of one non-whitespace code point in each document."""
    return _longest_true_run(_same_as(cps, doc, 1) & ~np.isin(cps[:-1], _WS), doc[:-1], n, plus=1)


def longest_periodic(seq: np.ndarray, doc: np.ndarray, n: int, periods, skip_ws: bool) -> np.ndarray:
    """(D,) longest stretch (in elements) whose element i equals element i+p, for any p in `periods`.

    `skip_ws`: stretches of whitespace only (blank lines, indentation) do not count.
    """
    best = np.zeros(n, np.int64)
    non_ws = np.concatenate([[0], np.cumsum(~np.isin(seq, _WS))]) if skip_ws else None
    for p in periods:
        if len(seq) <= p:
            break
        starts, ends = _true_runs(_same_as(seq, doc, p))
        if skip_ws:
            keep = non_ws[ends + p] - non_ws[starts] > 0
            starts, ends = starts[keep], ends[keep]
        np.maximum.at(best, doc[starts], ends - starts + p)
    return best


def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _same_as(seq: np.ndarray, doc: np.ndarray, p: int) -> np.ndarray:
    """(C-p,) element i equals element i+p, within one document."""
    return (seq[:-p] == seq[p:]) & (doc[:-p] == doc[p:])


def _longest_true_run(mask: np.ndarray, doc: np.ndarray, n: int, plus: int) -> np.ndarray:
    """(D,) per document: length of the longest run of True in `mask`, plus `plus` (0 without any True)."""
    out = np.zeros(n, np.int64)
    starts, ends = _true_runs(mask)
    np.maximum.at(out, doc[starts], ends - starts + plus)
    return out


def word_ids(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Whitespace-split words of all texts as dense ids (equal strings, equal ids) and their documents."""
    lists = pc.utf8_split_whitespace(pa.array(texts, pa.large_string()))
    flat, parent = pc.list_flatten(lists), pc.list_parent_indices(lists)
    keep = pc.greater(pc.binary_length(flat), 0)
    ids = pc.dictionary_encode(flat.filter(keep)).indices.to_numpy().astype(np.uint32)
    return ids, parent.filter(keep).to_numpy()


def char_classes(cps: np.ndarray, doc: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """(D,) counts of non-space, digit, punctuation+symbol code points, and of the most frequent one."""
    uniq, inv = np.unique(cps, return_inverse=True)
    cats = [unicodedata.category(chr(c)) for c in uniq.tolist()]
    is_space = np.array([chr(c).isspace() for c in uniq.tolist()])[inv]
    is_digit = np.array([c == "Nd" for c in cats])[inv]
    is_symbol = np.array([c[0] in "PS" for c in cats])[inv]
    keep = ~is_space
    out = {
        "nonspace": np.bincount(doc[keep], minlength=n),
        "digit": np.bincount(doc[is_digit], minlength=n),
        "symbol": np.bincount(doc[is_symbol], minlength=n),
    }
    pair = doc[keep].astype(np.int64) * len(uniq) + inv[keep]
    pairs, counts = np.unique(pair, return_counts=True)
    top = np.zeros(n, np.int64)
    np.maximum.at(top, pairs // len(uniq), counts)
    out["top"] = top
    return out


def compression_ratios(texts: list[str], min_bytes: int) -> np.ndarray:
    """(D,) zlib (level 1) compressed / raw UTF-8 bytes; 1.0 for texts shorter than `min_bytes`."""
    out = np.ones(len(texts))
    for i, t in enumerate(texts):
        if len(t) >= min_bytes // 4:  # cheap pre-check: a char is at most 4 bytes
            raw = t.encode("utf-8", errors="surrogatepass")
            if len(raw) >= min_bytes:
                out[i] = len(zlib.compress(raw, 1)) / len(raw)
    return out
