"""The training-run report: `RUN/report/index.html` with PNG plots and tables, built from the run's files only.

    RUN/metrics.jsonl      loss, ce, lr, grad_norm, tokens_per_s, load_max_over_min[layer], router_bias_{min,max}
    RUN/spikes.jsonl       the steps the spike detector flagged (marked on the loss curve)
    RUN/provenance/*.parquet   per step and row, the source it trained on (the realized mix)
    RUN/run.json           the job as it ran (config summary table)

Plots, each an `<img id="plot-NAME">`: loss (spikes marked), lr, grad-norm, throughput, expert-load balance
(MoE layers x steps heatmap of max/min expert load, and the router-bias range), realized mix (fraction of rows per
source per window of steps). Tables: run config, final metrics, spikes with their top documents
(`tokenmill.trace.provenance.spike_report`). The mix reads only the `step`, `rank` and `source` columns and counts
with Arrow group-bys. Measured on the 44-step run of tests/test_report_train.py (7 provenance files): 1.4 s per
report (4.5 s for the first in a process: matplotlib's import), of which the mix query is 17 ms.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.config import ConfigError
from tokenmill.io import atomic_write_bytes, read_json
from tokenmill.plots import html_table, pyplot, save_png
from tokenmill.train.metrics import METRICS_FILE, SPIKES_FILE, read_jsonl
from tokenmill.train.provenance import provenance_files

MIX_WINDOWS = 50  # the realized mix is shown as ~50 windows of steps, whatever the run length
TOP_DOCS = 5  # documents listed per spike
CURVES = {"lr": ("lr", "learning rate"), "grad_norm": ("grad_norm", "grad norm (before clipping)"),
          "throughput": ("tokens_per_s", "tokens/s")}


def _series(metrics: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(m["step"], float(m[key])) for m in metrics if isinstance(m.get(key), (int, float))]
    steps_N, values_N = (np.array(x) for x in zip(*pairs, strict=True)) if pairs else (np.zeros(0), np.zeros(0))
    return steps_N, values_N


def plot_loss(metrics: list[dict], spikes: list[dict], path: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for key, color in (("loss", "#36c"), ("ce", "#999")):
        steps_N, loss_N = _series(metrics, key)
        if steps_N.size:
            ax.plot(steps_N, loss_N, color=color, lw=1.2, label=key)
    marked = [(s["step"], s["loss"]) for s in spikes if isinstance(s.get("loss"), (int, float))]
    if marked:
        ax.scatter(*zip(*marked, strict=True), color="#c00", marker="x", s=60, zorder=3,
                   label=f"spike ({len(marked)})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss (ce = next-token cross-entropy; spikes on the ce scale)")
    ax.legend(loc="upper right")
    return save_png(fig, path)


def plot_curve(metrics: list[dict], key: str, label: str, path: Path) -> str | None:
    steps_N, values_N = _series(metrics, key)
    if not steps_N.size:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.plot(steps_N, values_N, color="#396", lw=1.2)
    ax.set_xlabel("step")
    ax.set_title(label)
    return save_png(fig, path)


def plot_expert_load(metrics: list[dict], path: Path) -> str | None:
    """Heatmap of log2(max/min expert load) per MoE layer and step (0 = perfectly balanced), and the router-bias
    range beneath it. None for a dense model (no load keys logged)."""
    rows = [m for m in metrics if isinstance(m.get("load_max_over_min"), list) and m["load_max_over_min"]]
    if not rows:
        return None
    plt = pyplot()
    steps_S = np.array([m["step"] for m in rows])
    ratio_LS = np.array([m["load_max_over_min"] for m in rows], dtype=float).T
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True, height_ratios=[2, 1])
    im = ax.imshow(np.log2(np.maximum(ratio_LS, 1.0)), aspect="auto", cmap="magma", interpolation="nearest",
                   extent=(steps_S[0] - 0.5, steps_S[-1] + 0.5, ratio_LS.shape[0] - 0.5, -0.5))
    ax.set_ylabel("MoE layer")
    ax.set_yticks(range(ratio_LS.shape[0]))
    ax.set_title("Expert load balance: log2(max/min tokens per expert)")
    fig.colorbar(im, ax=ax, label="log2 ratio")
    lo_LS = np.array([m.get("router_bias_min", []) for m in rows], dtype=float).T
    hi_LS = np.array([m.get("router_bias_max", []) for m in rows], dtype=float).T
    for layer in range(min(len(lo_LS), len(hi_LS))):
        bx.fill_between(steps_S, lo_LS[layer], hi_LS[layer], alpha=0.35, label=f"layer {layer}")
    bx.set_ylabel("router bias")
    bx.set_xlabel("step")
    if len(lo_LS):
        bx.legend(loc="upper left", fontsize=7)
    return save_png(fig, path)


def realized_mix(run: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(window start steps, {source: fraction of rows per window}) from the provenance log. A step logged in two
    files (a run stopped at a spike, then resumed) counts from the later file, as `trace step` does."""
    files = provenance_files(run)
    if not files:
        return np.zeros(0, int), {}
    parts = []
    for order, (_, _, _, path) in enumerate(files):
        t = pq.read_table(path, columns=["step", "rank", "source"])
        parts.append(t.append_column("file", pa.array(np.full(t.num_rows, order, np.int32))))
    rows = pa.concat_tables(parts, promote_options="permissive")
    rows = rows.set_column(rows.schema.get_field_index("source"), "source", rows["source"].cast(pa.string()))
    joined = rows.join(rows.group_by(["step", "rank"]).aggregate([("file", "max")]), ["step", "rank"])
    rows = joined.filter(pc.equal(joined["file"], joined["file_max"]))
    step_N = rows["step"].to_numpy()
    width = max(1, int(np.ceil((step_N.max() + 1) / MIX_WINDOWS)))
    window_N = step_N // width
    n_windows = int(window_N.max()) + 1
    total_W = np.bincount(window_N, minlength=n_windows).astype(float)
    source_N = rows["source"].to_numpy(zero_copy_only=False)
    fractions = {}
    for name in sorted(set(source_N.tolist())):
        count_W = np.bincount(window_N[source_N == name], minlength=n_windows)
        fractions[name] = np.divide(count_W, total_W, out=np.zeros(n_windows), where=total_W > 0)
    return np.arange(n_windows) * width, fractions


