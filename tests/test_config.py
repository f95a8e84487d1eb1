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
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(ConfigError, match="not writable"):
            build_plan(write(tmp_path, BASE.format(out=ro / "sub")))
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("spec", sorted(JOBS.glob("cc-*.yaml")), ids=lambda p: p.name)
def test_every_pipeline_job_spec_validates(spec):
    plan = build_plan(spec, check_resources=False)
    assert plan.job.inputs
