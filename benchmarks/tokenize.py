"""Tokenize + pack: tokenmill vs datatrove's DocumentTokenizer; and random-access reads of packed sequences.

Run as a module only (`python -m benchmarks.tokenize`): run as a script, this file would shadow Python's own
`tokenize` module.

1. Tokenize + pack, tokens/s. Both read the same Parquet document file and tokenize with the same tokenizer.json
   (GPT-NeoX 50k from ../shared/data, or a BPE trained here when that is absent), EOS after each document, in one
   process. tokenmill: `encode_file` (shards + index) then `finalize_dataset` (dataset.json, concat and best-fit
   plans at seq_len 2048). datatrove: `ParquetReader` → `DocumentTokenizer` (.ds + .ds.index, no shuffle; its
   shuffled default is timed too, for context).
2. Reader, sequences/s, seq_len 2048, random order: tokenmill `PackedSequences` (concat) vs datatrove's
   `DatatroveFileDataset` on our datatrove export of the same tokens, each from local disk and over loopback HTTP
   (tokenmill: a fresh reader per run, so its block cache starts cold).
3. Shard checks, MB/s: the lazy first-access check (xxh3 per 1 MiB block) vs the whole-file sha256.

Where the speedup comes from: tokenmill's encode uses tiktoken's BPE core when it reproduces HF's ids exactly
(tokenmill/tokenize/fastbpe.py); `tokenmill_hf_encoder` is the same step forced onto HF `encode_batch`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.common import alternate, write_result
from tokenmill.schema import documents_from_pylist
from tokenmill.tokenize.pipeline import TokenizeConfig, encode_file, finalize_dataset

SHARED = Path(os.environ.get("TOKENMILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
NEOX = SHARED / "tokenizers" / "dolma_gpt-neox-style_byte-level-bpe_tokenizer.json"
SEQ_LEN = 2048


def make_documents(n_docs: int, seed: int = 0) -> list[dict]:
    """Generated articles (1-6 joined, for a spread of lengths), as the synthetic crawl renders them."""
    from tokenmill.ingest.synth import article_text, make_article, render_blocks

    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        lang = ["en", "de", "fr", "es", "ja"][int(rng.integers(0, 5))]
        k = int(rng.integers(1, 7)) if rng.random() < 0.3 else 1
        text = "\n\n".join(article_text(render_blocks(make_article(lang, seed, rng), seed)) for _ in range(k))
        docs.append({"id": f"d{i}", "url": f"https://s{i % 97}.example/{i}", "source": "cc/bench", "text": text})
    return docs


def tokenizer_path(work: Path, docs: list[dict]) -> Path:
    if NEOX.is_file():
        return NEOX
    from tokenmill.tokenize.tokenizer import train_tokenizer_from_texts

    return train_tokenizer_from_texts((d["text"] for d in docs[:2000]), work / "bpe.json", 32_000)


def bench_tokenize(work: Path, doc_file: Path, tok: Path, repeats: int) -> tuple[dict, int]:
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from loguru import logger

    logger.remove()  # datatrove logs every file it reads

    runs = iter(range(10**6))

    def tokenmill(encoder: str):
        cfg = TokenizeConfig(tokenizer=str(tok), seq_lens=[SEQ_LEN], encoder=encoder)

        def run() -> None:
            out = work / f"tm-{next(runs)}"
            res = encode_file(str(doc_file), 0, str(out), str(tok), cfg)
            for slug, src in res["sources"].items():
                finalize_dataset(str(out / slug), src, str(tok), cfg, res["tokenizer"])
        return run

    def datatrove(shuffle: bool):
        def run() -> None:
            reader = ParquetReader(str(doc_file.parent), glob_pattern=doc_file.name, doc_progress=False)
            step = DocumentTokenizer(str(work / f"dt-{next(runs)}"), tokenizer_name_or_path=str(tok),
                                     eos_token="<|endoftext|>", shuffle_documents=shuffle, batch_size=1000)
            for _ in step.run(reader.run(), rank=0, world_size=1) or ():
                pass
        return run

    best = alternate({"tokenmill": tokenmill("auto"), "datatrove": datatrove(False),
                      "tokenmill_hf_encoder": tokenmill("hf"), "datatrove_shuffled": datatrove(True)},
                     repeats=repeats)
    n_tokens = sum(np.fromfile(p, np.uint16).size for p in (work / "tm-0").rglob("shard-*.bin"))
    return best, n_tokens


def bench_reader(work: Path, dataset: Path, n_reads: int, repeats: int) -> dict:
    from datatrove.utils.dataset import DatatroveFileDataset

    from tokenmill.tokenize.export import export_dataset
    from tokenmill.tokenize.httpserve import serve_directory
    from tokenmill.tokenize.packing import PackedSequences
    from tokenmill.tokenize.shards import TokenDataset

    export_dataset(str(dataset), work / "export", "datatrove")
    ds_file = next((work / "export").glob("*.ds"))
    n_windows = len(DatatroveFileDataset(str(ds_file), SEQ_LEN))
    order = np.random.default_rng(0).integers(0, n_windows, n_reads).tolist()

    def tm(url: str):
        def run() -> None:
            ps = PackedSequences(TokenDataset.open(url), SEQ_LEN, "concat")
            for i in order:
                ps[i]
        return run

    def dt(url: str):
        def run() -> None:
            d = DatatroveFileDataset(url, SEQ_LEN)
            for i in order:
                d[i]
        return run

    with serve_directory(work) as base:
        rel = dataset.relative_to(work)
        best = alternate({"tokenmill_local": tm(str(dataset)), "datatrove_local": dt(str(ds_file)),
                          "tokenmill_http": tm(f"{base}/{rel}"),
                          "datatrove_http": dt(f"{base}/export/{ds_file.name}")}, repeats=repeats)
    return {k: n_reads / v for k, v in best.items()}


def bench_verify(work: Path, repeats: int) -> dict:
    """MB/s of the lazy first-access check (xxh3 per 1 MiB block) and of the whole-file sha256, on a 128 MB shard."""
    from tokenmill.tokenize.shards import TokenDataset, write_token_dataset

    rng = np.random.default_rng(0)
    docs = (({"id": f"v{i}", "url": None, "source": "v"}, rng.integers(0, 50_000, 1 << 20)) for i in range(64))
    path = write_token_dataset(work / "verify", docs, vocab_size=50_001, eos_id=50_000, batch_docs=8)
    mb = TokenDataset.open(path).shard_tokens.sum() * 2 / 1e6

    def blocks() -> None:
        TokenDataset.open(path).tokens(0)

    best = alternate({"block_check": blocks, "sha256": lambda: TokenDataset.open(path).verify_sha256(0)},
                     repeats=repeats)
    return {f"{k}_mb_per_s": round(mb / v) for k, v in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=4000, help="documents to tokenize (~1k NeoX tokens each)")
    ap.add_argument("--reads", type=int, default=2000, help="random sequence reads per reader run")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        docs = make_documents(a.scale)
        doc_file = work / "docs" / "part-00000.parquet"
        doc_file.parent.mkdir()
        pq.write_table(documents_from_pylist(docs), doc_file)
        tok = tokenizer_path(work, docs)
        best, n_tokens = bench_tokenize(work, doc_file, tok, a.repeats)
        reads = bench_reader(work, work / "tm-0" / "cc_bench", a.reads, a.repeats)
        verify = bench_verify(work, a.repeats)
    metrics = {f"{k}_tokens_per_s": round(n_tokens / v) for k, v in best.items()}
    metrics.update({f"{k}_sequences_per_s": round(v, 1) for k, v in reads.items()})
    metrics.update(verify)
    metrics.update({"tokens": n_tokens, "documents": a.scale, "tokenizer": tok.name, "seq_len": SEQ_LEN})
    ratios = {"tokenize_pack_tokenmill_vs_datatrove": best["datatrove"] / best["tokenmill"],
              "tokenize_pack_tokenmill_hf_encoder_vs_datatrove": best["datatrove"] / best["tokenmill_hf_encoder"],
              "read_local_tokenmill_vs_datatrove": reads["tokenmill_local"] / reads["datatrove_local"],
              "read_http_tokenmill_vs_datatrove": reads["tokenmill_http"] / reads["datatrove_http"]}
    path = write_result("tokenize", input=f"{a.scale} generated docs, {n_tokens} tokens ({tok.name}); "
                        f"{a.reads} random reads of seq_len {SEQ_LEN}", metrics=metrics, ratios=ratios,
                        goal={"tokenize_pack_tokenmill_vs_datatrove": ">= 1.5"})
    print(path.read_text())


if __name__ == "__main__":
    main()