def plot_mix(starts_W: np.ndarray, fractions: dict[str, np.ndarray], path: Path) -> str | None:
    if not fractions:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3))
    width = int(starts_W[1] - starts_W[0]) if len(starts_W) > 1 else 1
    bottom_W = np.zeros(len(starts_W))
    for name, frac_W in fractions.items():
        ax.bar(starts_W, frac_W, width=width, bottom=bottom_W, align="edge", label=name, linewidth=0)
        bottom_W += frac_W
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("fraction of rows")
    ax.set_title(f"Realized mix (windows of {width} step{'s' if width > 1 else ''})")
    ax.legend(loc="upper right", fontsize=8)
    return save_png(fig, path)


def config_rows(run: Path) -> list[dict]:
    """The run config in a few lines a reader needs (the full job is in RUN/run.json)."""
    path = run / "run.json"
    if not path.is_file():
        return [{"key": "run.json", "value": "absent (run started by an older trainer?)"}]
    info = read_json(path)
    job, args = info.get("job", {}), info.get("model_args", {})
    data, batch, optim = job.get("data", {}), job.get("batch", {}), job.get("optim", {})
    model = job.get("model", {})
    pairs = [("job", job.get("name")), ("world size", info.get("world_size")),
             ("model", f"{model.get('preset')} {json.dumps(model.get('overrides') or {})}"),
             ("dim x layers", f"{args.get('dim')} x {args.get('n_layers')}"),
             ("experts (routed / activated)", f"{args.get('n_routed_experts')} / {args.get('n_activated_experts')}"),
             ("seq_len", data.get("seq_len")), ("packing", data.get("packing")),
             ("batch (global / micro)", f"{batch.get('global_batch_size')} / {batch.get('micro_batch_size')}"),
             ("optimizer", f"lr {optim.get('lr')} {optim.get('schedule')}, warmup {optim.get('warmup_steps')}"),
             ("max_steps", job.get("max_steps")), ("spikes", json.dumps(job.get("spikes"))),
             ("sources", json.dumps(info.get("sources"))), ("mix stages", json.dumps(info.get("stages")))]
    return [{"key": k, "value": v} for k, v in pairs]


