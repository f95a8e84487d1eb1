"""Word splitting identical to datatrove's `split_into_words(text, "en")`, at a fraction of its cost.

datatrove tokenizes English with `spacy.blank("en")` and drops whitespace tokens. spaCy's tokenizer splits the
text at whitespace first and tokenizes every whitespace-delimited *chunk* on its own (affixes, infixes, special
cases). So the words of a document are the concatenation of the words of its chunks, and a chunk's words never
change. We keep a chunk -> token ids cache (one per language per process, shared by the Gopher/C4/FineWeb
stages), send only unseen chunks to spaCy (joined by newlines, one call per batch; letters-only chunks need no
spaCy at all), and expand cached chunk ids to token ids with NumPy. Web text is Zipfian: the 1,210 real CC
documents of ../shared/data hold 750,077 chunks, 108,468 distinct (14%), of which 53,081 go to spaCy on a cold
cache. Identical words on all 1,210 (tests/test_filters_heuristics.py checks the decisions built on them).

Tokens become integer ids with per-token properties (length, has a non-punctuation char, has a letter, spaCy's
`is_punct`, sentencizer punctuation, a composable hash), so filters compute over arrays instead of strings.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_CACHED_CHUNKS = 2_000_000  # ~200 MB of Python strings; the cache is cleared (not evicted) beyond this
HASH_BASE = 0x100000001B3  # FNV-64 prime: odd, so polynomial hashes mod 2**64 of concatenations compose
PROPS = {"length": np.int64, "non_symbol": bool, "alpha": bool, "is_punct": bool, "sent_punct": bool,
         "hash": np.uint64, "base_pow": np.uint64}


def datatrove_punctuation() -> frozenset[str]:
    """datatrove.utils.text.PUNCTUATION_SET (ASCII/CJK punctuation, control chars, terminal punctuation)."""
    from tokenmill.filters._punct import PUNCTUATION_SET

    return PUNCTUATION_SET


@lru_cache(maxsize=8)
def blank_pipeline(language: str):
    """`spacy.blank(language)`, loaded once per process (~1 s); only its stateless tokenizer is used.

    Its lexical-attribute getters (like_num, word shape, ...: Python functions run for every new lexeme, 40% of
    the tokenizer's time) are removed; splitting never reads them, and `is_punct` is computed in `_token`.
    """
    import spacy

    nlp = spacy.blank(language)
    nlp.vocab.lex_attr_getters = {}
    return nlp


@lru_cache(maxsize=8)
def shared_splitter(language: str) -> WordSplitter:
    """One splitter per language per process, shared by the Gopher/C4/FineWeb stages of a worker, so a chunk
    is tokenized once for all of them. A pure cache: results never depend on what it holds."""
    return WordSplitter(language)


@dataclass
class Words:
    """Words of a batch of documents, CSR layout: document d owns `ids[offsets[d]:offsets[d+1]]`."""

    ids: np.ndarray  # (W,) int64 token ids
    offsets: np.ndarray  # (D+1,) int64
    splitter: WordSplitter

    def doc_index(self) -> np.ndarray:
        """(W,) the document of each word."""
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def strings(self, d: int) -> list[str]:
        tok = self.splitter.token_text
        return [tok[i] for i in self.ids[self.offsets[d] : self.offsets[d + 1]].tolist()]


class WordSplitter:
    """spaCy-exact word splitting with a chunk cache. Build one per worker (in `setup()`); not thread-safe."""

    def __init__(self, language: str = "en") -> None:
        self.language = language
        self._nlp = blank_pipeline(language)
        self._special_cases = frozenset(self._nlp.tokenizer.rules or ())
        self._punct = datatrove_punctuation()
        from spacy.pipeline.sentencizer import Sentencizer

        self._sent_punct = frozenset(Sentencizer.default_punct_chars)
        self.clear()

    def clear(self) -> None:
        self.generation = getattr(self, "generation", -1) + 1  # chunk ids of an older generation are void
        self.chunk_id: dict[str, int] = {}
        self._chunk_start: list[int] = []  # into _chunk_tokens
        self._chunk_len: list[int] = []
        self._chunk_tokens: list[int] = []
        self.token_id: dict[str, int] = {}
        self.token_text: list[str] = []
        self._prop_parts: dict[str, list[np.ndarray]] = {name: [] for name in PROPS}
        self._arrays: dict[str, np.ndarray] = {}

    # -- token properties, as arrays indexed by token id ------------------------------------------------------
    def prop(self, name: str) -> np.ndarray:
        """`length` (code points), `non_symbol`, `alpha`, `is_punct` (spaCy), `sent_punct` (sentencizer),
        `hash` (polynomial hash of the code points mod 2**64) and `base_pow` (HASH_BASE**length mod 2**64), so
        that hash(a + b) = hash(a) * base_pow(b) + hash(b)."""
        if name not in self._arrays:
            parts = self._prop_parts[name]
            if len(parts) > 1:
                parts[:] = [np.concatenate(parts)]
            self._arrays[name] = parts[0] if parts else np.zeros(0, PROPS[name])
        return self._arrays[name]

    def ids_of(self, tokens: list[str]) -> np.ndarray:
        """Ids of known tokens (unknown ones are skipped): e.g. the stop words seen so far."""
        return np.array([self.token_id[t] for t in tokens if t in self.token_id], np.int64)

    # -- splitting ---------------------------------------------------------------------------------------------
    def chunks(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids of every whitespace-delimited chunk, CSR: `(chunk_ids, offsets)`."""
        if len(self.chunk_id) > MAX_CACHED_CHUNKS:
            self.clear()
        cid = self.chunk_id
        # Arrow's utf8_split_whitespace uses exactly str.isspace's 29 code points (checked over all of Unicode)
        lists = pc.utf8_split_whitespace(pa.array(texts, pa.large_string()))
        flat, parent = pc.list_flatten(lists), pc.list_parent_indices(lists)
        nonempty = pc.greater(pc.binary_length(flat), 0)  # Arrow keeps empty pieces at the ends; str.split doesn't
        enc = pc.dictionary_encode(flat.filter(nonempty))
        uniq = enc.dictionary.to_pylist()
        unseen = [c for c in uniq if c not in cid]
        if unseen:
            self._learn(unseen)
        to_id = np.array([cid[c] for c in uniq], np.int64)
        chunk_ids = to_id[enc.indices.to_numpy()] if len(uniq) else np.zeros(0, np.int64)
        per_doc = np.bincount(parent.filter(nonempty).to_numpy(), minlength=len(texts))
        offsets = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(per_doc, out=offsets[1:])
        return chunk_ids, offsets

    def words(self, texts: list[str]) -> Words:
        chunk_ids, chunk_offsets = self.chunks(texts)
        return self.expand(chunk_ids, chunk_offsets)

    def expand(self, chunk_ids: np.ndarray, chunk_offsets: np.ndarray) -> Words:
        start = np.asarray(self._chunk_start, np.int64)[chunk_ids]
        length = np.asarray(self._chunk_len, np.int64)[chunk_ids]
        ends = np.cumsum(length)
        total = int(ends[-1]) if len(ends) else 0
        # position p of the output belongs to chunk k: token = start[k] + (p - (ends[k] - length[k]))
        idx = np.repeat(start - (ends - length), length) + np.arange(total)
        ids = np.asarray(self._chunk_tokens, np.int64)[idx] if total else np.zeros(0, np.int64)
        cum = np.concatenate([[0], ends])
        return Words(ids, cum[chunk_offsets], self)

    def n_words(self, texts: list[str]) -> np.ndarray:
        """Word count of each text (no token expansion)."""
        chunk_ids, offsets = self.chunks(texts)
        per_chunk = np.asarray(self._chunk_len, np.int64)[chunk_ids]
        cum = np.concatenate([[0], np.cumsum(per_chunk)])
        return np.diff(cum[offsets])

    def _learn(self, chunks: list[str]) -> None:
        """Tokenize unseen chunks; record their tokens and the new tokens' properties.

        A chunk of letters only (`str.isalpha`) that is not a special case (`dont` -> `do`, `nt`) is one token:
        every English prefix, suffix and infix rule needs a digit or punctuation (and the parity tests hold us
        to it). The rest go to spaCy in one call, joined by newlines, not spaces: a newline is a token of its
        own, so no special-case match (e.g. `''`) can span two chunks and shadow a match inside one.
        """
        rules = self._special_cases
        hard = [c for c in chunks if not c.isalpha() or c in rules]
        tokens: dict[str, list[str]] = {c: [c] for c in chunks if c.isalpha() and c not in rules}
        if hard:
            tokens.update(self._spacy_tokens(hard))
        token_id, new_texts = self.token_id, []
        for c in chunks:
            ids = []
            for text in tokens[c]:
                tid = token_id.get(text)
                if tid is None:
                    tid = token_id[text] = len(self.token_text)
                    self.token_text.append(text)
                    new_texts.append(text)
                ids.append(tid)
            self.chunk_id[c] = len(self._chunk_start)
            self._chunk_start.append(len(self._chunk_tokens))
            self._chunk_len.append(len(ids))
            self._chunk_tokens.extend(ids)
        if new_texts:
            for name, values in self._token_props(new_texts).items():
                self._prop_parts[name].append(values)
            self._arrays = {}

    def _spacy_tokens(self, chunks: list[str]) -> dict[str, list[str]]:
        from spacy.attrs import IDX, LENGTH

        joined = "\n".join(chunks)
        starts = np.zeros(len(chunks), np.int64)
        if len(chunks) > 1:
            np.cumsum([len(c) + 1 for c in chunks[:-1]], out=starts[1:])
        with self._nlp.memory_zone():
            idx_len = self._nlp.tokenizer(joined).to_array([IDX, LENGTH])  # no Token objects
        owner = (np.searchsorted(starts, idx_len[:, 0], side="right") - 1).tolist()
        out: dict[str, list[str]] = {c: [] for c in chunks}
        for a, n, k in zip(idx_len[:, 0].tolist(), idx_len[:, 1].tolist(), owner, strict=True):
            text = joined[a : a + n]
            if text != "\n":  # the separator (chunks hold no whitespace)
                out[chunks[k]].append(text)
        return out

    def _token_props(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Properties of new tokens, vectorized over their code points (C = all code points, T = tokens)."""
        lens_T = np.fromiter(map(len, texts), np.int64, len(texts))
        cps_C = np.frombuffer("".join(texts).encode("utf-32-le", errors="surrogatepass"), np.uint32)
        starts_T = np.concatenate([[0], np.cumsum(lens_T)[:-1]])
        uniq, inv_C = np.unique(cps_C, return_inverse=True)
        chars = [chr(c) for c in uniq.tolist()]
        p_cat = np.array([unicodedata.category(c).startswith("P") for c in chars])[inv_C]
        symbol = np.array([c in self._punct for c in chars])[inv_C]
        letter = np.array([c.isalpha() for c in chars])[inv_C]
        powers = np.cumprod(np.full(int(lens_T.max()) + 1, HASH_BASE, np.uint64))  # B^1 .. B^(max+1), wrapping
        powers = np.concatenate([[np.uint64(1)], powers[:-1]])  # B^0 .. B^max
        from_end_C = np.repeat(starts_T + lens_T - 1, lens_T) - np.arange(len(cps_C))
        return {
            "length": lens_T,
            "non_symbol": np.logical_or.reduceat(~symbol, starts_T),
            "alpha": np.logical_or.reduceat(letter, starts_T),
            "is_punct": np.logical_and.reduceat(p_cat, starts_T),  # spaCy's is_punct: every char is P*
            "sent_punct": np.array([t in self._sent_punct for t in texts]),
            "hash": np.add.reduceat(cps_C.astype(np.uint64) * powers[from_end_C], starts_T),
            "base_pow": powers[lens_T],
        }
