"""Synthetic text for the generated crawl: Zipf-weighted sentences per language, near-duplicate edits with a
known Jaccard similarity, and a small invented benchmark (math word problems).

An article is a list of blocks (title, paragraphs, list items); each block is a list of sentences; each sentence
is an array of word ids into the language's vocabulary (built-in common words, then invented rare words). Word ids
are rendered to text only at the end, so a near-duplicate is made by replacing ids in the flat id array, and
its similarity is measured on the rendered text with `shingles` (word 5-grams of `text.split()`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xxhash

from tokenmill.ingest.wordlists import LANGUAGES, SPACED, SYLLABLES, common_words

N_RARE_WORDS = 3000  # invented words per language: the long tail that makes every article's 5-grams distinct
ZIPF_S = 1.07  # word-frequency exponent; natural text is ~1 (Zipf 1949)
SHINGLE_N = 5  # near-duplicate similarity is measured on word 5-grams (as in MinHash dedup, e.g. FineWeb)


def uniform(*parts: int) -> float:
    """A uniform [0, 1) draw that is a pure function of `parts` (<1 µs; a numpy Generator costs ~9 µs)."""
    return xxhash.xxh3_64_intdigest(struct.pack(f"<{len(parts)}q", *parts)) / 2.0**64


@dataclass(frozen=True)
class Vocab:
    words: list[str]
    words_np: np.ndarray  # object[V], for fancy indexing
    cdf: np.ndarray  # float64[V], cumulative Zipf weights; ids = searchsorted(cdf, uniform)
    n_common: int


@lru_cache(maxsize=64)
def vocab(lang: str, seed: int) -> Vocab:
    """Common words of `lang` plus N_RARE_WORDS invented from its syllables, deterministic from `seed`."""
    common = common_words(lang)
    syl = SYLLABLES[lang].split()
    rng = np.random.default_rng([seed, LANGUAGES.index(lang), 1])
    rare: dict[str, None] = {}
    seen = set(common)
    while len(rare) < N_RARE_WORDS:
        n_syl = int(rng.integers(2, 5))
        w = "".join(syl[k] for k in rng.integers(0, len(syl), n_syl))
        if w not in seen and w not in rare:
            rare[w] = None
    words = common + list(rare)
    weights = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_S
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return Vocab(words, np.array(words, dtype=object), cdf, len(common))


@dataclass
class Article:
    """Word ids of an article: `ids` flat, `sent_lens` per sentence, `block_sents` sentences per block.

    Block 0 is the title; then `n_paragraphs` paragraphs; the rest are list items.
    """

    lang: str
    ids: np.ndarray  # int64[W]
    sent_lens: np.ndarray  # int64[S], sums to W
    block_sents: np.ndarray  # int64[B], sums to S
    n_paragraphs: int

    @property
    def n_words(self) -> int:
        return int(self.ids.shape[0])


def make_article(lang: str, seed: int, rng: np.random.Generator) -> Article:
    """Title (1 sentence, 5-9 words), 3-8 paragraphs of 2-6 sentences of 6-20 words, half the time a list of
    2-5 items of 3-8 words. Two draws from `rng`: the structure, then the words."""
    v = vocab(lang, seed)
    r = rng.random(11 + 54)  # 3 structure draws, 8 paragraph sizes, 54 = most sentences (1 + 8 * 6 + 5)
    n_par = 3 + int(r[0] * 6)
    n_items = 2 + int(r[2] * 4) if r[1] < 0.5 else 0
    block_sents = np.concatenate([[1], 2 + (r[3:3 + n_par] * 5).astype(np.int64), np.ones(n_items, np.int64)])
    n_sent = int(block_sents.sum())
    u = r[11:11 + n_sent]
    sent_lens = 6 + (u * 15).astype(np.int64)
    sent_lens[0] = 5 + int(u[0] * 5)
    if n_items:
        sent_lens[n_sent - n_items:] = 3 + (u[n_sent - n_items:] * 6).astype(np.int64)
    ids = np.searchsorted(v.cdf, rng.random(int(sent_lens.sum())))
    return Article(lang, ids, sent_lens, block_sents, n_par)


def render_blocks(art: Article, seed: int) -> list[str]:
    """Text of each block: sentences capitalized and punctuated (spaced languages) or joined with 。 (ja).
    Decorations are the ones `token_flags` describes."""
    toks = vocab(art.lang, seed).words_np[art.ids].tolist()
    spaced = SPACED[art.lang]
    end, sep = (".", " ") if spaced else ("。", "")
    lens = art.sent_lens.tolist()
    blocks, pos, s = [], 0, 0
    for b, k in enumerate(art.block_sents.tolist()):
        start, in_par = pos, 1 <= b <= art.n_paragraphs  # title and list items carry no final period
        for n in lens[s:s + k]:
            if spaced:
                w = toks[pos]
                toks[pos] = w[:1].upper() + w[1:]
                if n > 10:
                    toks[pos + n // 2] += ","
            if in_par:
                toks[pos + n - 1] += end
            pos += n
        s += k
        blocks.append(sep.join(toks[start:pos]))
    return blocks


CAPITAL, COMMA, PERIOD = 1, 2, 4


def token_flags(art: Article) -> np.ndarray:
    """int64[W]: how each word is decorated when rendered (CAPITAL | COMMA | PERIOD), from the structure only."""
    n_sent = art.sent_lens.shape[0]
    starts = np.cumsum(art.sent_lens) - art.sent_lens
    flags = np.zeros(art.n_words, dtype=np.int64)
    flags[starts] |= CAPITAL
    long = art.sent_lens > 10
    flags[(starts + art.sent_lens // 2)[long]] |= COMMA
    block_of_sent = np.repeat(np.arange(art.block_sents.shape[0]), art.block_sents)
    in_par = (block_of_sent >= 1) & (block_of_sent <= art.n_paragraphs)
    flags[(starts + art.sent_lens - 1)[in_par[:n_sent]]] |= PERIOD
    return flags


def article_text(blocks: list[str]) -> str:
    """The article text whose shingles define near-duplicate similarity: its blocks, one per line."""
    return "\n".join(blocks)


def shingles(text: str, n: int = SHINGLE_N) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))}


def jaccard(a: str, b: str, n: int = SHINGLE_N) -> float:
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def _shingle_hashes(keys: np.ndarray, n: int = SHINGLE_N) -> np.ndarray:
    """Distinct hashes of the n-grams of `keys` (uint64 polynomial rolling hash, wrapping)."""
    k = keys.astype(np.uint64)
    h = np.zeros(max(k.shape[0] - n + 1, 1), dtype=np.uint64)
    for j in range(n):
        h = h * np.uint64(1_000_003) + k[j:j + h.shape[0]]
    return np.unique(h)


def near_duplicate(art: Article, target: float, seed: int, rng: np.random.Generator) -> tuple[Article, float]:
    """Replace words (at positions in a random order) with rare words until the Jaccard of the rendered texts'
    5-gram shingles is as close to `target` as one edit allows. The binary search on the number of edits runs on
    (word id, decoration) keys, which render one-to-one to tokens; the returned value is measured on the text."""
    v = vocab(art.lang, seed)
    order = rng.permutation(art.n_words)
    repl = rng.integers(v.n_common, len(v.words), art.n_words)  # rare words: new shingles, never old ones
    repl = np.where(repl == art.ids[order], v.n_common + (repl - v.n_common + 1) % N_RARE_WORDS, repl)
    flags = token_flags(art)
    base = _shingle_hashes(art.ids * 8 + flags)

    def edited_ids(k: int) -> np.ndarray:
        ids = art.ids.copy()
        ids[order[:k]] = repl[:k]
        return ids

    cache: dict[int, float] = {}

    def key_jaccard(k: int) -> float:
        if k not in cache:
            h = _shingle_hashes(edited_ids(k) * 8 + flags)
            inter = np.intersect1d(base, h, assume_unique=True).shape[0]
            cache[k] = inter / (base.shape[0] + h.shape[0] - inter)
        return cache[k]

    lo, hi = _bracket(key_jaccard, target, art.n_words)
    while hi - lo > 1:  # key_jaccard(lo) >= target > key_jaccard(hi); roughly monotone
        mid = (lo + hi) // 2
        if key_jaccard(mid) >= target:
            lo = mid
        else:
            hi = mid
    k = lo if abs(key_jaccard(lo) - target) <= abs(key_jaccard(hi) - target) else hi
    new = Article(art.lang, edited_ids(k), art.sent_lens, art.block_sents, art.n_paragraphs)
    return new, jaccard(article_text(render_blocks(art, seed)), article_text(render_blocks(new, seed)))


def _bracket(key_jaccard, target: float, n: int) -> tuple[int, int]:
    """Edit counts around the answer, from the expected Jaccard: k edits at random touch ~m(1 - (1 - k/n)^5) of
    the m shingles, each becoming new, so J = (m - c) / (m + c). Saves ~half the evaluations of a full search."""
    m = max(n - SHINGLE_N + 1, 1)
    c = m * (1 - target) / (1 + target)
    k0 = min(max(round(n * (1 - (1 - min(c / m, 1.0)) ** (1 / SHINGLE_N))), 0), n)
    step = max(2, k0 // 8)
    lo, hi = k0, k0
    while hi < n and key_jaccard(hi) >= target:
        lo, hi, step = hi, min(n, hi + step), step * 2
    while lo > 0 and key_jaccard(lo) < target:
        hi, lo, step = lo, max(0, lo - step), step * 2
    return lo, max(hi, lo)


NAMES = ("Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Sofia", "Ravi", "Chloe", "Mateo", "Ingrid", "Kwame")
THINGS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "books", "eggs", "cards")
PLACES = ("market", "bakery", "school fair", "library sale", "garden shop", "toy store")


def math_problems(seed: int, n: int = 100) -> list[dict[str, str]]:
    """An invented benchmark of grade-school word problems with their answers (three templates)."""
    rng = np.random.default_rng([seed, 99])
    out = []
    for i in range(n):
        who, other = rng.choice(NAMES, 2, replace=False).tolist()
        thing, place = str(rng.choice(THINGS)), str(rng.choice(PLACES))
        a, b, c = (int(x) for x in rng.integers(2, 60, 3))
        t = i % 3
        if t == 0:
            q = (f"{who} has {a} {thing}. At the {place} {who} buys {b} bags with {c} {thing} in each bag. "
                 f"Then {who} gives {other} {min(a, c)} {thing}. How many {thing} does {who} have now?")
            ans = a + b * c - min(a, c)
        elif t == 1:
            q = (f"A {place} sells {thing} for {c} dollars each. {who} buys {a} of them and {other} buys {b} more "
                 f"than {who}. How many dollars do {who} and {other} spend together?")
            ans = c * (a + a + b)
        else:
            q = (f"{who} reads {a} pages on Monday and twice as many pages on Tuesday. On Wednesday {who} reads "
                 f"{b} pages fewer than on Tuesday, but at least {c} pages. How many pages did {who} read on "
                 f"Wednesday?")
            ans = max(2 * a - b, c)
        out.append({"question": q, "answer": str(ans)})
    return out
