"""The terminal view of a trace result: the output with its spans marked, then the documents by BM25."""

from __future__ import annotations

import textwrap

WIDTH = 100  # characters per line of the terminal view


def mark_spans(text: str, spans: list[dict]) -> str:
    """The output with each span wrapped as [[...]]; overlapping spans are merged for display."""
    ranges = sorted((s["char_start"], s["char_end"]) for s in spans)
    merged: list[list[int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, at = [], 0
    for a, b in merged:
        out += [text[at:a], "[[", text[a:b], "]]"]
        at = b
    return "".join(out + [text[at:]])


def _one_line(s: str) -> str:
    return " ".join(s.split())


def render_text(result: dict, text: str | None = None) -> str:
    spans, docs = result["spans"], result["documents"]
    lines = [f"traced {result['output_tokens']} output tokens against {result['index_tokens']:,} training tokens "
             f"({result['dataset']}): {len(spans)} spans, {len(docs)} documents"]
    if text is not None:
        lines += ["", *textwrap.wrap(mark_spans(text, spans), WIDTH)]
    lines += ["", "spans (rarest kept, by unigram probability):"]
    for s in spans:
        lines.append(f"  [{s['id']}] {s['count']:>6}×  {s['tokens']:>3} tok  logp {s['unigram_logprob']:>8.1f}  "
                     f"\"{_one_line(s['text'])[:WIDTH - 40]}\"")
    lines += ["", "documents (BM25 against the output):"]
    for d in docs:
        lines.append(f"  {d['rank']:>2}. {d['url'] or '(no url)'}  bm25 {d['bm25']:.2f}  spans {d['spans']}")
        lines.append(f"      source {d['source']}  id {d['id']}  shard {d['shard']}")
        if d.get("warc_path"):
            lines.append(f"      crawl record {d['warc_path']} @ {d['warc_offset']}")
        for sn in d["snippets"][:2]:
            snippet = f"…{_one_line(sn['before'])[-60:]} [[{_one_line(sn['match'])}]] {_one_line(sn['after'])[:60]}…"
            lines += ["      " + w for w in textwrap.wrap(snippet, WIDTH - 6)]
    for f in result.get("fuzzy", []):
        if f is result["fuzzy"][0]:
            lines += ["", "resembling documents (MinHash Jaccard estimate):"]
        lines.append(f"  {f['jaccard']:.2f}  {f['url'] or '(no url)'}  ({f['source']}, id {f['id']})")
    return "\n".join(lines)
