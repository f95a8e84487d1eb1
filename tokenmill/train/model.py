"""DeepSeek-V3-style decoder: MLA attention, dense then DeepSeekMoE layers, optional depth-1 multi-token prediction.

    tokens -> embed -> [pre-norm block: x + MLA(norm x); x + FFN(norm x)] x n_layers -> norm -> head -> logits
    FFN = SwiGLU MLP for the first n_dense_layers, MoE after (`ffn = MLP if layer_id < n_dense_layers else MoE`).
    MTP (paper §2.2): h'_t = block(W [RMSNorm(h_t); RMSNorm(embed(token_{t+1}))]) -> own norm -> the shared head,
    predicting token t+2 at position t; h_t is the main model's last hidden state before its final norm.

Parity: with the same weights our logits equal transformers' DeepseekV3ForCausalLM (float32, relative error ~4e-7,
tests/test_model_parity.py); `tokenmill.train.model_hf.to_hf_state_dict` maps the names. The linears are
`tokenmill.train.linear.Linear` (nn.Linear's parameters; float32 CPU matmuls on oneDNN, ~2x PyTorch's MKL sgemm on
AMD cores). Training step on CPU vs that model, same config and batch: see benchmarks/train.py and
benchmarks/RESULTS.md (with PyTorch's default GEMM for both, the same 174.8 GFLOP of matmuls bound both models).

Legend: B batch, T sequence, D model dim, V vocabulary, L MoE layers (main layers, then the MTP block's), E experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tokenmill.train.linear import Linear
from tokenmill.train.mla import MLA, LatentCache
from tokenmill.train.model_args import PRESETS, ModelArgs, model_args
from tokenmill.train.moe import MLP, MoE
from tokenmill.train.norm import RMSNorm
from tokenmill.train.rope import rope_cos_sin

__all__ = ["PRESETS", "ModelArgs", "ModelOutput", "Transformer", "model_args"]


@dataclass
class ModelOutput:
    logits_BTV: torch.Tensor
    mtp_logits_BTV: torch.Tensor | None  # position t predicts token t+2; the last position has no t+1 input: ignore
    aux_loss: torch.Tensor  # sequence-wise balance loss summed over MoE layers, already times α (0 in eval mode)
    expert_load_LE: torch.Tensor  # tokens routed per expert per MoE layer, detached; [0, E] when there is no MoE


class Block(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.attn = MLA(args)
        self.ffn = MLP(args.dim, args.inter_dim) if layer_id < args.n_dense_layers else MoE(args)
        self.attn_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x_BTD, cos_TP, sin_TP, moe_stats: list, cache: LatentCache | None = None, layer: int = 0):
        x_BTD = x_BTD + self.attn(self.attn_norm(x_BTD), cos_TP, sin_TP, cache, layer)
        if isinstance(self.ffn, MoE):
            y_BTD, aux, load_E = self.ffn(self.ffn_norm(x_BTD))
            moe_stats.append((aux, load_E))
            return x_BTD + y_BTD
        return x_BTD + self.ffn(self.ffn_norm(x_BTD))


class MTP(nn.Module):
    """Depth-1 multi-token prediction module; shares the embedding and output head with the main model."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.hnorm = RMSNorm(args.dim, args.norm_eps)
        self.enorm = RMSNorm(args.dim, args.norm_eps)
        self.proj = Linear(2 * args.dim, args.dim)
        self.block = Block(args.n_layers, args)  # MoE whenever the main model has MoE layers
        self.norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, h_BTD, next_emb_BTD, cos_TP, sin_TP, moe_stats: list) -> torch.Tensor:
        x_BTD = self.proj(torch.cat((self.hnorm(h_BTD), self.enorm(next_emb_BTD)), dim=-1))
        return self.norm(self.block(x_BTD, cos_TP, sin_TP, moe_stats))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        args.validate()
        self.args = args
        self.embed = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(Block(i, args) for i in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.head = Linear(args.dim, args.vocab_size)
        self.mtp = MTP(args) if args.n_mtp_layers else None
        cos_TP, sin_TP = rope_cos_sin(args, args.max_seq_len)
        self.register_buffer("rope_cos", cos_TP, persistent=False)
        self.register_buffer("rope_sin", sin_TP, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, init_std) everywhere; output projections (wo, w2) scaled by 1/sqrt(2 n_layers) (GPT-2)."""
        std, out_std = self.args.init_std, self.args.init_std / math.sqrt(2 * self.args.n_layers)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                leaf = name.rsplit(".", 2)[-2:]
                is_out = leaf[-1] == "w2" or leaf[0] in ("wo", "w2")
                nn.init.normal_(p, mean=0.0, std=out_std if is_out else std)
        for moe in self.moe_layers():
            moe.gate.bias.zero_()

    def moe_layers(self) -> list[MoE]:
        blocks = list(self.layers) + ([self.mtp.block] if self.mtp is not None else [])
        return [b.ffn for b in blocks if isinstance(b.ffn, MoE)]

    def forward(self, tokens_BT: torch.Tensor, cache: LatentCache | None = None) -> ModelOutput:
        B, T = tokens_BT.shape
        start = cache.length() if cache is not None else 0
        if start + T > self.args.max_seq_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds model max_seq_len={self.args.max_seq_len}")
        cos_TP, sin_TP = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        moe_stats: list = []
        h_BTD = self.embed(tokens_BT)
        for i, layer in enumerate(self.layers):
            h_BTD = layer(h_BTD, cos_TP, sin_TP, moe_stats, cache, i)
        logits_BTV = self.head(self.norm(h_BTD))
        mtp_logits_BTV = None
        if self.mtp is not None and cache is None:
            next_BT = torch.cat((tokens_BT[:, 1:], tokens_BT[:, -1:]), dim=1)  # last position: no t+1 token
            mtp_logits_BTV = self.head(self.mtp(h_BTD, self.embed(next_BT), cos_TP, sin_TP, moe_stats))
        if moe_stats:
            aux = torch.stack([a for a, _ in moe_stats]).sum()
            load_LE = torch.stack([load for _, load in moe_stats])
        else:
            aux = logits_BTV.new_zeros(())
            load_LE = torch.zeros(0, self.args.n_routed_experts, device=tokens_BT.device, dtype=torch.long)
        return ModelOutput(logits_BTV, mtp_logits_BTV, aux, load_LE)

    def loss(self, out: ModelOutput, targets_BT: torch.Tensor, ignore_index: int = -100):
        """Training loss = CE + mtp_loss_weight * MTP CE + aux; targets_BT[t] is the token after input t.

        Returns (loss, parts) with parts: ce, mtp_ce, aux (floats) and row_ce_B (per-row mean CE, detached).
        """
        V = out.logits_BTV.shape[-1]
        ce_BT = F.cross_entropy(out.logits_BTV.float().flatten(0, 1), targets_BT.flatten(), reduction="none",
                                ignore_index=ignore_index).view_as(targets_BT)
        valid_BT = (targets_BT != ignore_index).float()
        ce = (ce_BT * valid_BT).sum() / valid_BT.sum().clamp(min=1)
        total = ce + out.aux_loss
        parts = {"ce": ce.detach().item(), "aux": out.aux_loss.detach().item(), "mtp_ce": 0.0,
                 "row_ce_B": ((ce_BT * valid_BT).sum(1) / valid_BT.sum(1).clamp(min=1)).detach()}
        if out.mtp_logits_BTV is not None and targets_BT.shape[1] > 1:
            mtp_ce = F.cross_entropy(out.mtp_logits_BTV[:, :-1].float().reshape(-1, V), targets_BT[:, 1:].flatten(),
                                     ignore_index=ignore_index)
            total = total + self.args.mtp_loss_weight * mtp_ce
            parts["mtp_ce"] = mtp_ce.detach().item()
        return total, parts

    @torch.no_grad()
    def update_router_biases(self, expert_load_LE: torch.Tensor) -> None:
        """b += γ·sign(mean load − load) per MoE layer; call after each optimizer step with the step's summed load."""
        moes = self.moe_layers()
        if expert_load_LE.shape[0] != len(moes):
            raise ValueError(f"expert_load_LE has {expert_load_LE.shape[0]} rows, model has {len(moes)} MoE layers")
        for moe, load_E in zip(moes, expert_load_LE, strict=True):
            moe.update_bias(load_E)

    def num_params(self) -> dict:
        """Total parameters, and those activated per token (K of E routed experts; embedding rows not counted)."""
        a = self.args
        total = sum(p.numel() for p in self.parameters())
        per_expert = 3 * a.dim * a.moe_inter_dim
        idle = len(self.moe_layers()) * (a.n_routed_experts - a.n_activated_experts) * per_expert
        embedding = self.embed.weight.numel()
        return {"total": total, "activated": total - idle - embedding, "embedding": embedding}

    def estimate_flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: 6 x activated matmul params (the head twice with MTP) + attention (QK^T and
        AV, fwd+bwd, causal half), the nanochat/PaLM accounting."""
        a = self.args
        T = seq_len or a.max_seq_len
        n_attn_layers = a.n_layers + (1 if self.mtp is not None else 0)
        attn = 6 * n_attn_layers * a.n_heads * (a.qk_head_dim + a.v_head_dim) * T / 2
        head_again = self.head.weight.numel() if self.mtp is not None else 0
        return 6 * (self.num_params()["activated"] + head_again) + attn
