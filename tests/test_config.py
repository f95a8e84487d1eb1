"""Job specs fail before any work starts, naming the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.config import ConfigError
from tokenmill.pipeline.plan import build_plan

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


BASE = "output: {out}\ninputs:\n  - paths: [x.warc.gz]\n"


def test_misspelled_key_is_named(tmp_path):
    p = write(tmp_path, BASE.format(out=tmp_path / "o") + "batch_sise: 10\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: batch_sise: unknown key"):
        build_plan(p)


def test_wrong_type_is_named(tmp_path):
    p = write(tmp_path, BASE.format(out=tmp_path / "o") + "batch_size: many\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: batch_size: .*integer"):
        build_plan(p)


def test_nested_key_path_is_named(tmp_path):
    p = write(tmp_path, f"output: {tmp_path / 'o'}\ninputs:\n  - paths: [a]\n    extractr: trafilatura\n")
    with pytest.raises(ConfigError, match=r"inputs\[0\]\.extractr: unknown key"):
        build_plan(p)


def test_stage_parameter_errors_name_the_stage(tmp_path):
    p = write(tmp_path, BASE.format(out=tmp_path / "o") + "stages:\n  - language: {min_scor: 0.5}\n")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.language\.min_scor: unknown key"):
        build_plan(p)


def test_unknown_stage_lists_the_known_ones(tmp_path):
    p = write(tmp_path, BASE.format(out=tmp_path / "o") + "stages:\n  - langauge: {}\n")
    with pytest.raises(ConfigError, match=r"unknown stage 'langauge'.*language"):
        build_plan(p)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_plan(write(tmp_path, "output: [unclosed\n"))
    with pytest.raises(ConfigError, match="cannot read job spec"):
        build_plan(tmp_path / "nope.yaml")


def test_unwritable_output_fails_before_work(tmp_path):
    blocker = tmp_path / "a-file"  # an output under a regular file cannot be created, whoever runs the test
    blocker.write_text("")
    with pytest.raises(ConfigError, match="not writable"):
        build_plan(write(tmp_path, BASE.format(out=blocker / "sub")))


@pytest.fixture(scope="module")
def sample_crawl_dir(tmp_path_factory):
    """A folder holding out/sample-crawl/{a,b}, as the comments of jobs/cc-sample.yaml make them."""
    from tokenmill.ingest.generate import generate_crawl

    root = tmp_path_factory.mktemp("cwd")
    for seed, name in enumerate("ab"):
        generate_crawl(root / "out" / "sample-crawl" / name, n_docs=100, n_files=1, seed=seed)
    return root


@pytest.mark.parametrize("spec", sorted(JOBS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_job_spec_validates(spec, capsys, sample_crawl_dir, monkeypatch):
    """`tokenmill run --check --offline` / `tokenmill train --check` on every spec users are given."""
    from tokenmill.cli import main

    monkeypatch.chdir(sample_crawl_dir)

    command = ["train", str(spec), "--check"] if spec.name.startswith("train-") else \
        ["run", "--check", "--offline", str(spec)]
    assert main(command) == 0, capsys.readouterr().err
    assert ": OK (" in capsys.readouterr().out


def test_object_store_output_is_refused_before_work(tmp_path):
    p = write(tmp_path, BASE.format(out="s3://bucket/out"))
    with pytest.raises(ConfigError, match="output: s3://bucket/out: outputs go to a filesystem"):
        build_plan(p)
