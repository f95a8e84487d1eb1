"""Checkpoints and resume: kill -9 mid-run then --resume gives the uninterrupted loss curve; a corrupt checkpoint is
refused and the previous one used; a mixture stage appended at resume (--mix) sees exactly the samples of a run that
had the full schedule from the start; editing a past stage is refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from test_train_fixtures import (
    cli,
    english_like_texts,
    losses,
    make_origin_dataset,
    make_text_dataset,
    make_tokenizer,
    write_job,
)

from tokenmill.config import ConfigError
from tokenmill.train.checkpoint import list_checkpoints, load_model_for_inference
from tokenmill.train.loop import train_from_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("web")
    texts = english_like_texts(300, seed=1)
    return make_text_dataset(root / "web", make_tokenizer(root, texts), texts)


@pytest.fixture(scope="module")
def uninterrupted(web, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full")
    train_from_spec(str(write_job(root / "job.yaml", root / "run", {"web": web}, max_steps=30)))
    return root / "run"


def test_kill_9_then_resume_gives_the_same_losses(web, uninterrupted, tmp_path):
    job = write_job(tmp_path / "job.yaml", tmp_path / "run", {"web": web}, max_steps=30)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cli("train", str(job)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if max(losses(tmp_path / "run"), default=-1) >= 13:  # past the step-10 checkpoint, before step 20's
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, f"training finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    assert [s for s, _ in list_checkpoints(tmp_path / "run")][-1] in (10, 20)
    train_from_spec(str(job), resume=True)
    assert losses(tmp_path / "run") == losses(uninterrupted)  # bit-identical on CPU
    assert len(losses(uninterrupted)) == 30


def test_corrupt_checkpoint_is_refused_and_the_previous_one_used(web, uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    job = write_job(tmp_path / "job.yaml", run, {"web": web}, max_steps=30)
    train_from_spec(str(job), max_steps=20)
    weights = run / "checkpoints" / "step-00000020" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    capsys.readouterr()
    train_from_spec(str(job), resume=True)
    out = capsys.readouterr().out
    assert f"refusing checkpoint {run / 'checkpoints' / 'step-00000020'}" in out
    assert "model.safetensors: sha256 does not match meta.json" in out
    assert "resumed from" in out and "at step 10" in out
    assert losses(run) == losses(uninterrupted)
    model, tok = load_model_for_inference(run)  # the newest good checkpoint (step 30) loads for `generate`
    assert tok is not None and Path(tok).name == "tokenizer.json" and not model.training


def test_fresh_run_into_a_used_run_dir_is_refused(web, uninterrupted, tmp_path):
    job = write_job(tmp_path / "job.yaml", uninterrupted, {"web": web}, max_steps=30)
    with pytest.raises(ConfigError, match="already holds checkpoints; pass --resume"):
        train_from_spec(str(job))


def _provenance_samples(run: Path) -> dict[tuple[int, int], tuple[str, int]]:
    table = pq.read_table(run / "provenance", columns=["step", "row", "source", "seq"]).to_pylist()
    return {(r["step"], r["row"]): (r["source"], r["seq"]) for r in table}


def test_mix_appended_at_resume_equals_the_full_schedule(tmp_path):
    sources = {n: make_origin_dataset(tmp_path / n, n, n_docs=60, doc_len=20) for n in ("web", "code", "math")}
    two = [{"start_step": 0, "weights": {"web": 1.0}}, {"start_step": 6, "weights": {"web": 0.5, "code": 0.5}}]
    new = [{"start_step": 12, "weights": {"code": 0.25, "math": 0.75}}]
    kw = {"seq_len": 16, "max_steps": 18, "checkpoint": {"every": 4}}
    full = write_job(tmp_path / "full.yaml", tmp_path / "full", sources, stages=two + new, **kw)
    train_from_spec(str(full))
    part = write_job(tmp_path / "part.yaml", tmp_path / "part", {"web": sources["web"], "code": sources["code"]},
                     stages=two, **kw)
    train_from_spec(str(part), max_steps=12)
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"sources": {"math": str(sources["math"])}, "stages": new}))
    train_from_spec(str(part), resume=True, mix=str(mix))
    got, want = _provenance_samples(tmp_path / "part"), _provenance_samples(tmp_path / "full")
    assert len(want) == 18 * 8 and got == want
    assert {s for (step, _), (s, _) in want.items() if step >= 12} == {"code", "math"}
    assert losses(tmp_path / "part") == losses(tmp_path / "full")

    edited = write_job(tmp_path / "edited.yaml", tmp_path / "part", sources, stages=[
        two[0], {"start_step": 6, "weights": {"web": 0.25, "code": 0.75}}, *new], **kw)
    with pytest.raises(ConfigError, match=r"mixture.stages\[1\] was .* in the checkpoint, now"):
        train_from_spec(str(edited), resume=True)
    late = tmp_path / "late.yaml"
    late.write_text(yaml.safe_dump({"stages": [{"start_step": 4, "weights": {"web": 1.0}}]}))
    with pytest.raises(ConfigError, match="start_step=4 is before the resume step 18"):
        train_from_spec(str(part), resume=True, mix=str(late))
    typo = tmp_path / "typo.yaml"  # errors in a --mix file name that file, not the job's
    typo.write_text(yaml.safe_dump({"stages": [{"start_step": 20, "weights": {"maths": 1.0}}]}))
    with pytest.raises(ConfigError, match=rf"{re.escape(str(typo))}: stages\[0\].weights.maths: unknown source"):
        train_from_spec(str(part), resume=True, mix=str(typo))
