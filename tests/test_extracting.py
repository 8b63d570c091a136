"""delfverify.extracting and ``delfverify extract``: the feature store filled ahead of a run, resumably, with
failures named, on local workers or a Dask cluster, and ``rerank`` then verifying pairs only."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import SAMPLE
from delfverify import cli, rerank
from delfverify.extracting import extract

GALLERY = SAMPLE / "gallery.csv"


def _store_entries(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in cache.rglob("*.npz")}


def test_extract_fills_the_store_once_and_rerank_then_extracts_only_the_queries(tmp_path):
    cache = tmp_path / "cache"
    first = extract(GALLERY, images=SAMPLE / "gallery", cache_dir=cache)
    entries = _store_entries(cache)
    assert (first.photos, first.extracted, first.stored, dict(first.failed)) == (15, 15, 0, {})
    assert first.bytes_written == sum(entries.values()) and first.photos_per_second > 0
    again = extract(GALLERY, images=SAMPLE / "gallery", cache_dir=cache)
    assert (again.extracted, again.stored, again.bytes_written) == (0, 15, 0) and _store_entries(cache) == entries
    result = rerank(SAMPLE / "predictions.csv", gallery=GALLERY, gallery_images=SAMPLE / "gallery",
                    query_images=SAMPLE / "queries", cache_dir=cache)
    assert result.summary["features_extracted"] == 26  # the queries; every gallery photo was stored


def test_missing_and_broken_photos_are_named_and_the_others_extracted(tmp_path):
    images = Path(shutil.copytree(SAMPLE / "gallery", tmp_path / "gallery"))
    ids = pd.read_csv(GALLERY, dtype=str)["id"].tolist()
    (images / f"{ids[0]}.jpg").write_bytes(b"not a photo")
    table = pd.DataFrame({"id": [*ids, "missing", ids[1]]})  # an id twice is extracted once
    result = extract(table, images=images, cache_dir=tmp_path / "cache", workers=2)
    assert result.photos == 16 and result.extracted == 14
    assert set(result.failed) == {ids[0], "missing"}
    assert "not an image" in result.failed[ids[0]] and "file not found" in result.failed["missing"]


def test_extract_needs_a_store(tmp_path, capsys):
    from delfverify.settings import SettingsError

    with pytest.raises(SettingsError, match="^cache must be True: extract fills the feature store"):
        extract(GALLERY, images=SAMPLE / "gallery", cache=False)
    # Through the command line it ended in a traceback (a plain ValueError)
    assert cli.main(["extract", str(GALLERY), "--images", str(SAMPLE / "gallery"), "--no-cache", "-q"]) == 2
    assert capsys.readouterr().err.splitlines() == [(
        "delfverify: error: --no-cache: extract fills the feature store; name its folder with --cache-dir, or leave "
        "both out for the user cache")]


def test_cli_extract_prints_what_it_did_and_errors_are_one_line(tmp_path, capsys):
    status = cli.main(["extract", str(GALLERY), "--images", str(SAMPLE / "gallery"), "--cache-dir",
                       str(tmp_path / "c"), "--workers", "1", "-q"])
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    assert out.startswith(f"stored the features of {GALLERY}: 15 photos: 15 extracted, 0 already stored; ")
    status = cli.main(["extract", str(tmp_path / "none.csv"), "--images", str(SAMPLE / "gallery"), "-q"])
    out, err = capsys.readouterr()
    assert status == 2 and err.count("\n") == 1 and "none.csv" in err and out == ""


def _start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_extract_then_rerank_on_a_dask_scheduler_with_two_workers_gives_the_serial_output(tmp_path, sample_run):
    """A real scheduler and two worker processes, started as on a cluster, the store on a path they share and the
    journal on the command's side; then the same run from Python through a ``distributed.Client``."""
    pytest.importorskip("distributed")
    scheduler_file = tmp_path / "scheduler.json"
    processes = [_start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file))]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        processes += [_start("distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file), "--nworkers",
                             "1", "--nthreads", "1", "--no-dashboard") for _ in range(2)]
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        cache, journal = tmp_path / "shared-store", tmp_path / "local" / "journal.sqlite"
        status = cli.main(["extract", str(GALLERY), "--images", str(SAMPLE / "gallery"), "--cache-dir", str(cache),
                           "--scheduler", address, "-q"])
        assert status == 0 and len(_store_entries(cache)) == 15
        lines = (SAMPLE / "predictions.csv").read_text().splitlines(keepends=True)
        (tmp_path / "eight.csv").write_text("".join(lines[:9]))  # the first eight queries
        status = cli.main(["rerank", str(tmp_path / "eight.csv"), "--gallery", str(GALLERY), "--gallery-images",
                           str(SAMPLE / "gallery"), "--query-images", str(SAMPLE / "queries"), "--cache-dir",
                           str(cache), "--journal", str(journal), "--scheduler", address, "-o",
                           str(tmp_path / "out.csv"), "--details", str(tmp_path / "details.csv"), "-q"])
        assert status == 0  # each row as the run in one process wrote it
        assert (tmp_path / "out.csv").read_bytes().splitlines() == sample_run.output.splitlines()[:9]
        assert (tmp_path / "details.csv").read_bytes().splitlines() == sample_run.details.splitlines()[:9]
        assert journal.is_file() and not (cache / "journal.sqlite").exists()
        with Client(address, timeout=60) as client:  # from Python, a Client object, predictions as a DataFrame
            result = rerank(pd.read_csv(tmp_path / "eight.csv", dtype=str), gallery=GALLERY,
                            gallery_images=SAMPLE / "gallery", query_images=SAMPLE / "queries", cache_dir=cache,
                            journal=tmp_path / "api" / "journal.sqlite", scheduler=client,
                            output=tmp_path / "api.csv")
        assert result.summary["features_extracted"] == 0 and result.summary["pairs_computed"] == 8 * 3
        assert (tmp_path / "api.csv").read_bytes() == (tmp_path / "out.csv").read_bytes()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
