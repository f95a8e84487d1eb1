"""Sum per-shard counts into per-stage totals, hold them to in = kept + dropped, and build the funnel.

Two invariants, both checked on every run (a violation fails the job):
  within a stage:   docs_in == docs_kept + sum(dropped.values())
  between stages:   docs_kept of a stage == docs_in of the next one
"""

from __future__ import annotations

from tokenmill.pipeline.plan import Plan
from tokenmill.pipeline.segment import INGEST
from tokenmill.stage import StageCounts


class AccountingError(RuntimeError):
    pass


def aggregate(plan: Plan, keys: list[str], results: list[list[dict]], summaries: dict[str, dict],
              tokens: dict | None) -> dict:
    order = [INGEST, *keys]
    totals = {k: StageCounts() for k in order}
    per_shard: list[dict] = []
    for step in results:
        for r in step:
            for k, c in r["stages"].items():
                totals[k].add(StageCounts.from_dict(c))
            per_shard.append({"shard": r["shard"], "input": r["input"], "output": r["output"],
                              "stages": r["stages"]})
    funnel = []
    prev_kept = None
    for k in order:
        c = totals[k]
        if not c.balanced():
            raise AccountingError(f"stage {k}: docs_in {c.docs_in} != kept {c.docs_kept} + dropped "
                                  f"{sum(c.dropped.values())}")
        if prev_kept is not None and c.docs_in != prev_kept:
            raise AccountingError(f"stage {k} received {c.docs_in} documents but the stage before kept {prev_kept}")
        prev_kept = c.docs_kept
        funnel.append({"stage": k, **c.to_dict()})
    drops: dict[str, int] = {}
    for c in totals.values():
        for reason, n in c.dropped.items():
            drops[reason] = drops.get(reason, 0) + n
    return {
        "job": plan.job.name,
        "spec": plan.spec_path,
        "funnel": funnel,
        "documents_out": prev_kept or 0,
        "drop_reasons": dict(sorted(drops.items(), key=lambda kv: -kv[1])),
        "summaries": summaries,
        "tokens": tokens,
        "shards": per_shard,
    }
