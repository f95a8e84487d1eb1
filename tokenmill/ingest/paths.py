"""Expand an input spec into shard paths, and tell a shard's format. One code path through fsspec.

`spec.paths` entries may be local paths, globs, fsspec URLs (s3://, https://, file://, gs://, …) and Common Crawl
`*.paths.gz` manifests, whose relative lines get `spec.prefix` (e.g. "s3://commoncrawl/" or
"https://data.commoncrawl.org/"). The result is sorted and de-duplicated, then cut to `spec.limit_files`.
A path, glob or manifest that matches nothing is a `ConfigError` naming it, raised before any work starts.
Manifest lines are not checked one by one (10,000 remote HEADs would take minutes); a missing shard fails its task.
"""

from __future__ import annotations

import gzip
import zlib

import fsspec
from fsspec.core import url_to_fs

from tokenmill.config import ConfigError, InputSpec

MANIFEST_SUFFIXES = (".paths.gz", ".paths")
GLOB_CHARS = "*?["
FORMAT_SUFFIXES = (  # first match wins
    ((".wet.gz", ".wet"), "wet"),
    ((".wat.gz", ".wat"), "wat"),
    ((".warc.gz", ".warc", ".arc.gz", ".warc.zst"), "warc"),
    ((".parquet", ".pq"), "parquet"),
    ((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".jsonl.zst", ".json"), "jsonl"),
)


def _has_protocol(path: str) -> bool:
    return "://" in path


def _manifest_lines(path: str, prefix: str) -> list[str]:
    try:
        with fsspec.open(path, "rb") as f:
            raw = f.read()
    except (OSError, ValueError) as err:
        raise ConfigError(f"inputs.paths: cannot read manifest {path}: {err}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    lines = [ln.strip() for ln in raw.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise ConfigError(f"inputs.paths: manifest {path} lists no files")
    return [ln if _has_protocol(ln) or ln.startswith("/") else prefix + ln for ln in lines]


def _expand(entry: str, prefix: str) -> list[str]:
    if entry.endswith(MANIFEST_SUFFIXES):
        return _manifest_lines(entry, prefix)
    try:
        fs, fs_path = url_to_fs(entry)
    except (ImportError, ValueError) as err:
        raise ConfigError(f"inputs.paths: cannot open {entry}: {err}") from None
    if any(c in entry for c in GLOB_CHARS):
        found = sorted(p for p in fs.glob(fs_path) if not fs.isdir(p))
        if not found:
            raise ConfigError(f"inputs.paths: glob {entry} matches no files")
        return [fs.unstrip_protocol(p) if _has_protocol(entry) else p for p in found]
    try:
        exists = fs.exists(fs_path)
    except OSError as err:
        raise ConfigError(f"inputs.paths: cannot reach {entry}: {err}") from None
    if not exists:
        raise ConfigError(f"inputs.paths: {entry} does not exist")
    if fs.isdir(fs_path):
        raise ConfigError(f"inputs.paths: {entry} is a directory; use a glob such as {entry.rstrip('/')}/*.warc.gz")
    return [entry]


def list_shards(spec: InputSpec) -> list[str]:
    """Every shard of `spec`, sorted, de-duplicated, the first `limit_files` of them."""
    shards = sorted({p for entry in spec.paths for p in _expand(entry, spec.prefix)})
    return shards[: spec.limit_files] if spec.limit_files else shards


def shard_format(path: str, declared: str = "auto") -> str:
    """`declared` unless "auto": then by file name, else by the first bytes (WARC/, PAR1, {)."""
    if declared != "auto":
        return declared
    name = path.lower().split("?")[0]
    for suffixes, fmt in FORMAT_SUFFIXES:
        if name.endswith(suffixes):
            return fmt
    with fsspec.open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:2] == b"\x1f\x8b":
        head = zlib.decompressobj(31).decompress(head, 64)
    head = head.lstrip()
    if head.startswith(b"WARC/"):
        return "warc"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"{"):
        return "jsonl"
    raise ValueError(f"{path}: cannot tell the format (set `format:` in the input spec)")
