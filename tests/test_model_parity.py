"""Our logits must equal transformers' DeepseekV3ForCausalLM with the same random weights (float32)."""

from __future__ import annotations

import pytest
import torch
import transformers  # the parity anchor (dev extra)

from tokenmill.train.model import Transformer, model_args
from tokenmill.train.model_hf import hf_config, to_hf_state_dict

REL_TOL = 1e-5  # issue 6: relative error <= 1e-5 in float32


def _pair(seed: int, hf_overrides: dict | None = None, **overrides):
    """Our model with non-trivial weights (large init, random norms, random router bias) and HF loaded from it."""
    torch.manual_seed(seed)
    args = model_args("tiny", init_std=0.1, **overrides)
    ours = Transformer(args).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
        for moe in ours.moe_layers():
            moe.gate.bias.normal_(0, 0.05)  # the bias changes which experts are chosen, so it must be mapped too
    config = hf_config(args)
    for key, value in (hf_overrides or {}).items():
        setattr(config, key, value)
    hf = transformers.DeepseekV3ForCausalLM(config).eval()
    hf.load_state_dict(to_hf_state_dict(ours), strict=True)
    tokens_BT = torch.randint(0, args.vocab_size, (2, 96))
    with torch.no_grad():
        return ours(tokens_BT).logits_BTV, hf(tokens_BT).logits


@pytest.mark.parametrize("overrides", [
    {},  # q compression, 4 groups of 2 experts, top-2 groups
    {"q_lora_rank": 0, "n_expert_groups": 1, "n_limited_groups": 1, "n_dense_layers": 0},  # full wq, no groups
    {"max_seq_len": 512, "original_seq_len": 64, "rope_factor": 8.0},  # YaRN frequencies + mscale^2 softmax scale
], ids=["default", "no-q-lora-no-groups", "yarn"])
def test_logits_match_transformers(overrides):
    ours, ref = _pair(0, **overrides)
    rel = ((ours - ref).norm() / ref.norm()).item()
    print(f"transformers {transformers.__version__} {overrides or 'default'}: relative error {rel:.2e}")
    assert ref.std() > 0.3, "logits too small for the comparison to mean anything"
    assert rel <= REL_TOL


def test_parity_check_detects_a_rope_layout_mismatch():
    ours, ref = _pair(1, hf_overrides={"rope_interleave": False})
    assert ((ours - ref).norm() / ref.norm()).item() > 1e-2
