"""Shared test fixtures: the real data in ../shared/data (skipped with a reason when absent) and one Ray per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TOKENMILL_SHARED_DATA", REPO.parent / "shared" / "data"))

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real test data not found at {SHARED_DATA} (set TOKENMILL_SHARED_DATA)"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (set TOKENMILL_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the whole session (starting one costs ~4 s and ~800 MB)."""
    import ray

    from tokenmill.ray_env import init_ray

    init_ray(address=None, num_cpus=2)
    yield ray
    # left running for other tests; ray shuts down at interpreter exit


@pytest.fixture(scope="session")
def small_crawl(tmp_path_factory) -> Path:
    """A generated crawl (300 pages, 3 WARC files) with its ground truth, shared by the tests that read it."""
    from tokenmill.ingest.generate import generate_crawl

    out = tmp_path_factory.mktemp("crawl")
    generate_crawl(out, n_docs=300, n_files=3, seed=7)
    return out


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one intra-op thread is faster, and immune to oversubscription on shared machines."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
