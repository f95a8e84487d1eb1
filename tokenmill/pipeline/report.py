"""The run report: `OUT/report/stats.json` and `OUT/report/index.html` with PNG plots and tables.

Rewritten at the end of every run; `tokenmill report OUT` rebuilds it from stats.json and the run's files.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pyarrow.parquet as pq

from tokenmill.io import atomic_write_bytes, atomic_write_json, read_json
from tokenmill.plots import html_table, pyplot, save_png

HIST_BINS = 40
HIST_COLUMNS = 3
SAMPLE_ROWS = 200_000  # rows read per plot (evenly spaced files); totals come from the exact per-shard counts


def plot_funnel(stats: dict, path: Path) -> str:
    plt = pyplot()
    f = stats["funnel"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(f) + 1.2))
    names = [s["stage"] for s in f][::-1]
    ax.barh(names, [s["docs_in"] for s in f][::-1], color="#ccd", label="in")
    ax.barh(names, [s["docs_kept"] for s in f][::-1], color="#36c", label="kept")
    ax.set_xlabel("documents")
    ax.set_title("Document funnel per stage")
    ax.legend(loc="lower right")
    return save_png(fig, path)


def plot_drops(stats: dict, path: Path) -> str | None:
    drops = stats["drop_reasons"]
    if not drops:
        return None
    plt = pyplot()
    items = list(drops.items())[:30][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#c63")
    ax.set_xlabel("documents dropped")
    ax.set_title("Drops by reason")
    return save_png(fig, path)


def sample_files(files: list[Path], budget: int = SAMPLE_ROWS) -> list[Path]:
    """Every k-th file so that about `budget` rows are read: the driver's cost stays flat as the crawl grows."""
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    stride = max(1, -(-rows // budget))
    return files[::stride]


def _column_values(files: list[Path], col: str) -> list:
    return [pq.read_table(f, columns=[col])[col] for f in files if col in pq.read_schema(f).names]


def _report_files(out: Path) -> tuple[list[Path], list[Path]]:
    return (sample_files(sorted((out / "documents").glob("*.parquet"))),
            sample_files(sorted((out / "rejected").glob("*/*.parquet"))))


def plot_languages(out: Path, path: Path) -> str | None:
    """Documents per detected language, kept and dropped (the language stage labels every document it sees)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kept_files, dropped_files = _report_files(out)
    kept = _column_values(kept_files, "language")
    dropped = _column_values(dropped_files, "language")
    counts: dict[str, list[int]] = {}
    for i, chunks in enumerate((kept, dropped)):
        if not chunks:
            continue
        for v in pc.value_counts(pa.chunked_array(chunks).drop_null()).to_pylist():
            counts.setdefault(v["values"], [0, 0])[i] += v["counts"]
    if not counts:
        return None
    top = sorted(counts.items(), key=lambda kv: -sum(kv[1]))[:20][::-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(top) + 1.2))
    names = [k for k, _ in top]
    ax.barh(names, [v[0] for _, v in top], color="#36c", label="kept")
    ax.barh(names, [v[1] for _, v in top], left=[v[0] for _, v in top], color="#ccd", label="dropped")
    ax.set_xlabel("documents")
    ax.set_title("Languages (fastText lid.176)")
    ax.legend(loc="lower right")
    return save_png(fig, path)


def plot_cluster_sizes(stats: dict, path: Path) -> str | None:
    hist = (stats.get("summaries") or {}).get("minhash_dedup", {}).get("cluster_size_histogram")
    if not hist:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(hist), list(hist.values()), color="#939")
    ax.set_xlabel("documents per near-duplicate cluster")
    ax.set_ylabel("clusters")
    ax.set_title("MinHash dedup cluster sizes")
    return save_png(fig, path)


def score_histograms(out: Path, stats: dict, path: Path) -> str | None:
    """One panel per score column a stage declares (`score_columns`), over kept and rejected documents (sampled)."""
    import numpy as np

    from tokenmill.pipeline.plan import stage_class

    files = [f for group in _report_files(out) for f in group]
    columns: list[str] = []
    for s in stats["funnel"][1:]:
        try:
            columns += list(getattr(stage_class(s["stage"].split("#")[0]), "score_columns", ()))
        except Exception:  # noqa: BLE001 - a report never fails on an unknown stage
            continue
    columns = list(dict.fromkeys(columns))
    values: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for f in files:  # one read per file, all of its score columns at once
        present = [c for c in columns if c in pq.read_schema(f).names]
        if present:
            table = pq.read_table(f, columns=present)
            for c in present:
                values[c].append(table[c].to_numpy(zero_copy_only=False))
    panels = []
    for col in columns:
        v = np.concatenate(values[col]).astype(float) if values[col] else np.zeros(0)
        v = v[np.isfinite(v)]
        if v.size:
            panels.append((col, v))
    if not panels:
        return None
    plt = pyplot()
    rows = -(-len(panels) // HIST_COLUMNS)
    fig, axes = plt.subplots(rows, HIST_COLUMNS, figsize=(4 * HIST_COLUMNS, 2.6 * rows), squeeze=False)
    for ax, (col, v) in zip(axes.flat, panels, strict=False):
        counts, edges = np.histogram(v, bins=HIST_BINS)
        ax.stairs(counts, edges, fill=True, color="#396")  # one artist per panel, not one per bar
        ax.set_title(col, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.subplots_adjust(left=0.05, right=0.98, top=1 - 0.35 / rows, bottom=0.2 / rows, hspace=0.55, wspace=0.25)
    return save_png(fig, path, tight=False)


def render_html(stats: dict, images: dict[str, str | None]) -> str:
    parts = [f"<h1>tokenmill run report: {html.escape(stats['job'])}</h1>",
             f"<p>spec: <code>{html.escape(stats['spec'])}</code> — documents out: "
             f"<b>{stats['documents_out']}</b></p>", "<h2>Funnel</h2>"]
    if images.get("funnel"):
        parts.append(f'<img id="plot-funnel" src="{images["funnel"]}" alt="funnel">')
    parts.append(html_table([{**s, "dropped": sum(s["dropped"].values())} for s in stats["funnel"]],
                        ["stage", "docs_in", "docs_kept", "dropped", "bytes_in", "bytes_kept"]))
    parts.append("<h2>Drops by reason</h2>")
    if images.get("drops"):
        parts.append(f'<img id="plot-drops" src="{images["drops"]}" alt="drops by reason">')
    parts.append(html_table([{"reason": k, "documents": v} for k, v in stats["drop_reasons"].items()],
                        ["reason", "documents"]))
    if images.get("scores"):
        parts.append("<h2>Scores</h2><p>Histograms of each filter's signal, kept and dropped documents together "
                     f"(up to {SAMPLE_ROWS:,} documents, from evenly spaced shards).</p>")
        parts.append(f'<img id="plot-scores" src="{images["scores"]}" alt="score histograms">')
    if images.get("languages"):
        parts.append("<h2>Languages</h2>")
        parts.append(f'<img id="plot-languages" src="{images["languages"]}" alt="languages">')
    for name, summary in (stats.get("summaries") or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if name.startswith("minhash_dedup") and images.get("clusters"):
            parts.append(f'<img id="plot-clusters" src="{images["clusters"]}" alt="cluster sizes">')
        if isinstance(summary.get("benchmarks"), dict):  # the contamination table, one row per benchmark
            parts.append(html_table([{"benchmark": b, **v} for b, v in summary["benchmarks"].items()],
                                ["benchmark", "items", "items_found", "documents", "contaminated_fraction"]))
            summary = {k: v for k, v in summary.items() if k != "benchmarks"}
        for key, value in summary.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                parts.append(f"<h3>{html.escape(key)}</h3>" + html_table(value[:200], list(value[0])))
            else:
                parts.append(f"<p><b>{html.escape(key)}</b>: <code>{html.escape(json.dumps(value)[:2000])}</code></p>")
    if stats.get("tokens"):
        parts.append("<h2>Tokens per source</h2>")
        parts.append(html_table([{"source": k, **v} for k, v in stats["tokens"].items()],
                            ["source", "num_tokens", "num_documents", "dtype", "vocab_size"]))
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>tokenmill report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_report(out: Path, stats: dict) -> Path:
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report_dir / "stats.json", stats)
    images = {"funnel": plot_funnel(stats, report_dir / "funnel.png"),
              "drops": plot_drops(stats, report_dir / "drops.png"),
              "languages": plot_languages(out, report_dir / "languages.png"),
              "clusters": plot_cluster_sizes(stats, report_dir / "clusters.png")}
    for stale in report_dir.glob("hist-*.png"):  # one PNG per score in earlier versions
        stale.unlink()
    images["scores"] = score_histograms(out, stats, report_dir / "scores.png")
    page = report_dir / "index.html"
    atomic_write_bytes(page, render_html(stats, images).encode())
    return page


def rebuild_report(run_dir: str | Path) -> Path:
    out = Path(run_dir)
    stats_path = out / "report" / "stats.json"
    if not stats_path.exists():
        from tokenmill.config import ConfigError

        raise ConfigError(f"{out}: no report/stats.json — is this a tokenmill run directory?")
    return write_report(out, read_json(stats_path))
