"""What makes a run resumable: the job fingerprint, the shard list, and done-markers.

`OUT/job.json` records the fingerprint of everything that decides the output (inputs, stages, tokenize — not the
Ray address or the job name). A second run into the same folder with a different fingerprint is refused, naming the
keys that changed: mixing two configs' shards in one output is the silent corruption we never allow.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tokenmill import __version__
from tokenmill.config import ConfigError, PipelineJob
from tokenmill.io import atomic_write_json, read_json

OUTPUT_AFFECTING = ("inputs", "batch_size", "rejected", "stages", "tokenize")
# The layout of a run's intermediate files (global stages' work folders, done-markers). A run is resumed only by
# code that reads the same layout. 2: dedup and decontamination decisions keyed by (shard, row), not by id.
WORK_FORMAT = 2


def job_identity(job: PipelineJob) -> dict[str, Any]:
    dump = job.model_dump(mode="json")
    return {"work_format": WORK_FORMAT} | {k: dump[k] for k in OUTPUT_AFFECTING}


def fingerprint(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _changed_keys(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [c for k in keys for c in _changed_keys(old.get(k), new.get(k), f"{path}.{k}" if path else k)]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in _changed_keys(a, b, f"{path}[{i}]")]
    return [] if old == new else [path or "<root>"]


def claim_output(out: Path, job: PipelineJob, spec_path: str, shards: list[dict]) -> bool:
    """Write OUT/job.json, or check it matches. Returns True when resuming an existing run."""
    identity = job_identity(job)
    fp = fingerprint(identity)
    manifest = out / "job.json"
    if manifest.exists():
        old = read_json(manifest)
        old_format = old.get("identity", {}).get("work_format", 1)
        if old_format != WORK_FORMAT:
            raise ConfigError(
                f"{spec_path}: output {out} was written by tokenmill {old.get('tokenmill_version', '?')}, whose "
                f"intermediate files (work format {old_format}) this version ({__version__}, format {WORK_FORMAT}) "
                "cannot resume. Use a new output folder, or delete this one to start over."
            )
        if old.get("fingerprint") != fp:
            changed = _changed_keys(old.get("identity", {}), identity)
            raise ConfigError(
                f"{spec_path}: output {out} was written by a different config (changed: {', '.join(changed)}). "
                "Use a new output folder, or delete this one to start over."
            )
        if old.get("shards") != shards:
            raise ConfigError(f"{spec_path}: the input files behind {out} changed since the first run; "
                              "use a new output folder.")
        return True
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(manifest, {"fingerprint": fp, "identity": identity, "spec": spec_path,
                                 "tokenmill_version": __version__, "shards": shards})
    return False


def clean_stale_temporaries(out: Path) -> int:
    """Remove `*.tmp-*` files a killed run left behind (their final names were never written)."""
    n = 0
    for p in out.rglob("*.tmp-*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n
