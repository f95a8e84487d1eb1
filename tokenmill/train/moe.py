"""DeepSeekMoE: shared experts + fine-grained routed experts, sigmoid gate, group-limited top-k, loss-free balancing.

Routing (DeepSeek-V3 paper §2.1.2, `inference/model.py` Gate): affinities s = sigmoid(x W_g^T); a per-expert bias b
(a buffer, used only to choose experts) gives s + b; experts sit in n_expert_groups groups, each group scored by the
sum of its top-2 biased affinities; a token picks among the top n_limited_groups groups only, then the top-k
experts there. Gate weights are the unbiased s of the chosen experts, normalized to sum 1, times route_scale.
After each optimizer step b += γ·sign(mean load − load) (`update_bias`). The sequence-wise balance loss is
α Σ_i f_i P_i per sequence, f_i = E/(K T) · #tokens routed to i, P_i = mean_t s_it / Σ_j s_jt (paper eq. 17-20).

Expert compute: the T·K (token, expert) pairs are sorted by expert, gathered with one `index_select`, run as two
grouped matrix multiplies (`grouped_mm`; the gate weight scales the I-wide hidden between them) and summed back into
their tokens with one `index_add` — no Python loop over experts, no un-sort, no sort in the backward (x[idx]'s
backward sorts its indices): 4% off the fp32 training step (benchmarks/train.py). Under autocast the
grouped matmuls run in the autocast dtype (grouped_mm is not on autocast's op list, so HF's experts stay fp32):
on this CPU a bf16 matmul is ~4.6x an fp32 one, and a whole training step runs 1.64-1.99x transformers'
(benchmarks/train.py).

Legend: N tokens (B·T), D model dim, E routed experts, K activated experts, G groups, I expert width, S = N·K pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tokenmill.train.linear import Linear
from tokenmill.train.model_args import ModelArgs

GROUP_SCORE_TOP = 2  # a group's score is the sum of its 2 best biased affinities (V3 inference/model.py Gate)


class MLP(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x). The dense layers and the shared experts."""

    def __init__(self, dim: int, inter_dim: int):
        super().__init__()
        self.w1 = Linear(dim, inter_dim)
        self.w2 = Linear(inter_dim, dim)
        self.w3 = Linear(dim, inter_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def grouped_mm(x_SK: torch.Tensor, w_EKM: torch.Tensor, offs_E: torch.Tensor) -> torch.Tensor:
    """Rows x_SK sorted by group, offs_E the cumulative row ends: row block e is multiplied by w_EKM[e]."""
    if _native_grouped_mm_ok(x_SK, w_EKM):
        fn = getattr(F, "grouped_mm", None) or torch._grouped_mm
        return fn(x_SK.to(w_EKM.dtype), w_EKM, offs=offs_E.to(torch.int32))
    return padded_grouped_mm(x_SK, w_EKM, offs_E)


def _native_grouped_mm_ok(x_SK: torch.Tensor, w_EKM: torch.Tensor) -> bool:
    if not (hasattr(F, "grouped_mm") or hasattr(torch, "_grouped_mm")):
        return False
    recent = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 9)
    if x_SK.device.type == "cuda":
        # CUDA kernels: bf16 only, 16-byte aligned rows; sm90 (Hopper), and sm80 too since torch 2.9
        needed = (8, 0) if recent else (9, 0)
        return (torch.cuda.get_device_capability(x_SK.device) >= needed and w_EKM.dtype == torch.bfloat16
                and x_SK.shape[-1] % 8 == 0 and w_EKM.shape[-1] % 8 == 0)
    return x_SK.device.type == "cpu" and recent  # CPU kernel (any float dtype) since torch 2.9


def padded_grouped_mm(x_SK: torch.Tensor, w_EKM: torch.Tensor, offs_E: torch.Tensor) -> torch.Tensor:
    """Batched fallback: scatter the sorted rows into [E, capacity, K] (capacity = largest group), one bmm, gather."""
    E = w_EKM.shape[0]
    counts_E = torch.diff(offs_E, prepend=offs_E.new_zeros(1))
    starts_E = offs_E - counts_E
    group_S = torch.repeat_interleave(torch.arange(E, device=x_SK.device), counts_E, output_size=x_SK.shape[0])
    slot_S = torch.arange(x_SK.shape[0], device=x_SK.device) - starts_E[group_S]
    capacity = int(counts_E.max()) if x_SK.shape[0] else 0
    x_ECK = x_SK.new_zeros(E, capacity, x_SK.shape[1])
    x_ECK = x_ECK.index_put((group_S, slot_S), x_SK.to(w_EKM.dtype))
    y_ECM = torch.bmm(x_ECK, w_EKM)
    return y_ECM[group_S, slot_S]


