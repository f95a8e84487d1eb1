"""Building a run from its job spec, in dependency order: mixture (with resume rules) → sources → model args.

Resume rules for the mixture (DESIGN.md "Mixture"): the effective schedule is the job's stages, extended by stages
an earlier `--mix` appended (the checkpoint lists them), then by this resume's `--mix` stages. Stages of the job
that have not begun may be edited or dropped. Appended stages must start at or after the resume step, and the fingerprint of the
schedule's past must equal the checkpoint's; otherwise the resume is refused, naming the stage that changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from tokenmill.config import ConfigError
from tokenmill.train.config import MixStageSpec, TrainJob, check_stages, load_mix, normalized
from tokenmill.train.mixture import MixStage, MixtureSchedule, explain_past_change


def _stage_dicts(stages: list[MixStageSpec]) -> list[dict]:
    return [{"start_step": s.start_step, "weights": dict(s.weights)} for s in stages]


def resolve_mixture(job: TrainJob, stored: dict | None, resume_step: int, mix_path: str | None,
                    where: str) -> tuple[dict[str, str], list[dict], list[dict]]:
    """(sources name -> path, stages as dicts, the stages that came from --mix files) for this run."""
    sources = dict(job.data.sources)
    stages = _stage_dicts(job.data.stages)
    labels = [f"{where}: data.stages[{i}]" for i in range(len(stages))]
    from_mix: list[dict] = []
    if stored is not None:  # stages an earlier --mix appended live only in the checkpoint: keep them
        from_mix = [dict(s) for s in stored.get("from_mix", []) if s not in stages]
        if from_mix:
            print(f"tokenmill: keeping {len(from_mix)} stage(s) appended by an earlier --mix", flush=True)
            stages += from_mix
            labels += [f"checkpoint: stage {i} appended by an earlier --mix" for i in range(len(from_mix))]
            for name, path in stored["sources"].items():
                sources.setdefault(name, path)
    if mix_path is not None:
        mix = load_mix(mix_path)
        for name, path in mix.sources.items():
            if name in sources and sources[name] != path:
                raise ConfigError(f"{mix_path}: sources.{name}={path!r} but the run already reads {name!r} from "
                                  f"{sources[name]!r}; give the new source another name")
            sources[name] = path
        for i, st in enumerate(mix.stages):
            if st.start_step < resume_step:
                raise ConfigError(f"{mix_path}: stages[{i}].start_step={st.start_step} is before the resume step "
                                  f"{resume_step}: a new stage may only change the future")
        stages += _stage_dicts(mix.stages)
        from_mix += _stage_dicts(mix.stages)
        labels += [f"{mix_path}: stages[{i}]" for i in range(len(mix.stages))]
    check_stages([MixStageSpec(**s) for s in stages], sources, where, labels=labels)
    block = job.data.block_size or job.batch.global_batch_size
    for i, st in enumerate(stages):
        if st["start_step"] * job.batch.global_batch_size % block:
            raise ConfigError(f"{labels[i]}.start_step={st['start_step']} is not on a block boundary "
                              f"(data.block_size={block}, global_batch_size={job.batch.global_batch_size})")
    return sources, stages, from_mix


def open_sources(sources: dict[str, str], job: TrainJob) -> dict:
    """name -> PackedSequences over the token shards (plans are built once and cached beside the shards)."""
    from tokenmill.tokenize.format import ShardError
    from tokenmill.tokenize.packing import PackedSequences

    out = {}
    for name, path in sources.items():
        try:
            out[name] = PackedSequences(path, job.data.seq_len, job.data.packing)
        except (ShardError, OSError, ValueError) as err:
            raise ConfigError(f"data.sources.{name}={path!r}: {err}") from None
        if len(out[name]) == 0:
            raise ConfigError(f"data.sources.{name}={path!r}: no sequence of {job.data.seq_len + 1} tokens "
                              f"(dataset has {out[name].ds.num_tokens} tokens); lower data.seq_len")
    return out


def source_fingerprint(packed, job: TrainJob) -> str:
    """Shard checksums + packing: two sources with equal fingerprints yield identical sequences."""
    blob = json.dumps({"shards": [s.get("sha256") for s in packed.ds.shards], "seq_len": job.data.seq_len,
                       "packing": job.data.packing}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_schedule(packed: dict, stages: list[dict], job: TrainJob) -> MixtureSchedule:
    return MixtureSchedule({n: len(p) for n, p in packed.items()},
                           [MixStage(s["start_step"], normalized(s["weights"])) for s in stages],
                           seed=job.data.seed, samples_per_step=job.batch.global_batch_size,
                           block_size=job.data.block_size, on_exhausted=job.data.on_exhausted)


def check_past(schedule: MixtureSchedule, fps: dict[str, str], stored: dict, step: int, where: str) -> None:
    """Refuse a resume whose schedule would have fed steps [0, step) differently."""
    now = json.loads(json.dumps(schedule.past(step, fps)))
    if schedule.past_fingerprint(step, fps) != stored["fingerprint"]:
        raise ConfigError(f"{where}: cannot resume at step {step}: {explain_past_change(stored['past'], now)}")


def model_args_for(job: TrainJob, packed: dict):
    from tokenmill.train.model import PRESETS, model_args

    vocabs = {n: p.ds.vocab_size for n, p in packed.items()}
    if len(set(vocabs.values())) > 1:
        raise ConfigError(f"data.sources: tokenized with different vocabularies {vocabs}; use one tokenizer")
    overrides = dict(job.model.overrides)
    overrides.setdefault("vocab_size", next(iter(vocabs.values())))
    if job.model.preset in PRESETS:
        overrides.setdefault("max_seq_len", max(PRESETS[job.model.preset].max_seq_len, job.data.seq_len))
    args = model_args(job.model.preset, **overrides)
    if args.max_seq_len < job.data.seq_len:
        raise ConfigError(f"model.overrides.max_seq_len={args.max_seq_len} < data.seq_len={job.data.seq_len}")
    if args.vocab_size < next(iter(vocabs.values())):
        raise ConfigError(f"model.overrides.vocab_size={args.vocab_size} is smaller than the data's vocabulary "
                          f"({next(iter(vocabs.values()))})")
    return args


def tokenizer_path(job: TrainJob, packed: dict) -> str | None:
    if job.tokenizer:
        return str(Path(job.tokenizer).resolve())
    first = packed[next(iter(sorted(packed)))]
    return (first.ds.meta.get("tokenizer") or {}).get("path")


def args_dict(args) -> dict:
    return asdict(args)
