"""Training-step throughput on CPU: our DeepSeek-V3-style model vs transformers' DeepseekV3ForCausalLM.

Both models get the same config, the same weights (ours mapped with `to_hf_state_dict`), the same batch and the
same step: forward, next-token cross-entropy, backward, AdamW (fused, as the trainer builds it). Ours also does its real extra work (the sequence-wise
balance loss and the router-bias update); MTP is off because HF has none. Steps alternate after a warm-up.

Two precisions, each for both models: fp32, and bf16 autocast (`torch.autocast("cpu", torch.bfloat16)`, the
mixed-precision recipe HF's Trainer uses on CPU). Ours keeps the router in fp32 and casts its grouped expert
matmuls like autocast casts a linear layer; `grouped_mm` is not on autocast's op list, so HF's experts stay fp32.

Default input: the `small` preset cut to 4 layers and an 8k vocabulary, batch 2 x 1024 tokens (its full context).
`--scale N` multiplies the batch. Wall time on these shared 2-core machines is noisy, so the CPU time of the
process (1 intra-op thread by default) is reported too.

Ours runs its float32 CPU linears on oneDNN (`tokenmill/train/linear.py`: PyTorch's MKL sgemm runs at about half
this AMD core's AVX-512 peak); fp32 also times ours with `set_cpu_backend("aten")`, the same GEMM library as HF, so
the ratio from the model alone and the ratio with the kernel choice are both reported.

`--profile` adds one profiled fp32 step of each (matmul GFLOP from the linear shapes and the self-time shares of
matmuls and attention) and `kernel_rates`: one dense-layer linear on each GEMM and one AdamW step, default vs
fused. Both models do 174.8 GFLOP of matmuls per step; on the default GEMM both run them at ~92-96 GFLOPS, and
with the model's other work alone trimmed the same-GEMM ceiling was ~1.4-1.5x.

    python -m benchmarks.train [--scale 2] [--layers 8] [--seq 1024] [--threads 1] [--profile]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from benchmarks.common import alternate, write_result
from tokenmill.train.model import Transformer, model_args
from tokenmill.train.linear import linear, set_cpu_backend
from tokenmill.train.model_hf import hf_config, to_hf_state_dict


def build(layers: int, vocab: int, seq: int, seed: int = 0):
    from transformers import DeepseekV3ForCausalLM

    torch.manual_seed(seed)
    args = model_args("small", n_layers=layers, vocab_size=vocab, max_seq_len=seq, n_mtp_layers=0)
    ours = Transformer(args)
    hf = DeepseekV3ForCausalLM(hf_config(args))
    hf.load_state_dict(to_hf_state_dict(ours), strict=True)
    return args, ours, hf


def step_fns(ours, hf, tokens_BT: torch.Tensor):
    inputs_BT, targets_BT = tokens_BT[:, :-1], tokens_BT[:, 1:]
    # AdamW's fused CPU kernel, as the trainer builds it (tokenmill/train/optim.py), for both models
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, fused=True)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, fused=True)
    losses = {}

    def ours_step():
        out = ours(inputs_BT)
        loss, _ = ours.loss(out, targets_BT)
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()
        ours.update_router_biases(out.expert_load_LE)
        losses.setdefault("ours", float(loss.detach()))

    def hf_step():
        logits_BTV = hf(input_ids=inputs_BT).logits
        loss = F.cross_entropy(logits_BTV.float().flatten(0, 1), targets_BT.flatten())
        opt_hf.zero_grad(set_to_none=True)
        loss.backward()
        opt_hf.step()
        losses.setdefault("hf", float(loss.detach()))

    def ours_aten_step():
        set_cpu_backend("aten")
        try:
            ours_step()
        finally:
            set_cpu_backend("onednn")

    return {"tokenmill": ours_step, "tokenmill_aten_gemm": ours_aten_step, "transformers": hf_step}, losses


def timed(fns: dict, cpu_best: dict, autocast_bf16: bool) -> dict:
    """Each step under the precision recipe, recording its best process CPU time next to alternate's wall time."""
    def wrap(name, fn):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
                t0 = time.process_time()
                fn()
                cpu_best[name] = min(cpu_best.get(name, float("inf")), time.process_time() - t0)
        return run
    return {name: wrap(name, fn) for name, fn in fns.items()}


