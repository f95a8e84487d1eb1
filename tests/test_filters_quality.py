"""fastText quality classifier: DCLM-recipe training on human-labelled CC text, applying a model, checks."""

from __future__ import annotations

import numpy as np
import pytest
from filters_helpers import docs

from tokenmill.config import ConfigError, validate
from tokenmill.filters.quality import QualityFilter, normalize, train_classifier

LABELLED = "commoncrawl/text/dclm_majority_data.jsonl.gz"  # 499 {text,label}; the agreement file is a subset


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    data = str(shared_data / LABELLED)
    out = tmp_path_factory.mktemp("quality") / "hq.bin"
    result = train_classifier([data], [data], str(out), label_field="label", holdout=0.3, seed=0, epochs=25)
    return result, out, shared_data


def test_classifier_beats_chance_on_held_out_human_labels(trained):
    result, out, _ = trained
    print(result)  # held-out precision/recall/accuracy (= agreement with the human labels) and AUC
    assert out.exists() and result.n_heldout == 150 and result.n_train == 349
    assert result.auc > 0.75  # chance is 0.5; measured 0.90
    assert result.accuracy > max(result.heldout_positive_frac, 1 - result.heldout_positive_frac) + 0.1  # 0.79
    assert 0.6 < result.precision <= 1 and 0.6 < result.recall <= 1
    assert "precision" in str(result) and "recall" in str(result)


def test_training_is_deterministic(shared_data, tmp_path):
    data = str(shared_data / LABELLED)
    a, b = (train_classifier([data], [data], str(tmp_path / f"m{i}.bin"), label_field="label", holdout=0.3,
                             seed=1, epochs=3) for i in range(2))
    assert (a.precision, a.recall, a.auc) == (b.precision, b.recall, b.auc)
    assert (tmp_path / "m0.bin").read_bytes() == (tmp_path / "m1.bin").read_bytes()


def test_stage_scores_and_keeps_by_threshold(trained):
    _, model, data = trained
    import gzip
    import json

    rows = [json.loads(line) for line in gzip.open(data / LABELLED, "rt")][:200]
    stage = QualityFilter(model_path=str(model), threshold=0.5)
    stage.check()
    out = stage.process(docs([r["text"] for r in rows]))
    score = np.array(out["quality.score"].to_pylist())
    assert ((score >= 0) & (score <= 1)).all() and score.std() > 0.01
    kept = np.array([r is None for r in out["drop_reason"].to_pylist()])
    assert (kept == (score >= 0.5)).all()
    assert set(out["drop_reason"].to_pylist()) <= {None, "quality.below_threshold"}
    label = np.array([r["label"] for r in rows])
    assert score[label == 1].mean() > score[label == 0].mean()


def test_top_fraction_is_per_batch(trained):
    _, model, _ = trained
    texts = [f"Article {i}. " + "The council approved the budget for the new school. " * (1 + i % 7)
             + "click here buy now " * (i % 5) for i in range(40)]
    stage = QualityFilter(model_path=str(model), top_fraction=0.25)
    out = stage.process(docs(texts))
    score = np.array(out["quality.score"].to_pylist())
    kept = [r is None for r in out["drop_reason"].to_pylist()]
    assert kept == list(score >= np.quantile(score, 0.75))
    assert 10 <= sum(kept) <= 12  # ties at the cut may keep a few more
    assert "quality.below_top_fraction" in out["drop_reason"].to_pylist()


def test_model_and_config_errors(trained, tmp_path):
    _, model, _ = trained
    corrupt = tmp_path / "bad.bin"
    corrupt.write_bytes(b"\x00garbage" * 64)
    for path in (corrupt, tmp_path / "missing.bin"):
        with pytest.raises(ConfigError, match=str(path)):
            QualityFilter(model_path=str(path), threshold=0.5).check()
    with pytest.raises(ConfigError, match="__label__nope"):
        QualityFilter(model_path=str(model), threshold=0.5, positive_label="__label__nope").check()
    with pytest.raises(ConfigError, match="exactly one of threshold or top_fraction"):
        validate(QualityFilter.Config, {"model_path": str(model)}, "job.yaml", prefix="stages[0].quality")
    same = str(tmp_path / "labelled.jsonl")  # one file as positive and negative without a label field
    with pytest.raises(ConfigError, match="label_field"):
        train_classifier([same], [same], str(tmp_path / "m.bin"))


def test_cli_train_prints_precision_recall(trained, tmp_path, capsys):
    from tokenmill.cli import main

    _, _, data = trained
    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("\n".join(f"The museum opened a new exhibition about {w} history and culture." for w in
                             ["roman", "maritime", "industrial", "medieval", "ancient", "modern"] * 5))
    neg.write_text("\n".join(f"buy cheap {w} now click here best price free shipping!!!" for w in
                             ["pills", "watches", "shoes", "bags", "phones", "loans"] * 5))
    assert main(["classifier", "train", "--positive", str(pos), "--negative", str(neg), "--out",
                 str(tmp_path / "toy.bin"), "--epochs", "10"]) == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "recall" in printed and (tmp_path / "toy.bin").exists()


def test_normalize_is_dclm_style():
    assert normalize("Hello,   World!\nIt's  FINE.") == "hello , world ! it ' s fine ."
