"""Every filter stage through the plan and in sequence on a generated crawl shard: checks, accounting, pickling."""

from __future__ import annotations

import pickle
import re

import pytest
import yaml

from tokenmill.config import InputSpec
from tokenmill.ingest import read_documents
from tokenmill.pipeline.plan import build_plan

FILTERS = ["language", "gopher_repetition", "gopher_quality", "c4", "fineweb_quality", "repetition", "pii",
           "urls", "quality"]


@pytest.fixture(scope="module")
def job(small_crawl, shared_data, tmp_path_factory):
    from tokenmill.filters.quality import train_classifier

    tmp_path = tmp_path_factory.mktemp("stack")
    labelled = str(shared_data / "commoncrawl/text/dclm_majority_data.jsonl.gz")
    model = tmp_path / "hq.bin"
    train_classifier([labelled], [labelled], str(model), label_field="label", holdout=0.0, epochs=5)
    lists = shared_data / "lists"
    stages = [{"language": {"languages": ["en", "de", "fr", "es"]}}, {"gopher_repetition": {}},
              {"gopher_quality": {}}, {"c4": {}}, {"fineweb_quality": {}}, {"repetition": {}}, {"pii": {}},
              {"urls": {"banned_words": [str(lists / "datatrove_banned_words.txt")],
                        "banned_subwords": [str(lists / "datatrove_banned_subwords.txt")]}},
              {"quality": {"model_path": str(model), "top_fraction": 0.9}}]
    spec = {"name": "filters", "output": str(tmp_path / "out"),
            "inputs": [{"paths": [str(small_crawl / "crawl-*.warc.gz")]}], "stages": stages}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, model


def test_all_filters_in_sequence(job, small_crawl):
    path, _ = job
    plan = build_plan(path)  # runs every stage's check()
    assert [s.name for s in plan.stages] == FILTERS
    stages = [pickle.loads(pickle.dumps(s.build())) for s in plan.stages]  # as a worker receives them
    shard = sorted(small_crawl.glob("crawl-*.warc.gz"))[0]
    seen: set[str] = set()
    for table in read_documents(InputSpec(paths=[str(shard)]), str(shard), 64):
        n = table.num_rows
        for stage in stages:
            stage.setup()
            table = stage.process(table)
            assert table.num_rows == n  # never deletes rows
            for col in stage.score_columns:
                assert col in table.column_names
        reasons = [r for r in table["drop_reason"].to_pylist() if r is not None]
        assert all(re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_.]+", r) for r in reasons), set(reasons)
        assert n - len(reasons) > 0
        seen |= set(reasons)
    print(sorted(seen))
    assert {"lang.other_language", "quality.below_top_fraction"} <= seen  # spam falls to earlier rules here


def test_plan_names_the_bad_model_file(job, tmp_path):
    path, _ = job
    spec = yaml.safe_load(path.read_text())
    bad = tmp_path / "missing.bin"
    spec["stages"][-1]["quality"]["model_path"] = str(bad)
    path = tmp_path / "bad-job.yaml"
    path.write_text(yaml.safe_dump(spec))
    from tokenmill.config import ConfigError

    with pytest.raises(ConfigError, match=rf"stages\[8\]\.quality: .*{re.escape(str(bad))}"):
        build_plan(path)


def test_unknown_threshold_key_is_a_config_error(tmp_path):
    from tokenmill.config import ConfigError

    spec = {"output": str(tmp_path / "o"), "inputs": [{"paths": ["x.warc.gz"]}],
            "stages": [{"gopher_quality": {"min_doc_wrds": 10}}]}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"stages\[0\]\.gopher_quality\.min_doc_wrds: unknown key"):
        build_plan(path, check_resources=False)
