"""``delfverify.execution``: parallel and distributed runs give exactly the serial results and extract each image
once; in-process runs use the caller's verifier."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from delfverify import Verifier, rerank
from delfverify.execution import ImageItem, Runner, batched, extract_batch
from delfverify.extractors import RootSIFT

DATA = Path(__file__).resolve().parents[1] / "data"


def _rerank(cache_dir, **options):
    return rerank(DATA / "predictions.csv", gallery=DATA / "gallery.csv", gallery_images=DATA / "gallery",
                  query_images=DATA / "queries", cache_dir=cache_dir, **options)


@pytest.fixture(scope="module")
def serial(sample_run, tmp_path_factory):
    """The serial run's result (from a copy of the sample run's cache: every pair reused)."""
    return _rerank(sample_run.warm_cache(tmp_path_factory.mktemp("serial") / "cache"))


@pytest.mark.slow
def test_two_workers_give_the_serial_result_and_extract_each_image_once(serial, tmp_path):
    """Two local worker processes from an empty cache, the extractor given as an object: it travels to the
    workers (pickled without OpenCV's detector)."""
    parallel = _rerank(tmp_path, workers=2, features=RootSIFT(max_features=1000))
    assert parallel.predictions.table.equals(serial.predictions.table)
    assert parallel.details.equals(serial.details)
    images = {i for ids in serial.details["gallery_ids"] for i in ids.split()} | set(
        serial.details.loc[serial.details["gallery_ids"] != "", "id"]
    )
    assert parallel.summary["features_extracted"] == len(images) == 26 + 15
    assert parallel.summary["pairs_computed"] == serial.summary["pairs_reused"] == 26 * 3
    assert len(list(tmp_path.rglob("*.npz"))) == len(images)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_serial_result(serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        result = _rerank(tmp_path, scheduler=client)
    assert result.predictions.table.equals(serial.predictions.table)
    assert result.summary["features_extracted"] == 26 + 15


def test_parallel_run_without_a_store_is_refused():
    with pytest.raises(ValueError, match="feature store"):
        Runner(Verifier("rootsift"), workers=2)


def test_in_process_runs_use_the_callers_verifier(tmp_path):
    verifier = Verifier("rootsift")
    items = [ImageItem(verifier.key(path), str(path)) for path in sorted((DATA / "gallery").glob("*.jpg"))[:2]]
    with Runner(verifier) as runner:
        results = [r for batch in runner.map(extract_batch, [items]) for r in batch]
    assert [extracted for _, _, extracted in results] == [True, True]
    assert verifier.extracted == 2 and all(verifier.has_features(item.key) for item in items)


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_invalid_worker_count_is_refused(workers):
    with pytest.raises(ValueError, match="workers"):
        Runner(Verifier("rootsift"), workers=workers)


def test_batched_covers_every_item_once():
    assert [list(b) for b in batched(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def test_more_workers_than_cores_are_capped_with_a_warning(tmp_path, caplog):
    from delfverify.execution import default_workers

    with caplog.at_level("WARNING", logger="delfverify.execution"):
        runner = Runner(Verifier("rootsift", cache_dir=tmp_path), workers=1000)
    assert runner.workers == default_workers()
    assert "1000 worker processes asked for" in caplog.text


def test_a_worker_takes_its_share_of_the_cores_for_blas(tmp_path):
    """Workers x BLAS threads stay within the cores: with as many workers as cores, one BLAS thread each."""
    code = (
        "from threadpoolctl import threadpool_info\n"
        "from delfverify.execution import WorkerSpec, _worker_verifier, default_workers\n"
        "from delfverify import Verifier\n"
        f"settings = Verifier(cache_dir={str(tmp_path)!r}).settings()\n"
        "_worker_verifier(WorkerSpec('k', settings, default_workers()))\n"
        "print({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "{1}"
