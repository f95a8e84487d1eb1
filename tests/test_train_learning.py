"""The trainer learns: a tiny MoE/MLA model trained a few hundred steps ends well below the unigram entropy of its
data (what a model that ignores context can reach at best), with balanced experts and a logged schedule."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_train_fixtures import english_like_texts, make_text_dataset, make_tokenizer, write_job

from tokenmill.tokenize.shards import TokenDataset
from tokenmill.train.config import OptimSpec
from tokenmill.train.loop import train_from_spec
from tokenmill.train.optim import lr_factor

STEPS = 200


def unigram_entropy_nats(dataset) -> float:
    ds = TokenDataset.open(dataset)
    counts = np.bincount(np.concatenate([np.asarray(ds.tokens(s)) for s in range(ds.num_shards)]))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@pytest.mark.slow
def test_tiny_model_ends_well_below_unigram_entropy(tmp_path):
    texts = english_like_texts(600, seed=5)
    web = make_text_dataset(tmp_path / "web", make_tokenizer(tmp_path, texts), texts)
    job = write_job(tmp_path / "job.yaml", tmp_path / "run", {"web": web}, seq_len=64, max_steps=STEPS,
                    optim={"lr": 3e-3, "warmup_steps": 20, "schedule": "wsd", "decay_fraction": 0.3},
                    checkpoint={"every": 100}, tensorboard=True)
    train_from_spec(str(job))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    final_ce = float(np.mean([r["ce"] for r in records[-10:]]))
    h1 = unigram_entropy_nats(web)
    print(f"unigram entropy {h1:.3f} nats; first CE {records[0]['ce']:.3f}; final CE (last 10 steps) {final_ce:.3f}")
    assert final_ce < 0.6 * h1
    assert len(records) == STEPS and all(np.isfinite(r["loss"]) for r in records)
    spec = OptimSpec(lr=3e-3, warmup_steps=20, schedule="wsd", decay_fraction=0.3)
    assert [r["lr"] for r in records] == pytest.approx([3e-3 * lr_factor(s, spec, STEPS) for s in range(STEPS)])
    last = records[-1]
    assert last["epochs"]["web"] >= 1  # 200 x 8 rows of 64 tokens read the data more than once: wrapped
    assert len(last["load_max_over_min"]) == 2 and max(last["router_bias_max"]) > 0  # biases moved
    assert any((tmp_path / "run" / "tensorboard").iterdir())
