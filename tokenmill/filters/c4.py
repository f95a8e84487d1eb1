"""C4's line rules (Raffel et al. 2020, §2.2) as FineWeb configures them: rewrites text, drops whole pages.

Same decisions and same rewritten text as datatrove's `C4QualityFilter(filter_no_terminal_punct=False)` (the
FineWeb setting; v0.10.1): each line is stripped; lines with a word over 1,000 chars, fewer than 3 words, the
word "javascript" or a cookie/terms-of-use phrase are removed; Wikipedia-style citations are cut; a page with
"lorem ipsum" or "{" on a surviving line is dropped, and so is a page with fewer than 5 sentences left.

datatrove counts sentences by running spaCy's sentencizer on every kept line, which is most of its cost. The
sentencizer is a small state machine over tokens, so we precompute, per cached whitespace chunk, its effect on
that state (`_chunk_summary`) and fold lines chunk by chunk; counting stops once a page reaches the minimum.
Same decisions and same text as datatrove on 1,210 real CC texts and the generated crawl
(tests/test_filters_heuristics.py); speed of the whole FineWeb stack: see gopher.py.
"""

from __future__ import annotations

import re
from typing import ClassVar

from tokenmill.filters.base import WordsStage
from tokenmill.stage import StageConfig

CITATION_REGEX = re.compile(r"\[\d*]|\[edit]|\[citation needed]")  # datatrove c4_filters.py
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies")  # C4 reference code (tensorflow_datasets c4_utils.py) via datatrove
_WS_RUNS = re.compile(r"(\s+)")  # Python's \s is str.isspace, like spaCy's split


class C4Config(StageConfig):
    remove_citations: bool = True  # C4 code: strip "[1]", "[edit]", "[citation needed]"
    filter_no_terminal_punct: bool = False  # C4 paper: True; FineWeb turns it off (datatrove default True)
    min_num_sentences: int = 5  # C4 paper; -1 disables
    min_words_per_line: int = 3  # C4 paper; -1 disables
    max_word_length: int = 1000  # C4 code; -1 disables
    filter_lorem_ipsum: bool = True  # C4 paper
    filter_javascript: bool = True  # C4 paper
    filter_curly_bracket: bool = True  # C4 paper
    filter_policy: bool = True  # C4 code
    language: str = "en"


class C4Filter(WordsStage):
    name = "c4"
    Config = C4Config
    score_columns: ClassVar[tuple[str, ...]] = ("c4.line_kept_frac",)

    def setup(self) -> None:
        super().setup()
        self._summary: dict[int, tuple[int, bool, int, bool]] = {}
        self._summary_generation = self._splitter.generation

    def filter_batch(self, texts: list[str]):
        if self._splitter is None:
            self.setup()
        self._splitter.chunks(texts)  # learn the batch's chunks in one spaCy call
        if self._summary_generation != self._splitter.generation:  # the chunk cache was cleared
            self._summary, self._summary_generation = {}, self._splitter.generation
        out_texts, reasons, kept_frac = [], [], []
        for text in texts:
            new, reason, frac = self._filter_one(text)
            out_texts.append(new)
            reasons.append(reason)
            kept_frac.append(frac)
        return {"text": out_texts, "c4.line_kept_frac": kept_frac}, reasons

    def _filter_one(self, text: str) -> tuple[str, str | None, float]:
        cfg = self.config
        lines = text.splitlines()
        kept: list[str] = []
        sentences = 0
        for line in lines:
            line = line.strip()
            words = line.split()
            if cfg.max_word_length != -1 and len(line) > cfg.max_word_length and any(
                len(w) > cfg.max_word_length for w in words
            ):
                continue
            if cfg.remove_citations and "[" in line:
                line = CITATION_REGEX.sub("", line)
            if cfg.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                continue
            if len(words) < cfg.min_words_per_line:
                continue
            lower = line.lower()
            if cfg.filter_lorem_ipsum and "lorem ipsum" in lower:
                return text, "c4.lorem_ipsum", 0.0
            if cfg.filter_javascript and "javascript" in lower:
                continue
            if cfg.filter_curly_bracket and "{" in line:
                return text, "c4.curly_bracket", 0.0
            if cfg.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
                continue
            if cfg.min_num_sentences != -1 and sentences < cfg.min_num_sentences:
                sentences += self.count_sentences(line)
            kept.append(line)
        frac = len(kept) / len(lines) if lines else 0.0
        if sentences < cfg.min_num_sentences:
            return text, "c4.too_few_sentences", frac
        return "\n".join(kept).strip(), None, frac

    def count_sentences(self, line: str) -> int:
        """`len(split_into_sentences(line, "en"))` in datatrove: the number of spaCy sentencizer sentences.

        Tokens are the chunks' cached tokens plus spaCy's whitespace tokens (a leading run, or any run other
        than a single space). A whitespace token is not punctuation, so it can start a sentence.
        """
        pieces = _WS_RUNS.split(line)  # chunk, run, chunk, run, ..., chunk (chunks may be "" at the ends)
        n, seen = 1, False
        for j, piece in enumerate(pieces):
            if j % 2 == 0:
                if piece:
                    starts_f, seen_f, starts_t, seen_t = self._chunk_summary(piece)
                    n, seen = (n + starts_t, seen_t) if seen else (n + starts_f, seen_f)
            elif seen and (piece != " " or j == 1 and not pieces[0]):
                n, seen = n + 1, False
        return n

    def _chunk_summary(self, chunk: str) -> tuple[int, bool, int, bool]:
        """How a chunk moves the sentencizer: (new starts, seen_period after) from seen_period False / True."""
        sp = self._splitter
        cid = sp.chunk_id.get(chunk)
        if cid is None:
            sp.chunks([chunk])
            cid = sp.chunk_id[chunk]
        s = self._summary.get(cid)
        if s is None:
            start, length = sp._chunk_start[cid], sp._chunk_len[cid]
            toks = sp._chunk_tokens[start : start + length]
            punct, stop = sp.prop("is_punct"), sp.prop("sent_punct")
            flags = [(bool(punct[t] or stop[t]), bool(stop[t])) for t in toks]
            s = self._summary[cid] = (*_sentencize(flags, False), *_sentencize(flags, True))
        return s


def _sentencize(flags: list[tuple[bool, bool]], seen: bool) -> tuple[int, bool]:
    """spaCy's Sentencizer.predict over tokens given as (is punctuation, is a sentence-final char)."""
    starts = 0
    for is_p, is_stop in flags:
        if seen and not is_p:
            starts, seen = starts + 1, False
        elif is_stop:
            seen = True
    return starts, seen

