"""Evaluation benchmark items for decontamination: local JSONL(.gz) / Parquet / CSV files, or `datasets` names.

Each benchmark has a template: the fields whose text, joined by newlines, forms one item (question, choices,
answer...). Known templates (`TEMPLATES`) cover the canonical files; any other benchmark uses every string (or
list-of-strings) field of its records, in file order. CSV files without a header (MMLU) name fields by index.
"""

from __future__ import annotations

import csv
import glob
import gzip
import json
import os
from typing import Literal

import pyarrow.parquet as pq
from pydantic import model_validator

from tokenmill.config import ConfigError
from tokenmill.stage import StageConfig

Field_ = str | int

TEMPLATES: dict[str, list[Field_]] = {
    "gsm8k": ["question", "answer"],  # openai/grade-school-math test.jsonl
    "mmlu": [0, 1, 2, 3, 4],  # hendrycks/test data/test/*.csv: question, A, B, C, D (5: the answer letter)
    "humaneval": ["prompt", "canonical_solution"],  # openai/human-eval HumanEval.jsonl.gz
}
FORMATS = ("jsonl", "parquet", "csv")


class BenchmarkSpec(StageConfig):
    """One benchmark: a local `path` (file, folder or glob) or a `datasets` name (needs network)."""

    name: str
    path: str | None = None
    dataset: str | None = None
    subset: str | None = None
    split: str = "test"
    fields: list[Field_] | None = None  # None: TEMPLATES[name], else every text field
    format: Literal["auto", "jsonl", "parquet", "csv"] = "auto"

    @model_validator(mode="after")
    def _one_source(self) -> BenchmarkSpec:
        if (self.path is None) == (self.dataset is None):
            raise ValueError(f"benchmark {self.name!r}: give exactly one of `path` or `dataset`")
        return self

    def template(self) -> list[Field_] | None:
        return self.fields if self.fields is not None else TEMPLATES.get(self.name.lower())


def benchmark_files(spec: BenchmarkSpec) -> list[str]:
    """The files of a local benchmark, sorted; ConfigError naming the path when there are none."""
    assert spec.path is not None
    path = os.path.expanduser(spec.path)
    if os.path.isdir(path):
        files = sorted(p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                       if os.path.isfile(p) and _format_of(p, spec) is not None)
    else:
        files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else ([path] if os.path.isfile(path) else [])
    if not files:
        raise ConfigError(f"benchmark {spec.name!r}: no benchmark file at {spec.path} "
                          f"(expected JSONL, Parquet or CSV; or give `dataset:` to load it with `datasets`)")
    return files


def _format_of(path: str, spec: BenchmarkSpec) -> str | None:
    if spec.format != "auto":
        return spec.format
    name = path.lower().removesuffix(".gz")
    for ext, fmt in ((".jsonl", "jsonl"), (".json", "jsonl"), (".parquet", "parquet"), (".csv", "csv")):
        if name.endswith(ext):
            return fmt
    return None


def _records(path: str, fmt: str, by_index: bool) -> list[dict | list]:
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            rows = list(csv.reader(f)) if by_index else list(csv.DictReader(f))
            return rows
        out = []
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ConfigError(f"{path}:{line_no}: not valid JSON: {err}") from None
        return out


def _item_text(record: dict | list, fields: list[Field_] | None) -> str:
    if fields is None:
        values = list(record.values()) if isinstance(record, dict) else list(record)
        values = [v for v in values if isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))]
    elif isinstance(record, dict):
        values = [record.get(f if isinstance(f, str) else list(record)[f]) for f in fields]
    else:
        values = [record[f] if isinstance(f, int) and f < len(record) else None for f in fields]
    parts = ["\n".join(v) if isinstance(v, list) else str(v) for v in values if v is not None]
    return "\n".join(parts)


def load_items(spec: BenchmarkSpec) -> list[str]:
    """The text of every item of one benchmark, in file order."""
    fields = spec.template()
    if spec.dataset is not None:
        return _load_dataset(spec, fields)
    items = []
    for path in benchmark_files(spec):
        fmt = _format_of(path, spec)
        by_index = fields is not None and all(isinstance(f, int) for f in fields)
        items += [_item_text(r, fields) for r in _records(path, fmt, by_index)]
    return items


def _load_dataset(spec: BenchmarkSpec, fields: list[Field_] | None) -> list[str]:
    try:
        import datasets

        ds = datasets.load_dataset(spec.dataset, spec.subset, split=spec.split)
    except Exception as err:  # offline, unknown name, gated: all mean "cannot get this benchmark"
        raise ConfigError(f"benchmark {spec.name!r}: cannot load dataset {spec.dataset!r} "
                          f"(subset {spec.subset}, split {spec.split}): {err}") from None
    return [_item_text(r, fields) for r in ds]

