"""Multi-head Latent Attention (DeepSeek-V2/V3).

Queries: x -> wq_a (q_lora_rank) -> RMSNorm -> wq_b -> per head [nope | rope]; with q_lora_rank = 0 a single wq.
Keys/values: x -> wkv_a -> [latent (kv_lora_rank) | one shared rope key (R)]; the latent goes through RMSNorm and
wkv_b up to per-head [k_nope | v]. RoPE touches only the rope dims (per head for q, the single shared key for k).
Scores use softmax scale (d_nope + d_rope)^-0.5, times YaRN's mscale^2 when the context is extended.

The KV cache stores only the normalized latent and the rotated rope key (kv_lora_rank + R floats per token instead
of 2 * H * head_dim). Prefill expands it with wkv_b as in training; each single-token decode step instead folds
wkv_b into the query and the output ("absorbed" MLA), so it never re-expands the cache.

Legend: B batch, T new tokens, S cached+new tokens, D model dim, H heads, C kv_lora_rank, Q q_lora_rank,
N nope dims, R rope dims, V value dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tokenmill.train.linear import Linear
from tokenmill.train.model_args import ModelArgs
from tokenmill.train.norm import RMSNorm
from tokenmill.train.rope import apply_rope, softmax_scale


@dataclass
class LatentCache:
    """Per-layer compressed KV cache for generation: latent_BSC and rope key_BSR, grown by concatenation."""

    latent_BSC: list = field(default_factory=list)
    key_rope_BSR: list = field(default_factory=list)

    def length(self) -> int:
        return self.latent_BSC[0].shape[1] if self.latent_BSC else 0


class MLA(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        H, N, R, V, C = args.n_heads, args.qk_nope_head_dim, args.qk_rope_head_dim, args.v_head_dim, args.kv_lora_rank
        if args.q_lora_rank == 0:
            self.wq = Linear(args.dim, H * (N + R))
        else:
            self.wq_a = Linear(args.dim, args.q_lora_rank)
            self.q_norm = RMSNorm(args.q_lora_rank, args.norm_eps)
            self.wq_b = Linear(args.q_lora_rank, H * (N + R))
        self.wkv_a = Linear(args.dim, C + R)
        self.kv_norm = RMSNorm(C, args.norm_eps)
        self.wkv_b = Linear(C, H * (N + V))
        self.wo = Linear(H * V, args.dim)
        self.scale = softmax_scale(args)

    def forward(self, x_BTD: torch.Tensor, cos_TP: torch.Tensor, sin_TP: torch.Tensor,
                cache: LatentCache | None = None, layer: int = 0) -> torch.Tensor:
        a = self.args
        B, T, _ = x_BTD.shape
        H, N, R, V, C = a.n_heads, a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim, a.kv_lora_rank
        q_flat = self.wq(x_BTD) if a.q_lora_rank == 0 else self.wq_b(self.q_norm(self.wq_a(x_BTD)))
        q_BTHK = q_flat.view(B, T, H, N + R)
        q_rope_BTHR = apply_rope(q_BTHK[..., N:], cos_TP, sin_TP)
        q_BTHK = torch.cat((q_BTHK[..., :N], q_rope_BTHR), dim=-1)

        latent_BTC, k_rope_BTR = self.wkv_a(x_BTD).split((C, R), dim=-1)
        latent_BTC = self.kv_norm(latent_BTC)
        k_rope_BTR = apply_rope(k_rope_BTR[:, :, None, :], cos_TP, sin_TP)[:, :, 0, :]
        past = 0
        if cache is not None:
            past = cache.latent_BSC[layer].shape[1] if len(cache.latent_BSC) > layer else 0
            latent_BTC, k_rope_BTR = _cache_append(cache, layer, latent_BTC, k_rope_BTR)
        if cache is not None and T == 1:
            return self._absorbed_decode(q_BTHK, latent_BTC, k_rope_BTR)
        S = latent_BTC.shape[1]

        kv_BSHK = self.wkv_b(latent_BTC).view(B, S, H, N + V)
        k_nope_BSHN, v_BSHV = kv_BSHK.split((N, V), dim=-1)
        k_BSHK = torch.cat((k_nope_BSHN, k_rope_BTR[:, :, None, :].expand(B, S, H, R)), dim=-1)
        out_BHTV = _attend(q_BTHK.transpose(1, 2), k_BSHK.transpose(1, 2), v_BSHV.transpose(1, 2), past, self.scale)
        return self.wo(out_BHTV.transpose(1, 2).reshape(B, T, H * V))


    def _absorbed_decode(self, q_BTHK, latent_BSC, k_rope_BSR) -> torch.Tensor:
        """One new token against the cache without re-expanding it: wkv_b's key half is folded into the query and
        its value half applied after attention (DeepSeek-V2 §2.1.3), so scores cost S x H x (C + R)."""
        a = self.args
        B, T, H, _ = q_BTHK.shape
        N, V, C = a.qk_nope_head_dim, a.v_head_dim, a.kv_lora_rank
        w_HKC = self.wkv_b.weight.view(H, N + V, C)
        q_latent_BTHC = torch.einsum("bthn,hnc->bthc", q_BTHK[..., :N], w_HKC[:, :N])
        scores_BTHS = (torch.einsum("bthc,bsc->bths", q_latent_BTHC, latent_BSC)
                       + torch.einsum("bthr,bsr->bths", q_BTHK[..., N:], k_rope_BSR)) * self.scale
        probs_BTHS = scores_BTHS.float().softmax(dim=-1).to(q_BTHK.dtype)
        out_latent_BTHC = torch.einsum("bths,bsc->bthc", probs_BTHS, latent_BSC)
        out_BTHV = torch.einsum("bthc,hvc->bthv", out_latent_BTHC, w_HKC[:, N:])
        return self.wo(out_BTHV.reshape(B, T, H * V))


def _cache_append(cache: LatentCache, layer: int, latent_BTC: torch.Tensor, k_rope_BTR: torch.Tensor):
    if len(cache.latent_BSC) <= layer:
        cache.latent_BSC.append(latent_BTC)
        cache.key_rope_BSR.append(k_rope_BTR)
    else:
        cache.latent_BSC[layer] = torch.cat((cache.latent_BSC[layer], latent_BTC), dim=1)
        cache.key_rope_BSR[layer] = torch.cat((cache.key_rope_BSR[layer], k_rope_BTR), dim=1)
    return cache.latent_BSC[layer], cache.key_rope_BSR[layer]


def _attend(q_BHTK, k_BHSK, v_BHSV, past: int, scale: float) -> torch.Tensor:
    T, S, K, V = q_BHTK.shape[2], k_BHSK.shape[2], q_BHTK.shape[-1], v_BHSV.shape[-1]
    if V < K:
        # fused (flash) SDPA kernels need equal q/k and v head dims; without them PyTorch falls back to the math
        # path, which materializes T x T scores: padding v with zeros is ~1.8x faster fwd+bwd at T=1024 on CPU
        v_BHSV = F.pad(v_BHSV, (0, K - V))
    if past == 0:
        out = F.scaled_dot_product_attention(q_BHTK, k_BHSK, v_BHSV, is_causal=T > 1, scale=scale)
    else:
        # new tokens at positions past..S-1 see every cached token and the new ones up to themselves
        pos_S = torch.arange(S, device=q_BHTK.device)
        allowed_TS = pos_S[None, :] <= pos_S[past:, None]
        out = F.scaled_dot_product_attention(q_BHTK, k_BHSK, v_BHSV, attn_mask=allowed_TS, scale=scale)
    return out[..., :V]
