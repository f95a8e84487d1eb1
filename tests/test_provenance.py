"""Provenance end to end: a planted batch of pathological text ("mmmm…") makes a loss spike; the trainer skips the
update and records it; `trace spikes` names the planted document first and `trace step` lists every document of
a step with losses consistent with the rows'."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from test_train_fixtures import english_like_texts, make_text_dataset, make_tokenizer, write_job

from tokenmill.cli import main
from tokenmill.trace.provenance import spike_report, step_documents
from tokenmill.train.loop import train_from_spec

SPIKE_STEP = 40


@pytest.fixture(scope="module")
def spiked_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("spike")
    texts = english_like_texts(400, seed=2)
    tok = make_tokenizer(root, texts)
    web = make_text_dataset(root / "web", tok, texts)
    planted = make_text_dataset(root / "planted", tok, ["m" * 600], source="planted", prefix="planted")
    stages = [{"start_step": 0, "weights": {"web": 1.0}},
              {"start_step": SPIKE_STEP, "weights": {"web": 5, "planted": 3}},  # exactly three planted rows of 8
              {"start_step": SPIKE_STEP + 1, "weights": {"web": 1.0}}]
    job = write_job(root / "job.yaml", root / "run", {"web": web, "planted": planted}, stages=stages,
                    max_steps=SPIKE_STEP + 4, spikes={"window": 20, "min_history": 10, "z_threshold": 4.0,
                                                      "policy": "skip"}, provenance={"flush_every": 16})
    summary = train_from_spec(str(job))
    return root / "run", summary


def test_planted_page_causes_a_spike_that_is_skipped(spiked_run):
    run, summary = spiked_run
    spikes = [json.loads(line) for line in (run / "spikes.jsonl").read_text().splitlines()]
    assert [s["step"] for s in spikes] == [SPIKE_STEP]
    assert spikes[0]["action"] == "skipped" and spikes[0]["z"] > 4.0
    rows = pq.read_table(run / "provenance", filters=[("step", "=", SPIKE_STEP)]).to_pylist()
    assert len(rows) == 8 and all(r["skipped"] for r in rows)
    assert sum(r["source"] == "planted" for r in rows) == 3
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if m["skipped"]] == [SPIKE_STEP]
    assert summary["step"] == SPIKE_STEP + 4


def test_trace_spikes_names_the_planted_document_first(spiked_run, capsys):
    run, _ = spiked_run
    report = spike_report(run, top=3)
    top = report[0]["documents"]
    assert top[0]["doc_id"] == "planted-00000" and top[0]["url"] == "https://planted.example/planted/0"
    assert top[0]["tokens"] == 99 and len(top[0]["rows"]) == 3  # its three rows, merged
    assert top[0]["loss"] > 2 * top[1]["loss"]
    assert main(["trace", "spikes", str(run), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert f"step {SPIKE_STEP}:" in out and out.index("planted-00000") < out.index("doc-")


def test_trace_step_lists_documents_with_consistent_losses(spiked_run, capsys):
    run, _ = spiked_run
    docs = step_documents(run, 25)
    assert sorted({d["row"] for d in docs}) == list(range(8))
    for row in range(8):
        in_row = [d for d in docs if d["row"] == row]
        assert sum(d["tokens"] for d in in_row) == 33  # seq_len + 1 tokens, every one owned by a document
        scored = [d for d in in_row if d["loss"] is not None]
        targets = [d["tokens"] - (d["seq_start"] == 0) for d in scored]  # the first token is no one's target
        weighted = sum(d["loss"] * n for d, n in zip(scored, targets, strict=False)) / sum(targets)
        assert weighted == pytest.approx(in_row[0]["row_loss"], rel=1e-4)
    assert main(["trace", "step", str(run), "25"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"step 25: {len(docs)} document spans in 8 rows") and "https://web.example/doc/" in out
    assert main(["trace", "step", str(run), "999"]) == 2
    assert "no provenance for step 999 (steps logged: 0..43)" in capsys.readouterr().err


def test_stop_policy_stops_before_the_spike_and_resume_can_drop_the_bad_stage(spiked_run, tmp_path, capsys):
    root = spiked_run[0].parent
    web, planted = root / "web", root / "planted"
    stages = [{"start_step": 0, "weights": {"web": 1.0}},
              {"start_step": SPIKE_STEP, "weights": {"web": 5, "planted": 3}},
              {"start_step": SPIKE_STEP + 1, "weights": {"web": 1.0}}]
    spikes = {"window": 20, "min_history": 10, "z_threshold": 4.0, "policy": "stop"}
    job = write_job(tmp_path / "job.yaml", tmp_path / "run", {"web": web, "planted": planted}, stages=stages,
                    max_steps=SPIKE_STEP + 4, spikes=spikes, provenance={"flush_every": 16})
    summary = train_from_spec(str(job))
    assert summary["step"] == SPIKE_STEP and summary["reason"].startswith(f"loss spike at step {SPIKE_STEP}")
    assert spike_report(tmp_path / "run")[0]["documents"][0]["doc_id"] == "planted-00000"
    # the planted stages start at the stop step, so they are still the future: a resume may drop them
    write_job(tmp_path / "job.yaml", tmp_path / "run", {"web": web, "planted": planted}, stages=stages[:1],
              max_steps=SPIKE_STEP + 4, spikes=spikes, provenance={"flush_every": 16})
    capsys.readouterr()
    summary = train_from_spec(str(job), resume=True)
    assert summary["step"] == SPIKE_STEP + 4 and summary["reason"] == "max_steps"
    assert {d["source"] for d in step_documents(tmp_path / "run", SPIKE_STEP)} == {"web"}
