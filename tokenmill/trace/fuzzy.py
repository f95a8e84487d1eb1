"""Fuzzy resemblance: rank training documents by estimated Jaccard similarity to an output, with MinHash.

Uses the dedup stage's normalization, word n-gram hashing and MinHash signatures (`tokenmill.dedup.ngrams`),
so "resembles" means what "near-duplicate" means in dedup. Each shard's documents are decoded from their tokens
once, signed, and cached beside the shard as `shard-NNNNN.minhash.npy` (keyed by the shard's sha256); a query is
one (D, K) comparison per shard. The estimate's standard error is sqrt(J(1-J)/K) (≤ 0.044 at K = 128).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from tokenmill.dedup.ngrams import MAX_U64, doc_shingles, minhash_params, minhash_signatures
from tokenmill.io import atomic_path
from tokenmill.trace.index import SpanIndex

NGRAM_WORDS = 5  # word 5-grams: datatrove's MinHash default (and FineWeb's)
NUM_PERM = 128  # signature length; standard error of the Jaccard estimate ≤ 1/(2·sqrt(128)) ≈ 0.044
SEED = 1  # fixed, so cached signatures stay comparable across runs
DECODE_BATCH_DOCS = 256  # documents decoded per tokenizer call while signing a shard


def signatures(texts: list[str]) -> np.ndarray:
    """(D, NUM_PERM) uint64 MinHash signatures of texts (the dedup stage's shingling)."""
    hashes_S, offsets = doc_shingles(pa.array(texts, pa.string()), NGRAM_WORDS)
    a_K, b_K = minhash_params(NUM_PERM, SEED)
    return minhash_signatures(hashes_S, offsets, a_K, b_K)


class FuzzyIndex:
    """Cached signatures of every document of a span index's shards."""

    def __init__(self, index: SpanIndex, tokenizer) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.sigs = [self._shard_signatures(shard) for shard in index.shards]

    def _shard_signatures(self, shard) -> np.ndarray:
        entry = shard.dataset.shards[shard.number]
        path = Path(shard.dataset.root) / entry["bin"].replace(".bin", ".minhash.npy")
        key = f"{entry['sha256']}:{NGRAM_WORDS}:{NUM_PERM}:{SEED}"
        if path.is_file():
            cached = np.load(path, allow_pickle=False)
            if path.with_suffix(".key").is_file() and path.with_suffix(".key").read_text() == key:
                return cached
        sig = self._sign_shard(shard)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, sig)
        with atomic_path(path.with_suffix(".key")) as tmp:
            Path(tmp).write_text(key)
        return sig

    def _sign_shard(self, shard) -> np.ndarray:
        idx = shard.dataset.index(shard.number)
        starts = idx.column("token_start").to_numpy()
        counts = idx.column("token_count").to_numpy()
        eos = shard.dataset.eos_id
        parts = []
        for b in range(0, len(starts), DECODE_BATCH_DOCS):
            docs = []
            for s, n in zip(starts[b : b + DECODE_BATCH_DOCS], counts[b : b + DECODE_BATCH_DOCS], strict=True):
                ids = np.asarray(shard.tokens[s : s + n])
                docs.append(ids[ids != eos].tolist())
            parts.append(signatures(self.tokenizer.decode_batch(docs, skip_special_tokens=True)))
        return np.concatenate(parts) if parts else np.zeros((0, NUM_PERM), np.uint64)

    def search(self, text: str, top: int) -> list[dict]:
        """The `top` documents with the highest estimated Jaccard similarity to `text` (ties: index order)."""
        query_K = signatures([text])[0]
        if (query_K == MAX_U64).all():  # no words: nothing to resemble
            return []
        scored = []
        for shard, sig_DK in zip(self.index.shards, self.sigs, strict=True):
            jaccard_D = (sig_DK == query_K).mean(axis=1) if sig_DK.size else np.zeros(0)
            best = np.argsort(-jaccard_D, kind="stable")[:top]
            scored += [(float(jaccard_D[r]), shard, int(r)) for r in best if jaccard_D[r] > 0]
        scored.sort(key=lambda t: -t[0])
        out = []
        for jaccard, shard, row in scored[:top]:
            meta = shard.dataset.index(shard.number).slice(row, 1).to_pylist()[0]
            out.append({"jaccard": round(jaccard, 4), "id": meta["id"], "url": meta["url"], "source": meta["source"],
                        "warc_path": meta["warc_path"], "warc_offset": meta["warc_offset"],
                        "shard": shard.number, "dataset": shard.dataset.root})
        return out
