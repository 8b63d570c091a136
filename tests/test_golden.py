"""Refactoring changes no output: the pinned runs of ``tests/golden_cases.py`` write the same bytes as before."""

from __future__ import annotations

import json
import os

import pytest

from golden_cases import PINNED, SHARED, run

PINNED_HASHES = json.loads(PINNED.read_text())["pinned"]
LABELLED = [name for name in PINNED_HASHES if name.startswith("landmarks-")]


@pytest.fixture(scope="module")
def hashes(tmp_path_factory, sample_run):
    """Every case run once, from the repository root, on a copy of the sample run's warm cache."""
    work = tmp_path_factory.mktemp("golden")
    sample_run.warm_cache(work / "cache")
    here = os.getcwd()
    os.chdir(PINNED.parents[2])
    try:
        return run(work)
    finally:
        os.chdir(here)


@pytest.mark.parametrize("name", [n for n in PINNED_HASHES if n not in LABELLED])
def test_sample_runs_write_the_pinned_bytes(hashes, name):
    assert hashes[name] == PINNED_HASHES[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", LABELLED)
def test_labelled_set_runs_write_the_pinned_bytes(hashes, name):
    if name not in hashes:
        pytest.skip(f"labelled sets not found at {SHARED}")
    assert hashes[name] == PINNED_HASHES[name]
