"""The trainer's AdamW: fused kernel on CPU, decay on matrices only, and a resume that keeps the fused kernel."""

import torch

from tokenmill.train.config import OptimSpec
from tokenmill.train.model import Transformer, model_args
from tokenmill.train.optim import build_optimizer, keep_implementation


def test_fused_on_cpu_and_decay_on_matrices_only():
    model = Transformer(model_args("tiny"))
    opt = build_optimizer(model, OptimSpec(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["fused"] and no_decay["fused"]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim >= 2 and "embed" not in names[id(p)] for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"embed.weight", "norm.weight"}


def test_loading_an_unfused_checkpoint_keeps_the_fused_kernel():
    p = torch.nn.Parameter(torch.randn(4, 3))
    p.grad = torch.ones(4, 3)
    written = torch.optim.AdamW([p])  # a checkpoint from before the trainer fused its CPU AdamW
    written.step()
    resumed = torch.optim.AdamW([p], fused=True)
    resumed.load_state_dict(written.state_dict())
    assert resumed.param_groups[0]["fused"] is None  # what load_state_dict alone does
    keep_implementation(resumed)
    assert resumed.param_groups[0]["fused"] is True
    resumed.step()
    assert torch.equal(resumed.state[p]["step"], torch.tensor(2.0))
