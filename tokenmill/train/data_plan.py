"""Where the rows of a run of micro-batches come from, computed once per chunk of samples with NumPy: the plan
ranges of each row's sequence (shard, start, length, position in the row) and the documents in them.

`SourceReader` holds one source's packing plan and document starts as NumPy arrays (built lazily, once per
process; documents in global token positions, 12 bytes each) and looks up any number of rows in a few vectorized
calls: concat plans map sequence → plan row directly, best-fit plans by `searchsorted`; document spans are one
`searchsorted` of all segments on the document starts. `ChunkPlan` runs those lookups for a whole chunk of samples
(8192 by default), so a micro-batch only slices the chunk's arrays and copies its tokens: one NumPy call costs
~1-3 us on this loaded machine, and ~15 of them per source per micro-batch took longer than the token copies
(spans looked up per micro-batch: 0.5x of a raw memmap read in benchmarks/loader.py; per chunk: 1.18x). A chunk of
8192 samples (two sources, concat, seq 4096) is planned in ~5 ms plus ~6 ms of `locate`.
"""

from __future__ import annotations

import numpy as np

from tokenmill.tokenize.packing import mode_is_one_row

SPAN_COLUMNS = ("row", "shard", "doc_row", "seq_start", "seq_stop", "doc_token_start")  # batch["spans"] columns
SEGMENT_COLUMNS = ("row", "source", "shard", "start", "length", "pos")  # ChunkPlan.segments


class SourceReader:
    """One source's packing plan, shard token arrays and document starts as NumPy arrays (built lazily, once per
    process); lookups are vectorized over all the rows a micro-batch takes from the source."""

    def __init__(self, packed) -> None:
        self.packed, self.ds = packed, packed.ds
        plan = packed.plan
        self.seq_P = None if mode_is_one_row(packed.mode) else np.ascontiguousarray(plan["seq"])
        self.shard_P, self.start_P, self.length_P = (np.asarray(plan[c], dtype=np.int64) for c in
                                                     ("shard", "start", "length"))
        self.tokens: list[np.ndarray | None] = [None] * self.ds.num_shards
        self._docs: tuple[np.ndarray, ...] | None = None

    def segments(self, seq_R: np.ndarray) -> tuple[np.ndarray, ...]:
        """(row r in seq_R, shard, start, length, position in row) of every plan range of sequences seq_R."""
        if self.seq_P is None:  # concat: plan row = sequence, one whole-length range each
            return (np.arange(len(seq_R)), self.shard_P[seq_R], self.start_P[seq_R], self.length_P[seq_R],
                    np.zeros(len(seq_R), np.int64))
        lo_R = self.seq_P.searchsorted(seq_R, side="left")
        n_R = self.seq_P.searchsorted(seq_R + 1, side="left") - lo_R
        first_R = np.cumsum(n_R) - n_R  # first segment of each row
        row_S = np.repeat(np.arange(len(seq_R)), n_R)
        plan_S = np.arange(int(n_R.sum())) + np.repeat(lo_R - first_R, n_R)
        length_S = self.length_P[plan_S]
        before_S = np.cumsum(length_S) - length_S
        return row_S, self.shard_P[plan_S], self.start_P[plan_S], length_S, before_S - before_S[first_R][row_S]

    def shard_tokens(self, shard: int) -> np.ndarray | None:
        """The shard's tokens as a plain ndarray over the memmap (slices ~3x faster than np.memmap); None remote."""
        arr = self.tokens[shard]
        if arr is None and not self.ds.is_remote:
            arr = self.tokens[shard] = np.asarray(self.ds.tokens(shard))  # verifies the shard once
        return arr

    def docs(self) -> tuple[np.ndarray, ...]:
        """(document start, document end) in global token positions, shard token bases, shard document bases."""
        if self._docs is None:
            starts, counts = [], []
            for s in range(self.ds.num_shards):
                idx = self.ds.index(s)
                starts.append(idx.column("token_start").to_numpy().astype(np.int64))
                counts.append(idx.column("token_count").to_numpy().astype(np.int64))
            token_base = np.concatenate([[0], np.cumsum(self.ds.shard_tokens)[:-1]]).astype(np.int64)
            n_docs = np.array([len(c) for c in counts], dtype=np.int64)
            doc_base = np.cumsum(n_docs) - n_docs
            start_D = np.concatenate(starts) + np.repeat(token_base, n_docs) if len(starts) else np.zeros(0, np.int64)
            end_D = start_D + (np.concatenate(counts) if counts else np.zeros(0, np.int64))
            self._docs = (start_D, end_D, token_base, doc_base)
        return self._docs

    def spans(self, row_S, shard_S, start_S, length_S, pos_S) -> np.ndarray:
        """SPAN_COLUMNS rows of the documents overlapping each segment, in segment order."""
        start_D, end_D, token_base, doc_base = self.docs()
        a_S = token_base[shard_S] + start_S
        b_S = a_S + length_S
        first_S = np.maximum(start_D.searchsorted(a_S, side="right") - 1, 0)
        n_S = np.maximum(start_D.searchsorted(b_S, side="left") - first_S, 0)
        seg_N = np.repeat(np.arange(len(a_S)), n_S)
        doc_N = np.arange(len(seg_N)) + np.repeat(first_S - (np.cumsum(n_S) - n_S), n_S)
        lo_N = np.maximum(start_D[doc_N], a_S[seg_N])
        hi_N = np.minimum(end_D[doc_N], b_S[seg_N])
        keep = lo_N < hi_N
        seg_N, doc_N, lo_N, hi_N = seg_N[keep], doc_N[keep], lo_N[keep], hi_N[keep]
        at_N = pos_S[seg_N] - a_S[seg_N]
        shard_N = shard_S[seg_N]
        return np.stack([row_S[seg_N], shard_N, doc_N - doc_base[shard_N], at_N + lo_N, at_N + hi_N,
                         lo_N - start_D[doc_N]], axis=1)



