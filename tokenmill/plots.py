"""What both HTML reports share: a headless matplotlib, PNG files, and HTML tables."""

from __future__ import annotations

import html
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display; safe in Ray workers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, tight: bool = True) -> str:
    """Write `fig` to `path` and close it; returns the file name, for an <img src> beside the page.

    `tight=False` for grids of many panels, whose layout was set by hand: tight_layout costs ~0.5 s there.
    """
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path.name


def html_table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
