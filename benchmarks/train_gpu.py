"""Training throughput and MFU on one NVIDIA GPU for the `small` and `1b` presets, bf16 autocast.

One step = forward (with MTP and the balance loss), loss, backward, AdamW (fp32 master weights), router-bias update.
Routed experts run as `torch._grouped_mm` (bf16, sm90; sm80 too on torch >= 2.9) over tokens sorted by expert.
MFU = estimate_flops_per_token x tokens/s / the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s).

    python -m benchmarks.train_gpu [--steps 10] [--tokens 16384] [--presets small,1b]

Prints one JSON line (and writes benchmarks/results/train_gpu.json). Without a CUDA GPU it prints a JSON line
saying so and exits 0. Both presets take ~1-2 minutes on an H100-class GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

BF16_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12,
                   "L40S": 362e12, "B200": 2250e12}  # vendor dense bf16 tensor-core peaks (no sparsity)


def peak_flops(name: str) -> float | None:
    return next((v for k, v in BF16_PEAK_FLOPS.items() if k in name), None)


def run_preset(preset: str, tokens_per_step: int, steps: int, warmup: int, device: str = "cuda") -> dict:
    """One preset's timing; `device="cpu"` exercises the same code without a GPU (for checking the script)."""
    from tokenmill.train.model import Transformer, model_args
    from tokenmill.train.moe import _native_grouped_mm_ok

    torch.manual_seed(0)
    args = model_args(preset)
    seq = args.max_seq_len
    batch = max(1, tokens_per_step // seq)
    cuda = device == "cuda"
    model = Transformer(args).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    tokens_BT = torch.randint(0, args.vocab_size, (batch, seq + 1), device=device)
    inputs_BT, targets_BT = tokens_BT[:, :-1], tokens_BT[:, 1:]

    def step():
        with torch.autocast(device, dtype=torch.bfloat16):
            out = model(inputs_BT)
            loss, _ = model.loss(out, targets_BT)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_router_biases(out.expert_load_LE)

    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - t0) / steps
    tokens_per_s = batch * seq / seconds
    flops = model.estimate_flops_per_token(seq)
    peak = peak_flops(torch.cuda.get_device_name()) if cuda else None
    probe = torch.zeros(16, args.dim, device=device, dtype=torch.bfloat16)
    result = {
        "preset": preset, "batch": batch, "seq": seq, "step_s": round(seconds, 4),
        "tokens_per_s": round(tokens_per_s, 1), "flops_per_token": flops,
        "mfu": round(flops * tokens_per_s / peak, 4) if peak else None,
        "params_total": model.num_params()["total"], "params_activated": model.num_params()["activated"],
        "grouped_mm_native": _native_grouped_mm_ok(probe, probe.new_zeros(2, args.dim, 16)),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="small,1b")
    p.add_argument("--tokens", type=int, default=16384, help="tokens per step (batch = tokens // max_seq_len)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "train_gpu", "skipped": "no CUDA GPU visible; run on an H100/H200"}))
        return 0
    torch.backends.cuda.matmul.allow_tf32 = True
    results = []
    for name in a.presets.split(","):
        try:
            results.append(run_preset(name, a.tokens, a.steps, a.warmup))
        except (RuntimeError, ValueError) as err:  # e.g. out of memory: report it and still run the other preset
            results.append({"preset": name, "error": f"{type(err).__name__}: {str(err)[:300]}", "mfu": None})
        torch.cuda.empty_cache()  # the previous preset's model and optimizer are garbage now
    device = torch.cuda.get_device_name()
    print(json.dumps({"benchmark": "train_gpu", "device": device, "torch": torch.__version__, "results": results}))
    from benchmarks.common import write_result

    write_result("train_gpu", input=f"{device}, bf16 autocast, {a.tokens} tokens/step, {a.steps} timed steps",
                 metrics={r["preset"]: r for r in results},
                 ratios={f"mfu_{r['preset']}": r["mfu"] for r in results if r.get("mfu") is not None},
                 goal={"mfu": ">= 0.35 (issue 6)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
