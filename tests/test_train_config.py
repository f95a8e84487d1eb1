"""Training job specs: the shipped jobs validate; mistakes are refused before any work, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tokenmill.config import ConfigError
from tokenmill.train.config import OptimSpec, load_job
from tokenmill.train.optim import lr_factor

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["train-tiny.yaml", "train-small.yaml"])
def test_shipped_jobs_validate(name):
    job = load_job(REPO / "jobs" / name)
    assert job.data.stages[0].start_step == 0


def _job(tmp_path: Path, **changes) -> Path:
    spec = yaml.safe_load((REPO / "jobs" / "train-tiny.yaml").read_text())
    for dotted, value in changes.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"optim__lr": "fast"}, r"optim.lr: Input should be a valid number"),
    ({"data__stages": [{"start_step": 0, "weights": {"wbe": 1.0}}]}, r"data.stages\[0\].weights.wbe: unknown source"),
    ({"data__stages": [{"start_step": 0, "weights": {"a": 1}}, {"start_step": 0, "weights": {"a": 1}}]},
     r"data.stages\[1\].start_step=0 must be after the previous stage \(.*data.stages\[0\]"),
    ({"batch__micro_batch_size": 5}, r"global_batch_size=16 must be a multiple of micro_batch_size \(5\)"),
    ({"data__block_size": 32, "data__stages": [{"start_step": 0, "weights": {"a": 1}},
                                               {"start_step": 3, "weights": {"a": 1}}]},
     r"data.stages\[1\].start_step=3: its first sample \(48\) must fall on a block boundary"),
    ({"spikes__policy": "ignore"}, r"spikes.policy: Input should be 'skip', 'stop' or 'record'"),
    ({"optimizer": {}}, r"optimizer: unknown key \(misspelled\?\)"),
])
def test_config_errors_name_the_key(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_job(_job(tmp_path, **changes))


def test_two_ranks_need_a_divisible_batch(tmp_path):
    with pytest.raises(ConfigError, match=r"micro_batch_size \(8\) x ranks \(3\)"):
        load_job(_job(tmp_path), world_size=3)


def test_schedules():
    cos = OptimSpec(lr=1.0, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cos, 100) == pytest.approx(0.1) and lr_factor(9, cos, 100) == pytest.approx(1.0)
    assert lr_factor(10, cos, 100) == pytest.approx(1.0) and lr_factor(100, cos, 100) == pytest.approx(0.1)
    assert lr_factor(55, cos, 100) == pytest.approx(0.55)  # halfway down the cosine: (1 + 0.1) / 2
    wsd = OptimSpec(lr=1.0, warmup_steps=10, schedule="wsd", decay_fraction=0.2, min_lr_ratio=0.0)
    assert lr_factor(79, wsd, 100) == 1.0 and lr_factor(90, wsd, 100) == pytest.approx(0.5)
