"""Exact dedup on normalized text: planted copies (changed case, spacing, punctuation) across shards and
partitions, the survivor rules, and the normalization it shares with MinHash and decontamination."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import write_shards

from tokenmill.config import ConfigError
from tokenmill.dedup.exact import DUPLICATE_OF, REASON, ExactDedup
from tokenmill.dedup.local import run_global_locally
from tokenmill.dedup.ngrams import doc_shingles, normalized_text, words
from tokenmill.ingest.synth import article_text, make_article, render_blocks
from tokenmill.schema import documents_from_pylist
from tokenmill.stage import ShardInfo

SEED = 4


def variant(text: str, k: int) -> str:
    """The same words with other case, spacing and punctuation."""
    return [text.upper(), "  " + text.replace(" ", " \n ") + "!!", text.replace(".", ";").replace(",", ""),
            text.title()][k % 4]


@pytest.fixture(scope="module")
def planted():
    rows, copies = [], {}
    for i in range(200):
        art = make_article("en", SEED, np.random.default_rng([SEED, i]))
        text = article_text(render_blocks(art, SEED))
        rows.append({"id": f"src-{i:04d}", "text": text, "warc_date": f"2024-02-{1 + i % 27:02d}"})
        if i % 5 == 0:
            for k in range(1 + i % 3):
                cid = f"copy-{i:04d}-{k}"
                rows.append({"id": cid, "text": variant(text, i + k), "warc_date": "2024-06-01"})
                copies[cid] = f"src-{i:04d}"
    order = np.random.default_rng(SEED).permutation(len(rows))
    return [rows[k] for k in order], copies


def test_every_planted_copy_is_removed_and_points_to_the_kept_one(planted, tmp_path):
    rows, copies = planted
    stage = ExactDedup(partitions=5, keep="earliest")
    out = run_global_locally(stage, write_shards(rows, tmp_path, 3), str(tmp_path / "w"), batch_size=50)
    by_id = {r["id"]: r for t in out for r in t.to_pylist()}
    for cid, src in copies.items():
        assert by_id[cid]["drop_reason"] == REASON and by_id[cid][DUPLICATE_OF] == src
        assert by_id[src]["drop_reason"] is None
    dropped = [i for i, r in by_id.items() if r["drop_reason"]]
    assert sorted(dropped) == sorted(copies)
    s = stage.summary(str(tmp_path / "w"))
    assert s["documents_removed"] == len(copies) and s["documents"] == len(rows)


@pytest.mark.parametrize("keep,expected", [("first", "a"), ("longest", "b"), ("earliest", "c")])
def test_keep_rules(keep, expected, tmp_path):
    rows = [{"id": "a", "text": "Same words here", "warc_date": "2024-03-01"},
            {"id": "b", "text": "SAME words, here!!! ...", "warc_date": "2024-02-01"},
            {"id": "c", "text": "same  words here.", "warc_date": "2023-12-31"},
            {"id": "d", "text": "", "warc_date": "2020-01-01"},
            {"id": "e", "text": "?!", "warc_date": "2020-01-01"}]
    out = run_global_locally(ExactDedup(keep=keep, partitions=2), write_shards(rows, tmp_path, 1),
                             str(tmp_path / "w"))[0]
    kept = [r["id"] for r in out.to_pylist() if r["drop_reason"] is None]
    assert kept == sorted({expected, "d", "e"})  # texts with no words are left to the filters


def test_already_dropped_rows_do_not_take_part(tmp_path):
    t = documents_from_pylist([{"id": "a", "text": "one two three", "drop_reason": "gopher.too_short"},
                               {"id": "b", "text": "One two three"}])
    pq.write_table(t, tmp_path / "in.parquet")
    out = run_global_locally(ExactDedup(), [str(tmp_path / "in.parquet")], str(tmp_path / "w"))[0]
    assert out["drop_reason"].to_pylist() == ["gopher.too_short", None]


def test_quality_rule_needs_its_column():
    with pytest.raises(ConfigError, match="quality_column"):
        ExactDedup(keep="quality").check()


def test_normalization_matches_the_datatrove_reference_on_words():
    texts = pa.array(["Héllo,  WORLD!\n\tIt's   “quoted” — ＡＢＣ", "", None, "a.b,c"])
    assert normalized_text(texts)[:2] == ["héllo world its quoted abc", ""]
    flat, offsets = words(texts)
    assert flat.to_pylist() == ["héllo", "world", "its", "quoted", "abc", "abc"] and offsets.tolist() == [0, 5, 5, 5, 6]
    h, off = doc_shingles(pa.array(["one two three", "one two three four five six", "ONE, two; three!"]), n=5)
    assert off.tolist() == [0, 1, 3, 4] and h[0] == h[3] and h[1] != h[2]  # short docs: one whole-doc shingle


def test_rows_that_share_an_id_are_decided_each_on_its_own(tmp_path):
    """Decisions are keyed by row: two rows with one id and one text are duplicates like any others (the first
    stays), and of two rows with one id but different texts only the one that copies a third document goes."""
    rows = [{"id": "x", "text": "same text twice"}, {"id": "x", "text": "Same text twice!"},
            {"id": "p", "text": "first words here"}, {"id": "q", "text": "other words here"},
            {"id": "p", "text": "Other words, here."}]
    out = run_global_locally(ExactDedup(), write_shards(rows, tmp_path, 1), str(tmp_path / "w"), batch_size=2)[0]
    assert out["drop_reason"].to_pylist() == [None, REASON, None, None, REASON]
    assert out[DUPLICATE_OF].to_pylist() == [None, "x", None, None, "q"]  # the kept copy's id


def test_earliest_without_dates_keeps_the_first_in_input_order(tmp_path):
    rows = [{"id": "zz", "text": "one text"}, {"id": "mm", "text": "One text."}, {"id": "aa", "text": "ONE TEXT"}]
    for keep in ("earliest", "first"):
        out = run_global_locally(ExactDedup(keep=keep), write_shards(rows, tmp_path, 1), str(tmp_path / keep))[0]
        assert out["drop_reason"].to_pylist() == [None, REASON, REASON], keep  # not the smallest id, "aa"
        assert out[DUPLICATE_OF].to_pylist() == [None, "zz", "zz"], keep


def test_decisions_for_another_file_are_an_error_not_a_wrong_join(tmp_path):
    rows = [{"id": "a", "text": "same"}, {"id": "b", "text": "same"}]
    stage = ExactDedup()
    run_global_locally(stage, write_shards(rows, tmp_path, 1), str(tmp_path / "w"))
    stage.workdir, stage.shard = str(tmp_path / "w"), ShardInfo(0, "shard-00000", "in-0.parquet")
    stage.setup()
    with pytest.raises(RuntimeError, match="in-0.parquet: row 1 has id 'c', the global phases saw 'b'"):
        stage.process(documents_from_pylist([{"id": "a", "text": "same"}, {"id": "c", "text": "same"}]))


def test_an_instance_set_up_again_starts_its_next_shard_at_row_0(tmp_path):
    rows = [{"id": "a", "text": "same"}, {"id": "b", "text": "same"}, {"id": "c", "text": "other"},
            {"id": "d", "text": "other"}]
    paths = write_shards(rows, tmp_path, 2)  # round-robin: shard 0 holds a, c; shard 1 holds b, d
    stage = ExactDedup()
    run_global_locally(stage, paths, str(tmp_path / "w"))
    stage.workdir = str(tmp_path / "w")
    for index, want in ((0, [None, None]), (1, [REASON, REASON])):
        stage.shard = ShardInfo(index, f"shard-{index:05d}", paths[index])
        stage.setup()
        out = stage.process(pq.read_table(paths[index]))
        assert out["drop_reason"].to_pylist() == want, index


def test_a_file_without_text_is_named_in_the_error(tmp_path):
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="bad.parquet: not a document file: no column text"):
        run_global_locally(ExactDedup(), [str(tmp_path / "bad.parquet")], str(tmp_path / "w"))
