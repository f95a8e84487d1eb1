"""The fast encoder gives exactly HF tokenizers' ids, on real crawl text, or is refused / overruled by the guard."""

from __future__ import annotations

import gzip
import json

import pytest
from test_tokenize_shards import NEOX, varied_docs

from tokenmill.tokenize.fastbpe import FastBPE
from tokenmill.tokenize.pipeline import Encoder
from tokenmill.tokenize.tokenizer import load_tokenizer, train_tokenizer_from_texts

EDGE_CASES = [
    "", " ", "a  b   c\t\t d\n\n\n e      x", "   leading", "trailing   ", "x<|endoftext|>y <|padding|> z",
    "|||EMAIL_ADDRESS||| wrote", "e\u0301 cafe\u0301  \u00e9", "日本語のテキスト　全角", "emoji 😀😀 x",
    "'s 're 'VE 123456 3.14", "tab\tsep\r\nwindows\u00a0nbsp",
]


@pytest.fixture(scope="module")
def real_texts(shared_data) -> list[str]:
    truth = json.loads((shared_data / "html" / "scrapinghub_aeb" / "ground-truth.json").read_text())
    texts = [v["articleBody"] for v in truth.values()]
    for name in ("dolma_cc_en_head-0174.jsonl.gz",):
        with gzip.open(shared_data / "commoncrawl" / "text" / name, "rt") as f:
            texts += [json.loads(line)["text"] for line in f]
    raw_html = sorted((shared_data / "html" / "trafilatura_eval_sample").glob("*.html.gz"))[:6]
    texts += [gzip.open(p, "rt", errors="replace").read() for p in raw_html]  # markup, many languages
    return texts + EDGE_CASES


def hf_ids(tok, texts):
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def test_fast_path_equals_hf_on_real_text_neox(shared_data, real_texts):
    fast, why = FastBPE.from_file(shared_data / NEOX)
    assert fast is not None, why
    assert fast.encode_batch(real_texts) == hf_ids(load_tokenizer(shared_data / NEOX), real_texts)


def test_fast_path_equals_hf_for_our_trained_tokenizer(real_texts, tmp_path):
    path = train_tokenizer_from_texts((d["text"] for d in varied_docs(150)), tmp_path / "t.json", 3000)
    fast, why = FastBPE.from_file(path)
    assert fast is not None, why
    assert fast.encode_batch(real_texts) == hf_ids(load_tokenizer(path), real_texts)


def test_unsupported_tokenizers_are_refused_with_a_reason(shared_data):
    fast, why = FastBPE.from_file(shared_data / "tokenizers" / "dolma_llama_sentencepiece-bpe_tokenizer.json")
    assert fast is None and "byte fallback" in why


def test_guard_falls_back_to_hf_on_a_difference(shared_data, tmp_path):
    # a fast encoder built from another tokenizer disagrees with the reference at once: HF's ids win
    other = train_tokenizer_from_texts((d["text"] for d in varied_docs(50)), tmp_path / "o.json", 1000)
    neox = load_tokenizer(shared_data / NEOX)
    enc = Encoder(neox, str(other), "auto")
    texts = [d["text"] for d in varied_docs(10, seed=3)]
    assert enc(texts, [f"d{i}" for i in range(10)]) == hf_ids(neox, texts)
    assert enc.report().startswith("hf (fast path differs from HF on document d0")
    same = Encoder(neox, str(shared_data / NEOX), "auto")
    assert same(texts, list(range(10))) == hf_ids(neox, texts) and same.report().startswith("fast")
