"""The provenance log: per step, rank and row — source, sequence, documents with token ranges, and losses.

Files: `RUN/provenance/rank-R-steps-AAAAAAAA-BBBBBBBB.parquet` holding steps [A, B), written atomically every
`flush_every` steps and at every checkpoint, so a resume deletes the files that start at or after its step and
nothing else. One Parquet row per training row:

    step int32, rank int16, row int32 (position in the global batch), sample int64 (global sample index),
    source string (dictionary), seq int64 (sequence in that source), epoch int32, row_loss float32,
    skipped bool (the update was skipped as a spike),
    docs list<struct<doc_id, url, seq_start int32, seq_stop int32, doc_token_start int64, loss float32>>

`loss` of a document = mean next-token cross-entropy over the targets inside its span, from the same forward
pass that trained on it. Size: 568 bytes per step of 8 rows x 4096 tokens (~3 documents a row) with zstd
(benchmarks/loader.py, 3000 steps in one file; 643 with 1000).
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


def doc_losses(ce_BT: torch.Tensor, valid_BT: torch.Tensor, spans_N6: np.ndarray) -> np.ndarray:
    """Mean CE of each document span (NaN when it holds no target). Target t predicts token t+1, so a document on
    tokens [a, b) of its row owns targets [max(a, 1) - 1, b - 1)."""
    T = ce_BT.shape[1]
    csum_BT1 = torch.nn.functional.pad((ce_BT * valid_BT).cumsum(1), (1, 0)).double().cpu().numpy()
    cnt_BT1 = torch.nn.functional.pad(valid_BT.cumsum(1), (1, 0)).cpu().numpy()
    row_N, a_N, b_N = spans_N6[:, 0], spans_N6[:, 3], spans_N6[:, 4]
    lo_N = np.clip(a_N, 1, T + 1) - 1
    hi_N = np.maximum(np.clip(b_N - 1, 0, T), lo_N)
    n_N = cnt_BT1[row_N, hi_N] - cnt_BT1[row_N, lo_N]
    total_N = csum_BT1[row_N, hi_N] - csum_BT1[row_N, lo_N]
    return np.where(n_N > 0, total_N / np.maximum(n_N, 1), np.nan).astype(np.float32)


class ProvenanceWriter:
    """Buffers rows in memory; `flush()` writes the buffered steps as one Parquet file, looking document ids and
    urls up in the sources' shard indexes once per flush (Arrow `take`), not per row."""

    def __init__(self, run_dir: str | Path, rank: int, source_names: list[str], sources: dict) -> None:
        self.dir = Path(run_dir) / PROVENANCE_DIR
        self.rank = rank
        self.source_names = source_names
        self.sources = sources  # name -> PackedSequences: its .ds.index(shard) has the ids and urls
        self._reset()
        self.bytes_written = 0
        self.steps_written = 0

    def _reset(self) -> None:
        self._rows: dict[str, list] = {name: [] for name in SCHEMA.names if name != "docs"}
        self._spans: list[np.ndarray] = []  # per micro-batch: (global row, source id, shard, doc_row, a, b, start)
        self._losses: list[np.ndarray] = []
        self._first_step: int | None = None
        self._last_step: int | None = None

    def add(self, step: int, batch: dict, row0: int, row_loss_B: np.ndarray, doc_loss_N: np.ndarray,
            skipped: bool = False) -> None:
        B = len(row_loss_B)
        r = self._rows
        first_row = len(r["step"])
        r["step"] += [step] * B
        r["rank"] += [self.rank] * B
        r["row"] += list(range(row0, row0 + B))
        r["sample"] += batch["sample_B"].tolist()
        r["source"] += [self.source_names[s] for s in batch["source_B"].tolist()]
        r["seq"] += batch["seq_B"].tolist()
        r["epoch"] += batch["epoch_B"].tolist()
        r["row_loss"] += row_loss_B.tolist()
        r["skipped"] += [skipped] * B
        spans_N6 = batch.get("spans", np.zeros((0, 6), np.int64))
        source_N = np.asarray(batch["source_B"])[spans_N6[:, 0]]
        self._spans.append(np.column_stack([spans_N6[:, 0] + first_row, source_N, spans_N6[:, 1:]]))
        self._losses.append(doc_loss_N)
        self._first_step = step if self._first_step is None else self._first_step
        self._last_step = step

    def _docs_column(self, n_rows: int) -> pa.Array:
        spans = np.concatenate(self._spans) if self._spans else np.zeros((0, 7), np.int64)
        losses = np.concatenate(self._losses) if self._losses else np.zeros(0, np.float32)
        ids = np.empty(len(spans), dtype=object)
        urls = np.empty(len(spans), dtype=object)
        for src, shard in {(int(a), int(b)) for a, b in spans[:, 1:3]}:
            sel = (spans[:, 1] == src) & (spans[:, 2] == shard)
            index = self.sources[self.source_names[src]].ds.index(shard)
            take = pa.array(spans[sel, 3])
            ids[sel] = index.column("id").take(take).to_numpy(zero_copy_only=False)
            urls[sel] = index.column("url").take(take).to_numpy(zero_copy_only=False)
        struct = pa.StructArray.from_arrays(
            [pa.array(ids, pa.string()), pa.array(urls, pa.string()), pa.array(spans[:, 4], pa.int32()),
             pa.array(spans[:, 5], pa.int32()), pa.array(spans[:, 6], pa.int64()),
             pa.array(losses, pa.float32(), mask=np.isnan(losses))], fields=list(DOC_TYPE))
        offsets = np.searchsorted(spans[:, 0], np.arange(n_rows + 1)).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), struct)

    def flush(self) -> Path | None:
        if self._first_step is None:
            return None
        a, b = self._first_step, self._last_step + 1
        path = self.dir / f"rank-{self.rank}-steps-{a:08d}-{b:08d}.parquet"
        columns = {**self._rows, "docs": self._docs_column(len(self._rows["step"]))}
        table = pa.table({name: columns[name] for name in SCHEMA.names}, schema=SCHEMA)
        sink = ParquetSink(path, SCHEMA)
        sink.write(table)
        sink.close()
        self.bytes_written += path.stat().st_size
        self.steps_written += b - a
        self._reset()
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
