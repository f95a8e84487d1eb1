"""Checkpoints: `RUN/checkpoints/step-NNNNNNNN/`, written to a temporary folder and renamed into place.

A checkpoint holds everything a resume needs and nothing that must be unpickled:
    model.safetensors   weights and buffers (the MoE balancing biases are buffers, so they travel here)
    optimizer.pt        AdamW state        (torch.load(weights_only=True))
    trainer.pt          scheduler state, RNG states, the spike detector's window
    meta.json           step, model args, tokenizer path, the mixture (sources, stages, fingerprint of its past),
                        and the sha256 of every other file
The loader's position is the step: the mixture is a pure function of it. A checkpoint whose files fail their
sha256 (or cannot be read) is refused with a message naming the file, and the previous one is used. The newest
`keep_last` are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tokenmill.io import atomic_write_json

log = logging.getLogger(__name__)
STEP_DIR = re.compile(r"^step-(\d{8})$")
META = "meta.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder is incomplete or corrupt; the message names the file."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete-looking checkpoint, oldest first."""
    root = checkpoint_root(run_dir)
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name))] if root.is_dir() else []
    return sorted(found)


def save_checkpoint(run_dir: str | Path, step: int, model_state: dict, optimizer_state: dict, trainer_state: dict,
                    meta: dict, keep_last: int) -> Path:
    """Write checkpoint `step` atomically, then prune to the newest `keep_last`."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-step-{step:08d}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    state = {k: v.detach().cpu().contiguous() for k, v in model_state.items()}
    save_file(state, str(tmp / "model.safetensors"))
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(trainer_state, tmp / "trainer.pt")
    files = {name: _sha256(tmp / name) for name in ("model.safetensors", "optimizer.pt", "trainer.pt")}
    atomic_write_json(tmp / META, {**meta, "step": step, "files": files})
    final = root / f"step-{step:08d}"
    if final.exists():  # the same step written again after a resume: replace it
        shutil.rmtree(final)
    os.replace(tmp, final)  # a killed writer leaves only a .tmp-* folder, never a half checkpoint
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (incomplete checkpoint)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or "files" not in meta or "step" not in meta:
        raise CheckpointError(f"{path}: lacks 'step' or 'files'")
    return meta


def verify_checkpoint(folder: str | Path) -> dict:
    """The checkpoint's meta after checking every file's sha256; CheckpointError naming the bad file otherwise."""
    folder = Path(folder)
    meta = read_meta(folder)
    for name, want in meta["files"].items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        if _sha256(path) != want:
            raise CheckpointError(f"{path}: sha256 does not match meta.json (corrupt or truncated)")
    return meta


def load_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """{meta, model, optimizer, trainer} tensors of one verified checkpoint."""
    folder = Path(folder)
    meta = verify_checkpoint(folder)
    try:
        return {
            "meta": meta,
            "model": load_file(str(folder / "model.safetensors"), device=str(map_location)),
            "optimizer": torch.load(folder / "optimizer.pt", map_location=map_location, weights_only=True),
            "trainer": torch.load(folder / "trainer.pt", map_location=map_location, weights_only=True),
        }
    except Exception as err:  # noqa: BLE001 — any unreadable file makes the whole checkpoint unusable
        raise CheckpointError(f"{folder}: cannot be loaded: {err}") from None


def latest_good_checkpoint(run_dir: str | Path, map_location: str | torch.device = "cpu") -> dict | None:
    """The newest checkpoint that verifies and loads; corrupt ones are reported and skipped."""
    for step, folder in reversed(list_checkpoints(run_dir)):
        try:
            ckpt = load_checkpoint(folder, map_location)
        except CheckpointError as err:
            log.warning("refusing checkpoint step %d: %s; trying the previous one", step, err)
            print(f"tokenmill: refusing checkpoint {folder}: {err}; using the previous one", flush=True)
            continue
        ckpt["folder"] = folder
        return ckpt
    return None


def _resolve(checkpoint: str | Path) -> Path:
    """A checkpoint folder, or a run directory (its newest checkpoint that verifies)."""
    path = Path(checkpoint)
    if (path / META).is_file():
        return path
    for _, folder in reversed(list_checkpoints(path)):
        try:
            verify_checkpoint(folder)
            return folder
        except CheckpointError as err:
            print(f"tokenmill: refusing checkpoint {folder}: {err}", flush=True)
    raise CheckpointError(f"{path}: no usable checkpoint (expected meta.json, or a run dir with checkpoints/)")


def load_model_for_inference(checkpoint: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer path or None) from a checkpoint folder or a run directory."""
    from tokenmill.train.model import ModelArgs, Transformer

    folder = _resolve(checkpoint)
    meta = verify_checkpoint(folder)
    fields = {f.name for f in dataclasses.fields(ModelArgs)}
    args = ModelArgs(**{k: v for k, v in meta["model_args"].items() if k in fields})
    model = Transformer(args)
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=device))
    return model.to(device).eval(), meta.get("tokenizer")


def load_for_inference(checkpoint: str | Path, device: str = "cpu"):
    """(model, tokenizers.Tokenizer) — what `tokenmill generate` needs."""
    from tokenmill.tokenize.tokenizer import load_tokenizer

    model, tok_path = load_model_for_inference(checkpoint, device)
    if not tok_path:
        raise CheckpointError(f"{checkpoint}: no tokenizer path recorded; set `tokenizer:` in the training job")
    return model, load_tokenizer(tok_path)
