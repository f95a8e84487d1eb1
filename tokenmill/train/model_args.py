"""Model hyperparameters with DeepSeek-V3's names (`inference/model.py` ModelArgs), plus the training-only knobs.

Presets: `tiny` (tests: 324k parameters), `small` (103M total parameters), `1b` (1.06B total); counts from
`Transformer.num_params()` with the preset's 32k vocabulary. `model_args("tiny", vocab_size=8192)` overrides any field; bad names or values
raise ConfigError naming the field.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

from tokenmill.config import ConfigError


@dataclass
class ModelArgs:
    vocab_size: int = 32768
    dim: int = 512
    inter_dim: int = 1536  # dense FFN width (the first n_dense_layers)
    moe_inter_dim: int = 256  # width of one routed / shared expert
    n_layers: int = 8
    n_dense_layers: int = 1  # DeepSeek-V3: the first 3 of 61 layers are dense
    n_heads: int = 8
    # DeepSeekMoE
    n_routed_experts: int = 32
    n_shared_experts: int = 1
    n_activated_experts: int = 4  # top-k
    n_expert_groups: int = 4  # V3: 8 groups
    n_limited_groups: int = 2  # V3: each token routes into its top 4 groups
    route_scale: float = 2.5  # V3's routed scaling factor
    # MLA
    q_lora_rank: int = 256  # 0 = no query compression (V2-Lite style full wq)
    kv_lora_rank: int = 128
    qk_nope_head_dim: int = 64
    qk_rope_head_dim: int = 32
    v_head_dim: int = 64
    # RoPE / YaRN: the context is extended (YaRN frequencies + mscale) when max_seq_len > original_seq_len
    max_seq_len: int = 1024
    original_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_factor: float = 40.0
    beta_fast: int = 32
    beta_slow: int = 1
    mscale: float = 1.0
    norm_eps: float = 1e-6
    # training-only
    bias_update_speed: float = 0.001  # γ of auxiliary-loss-free balancing (V3 paper, §4.2: 0.001 for most of training)
    seq_aux_loss_alpha: float = 0.0001  # α of the sequence-wise balance loss (V3 paper, §4.2)
    n_mtp_layers: int = 1  # multi-token prediction depth: 0 or 1 (V3 uses 1)
    mtp_loss_weight: float = 0.3  # λ (V3 paper, §4.2: 0.3 for the first 10T tokens, then 0.1)
    init_std: float = 0.02

    def __post_init__(self) -> None:
        self.validate()

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def validate(self) -> None:
        def need(ok: bool, key: str, why: str) -> None:
            if not ok:
                raise ConfigError(f"model.{key}={getattr(self, key)!r}: {why}")

        for key in ("vocab_size", "dim", "inter_dim", "moe_inter_dim", "n_layers", "n_heads", "kv_lora_rank",
                    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "max_seq_len", "original_seq_len"):
            need(getattr(self, key) > 0, key, "must be positive")
        need(0 <= self.n_dense_layers <= self.n_layers, "n_dense_layers", f"must be in [0, n_layers={self.n_layers}]")
        need(self.q_lora_rank >= 0, "q_lora_rank", "must be >= 0 (0 = no query compression)")
        need(self.qk_rope_head_dim % 2 == 0, "qk_rope_head_dim", "must be even (RoPE rotates pairs)")
        need(self.n_mtp_layers in (0, 1), "n_mtp_layers", "only depth 0 or 1 is implemented")
        if self.n_dense_layers < self.n_layers or self.n_mtp_layers:
            need(self.n_routed_experts > 0, "n_routed_experts", "must be positive when there are MoE layers")
            need(0 < self.n_activated_experts <= self.n_routed_experts, "n_activated_experts",
                 f"must be in [1, n_routed_experts={self.n_routed_experts}]")
            need(self.n_expert_groups > 0 and self.n_routed_experts % self.n_expert_groups == 0, "n_expert_groups",
                 f"must divide n_routed_experts={self.n_routed_experts}")
            need(0 < self.n_limited_groups <= self.n_expert_groups, "n_limited_groups",
                 f"must be in [1, n_expert_groups={self.n_expert_groups}]")
            per_group = self.n_routed_experts // self.n_expert_groups
            need(self.n_expert_groups == 1 or per_group >= 2, "n_expert_groups",
                 "group scores sum each group's top-2 experts, so a group needs >= 2 experts")
            need(self.n_limited_groups * per_group >= self.n_activated_experts, "n_limited_groups",
                 f"n_limited_groups * experts per group must be >= n_activated_experts={self.n_activated_experts}")


PRESETS: dict[str, ModelArgs] = {
    # torchtitan-style debug flavor: 2 layers (1 dense + 1 MoE) + an MTP block, 8 experts in 4 groups
    "tiny": ModelArgs(vocab_size=1024, dim=64, inter_dim=128, moe_inter_dim=32, n_layers=2, n_dense_layers=1,
                      n_heads=4, n_routed_experts=8, n_shared_experts=1, n_activated_experts=2, n_expert_groups=4,
                      n_limited_groups=2, q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
                      v_head_dim=16, max_seq_len=256),
    # 103M total parameters (39M activated, 17M of them the embedding) with a 32k vocabulary
    "small": ModelArgs(vocab_size=32768, dim=512, inter_dim=1536, moe_inter_dim=192, n_layers=8, n_dense_layers=1,
                       n_heads=8, n_routed_experts=24, n_shared_experts=1, n_activated_experts=4, n_expert_groups=4,
                       n_limited_groups=2, q_lora_rank=256, kv_lora_rank=128, qk_nope_head_dim=64,
                       qk_rope_head_dim=32, v_head_dim=64, max_seq_len=1024),
    # 1.06B total parameters (0.20B activated)
    "1b": ModelArgs(vocab_size=32768, dim=1024, inter_dim=3072, moe_inter_dim=384, n_layers=12, n_dense_layers=1,
                    n_heads=16, n_routed_experts=64, n_shared_experts=2, n_activated_experts=6, n_expert_groups=8,
                    n_limited_groups=4, q_lora_rank=512, kv_lora_rank=256, qk_nope_head_dim=64, qk_rope_head_dim=32,
                    v_head_dim=64, max_seq_len=2048),
}


def model_args(preset: str, **overrides) -> ModelArgs:
    """A preset with fields overridden: `model_args("small", vocab_size=8192, n_mtp_layers=0)`."""
    if preset not in PRESETS:
        raise ConfigError(f"model.preset={preset!r}: unknown; choose one of {sorted(PRESETS)}")
    names = {f.name for f in dataclasses.fields(ModelArgs)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"model.{unknown[0]}: not a ModelArgs field (fields: {', '.join(sorted(names))})")
    for key, value in overrides.items():
        _check_type(key, value, type(getattr(PRESETS[preset], key)))
    return dataclasses.replace(PRESETS[preset], **overrides)


def _check_type(key: str, value, want: type) -> None:
    """An int field takes an integer, a float field any real number (NumPy's too); never a bool or a string."""
    ok = isinstance(value, numbers.Integral if want is int else numbers.Real)
    if ok and not isinstance(value, bool):
        return
    hint = ""
    if isinstance(value, str) and want is float:
        hint = " (YAML reads 1e-6 as a string: write 1.0e-6)"
    raise ConfigError(f"model.{key}={value!r}: must be {want.__name__}{hint}")
