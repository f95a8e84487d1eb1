"""The provenance log: per step, rank and row — source, sequence, documents with token ranges, and losses.

Files: `RUN/provenance/rank-R-steps-AAAAAAAA-BBBBBBBB.parquet` holding steps [A, B), written atomically every
`flush_every` steps and at every checkpoint, so a resume deletes the files that start at or after its step and
nothing else. One Parquet row per training row:

    step int32, rank int16, row int32 (position in the global batch), sample int64 (global sample index),
    source string (dictionary), seq int64 (sequence in that source), epoch int32, row_loss float32,
    skipped bool (the update was skipped as a spike),
    docs list<struct<doc_id, url, seq_start int32, seq_stop int32, doc_token_start int64, loss float32>>

`loss` of a document = mean next-token cross-entropy over the targets inside its span, from the same forward
pass that trained on it. Size: ~0.2 KB per row with zstd (benchmarks/loader.py reports bytes per step).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from tokenmill.io import ParquetSink

PROVENANCE_DIR = "provenance"
FILE_RE = re.compile(r"^rank-(\d+)-steps-(\d{8})-(\d{8})\.parquet$")

DOC_TYPE = pa.struct([
    pa.field("doc_id", pa.string()), pa.field("url", pa.string()), pa.field("seq_start", pa.int32()),
    pa.field("seq_stop", pa.int32()), pa.field("doc_token_start", pa.int64()), pa.field("loss", pa.float32()),
])
SCHEMA = pa.schema([
    pa.field("step", pa.int32()), pa.field("rank", pa.int16()), pa.field("row", pa.int32()),
    pa.field("sample", pa.int64()), pa.field("source", pa.dictionary(pa.int32(), pa.string())),
    pa.field("seq", pa.int64()), pa.field("epoch", pa.int32()), pa.field("row_loss", pa.float32()),
    pa.field("skipped", pa.bool_()), pa.field("docs", pa.list_(DOC_TYPE)),
])


def doc_losses(ce_BT: torch.Tensor, valid_BT: torch.Tensor, docs: list[list[tuple]]) -> list[np.ndarray]:
    """Mean CE of each document span, per row. Target index t predicts token t+1, so a document occupying tokens
    [a, b) of the sequence owns targets [max(a, 1) - 1, b - 1)."""
    B, T = ce_BT.shape
    csum_BT1 = torch.nn.functional.pad((ce_BT * valid_BT).cumsum(1), (1, 0)).cpu().numpy()
    cnt_BT1 = torch.nn.functional.pad(valid_BT.cumsum(1), (1, 0)).cpu().numpy()
    out = []
    for b, spans in enumerate(docs):
        if not spans:
            out.append(np.zeros(0, np.float32))
            continue
        a = np.clip(np.array([s[2] for s in spans]), 1, T + 1) - 1
        z = np.clip(np.array([s[3] for s in spans]) - 1, 0, T)
        z = np.maximum(z, a)
        n = cnt_BT1[b, z] - cnt_BT1[b, a]
        total = csum_BT1[b, z] - csum_BT1[b, a]
        out.append(np.where(n > 0, total / np.maximum(n, 1), np.nan).astype(np.float32))
    return out


class ProvenanceWriter:
    """Buffers rows in memory; `flush()` writes the buffered steps as one Parquet file."""

    def __init__(self, run_dir: str | Path, rank: int, source_names: list[str]) -> None:
        self.dir = Path(run_dir) / PROVENANCE_DIR
        self.rank = rank
        self.source_names = source_names
        self._rows: dict[str, list] = {name: [] for name in SCHEMA.names}
        self._first_step: int | None = None
        self._last_step: int | None = None
        self.bytes_written = 0
        self.steps_written = 0

    def add(self, step: int, batch: dict, row0: int, row_loss_B: np.ndarray, doc_loss: list[np.ndarray],
            skipped: bool = False) -> None:
        B = len(row_loss_B)
        r = self._rows
        r["step"] += [step] * B
        r["rank"] += [self.rank] * B
        r["row"] += list(range(row0, row0 + B))
        r["sample"] += batch["sample_B"].tolist()
        r["source"] += [self.source_names[s] for s in batch["source_B"].tolist()]
        r["seq"] += batch["seq_B"].tolist()
        r["epoch"] += batch["epoch_B"].tolist()
        r["row_loss"] += row_loss_B.tolist()
        r["skipped"] += [skipped] * B
        r["docs"] += [[{"doc_id": d[0], "url": d[1], "seq_start": d[2], "seq_stop": d[3], "doc_token_start": d[4],
                        "loss": None if np.isnan(l_) else float(l_)} for d, l_ in zip(spans, losses, strict=False)]
                      for spans, losses in zip(batch.get("docs", [[]] * B), doc_loss, strict=False)]
        self._first_step = step if self._first_step is None else self._first_step
        self._last_step = step

    def flush(self) -> Path | None:
        if self._first_step is None:
            return None
        a, b = self._first_step, self._last_step + 1
        path = self.dir / f"rank-{self.rank}-steps-{a:08d}-{b:08d}.parquet"
        table = pa.table(self._rows, schema=SCHEMA)
        sink = ParquetSink(path, SCHEMA)
        sink.write(table)
        sink.close()
        self.bytes_written += path.stat().st_size
        self.steps_written += b - a
        self._rows = {name: [] for name in SCHEMA.names}
        self._first_step = self._last_step = None
        return path


def provenance_files(run_dir: str | Path) -> list[tuple[int, int, int, Path]]:
    """(rank, first step, stop step, path) of every provenance file, by first step."""
    d = Path(run_dir) / PROVENANCE_DIR
    found = [(int(m.group(1)), int(m.group(2)), int(m.group(3)), p)
             for p in d.glob("*.parquet") if (m := FILE_RE.match(p.name))] if d.is_dir() else []
    return sorted(found, key=lambda f: (f[1], f[0]))


def rewind(run_dir: str | Path, step: int) -> None:
    """Delete provenance of steps >= step (a resume from checkpoint `step` will log them again)."""
    for _, first, _, path in provenance_files(run_dir):
        if first >= step:
            path.unlink(missing_ok=True)
