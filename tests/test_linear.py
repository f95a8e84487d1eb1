"""The oneDNN float32 CPU linear: same values and gradients as F.linear, used where it should be, off where not."""

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from tokenmill.train.linear import Linear, linear, onednn_available, set_cpu_backend



def ops_called(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("shape", [(64, 48), (3, 17, 48)])
def test_values_and_gradients_match_float64(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(40, 48, generator=g, requires_grad=True)
    dy = torch.randn(*shape[:-1], 40, generator=g)
    y = linear(x, w)
    y.backward(dy)
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    y64 = F.linear(x64, w64)
    y64.backward(dy.double())
    assert y.shape == y64.shape and y.dtype == torch.float32
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad.double(), w64.grad, rtol=1e-5, atol=1e-5)


def test_non_contiguous_input_and_frozen_weight():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 64, generator=g).t().requires_grad_()  # a transposed view [64, 48]
    w = torch.randn(40, 48, generator=g)  # no grad wanted
    linear(x, w).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(64, 40) @ w, rtol=1e-5, atol=1e-5)


def test_float32_cpu_runs_on_onednn_and_the_rest_on_aten():
    assert onednn_available(), "the pinned CPU torch ships oneDNN's linear op; without it the trainer is ~2x slower"
    layer = Linear(32, 16)
    x = torch.randn(8, 32)
    assert "mkldnn::_linear_pointwise" in ops_called(lambda: layer(x).sum().backward())
    assert "mkldnn::_linear_pointwise" not in ops_called(lambda: layer(x[:0]))  # empty: F.linear
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)  # autocast's own bf16 linear
    assert y.dtype == torch.bfloat16
    set_cpu_backend("aten")
    try:
        called = ops_called(lambda: layer(x).sum().backward())
        assert "mkldnn::_linear_pointwise" not in called and "aten::mm" in called
        assert torch.equal(layer(x), F.linear(x, layer.weight))
    finally:
        set_cpu_backend("onednn")


def test_same_state_dict_names_as_nn_linear():
    assert Linear(4, 3).state_dict().keys() == torch.nn.Linear(4, 3, bias=False).state_dict().keys()
    with pytest.raises(ValueError, match="choose 'onednn' or 'aten'"):
        set_cpu_backend("mkl")


def test_double_backward_raises_instead_of_returning_zeros():
    x = torch.randn(5, 4, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)
    (gx,) = torch.autograd.grad((linear(x, w) ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):  # F.linear's would work; ours must not lie
        gx.sum().backward()
