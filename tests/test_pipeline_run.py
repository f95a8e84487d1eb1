"""The runner on an embedded Ray: accounting, rejected/, resume, refusal of a changed config, report."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest
from pipeline_helpers import documents, read_dir, rows_by_id, write_job

from tokenmill.config import ConfigError
from tokenmill.pipeline.runner import run_job

STAGES = [{"pii": {}}]


@pytest.fixture(scope="module")
def clean_run(ray_local, small_crawl, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    job = write_job(tmp / "job.yaml", small_crawl, tmp / "out", STAGES)
    return job, run_job(job, progress=False)


def test_every_document_is_accounted_for(clean_run, small_crawl):
    _, result = clean_run
    funnel = {s["stage"]: s for s in result.stats["funnel"]}
    truth = [json.loads(line) for line in (small_crawl / "ground_truth.jsonl").read_text().splitlines()]
    assert funnel["ingest"]["docs_in"] == len(truth)  # one row per page response, none lost
    for s in funnel.values():
        assert s["docs_in"] == s["docs_kept"] + sum(s["dropped"].values())
    docs = documents(result.output)
    assert docs.num_rows == result.stats["documents_out"] == funnel["pii"]["docs_kept"]
    assert len(set(docs["id"].to_pylist())) == docs.num_rows


def test_dropped_documents_are_in_rejected_with_their_reason(clean_run):
    _, result = clean_run
    ingest = result.stats["funnel"][0]
    rejected = read_dir(result.output / "rejected" / "ingest")
    assert rejected.num_rows == sum(ingest["dropped"].values()) > 0  # the crawl plants http errors, non-HTML
    counts = {v["values"].as_py(): v["counts"].as_py() for v in pc.value_counts(rejected["drop_reason"])}
    assert counts == ingest["dropped"]


def test_provenance_columns_point_back_into_the_crawl(clean_run):
    _, result = clean_run
    docs = documents(result.output)
    row = docs.slice(0, 1).to_pylist()[0]
    assert row["warc_path"].endswith(".warc.gz") and row["warc_offset"] >= 0 and row["warc_record_id"]
    assert row["source"] == "cc/TEST" and row["url"].startswith("http")


def test_rerun_skips_finished_shards_and_changes_nothing(clean_run):
    job, first = clean_run
    markers = sorted((first.output / "_done").rglob("*.json"))
    mtimes = [m.stat().st_mtime_ns for m in markers]
    again = run_job(job, progress=False)
    assert [m.stat().st_mtime_ns for m in markers] == mtimes  # nothing re-ran
    assert rows_by_id(documents(again.output)) == rows_by_id(documents(first.output))
    assert again.stats["funnel"] == first.stats["funnel"]


def test_changed_config_on_same_output_is_refused(clean_run, small_crawl, tmp_path):
    job, first = clean_run
    other = write_job(tmp_path / "job.yaml", small_crawl, first.output, [{"pii": {}}], batch_size=7)
    with pytest.raises(ConfigError, match=r"different config \(changed: batch_size\)"):
        run_job(other, progress=False)


def test_output_of_an_older_work_format_is_refused(clean_run, tmp_path):
    job, first = clean_run
    manifest = first.output / "job.json"
    saved = manifest.read_text()
    old = json.loads(saved)
    del old["identity"]["work_format"]  # as tokenmill wrote it before the format was recorded
    old["tokenmill_version"] = "0.0.9"
    try:
        manifest.write_text(json.dumps(old))
        with pytest.raises(ConfigError, match=r"written by tokenmill 0.0.9, whose intermediate files \(work format 1\)"):
            run_job(job, progress=False)
    finally:
        manifest.write_text(saved)


def test_report_has_the_funnel(clean_run):
    _, result = clean_run
    page = result.report.read_text()
    assert 'id="plot-funnel"' in page and (result.report.parent / "funnel.png").stat().st_size > 1000
    stats = json.loads((result.output / "report" / "stats.json").read_text())
    assert stats["documents_out"] == result.stats["documents_out"]


def test_bad_input_found_by_a_task_is_a_config_error_naming_the_file(ray_local, tmp_path):
    """A Parquet input without a `text` column: one ConfigError naming the file, not a Ray task traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "no-text.parquet")
    job = write_job(tmp_path / "job.yaml", tmp_path, tmp_path / "out", [{"pii": {}}])
    spec = job.read_text().replace(f"{tmp_path}/crawl-*.warc.gz", f"{tmp_path}/no-text.parquet")
    job.write_text(spec)
    with pytest.raises(ConfigError, match=r"no-text.parquet: no `text` column"):
        run_job(job, progress=False)
