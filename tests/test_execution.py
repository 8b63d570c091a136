"""Parallel and distributed runs give exactly the serial results, and extract each image once."""

from __future__ import annotations

from pathlib import Path

import pytest

from delfverify import Verifier
from delfverify.features import make_extractor
from delfverify.parallel import Runner, batched
from delfverify.policy import builtin_policy
from delfverify.rerank import rerank
from delfverify.tables import ImageDirectory, read_gallery, read_predictions

DATA = Path(__file__).resolve().parents[1] / "data"


def _rerank(cache_dir, **options):
    verifier = Verifier("rootsift", cache_dir=cache_dir)
    return rerank(
        read_predictions(DATA / "predictions.csv"),
        read_gallery(DATA / "gallery.csv"),
        verifier,
        builtin_policy("default", "rootsift"),
        query_images=ImageDirectory(DATA / "queries"),
        gallery_images=ImageDirectory(DATA / "gallery"),
        **options,
    )


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return _rerank(tmp_path_factory.mktemp("serial"))


def test_two_workers_give_the_serial_result(serial, tmp_path):
    parallel = _rerank(tmp_path, workers=2)
    assert parallel.predictions.table.equals(serial.predictions.table)
    assert parallel.details.equals(serial.details)
    assert parallel.summary == serial.summary


def test_each_image_is_extracted_once_across_workers(serial, tmp_path):
    parallel = _rerank(tmp_path, workers=2)
    images = {i for ids in serial.details["gallery_ids"] for i in ids.split()} | set(
        serial.details.loc[serial.details["gallery_ids"] != "", "id"]
    )
    assert parallel.summary["features_extracted"] == len(images)
    assert len(list(tmp_path.rglob("*.npz"))) == len(images)


def test_dask_local_cluster_gives_the_serial_result(serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        result = _rerank(tmp_path, scheduler=client)
    assert result.predictions.table.equals(serial.predictions.table)
    assert result.summary == serial.summary


def test_parallel_run_without_a_store_is_refused():
    with pytest.raises(ValueError, match="feature store"):
        Runner(Verifier("rootsift"), workers=2)


def test_parallel_run_needs_an_extractor_by_name(tmp_path):
    verifier = Verifier(make_extractor("rootsift"), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="by name"):
        Runner(verifier, workers=2)


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_invalid_worker_count_is_refused(workers):
    with pytest.raises(ValueError, match="workers"):
        Runner(Verifier("rootsift"), workers=workers)


def test_batched_covers_every_item_once():
    assert [list(b) for b in batched(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []
