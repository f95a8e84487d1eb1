"""A JSONL input that repeats ids, through a whole run on Ray (ingest → exact → MinHash → decontamination):
every decision lands on the row it was made for, never on every row that shares its id."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_helpers import documents, read_dir, write_job

from tokenmill.dedup import decontam, exact, minhash
from tokenmill.ingest.synth import article_text, make_article, near_duplicate, render_blocks
from tokenmill.pipeline.runner import run_job

SEED = 31
ITEM = ("A farmer has 17 sheep and buys 5 more every week for 6 weeks, then sells half of the flock at the "
        "market on Saturday morning; how many sheep does the farmer keep at the end of it all?")


def articles(n: int):
    """n distinct synth articles of at least 120 words (room for near_duplicate's edits), with their rngs."""
    out, i = [], 0
    while len(out) < n:
        rng = np.random.default_rng([SEED, i])
        art = make_article("en", SEED, rng)
        i += 1
        if art.n_words >= 120:
            out.append((art, rng))
    return out


@pytest.fixture(scope="module")
def run(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("positions")
    arts = articles(7)
    t = [article_text(render_blocks(a, SEED)) for a, _ in arts]
    near, _ = near_duplicate(arts[4][0], 0.9, SEED, arts[4][1])
    files = {  # (given id, text); the comment says what must happen to the row
        "a.jsonl": [("twin", t[0]),  # kept: first of two identical rows with one id
                    ("twin", t[0]),  # exact duplicate of the row above
                    ("pair", t[1]),  # kept although its id's other row (b.jsonl) is a duplicate
                    ("third", t[2]),  # kept: the original of b.jsonl's "pair"
                    ("src", t[4]),  # kept: MinHash cluster survivor (first in input order; no dates)
                    ("flag", t[5])],  # kept although its id's other row is contaminated
        "b.jsonl": [("pair", t[2].upper()),  # exact duplicate of "third"
                    ("mh", t[3]),  # kept: unrelated to its id's other row
                    ("mh", article_text(render_blocks(near, SEED))),  # near-duplicate of "src"
                    ("flag", t[6][:600] + "\nHomework help: " + ITEM),  # contaminated
                    ("tail", t[6])]}
    lines = {}
    for name, rows in files.items():
        lines[name] = [json.dumps({"id": i, "text": x}) + "\n" for i, x in rows]
        (tmp / name).write_text("".join(lines[name]))
    (tmp / "bench.jsonl").write_text(json.dumps({"question": ITEM}) + "\n")
    stages = [{"exact_dedup": {}}, {"minhash_dedup": {"partitions": 2}},
              {"decontaminate": {"benchmarks": [{"name": "farm", "path": str(tmp / "bench.jsonl"),
                                                 "fields": ["question"]}]}}]
    job = write_job(tmp / "job.yaml", tmp, tmp / "out", stages)
    job.write_text(job.read_text().replace(f"{tmp}/crawl-*.warc.gz", f"{tmp}/*.jsonl"))
    starts = {name: np.cumsum([0] + [len(x.encode()) for x in ls[:-1]]).tolist() for name, ls in lines.items()}
    return starts, run_job(job, progress=False)


def located(table, starts) -> dict[tuple[str, int], dict]:
    """Output rows by (input file, line number): `warc_offset` of a JSONL row is its line's byte offset."""
    return {(name, starts[name].index(r["warc_offset"])): r
            for r in table.to_pylist() for name in [r["warc_path"].rsplit("/", 1)[-1]]}


def test_each_row_is_kept_or_dropped_on_its_own(run):
    starts, result = run
    kept = located(documents(result.output), starts)
    assert sorted(kept) == [("a.jsonl", k) for k in (0, 2, 3, 4, 5)] + [("b.jsonl", 1), ("b.jsonl", 4)]
    dropped = {s["stage"]: s["dropped"] for s in result.stats["funnel"]}
    assert dropped["exact_dedup"] == {exact.REASON: 2} and dropped["minhash_dedup"] == {minhash.REASON: 1}
    assert dropped["decontaminate"] == {decontam.REASON: 1}


def test_duplicates_name_the_kept_copys_id(run):
    starts, result = run
    kept = located(documents(result.output), starts)
    ex = located(read_dir(result.output / "rejected" / "exact_dedup"), starts)
    assert sorted(ex) == [("a.jsonl", 1), ("b.jsonl", 0)]
    assert ex[("a.jsonl", 1)][exact.DUPLICATE_OF] == ex[("a.jsonl", 1)]["id"] == kept[("a.jsonl", 0)]["id"]
    assert ex[("b.jsonl", 0)][exact.DUPLICATE_OF] == kept[("a.jsonl", 3)]["id"] != ex[("b.jsonl", 0)]["id"]
    mh = located(read_dir(result.output / "rejected" / "minhash_dedup"), starts)
    assert sorted(mh) == [("b.jsonl", 2)] and mh[("b.jsonl", 2)]["drop_reason"] == minhash.REASON
    assert mh[("b.jsonl", 2)][minhash.CLUSTER_ID] == kept[("a.jsonl", 4)]["id"]
    assert kept[("a.jsonl", 4)][minhash.CLUSTER_SIZE] == 2 and kept[("b.jsonl", 1)][minhash.CLUSTER_SIZE] == 1
    dc = located(read_dir(result.output / "rejected" / "decontaminate"), starts)
    assert sorted(dc) == [("b.jsonl", 3)] and dc[("b.jsonl", 3)]["drop_reason"] == decontam.REASON
    assert dc[("b.jsonl", 3)]["id"] == kept[("a.jsonl", 5)]["id"]  # one id, two rows: only this one flagged
    assert kept[("a.jsonl", 5)][decontam.BENCHMARKS_COL] is None
