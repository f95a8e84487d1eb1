"""Map our model onto Hugging Face transformers' DeepseekV3ForCausalLM (checked against transformers 5.24).

Name map (ours -> HF), per layer i under `model.layers.i.`:
    embed / norm / head                 -> model.embed_tokens / model.norm / lm_head
    attn_norm, ffn_norm                 -> input_layernorm, post_attention_layernorm
    attn.wq | wq_a, q_norm, wq_b        -> self_attn.q_proj | q_a_proj, q_a_layernorm, q_b_proj
    attn.wkv_a, kv_norm, wkv_b, wo      -> self_attn.kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj
    ffn.w1, w3, w2 (dense and shared)   -> mlp.gate_proj, up_proj, down_proj  (shared under mlp.shared_experts.)
    ffn.gate.weight, ffn.gate.bias      -> mlp.gate.weight, mlp.gate.e_score_correction_bias
    ffn.experts.w13 [E, 2I, D], w2      -> mlp.experts.gate_up_proj (fused in 5.x, gate rows first), down_proj
    mtp.*                               -> (dropped: HF's model has no MTP module)
RoPE: our interleaved pairs equal HF's `rope_interleave=True` path (HF emits the rotated halves de-interleaved,
which permutes q and k alike and leaves q.k unchanged). HF has no MTP, aux loss or bias update.
"""

from __future__ import annotations

import re

import torch

from tokenmill.train.model import Transformer
from tokenmill.train.model_args import ModelArgs
from tokenmill.train.rope import is_extended

_ATTN = {"wq": "q_proj", "wq_a": "q_a_proj", "q_norm": "q_a_layernorm", "wq_b": "q_b_proj",
         "wkv_a": "kv_a_proj_with_mqa", "kv_norm": "kv_a_layernorm", "wkv_b": "kv_b_proj", "wo": "o_proj"}
_MLP = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}
_FIXED = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
          "head.weight": "lm_head.weight"}


def hf_config(args: ModelArgs, **extra):
    """A transformers DeepseekV3Config describing the same architecture (MTP excluded)."""
    from transformers import DeepseekV3Config

    rope = {"rope_type": "default", "rope_theta": args.rope_theta}
    if is_extended(args):
        rope = {"rope_type": "yarn", "rope_theta": args.rope_theta, "factor": args.rope_factor,
                "original_max_position_embeddings": args.original_seq_len, "beta_fast": args.beta_fast,
                "beta_slow": args.beta_slow, "mscale": args.mscale, "mscale_all_dim": args.mscale}
    return DeepseekV3Config(
        vocab_size=args.vocab_size, hidden_size=args.dim, intermediate_size=args.inter_dim,
        moe_intermediate_size=args.moe_inter_dim, num_hidden_layers=args.n_layers, num_attention_heads=args.n_heads,
        num_key_value_heads=args.n_heads, n_shared_experts=args.n_shared_experts,
        n_routed_experts=args.n_routed_experts, routed_scaling_factor=args.route_scale,
        kv_lora_rank=args.kv_lora_rank, q_lora_rank=args.q_lora_rank or None, qk_rope_head_dim=args.qk_rope_head_dim,
        v_head_dim=args.v_head_dim, qk_nope_head_dim=args.qk_nope_head_dim, n_group=args.n_expert_groups,
        topk_group=args.n_limited_groups, num_experts_per_tok=args.n_activated_experts,
        first_k_dense_replace=args.n_dense_layers, norm_topk_prob=True, max_position_embeddings=args.max_seq_len,
        rms_norm_eps=args.norm_eps, rope_parameters=rope, rope_interleave=True, tie_word_embeddings=False,
        num_mtp_layers=0, **extra)


def hf_name(name: str) -> str | None:
    """The HF parameter name for one of ours, or None for parts HF lacks (MTP)."""
    if name in _FIXED:
        return _FIXED[name]
    m = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    if m is None:
        return None
    layer, rest = m.groups()
    prefix = f"model.layers.{layer}."
    if rest.startswith("attn_norm."):
        return prefix + "input_layernorm.weight"
    if rest.startswith("ffn_norm."):
        return prefix + "post_attention_layernorm.weight"
    if rest.startswith("attn."):
        _, part, leaf = rest.split(".")
        return prefix + f"self_attn.{_ATTN[part]}.{leaf}"
    return prefix + _ffn_name(rest[len("ffn."):])


def _ffn_name(rest: str) -> str:
    fixed = {"gate.weight": "mlp.gate.weight", "gate.bias": "mlp.gate.e_score_correction_bias",
             "experts.w13": "mlp.experts.gate_up_proj", "experts.w2": "mlp.experts.down_proj"}
    if rest in fixed:
        return fixed[rest]
    shared = rest.startswith("shared_experts.")
    proj = rest.removeprefix("shared_experts.").split(".")[0]
    return ("mlp.shared_experts." if shared else "mlp.") + f"{_MLP[proj]}.weight"


def to_hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our state_dict renamed for DeepseekV3ForCausalLM.load_state_dict (MTP weights left out)."""
    out = {}
    for name, tensor in model.state_dict().items():
        target = hf_name(name)
        if target is not None:
            out[target] = tensor
    return out