def op_shares(fn) -> dict:
    """Profile one step: matmul GFLOP (from mm shapes) and the self-time shares of matmul and attention kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    mm_s = attn_s = total_s = mm_flop = 0.0
    for e in prof.events():
        total_s += e.self_cpu_time_total
        if e.name == "aten::mm":
            (m, k), (_, n) = e.input_shapes[0], e.input_shapes[1]
            mm_flop, mm_s = mm_flop + 2 * m * k * n, mm_s + e.self_cpu_time_total
        elif e.name == "mkldnn::_linear_pointwise":  # x [M, K] @ w[N, K]^T
            (m, k), (n, _) = e.input_shapes[0][-2:], e.input_shapes[1]
            mm_flop, mm_s = mm_flop + 2 * m * k * n, mm_s + e.self_cpu_time_total
        elif e.name in ("aten::bmm", "aten::_softmax", "aten::_softmax_backward_data") or "flash_attention" in e.name:
            attn_s += e.self_cpu_time_total  # HF's math attention is its only bmm/softmax; ours is flash
    return {"mm_gflop": round(mm_flop / 1e9, 1), "mm_share": round(mm_s / total_s, 3),
            "attention_share": round(attn_s / total_s, 3), "mm_gflops_in_profile": round(mm_flop / mm_s / 1e3, 1)}


def kernel_rates(model, tokens: int) -> dict:
    """The two kernel choices behind the fp32 ratio, measured alone: a dense-layer linear (x [tokens, dim] @ W^T,
    W [inter_dim, dim]) forward and forward+backward on oneDNN vs PyTorch's default GEMM, and one AdamW step over
    `model`'s parameters, per-tensor default vs fused."""
    a = model.args
    x = torch.randn(tokens, a.dim, requires_grad=True)
    w = torch.randn(a.inter_dim, a.dim, requires_grad=True)
    flop = 2 * tokens * a.dim * a.inter_dim

    def run(backend: str, backward: bool):
        def fn():
            set_cpu_backend(backend)
            try:
                y = linear(x, w)
                if backward:
                    y.sum().backward()
            finally:
                set_cpu_backend("onednn")
        return fn

    fns = {f"{b}_{kind}": run(b, kind == "fwd_bwd") for b in ("aten", "onednn") for kind in ("fwd", "fwd_bwd")}
    best = alternate(fns, repeats=5, warmup=2)
    out = {f"linear_{name}_gflops": round(flop * (3 if "bwd" in name else 1) / best[name] / 1e9, 1) for name in best}
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opts = {f"adamw_{k}": torch.optim.AdamW(model.parameters(), lr=1e-4, fused=v) for k, v in
            (("default", None), ("fused", True))}
    best = alternate({k: o.step for k, o in opts.items()}, repeats=5, warmup=1)
    out.update({f"{k}_ms": round(1e3 * v, 1) for k, v in best.items()})
    model.zero_grad(set_to_none=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1, help="batch multiplier (batch = 2 x scale)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 keeps shared machines fair)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--profile", action="store_true",
                   help="also profile one fp32 step of each: matmul and attention shares")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import transformers

    batch = 2 * a.scale
    tokens = batch * a.seq
    metrics: dict = {"tokens_per_step": tokens, "threads": a.threads}
    ratios = {}
    for precision in ("fp32", "bf16_autocast"):
        args, ours, hf = build(a.layers, a.vocab, a.seq)  # fresh weights and optimizers for each precision
        tokens_BT = torch.randint(0, args.vocab_size, (batch, a.seq + 1), generator=torch.Generator().manual_seed(1))
        fns, losses = step_fns(ours, hf, tokens_BT)
        if precision != "fp32":
            del fns["tokenmill_aten_gemm"]  # autocast's bf16 linears take oneDNN either way
        cpu: dict = {}
        wall = alternate(timed(fns, cpu, precision != "fp32"), repeats=a.repeats, warmup=1)
        for name in fns:
            metrics[f"{precision}_{name}_tokens_per_s_wall"] = round(tokens / wall[name], 1)
            metrics[f"{precision}_{name}_tokens_per_s_cpu"] = round(tokens / cpu[name], 1)
        metrics[f"{precision}_first_step_loss"] = {k: round(v, 5) for k, v in losses.items()}
        ratios[f"tokenmill_vs_transformers_{precision}_wall"] = wall["transformers"] / wall["tokenmill"]
        ratios[f"tokenmill_vs_transformers_{precision}_cpu"] = cpu["transformers"] / cpu["tokenmill"]
        if "tokenmill_aten_gemm" in fns:
            ratios[f"tokenmill_aten_gemm_vs_transformers_{precision}_cpu"] = (cpu["transformers"]
                                                                           / cpu["tokenmill_aten_gemm"])
        if precision == "fp32" and a.profile:
            for name, fn in fns.items():
                metrics[f"fp32_{name}_profile"] = op_shares(fn)
            metrics["fp32_kernels"] = kernel_rates(ours, tokens)
    counts = ours.num_params()
    metrics.update({"params_total": counts["total"], "params_activated": counts["activated"],
                    "transformers_version": transformers.__version__, "torch_version": torch.__version__})
    desc = (f"preset small with {a.layers} layers, vocab {a.vocab}, batch {batch} x {a.seq} tokens, "
            f"{counts['total'] / 1e6:.1f}M params ({counts['activated'] / 1e6:.1f}M activated), fp32 and bf16 autocast, "
            f"{a.threads} thread(s)")
    path = write_result("train", input=desc, metrics=metrics, ratios=ratios,
                        goal={"tokenmill_vs_transformers": ">= 1.5"})
    print(metrics, {k: round(v, 3) for k, v in ratios.items()}, "->", path)


if __name__ == "__main__":
    main()