def summary_rows(metrics: list[dict], spikes: list[dict]) -> list[dict]:
    _, loss_N = _series(metrics, "loss")
    _, tps_N = _series(metrics, "tokens_per_s")
    pairs = [("steps logged", len(metrics)), ("last step", metrics[-1]["step"]),
             ("final loss", f"{loss_N[-1]:.4f}" if loss_N.size else "-"),
             ("min loss", f"{loss_N.min():.4f}" if loss_N.size else "-"),
             ("tokens trained", sum(int(m.get("tokens", 0)) for m in metrics if not m.get("skipped"))),
             ("median tokens/s", f"{np.median(tps_N):.0f}" if tps_N.size else "-"),
             ("skipped updates", sum(bool(m.get("skipped")) for m in metrics)), ("spikes", len(spikes))]
    return [{"metric": k, "value": v} for k, v in pairs]


def spikes_html(run: Path, spikes: list[dict]) -> str:
    if not spikes:
        return "<p>No loss spikes recorded.</p>"
    from tokenmill.trace.provenance import spike_report

    parts = []
    for s in spike_report(run, top=TOP_DOCS):
        mean = f"{s['mean']:.3f}" if isinstance(s.get("mean"), (int, float)) else "-"
        parts.append(f"<h3 id=\"spike-{s['step']}\">step {s['step']}: loss {s['loss']:.3f} vs trailing mean "
                     f"{mean} (z={s['z']:.1f}), {html.escape(str(s.get('action', '?')))}</h3>")
        docs = [{**d, "loss": f"{d['loss']:.3f}"} for d in s["documents"]]
        parts.append(html_table(docs, ["loss", "tokens", "source", "doc_id", "url"]) if docs
                     else "<p>(no provenance for this step)</p>")
    return "".join(parts)


def _img(name: str, src: str | None, alt: str) -> str:
    return f'<img id="plot-{name}" src="{html.escape(src)}" alt="{html.escape(alt)}">' if src else ""


def write_train_report(run_dir: str | Path) -> Path:
    """Write RUN/report/index.html and its PNG plots; returns the page's path."""
    run = Path(run_dir)
    metrics = read_jsonl(run / METRICS_FILE)
    if not metrics:
        raise ConfigError(f"{run}: no {METRICS_FILE} with any step — is this a tokenmill training run directory?")
    spikes = read_jsonl(run / SPIKES_FILE)
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    images = {"loss": plot_loss(metrics, spikes, out / "loss.png")}
    for name, (key, label) in CURVES.items():
        images[name] = plot_curve(metrics, key, label, out / f"{name}.png")
    images["expert-load"] = plot_expert_load(metrics, out / "expert-load.png")
    images["mix"] = plot_mix(*realized_mix(run), out / "mix.png")
    for stale in set(out.glob("*.png")) - {out / v for v in images.values() if v}:
        stale.unlink()  # a plot that no longer applies must not linger next to the new page
    titles = {"loss": "Loss", "mix": "Realized mix", "expert-load": "Expert load", "lr": "Learning rate",
              "grad_norm": "Gradient norm", "throughput": "Throughput"}
    job = (read_json(run / "run.json").get("job", {}).get("name") if (run / "run.json").is_file() else None)
    parts = [f"<h1>tokenmill training report: {html.escape(str(job or run.name))}</h1>",
             f"<p>run: <code>{html.escape(str(run.resolve()))}</code></p>",
             "<h2>Summary</h2>", html_table(summary_rows(metrics, spikes), ["metric", "value"]),
             "<h2>Config</h2>", html_table(config_rows(run), ["key", "value"])]
    for name, title in titles.items():
        if images.get(name):
            parts += [f"<h2>{title}</h2>", _img(name, images[name], title)]
    parts += ["<h2>Spikes and their top documents</h2>", spikes_html(run, spikes)]
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%}")
    page = out / "index.html"
    atomic_write_bytes(page, (f"<!doctype html><html><head><meta charset='utf-8'><title>tokenmill training "
                              f"report</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
                              ).encode())
    return page
