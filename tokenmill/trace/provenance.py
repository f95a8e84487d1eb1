"""Queries over a training run's provenance log (files written by the trainer; read here, never imported).

    tokenmill trace step RUN N      the documents trained on in step N: id, url, source, tokens, loss
    tokenmill trace spikes RUN      each loss spike (RUN/spikes.jsonl) with the documents most responsible:
                                    highest per-document loss in that step, with urls

Only the file covering step N is read (file names carry their step range), with a row filter on `step`, so a
query touches one small Parquet file however long the run. A step logged twice (a run stopped at a spike and then
resumed) keeps the last file's rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.config import ConfigError

FILE_RE = re.compile(r"^rank-(\d+)-steps-(\d{8})-(\d{8})\.parquet$")  # the trainer's naming (train/provenance.py)


def _files_for_step(run: Path, step: int) -> list[Path]:
    d = run / "provenance"
    if not d.is_dir():
        raise ConfigError(f"{run}: no provenance/ folder (not a training run, or provenance.enabled: false)")
    hits: dict[int, tuple[int, Path]] = {}
    for p in sorted(d.glob("*.parquet")):
        m = FILE_RE.match(p.name)
        if m and int(m.group(2)) <= step < int(m.group(3)):
            rank = int(m.group(1))
            if rank not in hits or int(m.group(2)) >= hits[rank][0]:
                hits[rank] = (int(m.group(2)), p)
    return [p for _, p in sorted(hits.values(), key=lambda x: x[1].name)]


def step_documents(run: str | Path, step: int) -> list[dict]:
    """One dict per (row, document) of step `step`, ordered by row then position in the row."""
    run = Path(run)
    files = _files_for_step(run, step)
    if not files:
        raise ConfigError(f"{run}: no provenance for step {step} (steps logged: {_logged_range(run)})")
    out = []
    for path in files:
        table = pq.read_table(path, filters=[("step", "=", step)])
        table = table.filter(pc.equal(table["step"], step))
        for row in table.to_pylist():
            for d in row["docs"]:
                out.append({"step": step, "rank": row["rank"], "row": row["row"], "source": row["source"],
                            "seq": row["seq"], "epoch": row["epoch"], "row_loss": row["row_loss"],
                            "skipped": row["skipped"], "doc_id": d["doc_id"], "url": d["url"],
                            "tokens": d["seq_stop"] - d["seq_start"], "seq_start": d["seq_start"],
                            "doc_token_start": d["doc_token_start"], "loss": d["loss"]})
    return sorted(out, key=lambda r: (r["row"], r["seq_start"]))


def _logged_range(run: Path) -> str:
    spans = [(int(m.group(2)), int(m.group(3))) for p in (run / "provenance").glob("*.parquet")
             if (m := FILE_RE.match(p.name))]
    return f"{min(a for a, _ in spans)}..{max(b for _, b in spans) - 1}" if spans else "none"


def read_spikes(run: str | Path) -> list[dict]:
    path = Path(run) / "spikes.jsonl"
    if not path.is_file():
        raise ConfigError(f"{run}: no spikes.jsonl (not a training run?)")
    spikes = []
    for line in path.read_text().splitlines():
        try:
            spikes.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return spikes


def per_document(spans: list[dict]) -> list[dict]:
    """Merge the spans of one document within a step (it may fill several rows): token-weighted mean loss."""
    merged: dict[str, dict] = {}
    for d in spans:
        if d["loss"] is None:
            continue
        m = merged.setdefault(d["doc_id"], {**d, "tokens": 0, "loss": 0.0, "rows": []})
        m["loss"] = (m["loss"] * m["tokens"] + d["loss"] * d["tokens"]) / max(m["tokens"] + d["tokens"], 1)
        m["tokens"] += d["tokens"]
        m["rows"].append(d["row"])
    return list(merged.values())


def spike_report(run: str | Path, top: int = 5) -> list[dict]:
    """Each spike with its `top` documents by per-document loss (ties: more tokens first)."""
    report = []
    for spike in read_spikes(run):
        try:
            docs = per_document(step_documents(run, spike["step"]))
        except ConfigError:
            docs = []
        ranked = sorted(docs, key=lambda d: (-d["loss"], -d["tokens"]))
        report.append({**spike, "documents": ranked[:top]})
    return report


def _fmt_loss(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def step_command(run: str, step: int, as_json: bool = False) -> str:
    docs = step_documents(run, step)
    if as_json:
        return json.dumps(docs, indent=2)
    lines = [f"step {step}: {len(docs)} document spans in {len({(d['rank'], d['row']) for d in docs})} rows",
             f"{'row':>4} {'source':<12} {'tokens':>6} {'loss':>6}  {'doc id':<24} url"]
    for d in docs:
        lines.append(f"{d['row']:>4} {d['source']:<12} {d['tokens']:>6} {_fmt_loss(d['loss'])}  "
                     f"{d['doc_id']:<24} {d['url'] or ''}")
    return "\n".join(lines)


def spikes_command(run: str, top: int = 5, as_json: bool = False) -> str:
    report = spike_report(run, top)
    if as_json:
        return json.dumps(report, indent=2)
    if not report:
        return f"{run}: no loss spikes recorded"
    lines = []
    for s in report:
        lines.append(f"step {s['step']}: loss {s['loss']:.3f} vs trailing mean {s.get('mean') or float('nan'):.3f} "
                     f"(z={s['z']:.1f}), {s.get('action', '?')}")
        for d in s["documents"]:
            lines.append(f"    loss {_fmt_loss(d['loss'])}  {d['tokens']:>5} tok  {d['source']:<10} {d['doc_id']}  "
                         f"{d['url'] or ''}")
    return "\n".join(lines)
