"""Turn a job spec into runnable steps: stage names → classes, parameters validated, resources checked.

The registry below is the one list of stage names a job spec may use. Each entry is an import path, so a job that
uses only the filters never imports torch or the dedup code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from tokenmill.config import ConfigError, PipelineJob, load, validate
from tokenmill.stage import GlobalStage, Stage

STAGES: dict[str, str] = {
    # filters/ — one file per family
    "language": "tokenmill.filters.language:LanguageFilter",
    "gopher_repetition": "tokenmill.filters.gopher:GopherRepetitionFilter",
    "gopher_quality": "tokenmill.filters.gopher:GopherQualityFilter",
    "c4": "tokenmill.filters.c4:C4Filter",
    "fineweb_quality": "tokenmill.filters.fineweb:FineWebQualityFilter",
    "repetition": "tokenmill.filters.repetition:RepetitionFilter",
    "quality": "tokenmill.filters.quality:QualityFilter",
    "pii": "tokenmill.filters.pii:PIIFilter",
    "urls": "tokenmill.filters.urls:URLFilter",
    # dedup/ — global steps (a barrier over all shards, then a per-shard pass)
    "decontaminate": "tokenmill.dedup.decontam:Decontaminate",
    "exact_dedup": "tokenmill.dedup.exact:ExactDedup",
    "minhash_dedup": "tokenmill.dedup.minhash:MinHashDedup",
}


def stage_class(name: str, where: str = "job spec") -> type[Stage]:
    """A registered name, or `package.module:Class` for a user's own stage (it must subclass Stage)."""
    if name not in STAGES and ":" not in name:
        raise ConfigError(f"{where}: unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))} "
                          "(or give your own as package.module:Class)")
    module, _, attr = STAGES.get(name, name).partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{where}: cannot import stage {name!r}: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise ConfigError(f"{where}: {name!r} is not a tokenmill.stage.Stage subclass")
    return cls


@dataclass(frozen=True)
class StageSpec:
    """A stage as it travels to a worker: its name and validated parameters (picklable, hashable)."""

    name: str
    params: dict

    def build(self) -> Stage:
        cls = stage_class(self.name)
        return cls(cls.Config(**self.params))

    @property
    def is_global(self) -> bool:
        return issubclass(stage_class(self.name), GlobalStage)


def stage_specs(job: PipelineJob, where: str) -> list[StageSpec]:
    specs = []
    for i, entry in enumerate(job.stages):
        name, params = next(iter(entry.items()))
        cls = stage_class(name, f"{where}: stages[{i}]")
        cfg = validate(cls.Config, params or {}, where, prefix=f"stages[{i}].{name}")
        specs.append(StageSpec(name, cfg.model_dump(mode="json")))
    return specs


@dataclass(frozen=True)
class Plan:
    job: PipelineJob
    spec_path: str
    stages: list[StageSpec]

    def segments(self) -> list[list[StageSpec]]:
        """Split the stage list at global stages: each global stage starts a new segment (after its barrier)."""
        segs: list[list[StageSpec]] = [[]]
        for s in self.stages:
            if s.is_global:
                segs.append([s])
            else:
                segs[-1].append(s)
        return segs


def build_plan(job_or_path: PipelineJob | str | Path, check_resources: bool = True) -> Plan:
    """Validate everything that can be validated before any work starts."""
    if isinstance(job_or_path, PipelineJob):
        job, where = job_or_path, "<job>"
    else:
        where = str(job_or_path)
        job = load(PipelineJob, job_or_path)
    specs = stage_specs(job, where)
    if check_resources:
        for i, spec in enumerate(specs):
            try:
                spec.build().check()
            except ConfigError as err:
                raise ConfigError(f"{where}: stages[{i}].{spec.name}: {err}") from None
        _check_output(job.output, where)
        if job.tokenize is not None:
            from tokenmill.tokenize.pipeline import TokenizeConfig

            validate(TokenizeConfig, job.tokenize, where, prefix="tokenize")
    return Plan(job, where, specs)


def _check_output(output: str, where: str) -> None:
    if "://" in output:
        raise ConfigError(f"{where}: output: {output}: outputs go to a filesystem every Ray node mounts (local, "
                          "NFS, Lustre, FSx); object-store URLs are supported for inputs and token shards only")
    p = Path(output).resolve()
    parent = next((q for q in [p, *p.parents] if q.exists()), None)
    if parent is None or not parent.is_dir() or not _writable(parent):
        raise ConfigError(f"{where}: output: {output} is not writable (nearest existing folder: {parent})")


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK | os.X_OK)
