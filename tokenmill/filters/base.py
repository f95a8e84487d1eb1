"""What every filter shares: run only on rows still kept, append signal columns, set `drop_reason`.

A filter computes its signals for the *live* rows of a batch (those whose `drop_reason` is still null: a dropped
row is never looked at again, which is where a stack of filters saves most of its time) and writes them back at
their row positions; dropped rows get nulls in the new columns. Rows are never deleted.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.config import ConfigError
from tokenmill.filters.words import Words, WordSplitter, shared_splitter
from tokenmill.schema import DROP_REASON, TEXT, set_column, with_drop_reason
from tokenmill.stage import Stage


class FilterStage(Stage):
    """A `Stage` whose `filter_batch(texts)` returns `(signals, reasons)` for the live rows only.

    `signals` maps a column name to a NumPy array (or list) aligned with `texts`; `reasons` is a list of
    `family.rule` strings or None. Subclasses that rewrite text return a `"text"` entry in `signals`.
    """

    score_columns: ClassVar[tuple[str, ...]] = ()  # columns worth a histogram in the run report
    signal_types: ClassVar[dict[str, pa.DataType]] = {}

    def process(self, table: pa.Table) -> pa.Table:
        live = live_rows(table)
        texts = table[TEXT].take(pa.array(live)).to_pylist() if len(live) else []
        texts = ["" if t is None else t for t in texts]
        signals, reasons = self.filter_batch(texts) if texts else ({}, [])
        n = table.num_rows
        for name, values in signals.items():
            if name == TEXT:
                table = set_column(table, TEXT, scatter(table[TEXT], live, values, pa.large_string()))
                continue
            typ = self.signal_types.get(name, pa.float32())
            table = set_column(table, name, scatter(None, live, values, typ, n))
        full = [None] * n
        for i, r in zip(live.tolist(), reasons, strict=True):
            full[i] = r
        return with_drop_reason(table, full)

    def filter_batch(self, texts: list[str]) -> tuple[dict[str, object], list[str | None]]:  # pragma: no cover
        raise NotImplementedError


class WordsStage(FilterStage):
    """A `FilterStage` that splits text into words as datatrove does (spaCy's blank tokenizer, `words.py`).

    The base of the Gopher, C4 and FineWeb filters, and the one to subclass for a word-level rule of your own:
    give the config a `language: str = "en"` field and call `self.words(texts)` inside `filter_batch`; the
    splitter is built once per worker and its chunk cache never travels with the pickled stage.
    """

    _splitter: WordSplitter | None = None

    def check(self) -> None:
        from tokenmill.filters.words import blank_pipeline

        try:
            blank_pipeline(self.config.language)
        except (ImportError, OSError) as err:
            raise ConfigError(f"{self.name}: language {self.config.language!r}: no spaCy tokenizer ({err})") from None

    def setup(self) -> None:
        if self._splitter is None:
            self._splitter = shared_splitter(self.config.language)

    def words(self, texts: list[str]) -> Words:
        self.setup()
        return self._splitter.words(texts)

    def __getstate__(self) -> dict:
        return {"config": self.config}  # the chunk cache stays in the worker


def live_rows(table: pa.Table) -> np.ndarray:
    """Row positions whose `drop_reason` is still null."""
    return np.flatnonzero(pc.is_null(table[DROP_REASON]).to_numpy(zero_copy_only=False))


def scatter(base, live: np.ndarray, values, typ: pa.DataType, n: int | None = None) -> pa.Array:
    """Write `values` at positions `live` over `base` (a column) or over nulls of length `n`."""
    if base is not None:
        out = base.to_pylist()
    else:
        out = [None] * n
    vals = values.tolist() if isinstance(values, np.ndarray) else list(values)
    for i, v in zip(live.tolist(), vals, strict=True):
        out[i] = v
    return pa.array(out, typ)


def read_list(path: str, what: str) -> list[str]:
    """Lines of a (possibly gzipped) list file, `#` comments and blanks skipped; ConfigError names the file."""
    import gzip

    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise ConfigError(f"{path}: cannot read {what}: {err}") from None
    return [ln for ln in lines if ln and not ln.startswith("#")]
