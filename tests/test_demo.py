"""`tokenmill demo` end to end at a reduced size: every result exists and the numbers agree from hop to hop."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow
TRAIN_STEPS = 20


@pytest.fixture(scope="module")
def demo(ray_local, tmp_path_factory):
    from tokenmill.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    return run_demo(out=out, docs=400, train_steps=TRAIN_STEPS)


def test_document_counts_add_up_from_stage_to_stage(demo):
    stats = json.loads((Path(demo["pipeline"]) / "report" / "stats.json").read_text())
    funnel = stats["funnel"]
    assert funnel[0]["stage"] == "ingest" and funnel[0]["docs_in"] == 400
    for before, after in zip(funnel, funnel[1:], strict=False):
        assert after["docs_in"] == before["docs_kept"], (before, after)
        assert after["docs_in"] == after["docs_kept"] + sum(after["dropped"].values())
    kept = sum(pq.read_metadata(f).num_rows for f in (Path(demo["pipeline"]) / "documents").glob("*.parquet"))
    assert kept == funnel[-1]["docs_kept"] == stats["documents_out"]
    dropped = {s["stage"]: sum(s["dropped"].values()) for s in funnel}
    assert dropped["exact_dedup"] > 0 and dropped["minhash_dedup"] > 0  # the crawl plants duplicates


def test_token_shards_hold_every_kept_document_and_the_loader_serves_them(demo):
    from tokenmill.tokenize.packing import PackedSequences
    from tokenmill.tokenize.shards import TokenDataset

    tokens = Path(demo["pipeline"]) / "tokens"
    roots = sorted(p.parent for p in tokens.glob("*/dataset.json"))
    assert [r.name for r in roots] == ["cc_DEMO-2026-a", "cc_DEMO-2026-b"]  # two sources
    docs = 0
    for root in roots:
        ds = TokenDataset.open(str(root))
        index_tokens = sum(int(ds.index(i)["token_count"].to_numpy().sum()) for i in range(ds.num_shards))
        stream_tokens = sum(len(ds.tokens(i)) for i in range(ds.num_shards))
        assert index_tokens == stream_tokens == ds.num_tokens
        docs += sum(ds.index(i).num_rows for i in range(ds.num_shards))
        seq = PackedSequences(ds, 128, "concat")
        # concat packs each shard's stream into windows of 129 tokens with stride 128: only shard tails are cut
        assert len(seq) == sum((len(ds.tokens(i)) - 1) // 128 for i in range(ds.num_shards)) > 0
    assert docs == json.loads((Path(demo["pipeline"]) / "report" / "stats.json").read_text())["documents_out"]


def test_training_ran_with_a_mid_run_mix_change(demo):
    run = Path(demo["train"])
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics][-1] == TRAIN_STEPS - 1
    rows = pq.read_table(sorted((run / "provenance").glob("*.parquet")),
                         columns=["step", "source"]).to_pylist()
    half = TRAIN_STEPS // 2
    share = {part: sum(r["source"] == "a" for r in rs) / len(rs)
             for part, rs in (("before", [r for r in rows if r["step"] < half]),
                              ("after", [r for r in rows if r["step"] >= half]))}
    assert share["before"] > 0.7 and share["after"] < 0.3, share  # 80:20, then 20:80


def test_a_generated_output_is_traced_and_reports_exist(demo):
    traced = json.loads(Path(demo["trace"]).read_text())
    assert traced["output"].startswith(traced["prompt"])
    assert traced["spans"] and traced["documents"]  # at least the prompt comes from a training document
    for page in (demo["report"], demo["train_report"]):
        assert Path(page).stat().st_size > 1000