class ChunkPlan:
    """C samples (those of a run of micro-batches, `key` numbers the run), located and planned at once: per row its
    sample, source, sequence, epoch, valid tokens and pad id, and the rows shorter than L; segments
    (SEGMENT_COLUMNS, as Python lists for the copy loop) and spans (SPAN_COLUMNS, rows numbered within the chunk), each sorted by row with offsets."""

    def __init__(self, key: tuple, sample_C: np.ndarray, located: tuple[np.ndarray, ...], reader, L: int,
                 with_docs: bool) -> None:
        self.key = key
        self.sample_C, (self.src_C, self.seq_C, self.epoch_C) = sample_C, located
        C = len(sample_C)
        segments, spans = [], []
        self.pad_C = np.zeros(C, np.int64)
        self.shard_tokens: dict[int, list] = {}  # source id -> its reader's shard arrays (None: remote)
        for s in np.unique(self.src_C).tolist():
            src = reader(s)
            rows_R = np.flatnonzero(self.src_C == s)
            r_S, shard_S, start_S, length_S, pos_S = src.segments(self.seq_C[rows_R])
            row_S = rows_R[r_S]
            segments.append(np.stack([row_S, np.full_like(row_S, s), shard_S, start_S, length_S, pos_S], axis=1))
            if with_docs:
                spans.append(src.spans(row_S, shard_S, start_S, length_S, pos_S))
            self.pad_C[rows_R] = src.ds.pad_id
            self.shard_tokens[s] = src.tokens
            for shard in np.unique(shard_S).tolist():
                src.shard_tokens(shard)  # opened (and verified) here, not in the copy loop
        seg_S6 = _by_row(segments, len(SEGMENT_COLUMNS))
        # flat Python lists per column: one list per row here made a full GC pass (~100 ms) on every chunk
        self.segments = [col.tolist() for col in seg_S6.T]
        self.segment_offsets = seg_S6[:, 0].searchsorted(np.arange(C + 1)).tolist()
        self.n_valid_C = np.bincount(seg_S6[:, 0], weights=seg_S6[:, 4], minlength=C).astype(np.int64)
        short_R = np.flatnonzero(self.n_valid_C < L)  # rows with room left (best-fit): padded
        self.short_rows = short_R.tolist()
        self.short_offsets = short_R.searchsorted(np.arange(C + 1)).tolist()
        self.spans_N6 = _by_row(spans, len(SPAN_COLUMNS)) if with_docs else None
        self.span_offsets = self.spans_N6[:, 0].searchsorted(np.arange(C + 1)).tolist() if with_docs else None


def _by_row(parts: list[np.ndarray], width: int) -> np.ndarray:
    """The parts (rows of `width` int64 columns, column 0 = row) concatenated, stably sorted by row."""
    if not parts:
        return np.zeros((0, width), np.int64)
    out = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return out[np.argsort(out[:, 0], kind="stable")] if len(parts) > 1 else out
