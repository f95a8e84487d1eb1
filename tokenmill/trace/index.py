"""The span index of a tokenized dataset: one suffix array per token shard, built by Ray tasks, kept beside it.

    shard-NNNNN.sa.bin    uint32 (uint64 past 4G tokens) suffix array of shard-NNNNN.bin
    shard-NNNNN.sa.json   {format, num_tokens, sa_dtype, sha256 (of .sa.bin), shard_sha256 (of the .bin)}
    span-unigram.npy      int64 count of every token id over the whole dataset (OLMoTrace's span ranking)
    span-index.json       format, tokenizer sha256, shard count, token count, build seconds

One Ray task per shard (embedded loopback Ray, or a cluster with `address`); a shard whose .sa.json names the
current shard sha256 is skipped, so re-running after a crash redoes only the missing shards. Files appear under
their final names only when complete (temp name, then rename). A 100M-token shard indexes in ~40-70 s here
(Ray start and the shard's sha256 check included; benchmarks/results/trace.json).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokenmill.config import ConfigError
from tokenmill.io import atomic_path, atomic_write_json, read_json
from tokenmill.tokenize.format import META_NAME, ShardError, sha256_file
from tokenmill.tokenize.shards import TokenDataset
from tokenmill.trace.suffix_array import build_suffix_array

INDEX_FORMAT = "tokenmill.span-index/1"
INDEX_META = "span-index.json"
UNIGRAM_NAME = "span-unigram.npy"


def sa_names(bin_name: str) -> tuple[str, str]:
    """`shard-00003.bin` → (`shard-00003.sa.bin`, `shard-00003.sa.json`)."""
    stem = bin_name[: -len(".bin")] if bin_name.endswith(".bin") else bin_name
    return f"{stem}.sa.bin", f"{stem}.sa.json"


def dataset_roots(path: str | Path | list) -> list[Path]:
    """The tokenized dataset at `path`, or every one in the folders below it (one per source)."""
    if isinstance(path, list | tuple):
        return [root for p in path for root in dataset_roots(p)]
    path = Path(path)
    if (path / META_NAME).is_file():
        return [path]
    roots = sorted(p.parent for p in path.rglob(META_NAME)) if path.is_dir() else []
    if not roots:
        raise ConfigError(f"{path}: no tokenized dataset here ({META_NAME} not found in it or below it)")
    return roots


def _shard_is_fresh(root: Path, entry: dict) -> bool:
    sa_bin, sa_json = sa_names(entry["bin"])
    if not (root / sa_json).is_file() or not (root / sa_bin).is_file():
        return False
    try:
        info = read_json(root / sa_json)
        size = np.dtype(info.get("sa_dtype", "uint32")).itemsize * entry["num_tokens"]
    except (ValueError, TypeError, AttributeError):  # a damaged .sa.json: the shard is simply rebuilt
        return False
    return (info.get("format") == INDEX_FORMAT and info.get("shard_sha256") == entry["sha256"]
            and (root / sa_bin).stat().st_size == size)


def index_shard(root: str, shard: int) -> np.ndarray:
    """Build (or keep, when fresh) the suffix array of one shard; returns its unigram counts (length vocab)."""
    ds = TokenDataset.open(root)
    entry = ds.shards[shard]
    tokens = ds.tokens(shard)  # checks the shard's sha256 against dataset.json on this first access
    if _shard_is_fresh(Path(root), entry):
        return np.bincount(tokens, minlength=ds.vocab_size).astype(np.int64)
    t0 = time.perf_counter()
    sa, counts = build_suffix_array(np.asarray(tokens))
    sa_bin, sa_json = sa_names(entry["bin"])
    with atomic_path(Path(root) / sa_bin) as tmp:
        sa.tofile(tmp)
    atomic_write_json(Path(root) / sa_json, {
        "format": INDEX_FORMAT, "num_tokens": int(sa.size), "sa_dtype": sa.dtype.name,
        "sha256": sha256_file(Path(root) / sa_bin), "shard_sha256": entry["sha256"],
        "seconds": round(time.perf_counter() - t0, 3),
    })
    if counts.size < ds.vocab_size:
        counts = np.pad(counts, (0, ds.vocab_size - counts.size))
    return counts[: ds.vocab_size].astype(np.int64)


def build_span_index(dataset: str | Path, address: str | None = None, num_cpus: int | None = None) -> str:
    """Index every shard of the dataset(s) at `dataset` with Ray tasks; returns a one-line summary per dataset."""
    import ray

    from tokenmill.ray_env import init_ray

    roots = dataset_roots(dataset)
    init_ray(address, num_cpus)
    remote = ray.remote(index_shard)
    lines = []
    for root in roots:
        t0 = time.perf_counter()
        ds = _open(root)
        try:
            counts = ray.get([remote.remote(str(root), i) for i in range(ds.num_shards)])
        except ray.exceptions.RayTaskError as err:  # e.g. a shard whose sha256 no longer matches dataset.json
            cause = err.cause if isinstance(err.cause, ShardError) else err
            raise ConfigError(f"{root}: indexing failed: {cause}") from None
        unigram = np.sum(counts, axis=0) if counts else np.zeros(ds.vocab_size, np.int64)
        with atomic_path(root / UNIGRAM_NAME) as tmp, open(tmp, "wb") as f:
            np.save(f, unigram)
        seconds = time.perf_counter() - t0
        atomic_write_json(root / INDEX_META, {
            "format": INDEX_FORMAT, "tokenizer_sha256": ds.meta.get("tokenizer", {}).get("sha256"),
            "num_shards": ds.num_shards, "num_tokens": ds.num_tokens, "seconds": round(seconds, 3),
        })
        lines.append(f"{root}: span index of {ds.num_shards} shards, {ds.num_tokens:,} tokens in {seconds:.1f} s")
    return "\n".join(lines)


@dataclass
class IndexedShard:
    """One shard ready to query: its dataset, number, token stream and suffix array (both memory-mapped)."""

    dataset: TokenDataset
    number: int
    tokens: np.ndarray
    sa: np.ndarray


@dataclass
class SpanIndex:
    """All indexed shards of one or more datasets that share a tokenizer, and their summed unigram counts."""

    roots: list[Path]
    datasets: list[TokenDataset]
    shards: list[IndexedShard]
    unigram: np.ndarray
    tokenizer_path: Path | None = field(default=None)

    @classmethod
    def open(cls, dataset: str | Path) -> SpanIndex:
        roots = dataset_roots(dataset)
        datasets, shards, unigram = [], [], None
        for root in roots:
            ds = _open(root, verify=False)  # staleness: each .sa.json names the shard sha256 it indexed
            datasets.append(ds)
            for i, entry in enumerate(ds.shards):
                if not _shard_is_fresh(root, entry):
                    raise ConfigError(f"{root / entry['bin']}: no up-to-date span index; run "
                                      f"`tokenmill trace index {root}`")  # this dataset: `dataset` may be a run's list
                info = read_json(root / sa_names(entry["bin"])[1])
                sa = np.memmap(root / sa_names(entry["bin"])[0], dtype=info["sa_dtype"], mode="r")
                shards.append(IndexedShard(ds, i, ds.tokens(i), sa))
            counts = np.load(root / UNIGRAM_NAME)
            unigram = counts if unigram is None else _add_padded(unigram, counts)
        shas = {ds.meta.get("tokenizer", {}).get("sha256") for ds in datasets}
        if len(shas) > 1:
            raise ConfigError(f"{dataset}: its datasets use different tokenizers ({sorted(map(str, shas))}); "
                              "trace one tokenizer's datasets at a time")
        return cls(roots, datasets, shards, unigram, _tokenizer_path(roots[0], datasets[0]))

    @property
    def num_tokens(self) -> int:
        return int(sum(s.sa.shape[0] for s in self.shards))


def _open(root: Path, verify: bool = True) -> TokenDataset:
    try:
        return TokenDataset.open(root, verify=verify)
    except ShardError as err:  # a missing or cut-short shard: a clear message for the CLI, not a traceback
        raise ConfigError(str(err)) from None


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(a.size, b.size)
    return np.pad(a, (0, n - a.size)) + np.pad(b, (0, n - b.size))


def _tokenizer_path(root: Path, ds: TokenDataset) -> Path | None:
    """The dataset's tokenizer.json: the path in dataset.json (absolute, or relative to the dataset or cwd)."""
    named = ds.meta.get("tokenizer", {}).get("path")
    for candidate in ([Path(named), root / named] if named else []) + [root / "tokenizer.json"]:
        if candidate.is_file():
            return candidate
    return None
