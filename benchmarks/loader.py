"""Mixture loader throughput: tokens/s delivered at seq_len 4096 from local shards with 0, 1 and 2 loader worker
processes (0 = inline in the training process), against a plain memmap read of the same bytes (the same sequences
in the same order, one slice each, stacked into int64 batches). Rates include the workers' start-up; the time to
the first micro-batch is reported beside them. Also reports provenance bytes per step (8 rows at seq 4096).

    python -m benchmarks.loader [--tokens 24000000] [--steps 3000]

Input: generated token shards (two sources, 60/40 mix, documents of 50-3000 tokens, uint16), written once to a
temporary folder. The loader's work per row beyond the raw read: the mixture lookup (Feistel permutation, block
counts), the packing plan lookup, and the document spans for provenance.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import alternate, write_result
from tokenmill.tokenize.packing import PackedSequences
from tokenmill.tokenize.shards import write_token_dataset
from tokenmill.train.data import MixtureMicroBatches, RankLayout, micro_batches
from tokenmill.train.mixture import MixStage, MixtureSchedule
from tokenmill.train.provenance import ProvenanceWriter

SEQ_LEN = 4096
GLOBAL_BATCH = 8
VOCAB = 32768


def make_source(folder: Path, name: str, n_tokens: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 3000, size=n_tokens // 1500 + 1)
    docs = (({"id": f"{name}-{i:07d}", "url": f"https://{name}.example/page/{i}", "source": name},
             rng.integers(1, VOCAB, size=int(n), dtype=np.int64)) for i, n in enumerate(lengths))
    return write_token_dataset(folder / name, docs, vocab_size=VOCAB, eos_id=0, source=name,
                               max_shard_tokens=8_000_000)


def memmap_reader(packed: dict, order: list[tuple[str, int]]):
    """Plain reads: each sequence is one contiguous slice of one shard's memmap (concat packing)."""
    maps = {}
    spans = []
    for name, q in order:
        seg = packed[name].segments(q)
        shard, start, length = int(seg["shard"][0]), int(seg["start"][0]), int(seg["length"].sum())
        key = (name, shard)
        if key not in maps:
            ds = packed[name].ds
            maps[key] = np.memmap(ds.path(ds.shards[shard]["bin"]), dtype=ds.dtype, mode="r")
        spans.append((key, start, length))

    def run() -> int:
        n = 0
        for i in range(0, len(spans), GLOBAL_BATCH):
            batch = np.stack([maps[k][s:s + ln].astype(np.int64) for k, s, ln in spans[i:i + GLOBAL_BATCH]])
            n += torch.from_numpy(batch).numel()
        return n
    return run


def loader_reader(packed, schedule, steps: int, workers: int, with_docs: bool = True, first: list | None = None):
    """A timed pass over `steps` micro-batches; appends the seconds to the first micro-batch (worker start-up and the
    first chunk's lookups) to `first`."""
    def run() -> int:
        data = MixtureMicroBatches(packed, schedule, RankLayout(GLOBAL_BATCH, GLOBAL_BATCH), with_docs=with_docs,
                                   max_steps=steps)
        t0 = time.perf_counter()
        n = 0
        for mb in micro_batches(data, 0, steps, num_workers=workers, prefetch=4):
            if n == 0 and first is not None:
                first.append(time.perf_counter() - t0)
            n += mb["tokens_BL"].numel()
        return n
    return run


def provenance_bytes_per_step(packed, schedule, steps: int, folder: Path) -> float:
    data = MixtureMicroBatches(packed, schedule, RankLayout(GLOBAL_BATCH, GLOBAL_BATCH), max_steps=steps)
    writer = ProvenanceWriter(folder, 0, schedule.sources, packed)
    rng = np.random.default_rng(0)
    for k in range(steps):
        mb = data[k]
        row_loss = rng.uniform(2, 4, GLOBAL_BATCH).astype(np.float32)
        writer.add(k, mb, 0, row_loss, rng.uniform(2, 4, len(mb["spans"])).astype(np.float32))
    writer.flush()
    return writer.bytes_written / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=24_000_000, help="tokens per source (two sources)")
    p.add_argument("--steps", type=int, default=3000, help="global batches of 8 x 4096 tokens per timed pass")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        packed = {n: PackedSequences(str(make_source(root, n, a.tokens, s)), SEQ_LEN)
                  for s, n in enumerate(("web", "code"))}
        print(f"wrote 2 x {a.tokens:,} tokens in {time.perf_counter() - t0:.1f}s; "
              f"sequences: { {n: len(p) for n, p in packed.items()} }")
        schedule = MixtureSchedule({n: len(p) for n, p in packed.items()}, [MixStage(0, {"web": 0.6, "code": 0.4})],
                                   seed=0, samples_per_step=GLOBAL_BATCH)
        src, seq, _ = schedule.locate(np.arange(a.steps * GLOBAL_BATCH))
        order = [(schedule.sources[s], int(q)) for s, q in zip(src, seq, strict=False)]
        fns = {"memmap": memmap_reader(packed, order)}
        first: dict[str, list] = {}
        for w in (0, 1, 2):
            fns[f"loader_w{w}"] = loader_reader(packed, schedule, a.steps, w, first=first.setdefault(f"loader_w{w}", []))
        fns["loader_w0_nodocs"] = loader_reader(packed, schedule, a.steps, 0, with_docs=False)
        best = alternate(fns, repeats=a.repeats, warmup=1)
        tokens = a.steps * GLOBAL_BATCH * (SEQ_LEN + 1)
        rates = {name: tokens / t for name, t in best.items()}
        startup = {name: min(v) for name, v in first.items()}
        for name, r in rates.items():
            extra = f"  (first micro-batch after {startup[name] * 1e3:.0f} ms)" if name in startup else ""
            print(f"{name:18s} {r / 1e6:8.1f} M tokens/s{extra}")
        prov = provenance_bytes_per_step(packed, schedule, a.steps, root / "run")
        print(f"provenance: {prov:.0f} bytes per step ({GLOBAL_BATCH} rows x {SEQ_LEN} tokens)")
    ratios = {f"{k}_vs_memmap": v / rates["memmap"] for k, v in rates.items() if k != "memmap"}
    write_result("loader", input=f"2 generated sources x {a.tokens:,} tokens (uint16), seq_len {SEQ_LEN}, "
                 f"{a.steps} steps x {GLOBAL_BATCH} rows",
                 metrics={"tokens_per_s": {k: round(v) for k, v in rates.items()},
                          "provenance_bytes_per_step": round(prov), "seconds": {k: round(v, 4) for k, v in best.items()},
                          "first_micro_batch_seconds": {k: round(v, 4) for k, v in startup.items()},
                          "load_average_1min": round(os.getloadavg()[0], 2)},
                 ratios=ratios, goal={"loader_vs_memmap": ">= 0.5"})


if __name__ == "__main__":
    main()