class Gate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.weight = nn.Parameter(torch.empty(args.n_routed_experts, args.dim))
        self.register_buffer("bias", torch.zeros(args.n_routed_experts, dtype=torch.float32))  # selection only

    def forward(self, x_ND: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns gate weights_NK (normalized, scaled), expert ids_NK, and all affinities scores_NE (float32)."""
        a = self.args
        with torch.autocast(x_ND.device.type, enabled=False):  # V3 §3.3.1: gating stays in full precision
            scores_NE = F.linear(x_ND.float(), self.weight.float()).sigmoid()
        choice_NE = scores_NE.detach() + self.bias
        if a.n_expert_groups > 1:
            choice_NGE = choice_NE.view(-1, a.n_expert_groups, a.n_routed_experts // a.n_expert_groups)
            group_score_NG = choice_NGE.topk(GROUP_SCORE_TOP, dim=-1).values.sum(-1)
            top_groups_NG = group_score_NG.topk(a.n_limited_groups, dim=-1).indices
            keep_NG = torch.zeros_like(group_score_NG, dtype=torch.bool).scatter_(1, top_groups_NG, True)
            choice_NE = choice_NGE.masked_fill(~keep_NG[..., None], float("-inf")).flatten(1)
        ids_NK = choice_NE.topk(a.n_activated_experts, dim=-1).indices
        weights_NK = scores_NE.gather(1, ids_NK)
        weights_NK = weights_NK / (weights_NK.sum(-1, keepdim=True) + 1e-20) * a.route_scale
        return weights_NK, ids_NK, scores_NE


class Experts(nn.Module):
    """E SwiGLU experts as stacked weights: w13 [E, 2I, D] (gate rows then up rows), w2 [E, D, I]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        E, inter, D = args.n_routed_experts, args.moe_inter_dim, args.dim
        self.w13 = nn.Parameter(torch.empty(E, 2 * inter, D))
        self.w2 = nn.Parameter(torch.empty(E, D, inter))

    def forward(self, x_ND: torch.Tensor, weights_NK: torch.Tensor, ids_NK: torch.Tensor) -> torch.Tensor:
        N, K = ids_NK.shape
        E = self.w13.shape[0]
        ids_S = ids_NK.flatten()
        order_S = torch.argsort(ids_S, stable=True)
        offs_E = torch.cumsum(torch.bincount(ids_S, minlength=E), 0)
        token_S = order_S // K
        # index_select/index_add rather than x[idx] and an un-sort: their backwards are each other, with no sort
        x_SD = x_ND.index_select(0, token_S)
        w13_EDI2, w2_EID = self.w13.transpose(1, 2), self.w2.transpose(1, 2)
        if torch.is_autocast_enabled(x_ND.device.type):
            # grouped_mm is not on autocast's op list: cast like autocast would cast a linear layer
            dtype = torch.get_autocast_dtype(x_ND.device.type)
            x_SD, w13_EDI2, w2_EID = x_SD.to(dtype), w13_EDI2.to(dtype), w2_EID.to(dtype)
        gate_SI, up_SI = grouped_mm(x_SD, w13_EDI2, offs_E).chunk(2, dim=-1)
        # the gate weight scales the I-wide hidden (w2 is linear), cheaper than scaling the D-wide output
        h_SI = F.silu(gate_SI) * up_SI * weights_NK.flatten().index_select(0, order_S)[:, None].to(up_SI.dtype)
        y_SD = grouped_mm(h_SI, w2_EID, offs_E)
        return y_SD.new_zeros(N, y_SD.shape[1]).index_add(0, token_S, y_SD)


class MoE(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.gate = Gate(args)
        self.experts = Experts(args)
        self.shared_experts = MLP(args.dim, args.n_shared_experts * args.moe_inter_dim) if args.n_shared_experts else None

    def forward(self, x_BTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns the output, the sequence-wise balance loss (times α), and the token count per expert (detached)."""
        B, T, D = x_BTD.shape
        x_ND = x_BTD.reshape(B * T, D)
        weights_NK, ids_NK, scores_NE = self.gate(x_ND)
        y_ND = self.experts(x_ND, weights_NK, ids_NK).to(x_BTD.dtype)
        if self.shared_experts is not None:
            y_ND = y_ND + self.shared_experts(x_ND)
        load_E = torch.bincount(ids_NK.flatten(), minlength=self.args.n_routed_experts).detach()
        aux = self.sequence_balance_loss(scores_NE.view(B, T, -1), ids_NK.view(B, T, -1))
        return y_ND.view(B, T, D), aux, load_E

    def sequence_balance_loss(self, scores_BTE: torch.Tensor, ids_BTK: torch.Tensor) -> torch.Tensor:
        a = self.args
        if a.seq_aux_loss_alpha == 0 or not self.training:
            return scores_BTE.new_zeros(())
        B, T, E = scores_BTE.shape
        K = a.n_activated_experts
        counts_BE = torch.zeros(B, E, device=scores_BTE.device).scatter_add_(
            1, ids_BTK.reshape(B, T * K), torch.ones(B, T * K, device=scores_BTE.device))
        f_BE = counts_BE * (E / (K * T))
        p_BE = (scores_BTE / scores_BTE.sum(-1, keepdim=True)).mean(1)
        return a.seq_aux_loss_alpha * (f_BE * p_BE).sum(-1).mean()

    @torch.no_grad()
    def update_bias(self, load_E: torch.Tensor) -> None:
        """Auxiliary-loss-free balancing: raise the bias of under-loaded experts, lower it for over-loaded ones."""
        load_E = load_E.to(self.gate.bias.device, torch.float32)
        self.gate.bias += self.args.bias_update_speed * torch.sign(load_E.mean() - load_E)
