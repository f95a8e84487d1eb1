"""Rotary position embedding on MLA's rope dimensions, with YaRN when the context is extended.

DeepSeek's layout: the rope dimensions are interleaved pairs (x0, x1), (x2, x3), ... each rotated by one
frequency (a complex multiply). Frequencies are theta^(-2i/d) with d = qk_rope_head_dim; when max_seq_len >
original_seq_len, YaRN blends interpolated (freq / factor) and original frequencies with a linear ramp between the
correction dimensions of beta_fast and beta_slow rotations, and the softmax scale is multiplied by
mscale^2 = (0.1 * mscale * ln(factor) + 1)^2 (DeepSeek-V2 paper, Appendix B; V3 `inference/model.py`).

Legend: B batch, T sequence, H heads, R rope dims (R/2 complex pairs).
"""

from __future__ import annotations

import math

import torch

from tokenmill.train.model_args import ModelArgs


def is_extended(args: ModelArgs) -> bool:
    return args.max_seq_len > args.original_seq_len


def yarn_mscale(args: ModelArgs) -> float:
    """Attention-temperature correction for an extended context (1.0 otherwise)."""
    if not is_extended(args) or args.rope_factor <= 1:
        return 1.0
    return 0.1 * args.mscale * math.log(args.rope_factor) + 1.0


def softmax_scale(args: ModelArgs) -> float:
    return args.qk_head_dim ** -0.5 * yarn_mscale(args) ** 2


def _correction_dim(n_rotations: float, dim: int, base: float, seq_len: int) -> float:
    """The rope dimension whose wavelength fits n_rotations times into seq_len."""
    return dim * math.log(seq_len / (n_rotations * 2 * math.pi)) / (2 * math.log(base))


def rope_frequencies(args: ModelArgs) -> torch.Tensor:
    """Inverse frequencies [R/2], YaRN-corrected when the context is extended."""
    dim, base = args.qk_rope_head_dim, args.rope_theta
    freqs_P = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if is_extended(args):
        low = max(math.floor(_correction_dim(args.beta_fast, dim, base, args.original_seq_len)), 0)
        high = min(math.ceil(_correction_dim(args.beta_slow, dim, base, args.original_seq_len)), dim - 1)
        if low == high:
            high += 0.001  # avoid a zero-width ramp
        ramp_P = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        keep_P = 1 - ramp_P  # 1 = high-frequency dims keep their frequency, 0 = fully interpolated
        freqs_P = freqs_P / args.rope_factor * (1 - keep_P) + freqs_P * keep_P
    return freqs_P


def rope_cos_sin(args: ModelArgs, seq_len: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables [seq_len, R/2] (float32)."""
    freqs_P = rope_frequencies(args).to(device)
    angles_TP = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), freqs_P)
    return angles_TP.cos(), angles_TP.sin()


def apply_rope(x_BTHR: torch.Tensor, cos_TP: torch.Tensor, sin_TP: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs: (a, b) -> (a cos - b sin, a sin + b cos); same as DeepSeek's complex multiply."""
    dtype = x_BTHR.dtype
    x = x_BTHR.float().unflatten(-1, (-1, 2))
    a, b = x[..., 0], x[..., 1]
    cos, sin = cos_TP[:, None, :], sin_TP[:, None, :]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2).to(dtype)
