"""The training-run report from a real tiny run with a planted spike: every plot written and referenced, the spike
marked with the planted document on top, and the realized mix counted from the provenance log."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_train_fixtures import english_like_texts, make_text_dataset, make_tokenizer, write_job

from tokenmill.config import ConfigError
from tokenmill.trace.run_report import realized_mix, write_train_report
from tokenmill.train.loop import train_from_spec

SPIKE_STEP = 40
PLOTS = {"loss", "mix", "expert-load", "lr", "grad_norm", "throughput"}


def train_spiked_run(root):
    """44 tiny-model steps; at step SPIKE_STEP three of the 8 rows are an "mmmm…" page (z ≈ 7 in
    tests/test_provenance.py), so the run has one skipped spike and a two-source mix."""
    texts = english_like_texts(400, seed=2)
    tok = make_tokenizer(root, texts)
    web = make_text_dataset(root / "web", tok, texts)
    planted = make_text_dataset(root / "planted", tok, ["m" * 600], source="planted", prefix="planted")
    stages = [{"start_step": 0, "weights": {"web": 1.0}},
              {"start_step": SPIKE_STEP, "weights": {"web": 5, "planted": 3}},
              {"start_step": SPIKE_STEP + 1, "weights": {"web": 1.0}}]
    job = write_job(root / "job.yaml", root / "run", {"web": web, "planted": planted}, stages=stages,
                    max_steps=SPIKE_STEP + 4, spikes={"window": 20, "min_history": 10, "z_threshold": 4.0,
                                                      "policy": "skip"}, provenance={"flush_every": 16})
    train_from_spec(str(job))
    return root / "run"


@pytest.fixture(scope="module")
def spiked_run(tmp_path_factory):
    return train_spiked_run(tmp_path_factory.mktemp("report-train"))


def test_every_plot_exists_and_is_referenced(spiked_run):
    page = write_train_report(spiked_run)
    assert page == spiked_run / "report" / "index.html"
    doc = page.read_text()
    refs = dict(re.findall(r'<img id="plot-([\w-]+)" src="([^"]+)"', doc))
    assert set(refs) == PLOTS
    for src in refs.values():
        png = page.parent / src
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert {p.name for p in page.parent.glob("*.png")} == set(refs.values())  # nothing unreferenced


def test_spike_table_puts_the_planted_document_first(spiked_run):
    doc = write_train_report(spiked_run).read_text()
    section = doc.split(f'id="spike-{SPIKE_STEP}"', 1)[1]
    first_row = section.split("<tr>")[2]  # [0] before the table, [1] the header
    assert "planted-00000" in first_row and "https://planted.example/planted/0" in first_row
    assert "skipped" in section.split("</h3>")[0]
    assert "<td>skipped updates</td><td>1</td>" in doc and "<td>spikes</td><td>1</td>" in doc


def test_realized_mix_matches_the_schedule(spiked_run):
    starts_W, frac = realized_mix(spiked_run)
    assert list(starts_W) == list(range(SPIKE_STEP + 4))  # 44 steps < MIX_WINDOWS: one window per step
    assert frac["planted"][SPIKE_STEP] == pytest.approx(3 / 8)  # weights 5:3 over a batch of 8
    assert np.count_nonzero(frac["planted"]) == 1
    np.testing.assert_allclose(frac["web"] + frac["planted"], 1.0)


def test_a_step_logged_twice_counts_from_the_later_file(spiked_run, tmp_path):
    """A run stopped at the spike and resumed with the planted stage dropped logs step 40 again, in a later file."""
    run = tmp_path / "run"
    shutil.copytree(spiked_run, run, ignore=shutil.ignore_patterns("checkpoints", "report"))
    prov = run / "provenance"
    tail = [prov / "rank-0-steps-00000032-00000040.parquet", prov / "rank-0-steps-00000040-00000044.parquet"]
    merged = pa.concat_tables([pq.read_table(p) for p in tail])
    for p in tail:
        p.unlink()
    pq.write_table(merged, prov / "rank-0-steps-00000032-00000044.parquet")
    redo = merged.filter(pa.compute.equal(merged["step"], SPIKE_STEP))
    web = pa.array(["web"] * redo.num_rows).dictionary_encode().cast(redo.schema.field("source").type)
    redo = redo.set_column(redo.schema.get_field_index("source"), "source", web)
    pq.write_table(redo, prov / "rank-0-steps-00000040-00000041.parquet")
    _, frac = realized_mix(run)
    assert frac["web"][SPIKE_STEP] == 1.0
    assert "planted" not in frac  # step 40 was the only step with planted rows
    assert write_train_report(run).is_file()


def test_not_a_training_run_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no metrics.jsonl"):
        write_train_report(tmp_path)
