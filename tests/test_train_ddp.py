"""Distributed: 2 CPU processes under torchrun (gloo; DDP, and FSDP2 with a resume) match one process at the same
global batch — same samples per step, same losses within float-summation tolerance, same final weights."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file
from test_train_fixtures import english_like_texts, losses, make_text_dataset, make_tokenizer, write_job

from tokenmill.trace.provenance import step_documents
from tokenmill.train.loop import train_from_spec

STEPS = 8


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_a_single_process(tmp_path, strategy):
    texts = english_like_texts(200, seed=3)
    web = make_text_dataset(tmp_path / "web", make_tokenizer(tmp_path, texts), texts)
    kw = {"max_steps": STEPS, "global_batch": 8, "micro_batch": 2, "checkpoint": {"every": STEPS}}
    single = write_job(tmp_path / "single.yaml", tmp_path / "single", {"web": web}, **kw)
    ddp = write_job(tmp_path / "ddp.yaml", tmp_path / "ddp", {"web": web}, distributed={"strategy": strategy},
                    **kw)
    train_from_spec(str(single))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "tokenmill.cli", "train", str(ddp)]
    if strategy == "fsdp":  # stop halfway, then resume: the gathered optimizer state must load back into shards
        proc = subprocess.run([*torchrun, "--max-steps", str(STEPS // 2)], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        torchrun.append("--resume")
    proc = subprocess.run(torchrun, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one, two = losses(tmp_path / "single"), losses(tmp_path / "ddp")
    assert sorted(two) == list(range(STEPS))
    for step in range(STEPS):
        assert two[step] == pytest.approx(one[step], rel=1e-4, abs=1e-5), step
    rows = pq.read_table(tmp_path / "ddp" / "provenance", columns=["step", "rank", "row", "seq"]).to_pylist()
    assert {r["rank"] for r in rows} == {0, 1} and len(rows) == STEPS * 8
    ref = pq.read_table(tmp_path / "single" / "provenance", columns=["step", "row", "seq"]).to_pylist()
    assert {(r["step"], r["row"], r["seq"]) for r in rows} == {(r["step"], r["row"], r["seq"]) for r in ref}
    assert {d["row"] for d in step_documents(tmp_path / "ddp", 3)} == set(range(8))  # both ranks' files read

    w1 = load_file(str(tmp_path / "single" / "checkpoints" / f"step-{STEPS:08d}" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "ddp" / "checkpoints" / f"step-{STEPS:08d}" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-3, atol=1e-4, msg=name)
