"""DeepSeekMoE routing, grouped expert compute, loss-free balancing, MTP wiring and the model's bookkeeping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tokenmill.config import ConfigError
from tokenmill.train.model import Transformer, model_args
from tokenmill.train.moe import Experts, Gate, MoE, grouped_mm, padded_grouped_mm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def naive_experts(experts: Experts, x_ND, weights_NK, ids_NK):
    """Per-expert loop reference: each token through each chosen expert, weighted and summed."""
    out_ND = torch.zeros_like(x_ND)
    I = experts.w2.shape[-1]  # noqa: E741
    for e in range(experts.w13.shape[0]):
        token_idx, slot = torch.where(ids_NK == e)
        if len(token_idx) == 0:
            continue
        w1, w3 = experts.w13[e, :I], experts.w13[e, I:]
        h = F.silu(x_ND[token_idx] @ w1.T) * (x_ND[token_idx] @ w3.T)
        out_ND = out_ND.index_add(0, token_idx, (h @ experts.w2[e].T) * weights_NK[token_idx, slot, None])
    return out_ND


def test_grouped_expert_compute_equals_naive_loop():
    torch.manual_seed(0)
    args = model_args("tiny", n_routed_experts=16, n_expert_groups=4, n_activated_experts=3)
    experts = Experts(args)
    torch.nn.init.normal_(experts.w13, std=0.2)
    torch.nn.init.normal_(experts.w2, std=0.2)
    x_ND = torch.randn(257, args.dim, requires_grad=True)
    ids_NK = torch.stack([torch.randperm(13)[:3] for _ in range(257)])  # experts 13-15 get no tokens
    ids_NK[:40] = torch.tensor([0, 1, 2])  # a skewed load
    weights_NK = torch.rand(257, 3, requires_grad=True)  # the gate weights scale the hidden: check their grad
    got = experts(x_ND, weights_NK, ids_NK)
    want = naive_experts(experts, x_ND, weights_NK, ids_NK)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    g_got = torch.autograd.grad(got.square().sum(), [x_ND, weights_NK, experts.w13, experts.w2])
    g_want = torch.autograd.grad(want.square().sum(), [x_ND, weights_NK, experts.w13, experts.w2])
    for a, b in zip(g_got, g_want, strict=True):
        assert ((a - b).norm() / b.norm()) < 1e-5


def test_padded_fallback_equals_native_grouped_mm():
    torch.manual_seed(1)
    counts_E = torch.tensor([5, 0, 9, 1, 0, 3])
    x_SK = torch.randn(int(counts_E.sum()), 16)
    w_EKM = torch.randn(6, 16, 8)
    offs_E = counts_E.cumsum(0)
    want = torch.cat([x_SK[s - c:s] @ w_EKM[e] for e, (c, s) in enumerate(zip(counts_E, offs_E, strict=True))])
    torch.testing.assert_close(padded_grouped_mm(x_SK, w_EKM, offs_E), want)
    torch.testing.assert_close(grouped_mm(x_SK, w_EKM, offs_E), want)


def test_experts_fall_back_to_padded_bmm_without_a_grouped_kernel(monkeypatch):
    import tokenmill.train.moe as moe

    torch.manual_seed(7)
    experts = Experts(model_args("tiny"))
    torch.nn.init.normal_(experts.w13, std=0.2)
    torch.nn.init.normal_(experts.w2, std=0.2)
    x_ND, weights_NK = torch.randn(64, 64), torch.rand(64, 2)
    ids_NK = torch.stack([torch.randperm(8)[:2] for _ in range(64)])
    native = experts(x_ND, weights_NK, ids_NK)
    monkeypatch.setattr(moe, "_native_grouped_mm_ok", lambda *a: False)
    torch.testing.assert_close(experts(x_ND, weights_NK, ids_NK), native, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_step_keeps_the_router_in_fp32():
    torch.manual_seed(8)
    model = Transformer(model_args("tiny"))
    tokens_BT = torch.randint(0, 1024, (2, 32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        weights_NK, _, scores_NE = model.moe_layers()[0].gate(torch.randn(8, 64))
        out = model(tokens_BT)
        loss, _ = model.loss(out, torch.roll(tokens_BT, -1, 1))
    assert scores_NE.dtype == torch.float32 and weights_NK.dtype == torch.float32
    assert out.logits_BTV.dtype == torch.bfloat16  # the matmuls did run in bf16
    loss.backward()
    grad_w13 = model.moe_layers()[0].experts.w13.grad
    assert grad_w13.dtype == torch.float32 and torch.isfinite(grad_w13).all() and grad_w13.abs().sum() > 0


def test_group_limited_routing_and_gate_weights():
    torch.manual_seed(2)
    args = model_args("tiny", n_routed_experts=16, n_expert_groups=4, n_limited_groups=2, n_activated_experts=3,
                      route_scale=2.5)
    gate = Gate(args)
    torch.nn.init.normal_(gate.weight, std=1.0)
    gate.bias.normal_(0, 0.3)
    x_ND = torch.randn(500, args.dim)
    weights_NK, ids_NK, scores_NE = gate(x_ND)
    choice_NGE = (scores_NE + gate.bias).view(500, 4, 4)
    group_score_NG = choice_NGE.topk(2, dim=-1).values.sum(-1)
    top_groups_NG = group_score_NG.topk(2, dim=-1).indices
    chosen_groups_NK = ids_NK // 4
    assert (chosen_groups_NK[..., None] == top_groups_NG[:, None, :]).any(-1).all(), "expert outside top groups"
    # within the allowed groups, the chosen experts are the top-3 by biased score
    allowed_NE = torch.zeros(500, 4, dtype=torch.bool).scatter_(1, top_groups_NG, True).repeat_interleave(4, 1)
    best_NK = (scores_NE + gate.bias).masked_fill(~allowed_NE, -1e9).topk(3, dim=-1).indices
    assert torch.equal(ids_NK.sort(-1).values, best_NK.sort(-1).values)
    # weights: unbiased sigmoid affinities of the chosen experts, normalized to 1, then times route_scale
    raw_NK = scores_NE.gather(1, ids_NK)
    torch.testing.assert_close(weights_NK, raw_NK / raw_NK.sum(-1, keepdim=True) * 2.5)
    torch.testing.assert_close(weights_NK.sum(-1), torch.full((500,), 2.5))


def test_bias_update_rule_is_gamma_sign():
    moe = MoE(model_args("tiny", n_routed_experts=4, n_expert_groups=1, n_limited_groups=1,
                         bias_update_speed=0.01))
    moe.update_bias(torch.tensor([10, 0, 5, 5]))  # mean 5
    torch.testing.assert_close(moe.gate.bias, torch.tensor([-0.01, 0.01, 0.0, 0.0]))


def _load_ratio(load_E: torch.Tensor) -> float:
    return float((load_E.max() + 1) / (load_E.min() + 1))


def _train_skewed(gamma: float, steps: int = 30) -> tuple[float, float]:
    """Tiny model whose router starts biased toward experts 0 and 1; returns (first, last) max/min load ratios."""
    torch.manual_seed(3)
    model = Transformer(model_args("tiny", n_mtp_layers=0, bias_update_speed=gamma, n_expert_groups=1,
                                   n_limited_groups=1))
    model.moe_layers()[0].gate.bias[:2] = 0.2  # larger than the spread of the affinities: 0 and 1 take every token
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ratios = []
    for _ in range(steps):
        tokens_BT = torch.randint(0, model.args.vocab_size, (4, 64))
        out = model(tokens_BT)
        loss, _ = model.loss(out, torch.roll(tokens_BT, -1, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_router_biases(out.expert_load_LE)
        ratios.append(_load_ratio(out.expert_load_LE[0]))
    return ratios[0], sum(ratios[-5:]) / 5


def test_bias_updates_balance_a_skewed_router():
    first, last = _train_skewed(gamma=0.01)
    _, last_without = _train_skewed(gamma=0.0)
    print(f"max/min expert load: first {first:.1f}, after 30 steps {last:.1f} (without bias updates {last_without:.1f})")
    assert first > 20
    assert last < 4
    assert last_without > 20


def test_router_bias_is_saved_in_state_dict():
    model = Transformer(model_args("tiny"))
    model.moe_layers()[0].gate.bias.fill_(0.25)
    fresh = Transformer(model_args("tiny"))
    fresh.load_state_dict(model.state_dict())
    assert float(fresh.moe_layers()[0].gate.bias[0]) == 0.25


def test_sequence_balance_loss_matches_the_paper_formula():
    moe = MoE(model_args("tiny", n_routed_experts=2, n_expert_groups=1, n_limited_groups=1, n_activated_experts=1,
                         seq_aux_loss_alpha=0.1)).train()
    scores_BTE = torch.tensor([[[0.9, 0.1], [0.6, 0.2]]])  # both tokens route to expert 0
    ids_BTK = torch.tensor([[[0], [0]]])
    # f = E/(K T) * counts = [2, 0]; P = mean of normalized scores = [(0.9 + 0.75)/2, (0.1 + 0.25)/2]
    expected = 0.1 * (2 * (0.9 + 0.75) / 2)
    assert abs(float(moe.sequence_balance_loss(scores_BTE, ids_BTK)) - expected) < 1e-6


def test_mtp_shapes_loss_wiring_and_causality():
    torch.manual_seed(4)
    model = Transformer(model_args("tiny", mtp_loss_weight=0.3))
    tokens_BT = torch.randint(0, 1024, (2, 32))
    targets_BT = torch.roll(tokens_BT, -1, 1)
    out = model(tokens_BT)
    assert out.logits_BTV.shape == out.mtp_logits_BTV.shape == (2, 32, 1024)
    assert out.expert_load_LE.shape == (2, 8)  # the main MoE layer and the MTP block's MoE
    assert int(out.expert_load_LE.sum()) == 2 * 2 * 32 * 2  # layers x tokens x top-2
    loss, parts = model.loss(out, targets_BT)
    mtp_ce = F.cross_entropy(out.mtp_logits_BTV[:, :-1].detach().reshape(-1, 1024), targets_BT[:, 1:].reshape(-1))
    assert abs(parts["mtp_ce"] - mtp_ce.item()) < 1e-5
    assert abs(loss.detach().item() - (parts["ce"] + 0.3 * parts["mtp_ce"] + parts["aux"])) < 1e-5
    loss.backward()
    assert model.mtp.proj.weight.grad.abs().sum() > 0
    # the MTP prediction at position t sees tokens up to t+1 only
    changed_BT = tokens_BT.clone()
    changed_BT[:, 20] = (changed_BT[:, 20] + 1) % 1024
    with torch.no_grad():
        again = model(changed_BT)
    torch.testing.assert_close(again.mtp_logits_BTV[:, :19], out.mtp_logits_BTV[:, :19].detach())
    assert not torch.allclose(again.mtp_logits_BTV[:, 19], out.mtp_logits_BTV[:, 19].detach())
    assert Transformer(model_args("tiny", n_mtp_layers=0))(tokens_BT).mtp_logits_BTV is None


def test_param_counts_and_flops():
    model = Transformer(model_args("tiny"))
    counts = model.num_params()
    a = model.args
    idle = 2 * (a.n_routed_experts - a.n_activated_experts) * 3 * a.dim * a.moe_inter_dim
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["activated"] == counts["total"] - idle - a.vocab_size * a.dim
    assert model.estimate_flops_per_token(128) > 6 * counts["activated"]
    assert model.estimate_flops_per_token(256) > model.estimate_flops_per_token(128)


@pytest.mark.parametrize("bad, key", [
    ({"n_expert_groups": 3}, "n_expert_groups"),
    ({"n_activated_experts": 9}, "n_activated_experts"),
    ({"qk_rope_head_dim": 7}, "qk_rope_head_dim"),
    ({"n_mtp_layers": 2}, "n_mtp_layers"),
    ({"no_such_field": 1}, "no_such_field"),
    ({"n_layers": "abc"}, "n_layers"),  # a YAML typo: a message, not a TypeError inside validate()
    ({"norm_eps": "1e-6"}, "norm_eps"),  # YAML 1.1 reads 1e-6 as a string
    ({"n_mtp_layers": True}, "n_mtp_layers"),
])
def test_bad_model_args_name_the_field(bad, key):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        model_args("tiny", **bad)
    with pytest.raises(ConfigError, match="preset"):
        model_args("huge")
