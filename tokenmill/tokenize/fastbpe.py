"""A fast encoder for byte-level BPE tokenizer.json files: the same ids as HF `tokenizers`, from tiktoken's BPE.

HF's `encode_batch` builds an `Encoding` per document (offsets, token strings, masks); tiktoken's core returns
ids only, from the same regex pre-tokenization and the same greedy lowest-rank merging. The two agree when the
tokenizer is plain byte-level BPE whose token ids grow with merge order (true of GPT-2/NeoX-style and of every
tokenizer `train_tokenizer` writes), which `FastBPE.from_file` checks, refusing (None, with the reason) otherwise:
other normalizers than NFC, pre-tokenizers other than ByteLevel(regex) or one Split regex + ByteLevel, dropout,
byte fallback, added tokens with lstrip/rstrip/single_word. Added tokens (e.g. NeoX's space runs) are split off
first, leftmost-longest, as HF does. The tokenize step also checks the first documents of every file against HF
and falls back to HF on any difference.

Measured: 2,000 generated documents (1.88M NeoX tokens), identical ids, 1.45 s vs HF encode_batch 6.75 s (4.7x)
on this loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENCODE_THREADS = os.cpu_count() or 2
NEVER_IN_UTF8 = {0xC0, 0xC1, *range(0xF5, 0x100)}  # vocabularies may lack these bytes (NeoX does)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in for every byte (the alphabet of byte-level BPE vocabularies), inverted."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def _pattern(spec: dict) -> str | None:
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space"):
        return GPT2_PATTERN
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 2:
        split, bl = pre["pretokenizers"]
        if (split.get("type") == "Split" and "Regex" in split.get("pattern", {}) and not split.get("invert")
                and split.get("behavior") == "Isolated" and bl.get("type") == "ByteLevel"
                and not bl.get("use_regex", True) and not bl.get("add_prefix_space")):
            return split["pattern"]["Regex"]
    return None


class FastBPE:
    """`encode_batch(texts) -> list[list[int]]`, equal to HF's `encode_batch(..., add_special_tokens=False)`."""

    def __init__(self, encoding, added: dict[str, int], nfc: bool) -> None:
        self.encoding, self.added, self.nfc = encoding, added, nfc
        self._added_re = re.compile("(" + _trie_regex(list(added)) + ")") if added else None
        # a document holding none of these pairs of characters holds no added token: skip the regex
        self._prefixes = sorted({a[:2] for a in added})

    @classmethod
    def from_file(cls, path: str | Path) -> tuple[FastBPE | None, str]:
        """(encoder, "") when the tokenizer is supported, else (None, why not)."""
        try:
            import tiktoken
        except ImportError:
            return None, "tiktoken not installed"
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        model = spec.get("model", {})
        norm = spec.get("normalizer")
        pattern = _pattern(spec)
        why = _unsupported(spec, model, norm, pattern)
        if why:
            return None, why
        dec = _byte_decoder()
        added = {a["content"]: a["id"] for a in spec.get("added_tokens", [])}
        vocab = {tok: i for tok, i in model["vocab"].items() if tok not in added}
        outside = re.compile("[^" + "".join(map(re.escape, dec)) + "]")
        if outside.search("".join(vocab)):
            return None, "vocab has tokens outside the byte-level alphabet"
        table = str.maketrans({ch: chr(b) for ch, b in dec.items()})  # stand-in char -> the byte it stands for
        ranks = {tok.translate(table).encode("latin-1"): i for tok, i in vocab.items()}
        if not all(bytes([b]) in ranks for b in range(256) if b not in NEVER_IN_UTF8):
            return None, "vocab lacks some single bytes"
        merged = [model["vocab"].get(m.replace(" ", "", 1) if isinstance(m, str) else "".join(m), -1)
                  for m in model.get("merges", [])]
        if any(b <= a for a, b in zip(merged, merged[1:], strict=False)) or -1 in merged:
            return None, "token ids do not follow merge order"
        if norm is not None and any(not a.isascii() for a in added):
            return None, "non-ASCII added tokens under a normalizer"
        enc = tiktoken.Encoding(f"tokenmill-{Path(path).stem}", pat_str=pattern, mergeable_ranks=ranks,
                                special_tokens={})
        return cls(enc, added, nfc=norm is not None), ""

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self.nfc:
            texts = [t if unicodedata.is_normalized("NFC", t) else unicodedata.normalize("NFC", t) for t in texts]
        if self._added_re is None:
            return self.encoding.encode_ordinary_batch(texts, num_threads=ENCODE_THREADS)
        pieces: list[str] = []
        layout: list[list] = []  # per text: ints index `pieces`; ("id", n) is an added token
        for t in texts:
            if not any(p in t for p in self._prefixes):
                layout.append([len(pieces)])
                pieces.append(t)
                continue
            parts = self._added_re.split(t)
            items: list = []
            for k, part in enumerate(parts):
                if k % 2:
                    items.append(("id", self.added[part]))
                elif part:
                    items.append(len(pieces))
                    pieces.append(part)
            layout.append(items)
        encoded = self.encoding.encode_ordinary_batch(pieces, num_threads=ENCODE_THREADS)
        out = []
        for items in layout:
            if len(items) == 1 and isinstance(items[0], int):
                out.append(encoded[items[0]])
                continue
            ids: list[int] = []
            for it in items:
                if isinstance(it, int):
                    ids.extend(encoded[it])
                else:
                    ids.append(it[1])
            out.append(ids)
        return out


def _trie_regex(words: list[str]) -> str:
    """A regex matching any of `words`, longest first at each position (a trie: no alternation of whole words)."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict) -> str:
        alts = [re.escape(ch) + walk(child) for ch, child in sorted(node.items()) if ch]
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")" if alts else ""
        if "" in node and alts:
            return "(?:" + body + ")?"  # a word ends here: longer continuations are tried first
        return body

    return walk(trie)


def _unsupported(spec: dict, model: dict, norm: dict | None, pattern: str | None) -> str:
    if model.get("type") != "BPE":
        return f"model is {model.get('type')}, not BPE"
    if model.get("dropout") or model.get("byte_fallback") or model.get("continuing_subword_prefix") or \
            model.get("end_of_word_suffix"):
        return "BPE with dropout, byte fallback or affixes"
    if norm is not None and norm.get("type") != "NFC":
        return f"normalizer {norm.get('type')}"
    if pattern is None:
        return "pre-tokenizer is not byte-level with a single regex"
    if any(a.get("lstrip") or a.get("rstrip") or a.get("single_word") for a in spec.get("added_tokens", [])):
        return "added tokens with lstrip/rstrip/single_word"
    return ""
