"""AdamW with decoupled weight decay on matrices only, and the learning-rate schedules.

    warmup: linear from lr/warmup to lr over `warmup_steps` (nanochat, torchtitan)
    cosine: then cosine from lr to min_lr_ratio·lr at max_steps
    wsd:    warmup-stable-decay (Hu et al. 2024, MiniCPM): flat at lr, then linear to min_lr_ratio·lr over the
            last `decay_fraction` of steps — a run can be extended by resuming before the decay starts
    constant: flat after warmup
Norm weights, embeddings and the (non-parameter) router biases get no weight decay.
"""

from __future__ import annotations

import math

import torch

from tokenmill.train.config import OptimSpec


def build_optimizer(model: torch.nn.Module, spec: OptimSpec) -> torch.optim.AdamW:
    """AdamW's fused kernel on CPU and CUDA (one pass per tensor; on CPU 18 vs 104 ms per step for the
    36M-parameter model of `python -m benchmarks.train --profile`, `fp32_kernels`); the default elsewhere."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embed" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay) or None
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, fused=fused)


def keep_implementation(optimizer: torch.optim.AdamW) -> None:
    """After load_state_dict: the kernel (fused/foreach) is this build's choice, not the checkpoint's — loading
    copies the saved param_groups, flags included, so a checkpoint from before CPU fusing would unfuse the run."""
    for group in optimizer.param_groups:
        for flag in ("fused", "foreach"):
            group[flag] = optimizer.defaults[flag]


def lr_factor(step: int, spec: OptimSpec, max_steps: int) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based)."""
    if spec.warmup_steps and step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    floor = spec.min_lr_ratio
    if spec.schedule == "constant":
        return 1.0
    if spec.schedule == "wsd":
        decay_start = max_steps - int(round(spec.decay_fraction * max_steps))
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(max_steps - decay_start, 1)
        return 1.0 - (1.0 - floor) * min(progress, 1.0)
    progress = (step - spec.warmup_steps) / max(max_steps - spec.warmup_steps, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, step: int, spec: OptimSpec, max_steps: int) -> float:
    """Set every group's lr for `step` (a pure function of the step: nothing to restore at resume)."""
    lr = spec.lr * lr_factor(step, spec, max_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
