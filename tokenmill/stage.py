"""The stage protocol: what every pipeline step is, independent of Ray.

Two kinds of step:

* `Stage` — per document batch. `setup()` once per worker (load models), then `process(table) -> table`, pure and
  deterministic. A filter appends its signal columns and sets `drop_reason`; it never deletes rows. The runner
  splits dropped rows off to `rejected/` and counts them by reason.
* `GlobalStage` — a `Stage` that first needs a barrier over every shard (dedup clustering, the decontamination
  index). `prepare(...)` is a generator of *phases*: each phase is a list of `Task`s that may run in parallel, and
  the runner sends back their results before asking for the next phase. Tasks exchange data through files under
  `workdir`, never through the object store. After the last phase the stage runs as an ordinary `Stage` on every
  shard (its `setup()` reads what the phases wrote).

Stages know nothing of Ray: the runner (`tokenmill.pipeline`) turns tasks into Ray tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict


class StageConfig(BaseModel):
    """Base of every stage's parameters: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Task:
    """One unit of work the runner schedules: `fn(*args)` returns a JSON-able dict (counts, paths).

    `key` is unique within its phase and names the done-marker, so a re-run skips tasks already finished.
    `fn` must write its outputs atomically (temporary name, then `os.replace`).
    """

    key: str
    fn: Callable[..., dict]
    args: tuple = ()
    num_cpus: float = 1.0


Phases = Generator[list[Task], list[dict], None]


@dataclass(frozen=True)
class ShardInfo:
    """What a stage may know about the shard it is processing (for names in errors and stable tie-breaking)."""

    index: int
    name: str
    path: str


class Stage:
    """A per-batch document transformation. Subclasses set `name` and `Config`, and implement `process`."""

    name: ClassVar[str] = "stage"
    Config: ClassVar[type[StageConfig]] = StageConfig

    def __init__(self, config: StageConfig | None = None, **kwargs: Any) -> None:
        self.config = config if config is not None else self.Config(**kwargs)

    def check(self) -> None:
        """Validate external resources (model files, lists) before any work starts; raise ConfigError."""

    def setup(self) -> None:
        """Load models once per worker. Called before the first `process` in each worker process."""

    def process(self, table: pa.Table) -> pa.Table:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class GlobalStage(Stage):
    """A stage that needs all shards first. `prepare` yields phases of tasks; results come back via `send`.

    The runner, in the driver: `phases = stage.prepare(inputs, workdir)`; runs each yielded list of tasks (done
    tasks are skipped on a re-run) and sends their results back; then `summary(workdir)` goes into the report.
    Then on every shard, in a worker: it builds the stage again from its config, sets `stage.workdir` and
    `stage.shard` (a `ShardInfo` whose index is the position of that shard in `inputs`), calls `setup()` and
    `process(batch)` for each batch of that shard, exactly like an ordinary stage. The shard is `inputs[index]`,
    the file the phases read, streamed from its first row; before each batch the runner sets `row_offset` to the
    position in that file of the batch's first row, so that decisions can be keyed by row, not by `id`.
    """

    workdir: str | None = None
    shard: ShardInfo | None = None
    row_offset: int = 0

    def prepare(self, inputs: list[str], workdir: str) -> Phases:  # pragma: no cover - abstract
        raise NotImplementedError
        yield []

    def summary(self, workdir: str) -> dict:
        """JSON-able facts for the run report (cluster sizes, contamination table...). Read from `workdir`."""
        return {}


@dataclass
class StageCounts:
    """Accounting for one stage on one shard. `docs_in == docs_kept + sum(dropped.values())`, always."""

    docs_in: int = 0
    bytes_in: int = 0
    docs_kept: int = 0
    bytes_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, other: StageCounts) -> None:
        self.docs_in += other.docs_in
        self.bytes_in += other.bytes_in
        self.docs_kept += other.docs_kept
        self.bytes_kept += other.bytes_kept
        for k, v in other.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v

    def balanced(self) -> bool:
        return self.docs_in == self.docs_kept + sum(self.dropped.values())

    def to_dict(self) -> dict:
        return {
            "docs_in": self.docs_in,
            "bytes_in": self.bytes_in,
            "docs_kept": self.docs_kept,
            "bytes_kept": self.bytes_kept,
            "dropped": dict(sorted(self.dropped.items())),
        }

    @classmethod
    def from_dict(cls, d: dict) -> StageCounts:
        return cls(d["docs_in"], d["bytes_in"], d["docs_kept"], d["bytes_kept"], dict(d["dropped"]))
