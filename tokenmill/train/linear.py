"""`Linear`: nn.Linear whose float32 CPU matmuls run on oneDNN instead of the BLAS behind `aten::mm`.

PyTorch's CPU wheels send float32 `mm`/`addmm` to MKL's sgemm, which on AMD EPYC takes a code path far below the
core's AVX-512 peak; oneDNN (also bundled in the wheel) does not. One core of this machine (Zen, AVX-512), a
dense-layer linear [2048 x 512] @ [512 x 1536]^T (`python -m benchmarks.train --profile`, `fp32_kernels`): MKL 108
GFLOPS forward, 107 forward+backward; oneDNN 240 and 214. Same float32 math in both (no reduced-precision mode:
PyTorch's default `torch.backends.mkldnn.matmul.fp32_precision` is kept); the sums only associate differently (max
abs diff ~1e-4 on outputs of size ~20; logits parity with transformers stays ~5e-7, tests/test_model_parity.py).

The forward and both backward matmuls (dX = dY W, dW = dY^T X) go through `torch.ops.mkldnn._linear_pointwise`,
the op PyTorch's own inductor emits for CPU linears. Everything else takes plain `F.linear`: CUDA, other dtypes,
autocast (whose CPU bf16 linears already run on oneDNN), or a PyTorch without the op. `set_cpu_backend("aten")`
turns it off (benchmarks/train.py measures both ways).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BACKEND = {"name": "onednn"}
_PLAIN = (torch.Tensor, nn.Parameter)  # tensor subclasses (DTensor, fake tensors) take F.linear


def set_cpu_backend(name: str) -> None:
    """"onednn" (default): float32 CPU linears on oneDNN; "aten": always `F.linear`."""
    if name not in ("onednn", "aten"):
        raise ValueError(f"cpu linear backend {name!r}: choose 'onednn' or 'aten'")
    _BACKEND["name"] = name


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _mm_t(a_MK: torch.Tensor, b_NK: torch.Tensor) -> torch.Tensor:
    """a @ b^T on oneDNN; both 2-D, either may be a transposed view."""
    return torch.ops.mkldnn._linear_pointwise(a_MK, b_NK, None, "none", [], "")


class _OneDnnLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_ND: torch.Tensor, w_MD: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x_ND, w_MD)
        return _mm_t(x_ND, w_MD)

    @staticmethod
    @torch.autograd.function.once_differentiable  # the oneDNN op has no autograd: double backward must raise
    def backward(ctx, g_NM: torch.Tensor):
        x_ND, w_MD = ctx.saved_tensors
        g_NM = g_NM.contiguous()
        dx_ND = _mm_t(g_NM, w_MD.t()) if ctx.needs_input_grad[0] else None
        # dW^T = X^T dY with dY^T as oneDNN's "weight": dY^T as its input would be copied to contiguous first
        # (the output head's dW from a [2048 x 8192] logits gradient, timed once: 119 ms vs 90 ms with the copy)
        dw_MD = _mm_t(x_ND.t(), g_NM.t()).t().contiguous() if ctx.needs_input_grad[1] else None
        return dx_ND, dw_MD


def _use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (_BACKEND["name"] == "onednn" and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu") and x.numel() > 0
            and type(x) in _PLAIN and type(weight) in _PLAIN and _AVAILABLE)


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x @ weight^T (no bias), on oneDNN for float32 CPU tensors."""
    if not _use_onednn(x, weight):
        return F.linear(x, weight)
    y = _OneDnnLinear.apply(x.reshape(-1, x.shape[-1]), weight)
    return y.view(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """Bias-free nn.Linear (same parameters, same state-dict names) that calls `linear`."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight)


_AVAILABLE = onednn_available()
