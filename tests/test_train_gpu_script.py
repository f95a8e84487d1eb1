"""benchmarks/train_gpu.py has never met a GPU here: run its step code on CPU so that a lent GPU's few minutes
are not lost to a broken script, and check the MFU arithmetic it reports."""

import json

import torch

from benchmarks import train_gpu


def test_peak_flops_by_device_name():
    assert train_gpu.peak_flops("NVIDIA H200") == 989e12
    assert train_gpu.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert train_gpu.peak_flops("Some Future GPU") is None


def test_run_preset_steps_the_model_on_cpu(one_torch_thread):
    r = train_gpu.run_preset("tiny", tokens_per_step=512, steps=2, warmup=1, device="cpu")
    assert r["batch"] == 2 and r["seq"] == 256
    assert r["tokens_per_s"] > 0 and r["step_s"] > 0 and r["mfu"] is None  # no GPU peak to divide by
    assert r["flops_per_token"] > 6 * r["params_activated"]  # + attention and the MTP head
    assert isinstance(r["grouped_mm_native"], bool)


def test_without_a_gpu_it_says_so_and_exits_0(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine with a GPU
    monkeypatch.setattr("sys.argv", ["train_gpu"])
    assert train_gpu.main() == 0
    assert "no CUDA GPU" in json.loads(capsys.readouterr().out)["skipped"]
