"""Per-step metrics (`RUN/metrics.jsonl` + TensorBoard) and loss-spike detection (`RUN/spikes.jsonl`).

Spike rule: z = (loss - mean) / std over the trailing `window` steps that were not themselves spikes; a step with
z > z_threshold (and at least `min_history` steps of history) is a spike. Default threshold 5σ; in
tests/test_provenance.py a threshold of 4σ flags only the planted "mmmm…" step of a 44-step tiny-model run.
Spikes never enter the window, so one bad batch cannot raise the bar for the next.
"""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
SPIKES_FILE = "spikes.jsonl"


def truncate_jsonl(path: Path, before_step: int) -> None:
    """Keep the records of steps < before_step (a resume rewinds the logs to its checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) < before_step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by kill -9
    path.write_text("".join(k + "\n" for k in kept))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class MetricsLog:
    """Appends one JSON line per step (flushed, so a killed run keeps its curve) and mirrors to TensorBoard."""

    def __init__(self, run_dir: str | Path, resume_step: int, tensorboard: bool) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in (METRICS_FILE, SPIKES_FILE):
            truncate_jsonl(self.run_dir / name, resume_step)
        self._metrics = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")
        self._spikes = open(self.run_dir / SPIKES_FILE, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_step)
            except ImportError:  # tensorboard not installed: the JSON log still has everything
                self._tb = None

    def log(self, record: dict) -> None:
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step" and math.isfinite(value):
                    self._tb.add_scalar(key, value, record["step"])
                elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
                    for i, v in enumerate(value):
                        self._tb.add_scalar(f"{key}/{i}", v, record["step"])

    def spike(self, record: dict) -> None:
        self._spikes.write(json.dumps(record) + "\n")
        self._spikes.flush()

    def close(self) -> None:
        self._metrics.close()
        self._spikes.close()
        if self._tb is not None:
            self._tb.close()


class SpikeDetector:
    def __init__(self, window: int, min_history: int, z_threshold: float, history: list[float] | None = None):
        self.window, self.min_history, self.z_threshold = window, min_history, z_threshold
        self.history: deque[float] = deque(history or [], maxlen=window)

    def check(self, loss: float) -> dict | None:
        """Stats of the spike if `loss` is one (it is then kept out of the window), else None (loss is added)."""
        if not math.isfinite(loss):
            return {"loss": loss, "mean": None, "std": None, "z": math.inf}
        if len(self.history) >= self.min_history:
            n = len(self.history)
            mean = sum(self.history) / n
            std = math.sqrt(sum((x - mean) ** 2 for x in self.history) / max(n - 1, 1))
            z = (loss - mean) / max(std, 1e-8)
            if z > self.z_threshold:
                return {"loss": loss, "mean": mean, "std": std, "z": z}
        self.history.append(loss)
        return None

    def state(self) -> list[float]:
        return list(self.history)
