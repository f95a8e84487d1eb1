"""The training job spec (`tokenmill train JOB.yaml`): model, data mixture, optimizer, checkpoints, spikes, provenance.

Validated before any work with `tokenmill.config.validate` (errors name the file and key path). Cross-field rules
(stage order, block alignment, batch divisibility) raise ConfigError with the key and how to fix it (STYLE habit 10).
Relative paths are taken from the current directory, like every other tokenmill command.

    name: tiny
    run_dir: out/train-tiny
    model: {preset: tiny, overrides: {n_layers: 2}}
    data:
      sources: {web: out/tokens/cc}            # tokenized dataset folders, one per source
      seq_len: 128
      stages:                                  # the mixture: weights from each start_step on
        - {start_step: 0, weights: {web: 1.0}}
    batch: {global_batch_size: 8, micro_batch_size: 4}
    optim: {lr: 3.0e-3, warmup_steps: 20, schedule: cosine}
    max_steps: 300
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tokenmill.config import ConfigError, Strict, read_yaml, validate


class MixStageSpec(Strict):
    start_step: int = Field(ge=0)
    weights: dict[str, float] = Field(min_length=1)  # source -> weight (normalized; zero = not drawn)


class DataSpec(Strict):
    sources: dict[str, str] = Field(min_length=1)  # name -> tokenized dataset folder (or fsspec URL)
    seq_len: int = Field(ge=2)
    packing: Literal["concat", "bestfit"] = "concat"
    stages: list[MixStageSpec] = Field(min_length=1)
    seed: int = 0
    block_size: int | None = Field(default=None, ge=1)  # samples per exact-count block; default one global batch
    on_exhausted: Literal["wrap", "stop"] = "wrap"  # wrap: new epoch with a fresh permutation
    num_workers: int = Field(default=0, ge=0)  # loader worker processes per rank (shared-memory hand-off); 0 = read inline, fastest on busy cores
    prefetch: int = Field(default=2, ge=1)  # micro-batches each worker keeps ready


class BatchSpec(Strict):
    global_batch_size: int = Field(ge=1)  # sequences per optimizer step, all ranks together
    micro_batch_size: int = Field(ge=1)  # sequences per forward pass on one rank


class OptimSpec(Strict):
    lr: float = Field(default=3e-4, gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)  # final lr / peak lr
    warmup_steps: int = Field(default=100, ge=0)
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    decay_fraction: float = Field(default=0.2, gt=0, le=1)  # WSD: last fraction of steps decays linearly (Hu 2024)
    weight_decay: float = Field(default=0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0)
    grad_clip: float = Field(default=1.0, ge=0)  # 0 = no clipping


class CheckpointSpec(Strict):
    every: int = Field(default=100, ge=1)
    keep_last: int = Field(default=3, ge=1)


class SpikeSpec(Strict):
    window: int = Field(default=50, ge=2)  # trailing steps the z-score is computed over
    min_history: int = Field(default=20, ge=2)  # no detection before this many steps of history
    z_threshold: float = Field(default=5.0, gt=0)
    policy: Literal["skip", "stop", "record"] = "skip"  # skip the update / stop the run / only record


class ProvenanceSpec(Strict):
    enabled: bool = True
    flush_every: int = Field(default=50, ge=1)  # steps per Parquet file (also flushed at each checkpoint)


class DistributedSpec(Strict):
    strategy: Literal["ddp", "fsdp"] = "ddp"  # used under torchrun (WORLD_SIZE > 1)


class ModelSpec(Strict):
    preset: str = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)  # any ModelArgs field; vocab_size defaults to the data's


class TrainJob(Strict):
    name: str = "train"
    run_dir: str
    tokenizer: str | None = None  # default: the tokenizer path recorded in the first source's dataset.json
    model: ModelSpec = ModelSpec()
    data: DataSpec
    batch: BatchSpec
    optim: OptimSpec = OptimSpec()
    max_steps: int = Field(ge=1)
    checkpoint: CheckpointSpec = CheckpointSpec()
    spikes: SpikeSpec = SpikeSpec()
    provenance: ProvenanceSpec = ProvenanceSpec()
    distributed: DistributedSpec = DistributedSpec()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int | None = Field(default=None, ge=1)  # torch threads per process on CPU; 1 avoids oversubscription
    log_every: int = Field(default=10, ge=1)  # console lines; metrics.jsonl gets every step
    tensorboard: bool = True


class MixAppend(Strict):
    """`--mix NEW_MIX.yaml`: stages appended at resume, and any new sources they use."""

    sources: dict[str, str] = Field(default_factory=dict)
    stages: list[MixStageSpec] = Field(min_length=1)


def check_stages(stages: list[MixStageSpec], sources: dict[str, str], where: str, key: str = "data.stages",
                 labels: list[str] | None = None) -> None:
    """Stage rules: the first starts at 0, start steps increase, weights name known sources, are >= 0 and not all 0.
    Errors name `where: key[i]`, or labels[i] when the stages come from several files (a --mix file's own)."""
    name_of = labels or [f"{where}: {key}[{i}]" for i in range(len(stages))]
    if stages[0].start_step != 0:
        raise ConfigError(f"{name_of[0]}.start_step={stages[0].start_step}: the first stage must start at 0")
    for i, st in enumerate(stages):
        if i and st.start_step <= stages[i - 1].start_step:
            raise ConfigError(f"{name_of[i]}.start_step={st.start_step} must be after the previous stage "
                              f"({name_of[i - 1]}, start_step {stages[i - 1].start_step})")
        for name, w in st.weights.items():
            if name not in sources:
                raise ConfigError(f"{name_of[i]}.weights.{name}: unknown source; known: {sorted(sources)}")
            if w < 0:
                raise ConfigError(f"{name_of[i]}.weights.{name}={w}: weights must be >= 0")
        if sum(st.weights.values()) <= 0:
            raise ConfigError(f"{name_of[i]}.weights: at least one weight must be positive")


def check_job(job: TrainJob, where: str, world_size: int = 1) -> None:
    """Cross-field rules, each with the key to fix."""
    d, b = job.data, job.batch
    check_stages(d.stages, d.sources, where)
    per_rank, rem = divmod(b.global_batch_size, world_size)
    if rem or per_rank % b.micro_batch_size:
        raise ConfigError(f"{where}: batch.global_batch_size={b.global_batch_size} must be a multiple of "
                          f"micro_batch_size ({b.micro_batch_size}) x ranks ({world_size})")
    block = d.block_size or b.global_batch_size
    for i, st in enumerate(d.stages):
        if st.start_step * b.global_batch_size % block:
            raise ConfigError(f"{where}: data.stages[{i}].start_step={st.start_step}: its first sample "
                              f"({st.start_step * b.global_batch_size}) must fall on a block boundary "
                              f"(data.block_size={block})")
    if job.spikes.min_history > job.spikes.window:
        raise ConfigError(f"{where}: spikes.min_history={job.spikes.min_history} must be <= spikes.window")


def load_job(path: str | Path, world_size: int = 1) -> TrainJob:
    job = validate(TrainJob, read_yaml(path), str(path))
    check_job(job, str(path), world_size)
    return job


def load_mix(path: str | Path) -> MixAppend:
    return validate(MixAppend, read_yaml(path), str(path))


def normalized(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: v / total for k, v in sorted(weights.items()) if v > 0}
