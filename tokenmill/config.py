"""Typed job configs, loaded from YAML with `yaml.safe_load`.

Errors name the file and the key path (`stages[2].language.min_score: Input should be a valid number`), and are
raised before any work starts. This module imports no stage: stage parameters are validated by the plan
(`tokenmill.pipeline.plan`) against each stage's own `Config`, with the same error format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A job spec is wrong. The message says which file, which key, and what to do."""


M = TypeVar("M", bound=BaseModel)


def format_validation_error(err: ValidationError, where: str, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        path = prefix
        for part in e["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        lines.append(f"{where}: {path or '<root>'}: {msg}")
    return "\n".join(lines)


def validate(model: type[M], data: Any, where: str, prefix: str = "") -> M:
    """`model.model_validate(data)`, with errors re-raised as ConfigError naming `where` and the key path."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where, prefix)) from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read job spec: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a job spec must be a mapping at the top level, got {type(data).__name__}")
    return data


def load(model: type[M], path: str | Path) -> M:
    return validate(model, read_yaml(path), str(path))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(Strict):
    """One crawl (or document) source. Each file is one shard: one Ray task."""

    paths: list[str] = Field(min_length=1)  # local paths, globs, fsspec URLs, or CC `*.paths.gz` manifests
    source: str = "cc"  # written to the `source` column; one tokenized dataset per source
    format: Literal["auto", "warc", "wet", "wat", "parquet", "jsonl"] = "auto"
    prefix: str = ""  # prepended to relative lines of a `*.paths.gz` manifest, e.g. "s3://commoncrawl/"
    limit_files: int | None = Field(default=None, ge=1)  # take the first N files (sampling a big crawl)
    extractor: Literal["resiliparse", "trafilatura"] = "resiliparse"
    main_content: bool = True  # resiliparse: keep the main content only (drop navigation, footers)
    max_record_bytes: int = Field(default=5_000_000, ge=1)  # larger HTML payloads are counted, not parsed
    max_text_chars: int = Field(default=1_000_000, ge=1)  # longer extracted texts are counted and dropped
    extract_timeout_s: float = Field(default=5.0, gt=0)  # one pathological page cannot stall a worker
    min_text_chars: int = Field(default=1, ge=0)


class RayConfig(Strict):
    address: str | None = None  # None: $RAY_ADDRESS if set, else an embedded local Ray
    num_cpus: int | None = Field(default=None, ge=1)  # for the embedded Ray only
    max_retries: int = Field(default=3, ge=0)  # task retries on worker or node death


class RejectedConfig(Strict):
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)  # fraction of dropped docs written to rejected/


class PipelineJob(Strict):
    """A pipeline job spec: inputs → stages (in order) → documents (Parquet) [→ token shards]."""

    name: str = "job"
    inputs: list[InputSpec] = Field(min_length=1)
    output: str
    batch_size: int = Field(default=1000, ge=1)
    ray: RayConfig = RayConfig()
    rejected: RejectedConfig = RejectedConfig()
    # Each entry is a one-key mapping {stage_name: {params}}; validated against that stage's Config by the plan.
    stages: list[dict[str, Any]] = Field(default_factory=list)
    tokenize: dict[str, Any] | None = None  # validated by tokenmill.tokenize's config; None = stop at documents

    @field_validator("stages")
    @classmethod
    def _one_key_each(cls, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, s in enumerate(stages):
            if len(s) != 1:
                raise ValueError(f"stages[{i}] must be a one-key mapping like `- language: {{...}}`, got {list(s)}")
            params = next(iter(s.values()))
            if params is not None and not isinstance(params, dict):
                raise ValueError(f"stages[{i}]: parameters must be a mapping, got {type(params).__name__}")
        return stages

