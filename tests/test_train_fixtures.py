"""Tiny real fixtures for the trainer tests: a BPE tokenizer trained in-process, token shards written with
`write_token_dataset`, and job specs. Imported by the other test_train_* / test_mixture* / test_provenance* files.

Sources whose token values show their origin (levanter's tests, STYLE habit 14): source `web` holds token ids in
[1000, 2000), `code` in [2000, 3000), `math` in [3000, 4000); EOS is 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

from tokenmill.tokenize.shards import write_token_dataset
from tokenmill.tokenize.tokenizer import train_tokenizer_from_texts

ORIGIN_BASE = {"web": 1000, "code": 2000, "math": 3000, "extra": 4000}
ORIGIN_SPAN = 1000
SUBJECTS = "the cat|a dog|his sister|the old baker|our teacher|the little bird|a young doctor|the river".split("|")
VERBS = "sees|likes|carries|paints|finds|follows|reads|builds|watches|cooks".split("|")
OBJECTS = ("a red apple|the blue house|three little boats|the green field|a long letter|the quiet town|"
           "two brown horses|the fresh bread|a wooden chair|the silver lake").split("|")
ENDINGS = "today|every evening|near the sea|after the rain|with great care|in the garden|before dinner".split("|")


def english_like_texts(n_docs: int, seed: int = 0) -> list[str]:
    """Varied sentences from a small grammar: far below the unigram entropy for a model that learns syntax.
    No word contains the letter "m", so a planted "mmmm…" page is text the model has never seen."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        sents = [f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                 f"{rng.choice(ENDINGS)}." for _ in range(int(rng.integers(3, 9)))]
        docs.append(" ".join(sents))
    return docs


def make_tokenizer(folder: Path, texts: list[str], vocab_size: int = 384) -> Path:
    return train_tokenizer_from_texts(texts, folder / "tokenizer.json", vocab_size)


def make_text_dataset(folder: Path, tokenizer: Path, texts: list[str], source: str = "web",
                      prefix: str = "doc") -> Path:
    docs = [{"id": f"{prefix}-{i:05d}", "url": f"https://{source}.example/{prefix}/{i}", "source": source,
             "text": t} for i, t in enumerate(texts)]
    return write_token_dataset(folder, docs, tokenizer, source=source)


def make_origin_dataset(folder: Path, source: str, n_docs: int = 40, doc_len: int = 24) -> Path:
    """Documents of `doc_len` tokens whose ids are ORIGIN_BASE[source] + (position in the source)."""
    base = ORIGIN_BASE[source]
    docs = [({"id": f"{source}-{i}", "url": f"https://{source}.example/{i}", "source": source},
             (base + (np.arange(doc_len) + i * doc_len) % ORIGIN_SPAN).astype(np.int64)) for i in range(n_docs)]
    return write_token_dataset(folder, docs, vocab_size=5000, eos_id=0, source=source)


def write_job(path: Path, run_dir: Path, sources: dict[str, Path], *, seq_len: int = 32, stages=None,
              global_batch: int = 8, micro_batch: int = 4, max_steps: int = 20, **extra) -> Path:
    job = {
        "name": "test",
        "run_dir": str(run_dir),
        "model": {"preset": "tiny"},
        "data": {"sources": {k: str(v) for k, v in sources.items()}, "seq_len": seq_len,
                 "stages": stages or [{"start_step": 0, "weights": {k: 1.0 for k in sources}}]},
        "batch": {"global_batch_size": global_batch, "micro_batch_size": micro_batch},
        "optim": {"lr": 3e-3, "warmup_steps": 5},
        "max_steps": max_steps,
        "checkpoint": {"every": 10, "keep_last": 3},
        "log_every": 50,
        "tensorboard": False,
        "cpu_threads": 1,  # 2 shared cores: two threads per process spin against each other (6x slower here)
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(job.get(key), dict):
            job[key] = {**job[key], **value}
        else:
            job[key] = value
    path.write_text(yaml.safe_dump(job))
    return path


def losses(run_dir: Path) -> dict[int, float]:
    from tokenmill.train.metrics import read_jsonl

    return {r["step"]: r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl")}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tokenmill.cli", *args]
