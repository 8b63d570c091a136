"""``delfverify.pipeline``: the steps (plan, measure, rescale) and ``rerank`` on the sample data: GAP improves,
format and order are kept, details and statuses, a second run reuses every pair and feature, gallery photo
selection, and missing or broken photos that are reported per prediction without stopping the run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from delfverify.extractors import RootSIFT
from delfverify.metrics import global_average_precision
from delfverify.pipeline import DETAILS_COLUMNS, STATUSES, gallery_order, plan_pairs, rerank, rescale
from delfverify.policy import builtin_policy, policy_from_dict
from delfverify.tables import Predictions, read_gallery, read_predictions, read_solution, write_predictions

DATA = Path(__file__).resolve().parents[1] / "data"
#: Sample queries (and their predicted labels): a true astronaut view, a distractor predicted as camera.
ASTRONAUT_QUERY = "da07d5ba65959f62"
DISTRACTOR_QUERY = "d1ad4725340afc15"
ASTRONAUT_GALLERY = ["fa2d74be0fd77106", "6087f34e954ead5f", "2456897f51b1846a"]


def _run(cache_dir, data=DATA, predictions=None, gallery=None, **options):
    """Rerank with the library defaults, the store and journal in ``cache_dir``."""
    return rerank(predictions if predictions is not None else data / "predictions.csv",
                  gallery=gallery if gallery is not None else data / "gallery.csv",
                  gallery_images=data / "gallery", query_images=data / "queries", cache_dir=cache_dir, **options)


@pytest.fixture(scope="module")
def first_run(sample_run, tmp_path_factory):
    """A library run on a copy of the CLI's cold run cache (every pair reused), and that cache folder."""
    cache = sample_run.warm_cache(tmp_path_factory.mktemp("pipeline") / "cache")
    return _run(cache), cache


@pytest.fixture
def warm_cache(first_run, tmp_path):
    """A private copy of the first run's store and journal: later runs only compute what changed."""
    return Path(shutil.copytree(first_run[1], tmp_path / "cache"))


@pytest.fixture
def data_copy(tmp_path):
    """A private copy of the sample data, to break photos in."""
    return Path(shutil.copytree(DATA, tmp_path / "data"))


def _row(result, image_id):
    details = result.details.set_index("id")
    return details.loc[image_id]


# --- the sample run ----------------------------------------------------------------------------------------------

def test_default_policy_improves_gap(first_run):
    result, _ = first_run
    truth = read_solution(DATA / "truth.csv").table
    before = global_average_precision(read_predictions(DATA / "predictions.csv").table, truth)
    after = global_average_precision(result.predictions.table, truth)
    assert after.num_predictions == before.num_predictions == 26
    assert after.gap > before.gap + 0.1
    assert after.gap > 0.95 * after.accuracy  # accuracy is the best GAP any re-ranking can reach


def test_output_keeps_format_and_order(first_run):
    result, _ = first_run
    original = read_predictions(DATA / "predictions.csv")
    assert result.predictions.format == original.format == "kaggle"
    out = result.predictions.table
    assert list(out.columns) == ["id", "label", "confidence"]
    assert list(out["id"]) == list(original.table["id"])
    assert list(out["label"]) == list(original.table["label"])
    assert ((out["confidence"] >= 0) & (out["confidence"] <= 1)).all()


def test_details_has_one_row_per_prediction(first_run):
    result, _ = first_run
    details = result.details
    assert list(details.columns) == list(DETAILS_COLUMNS)
    assert list(details["id"]) == list(result.predictions.table["id"])
    assert set(details["status"]) <= set(STATUSES)
    np.testing.assert_array_equal(details["new_confidence"], result.predictions.table["confidence"])
    np.testing.assert_array_equal(details["old_confidence"],
                                  read_predictions(DATA / "predictions.csv").table["confidence"])
    for row in details.itertuples():
        assert row.band == "0-1"
        assert len(row.gallery_ids.split()) == 3 == len(row.inliers.split())  # default: 3 photos each
        assert row.reason == ""
    astronaut = _row(result, ASTRONAUT_QUERY)
    assert astronaut["status"] == "boosted" and astronaut["new_confidence"] > astronaut["old_confidence"]
    assert set(astronaut["gallery_ids"].split()) == set(ASTRONAUT_GALLERY)
    assert min(int(v) for v in astronaut["inliers"].split()) >= 10
    distractor = _row(result, DISTRACTOR_QUERY)
    assert distractor["status"] == "suppressed"
    assert distractor["new_confidence"] == pytest.approx(distractor["old_confidence"] / 3)


def test_summary_counts(first_run):
    result, _ = first_run
    summary = result.summary
    assert sum(summary[s] for s in STATUSES) == 26
    for status in STATUSES:
        assert summary[status] == (result.details["status"] == status).sum()
    assert summary["pairs_reused"] == 26 * 3  # the default verifies every prediction against 3 gallery photos
    assert summary["pairs_computed"] == summary["features_extracted"] == 0


def test_journal_alone_avoids_extraction(first_run, warm_cache):
    """With the store gone but the journal kept, nothing is extracted or verified again."""
    for entry in warm_cache.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
    again = _run(warm_cache)
    assert again.summary["pairs_computed"] == 0 and again.summary["features_extracted"] == 0
    pd.testing.assert_frame_equal(again.predictions.table, first_run[0].predictions.table)


@pytest.mark.parametrize("fmt", ["landmarks_confidence", "label_confidence"])
def test_other_formats_are_written_back_in_their_format(first_run, warm_cache, tmp_path, fmt):
    original = read_predictions(DATA / "predictions.csv")
    path = tmp_path / "in.csv"
    write_predictions(Predictions(original.table, fmt), path)
    result = _run(warm_cache, predictions=read_predictions(path))
    assert result.predictions.format == fmt
    write_predictions(result.predictions, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == ",".join(
        {"landmarks_confidence": "id,landmarks,confidence", "label_confidence": "id,label,confidence"}[fmt].split(","))
    back = read_predictions(tmp_path / "out.csv")
    assert list(back.table["id"]) == list(original.table["id"])
    np.testing.assert_allclose(back.table["confidence"], first_run[0].predictions.table["confidence"], atol=5e-7)


def test_seed_policy_skips_confident_predictions(warm_cache):
    result = _run(warm_cache, policy=builtin_policy("seed", "rootsift"))
    details = result.details
    confident = details["old_confidence"] >= 0.8
    assert confident.any()
    assert (details.loc[confident, "status"] == "skipped").all()
    assert (details.loc[confident, "gallery_ids"] == "").all()
    np.testing.assert_array_equal(details.loc[confident, "new_confidence"], details.loc[confident, "old_confidence"])
    low = details["old_confidence"] < 0.6
    assert (details.loc[low, "gallery_ids"].str.split().str.len() == 2).all()
    # seed verifies the *first* gallery photos: a prefix of the gallery order
    astronaut = _row(result, "084da3a0bc3ebf7d")  # confidence 0.33, astronaut
    assert astronaut["gallery_ids"].split() == ASTRONAUT_GALLERY[:2]
    assert astronaut["new_confidence"] == pytest.approx(0.6)


# --- gallery photo selection ----------------------------------------------------------------------------------------

def test_gallery_order_first_keeps_gallery_order():
    ids = [f"g{i}" for i in range(7)]
    assert gallery_order(ids, "first", 0, "x") == ids


def test_gallery_order_spread_for_eight_photos():
    ids = [f"g{i}" for i in range(8)]
    order = gallery_order(ids, "spread", 0, "x")
    assert order == ["g0", "g4", "g2", "g6", "g1", "g5", "g3", "g7"]
    assert order[:2] == ["g0", "g4"]
    assert sorted(order[:4]) == ["g0", "g2", "g4", "g6"]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 13, 64, 100])
def test_gallery_order_spread_is_a_permutation_with_spread_prefixes(n):
    ids = [f"g{i:03d}" for i in range(n)]
    order = [ids.index(g) for g in gallery_order(ids, "spread", 0, "x")]
    assert sorted(order) == list(range(n))
    if n >= 2:
        assert order[:2] == [0, n // 2]
    for k in (2, 4, 8):
        if n >= 2 * k:  # the first k photos leave no gap larger than about two k-ths of the class
            positions = sorted(order[:k]) + [n]
            assert max(np.diff(positions)) <= -(-n // k) + 1


def _spread_by_definition(n: int) -> list[int]:
    """Positions 0, n/2, n/4, 3n/4, ...: each t's mirrored bits times n, first visits only, then the rest."""
    order: list[int] = []
    for t in range(4 * n):
        mirrored = sum(((t >> b) & 1) / 2 ** (b + 1) for b in range(t.bit_length()))
        if int(mirrored * n) not in order:
            order.append(int(mirrored * n))
    return order + [i for i in range(n) if i not in order]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 6, 7, 9, 31, 100, 257])
def test_gallery_order_spread_follows_its_definition(n):
    ids = [f"g{i:03d}" for i in range(n)]
    assert gallery_order(ids, "spread", 0, "x") == [ids[i] for i in _spread_by_definition(n)]


def test_gallery_order_random_is_seeded_and_deterministic():
    ids = [f"g{i}" for i in range(20)]
    order = gallery_order(ids, "random", 3, "eiffel")
    assert sorted(order) == sorted(ids)
    assert gallery_order(ids, "random", 3, "eiffel") == order  # same seed and label: same order
    assert gallery_order(list(ids), "random", 3, "eiffel") == order
    assert gallery_order(ids, "random", 4, "eiffel") != order  # another seed
    assert gallery_order(ids, "random", 3, "big ben") != order  # another label
    assert order != ids


def test_gallery_order_selection_is_prefix_consistent(warm_cache):
    """A band with more photos verifies the same photos first: k=2 is a prefix of k=3 (random selection)."""
    def policy(k):
        return policy_from_dict({"selection": "random", "seed": 5,
                                 "bands": [{"lower": 0, "upper": 1, "k": k, "min_inliers": 5}]})

    two = _run(warm_cache, policy=policy(2)).details["gallery_ids"].str.split()
    three = _run(warm_cache, policy=policy(3)).details["gallery_ids"].str.split()
    for a, b in zip(two, three):
        assert len(a) == 2 and len(b) == 3 and b[:2] == a


def test_gallery_order_unknown_method():
    with pytest.raises(ValueError, match="selection"):
        gallery_order(["a", "b"], "best", 0, "x")


# --- missing labels, images and predictions -------------------------------------------------------------------------

def _with_labels(changes: dict[str, str]) -> Predictions:
    original = read_predictions(DATA / "predictions.csv")
    table = original.table.copy()
    for image_id, label in changes.items():
        table.loc[table["id"] == image_id, "label"] = label
        if not label:
            table.loc[table["id"] == image_id, "confidence"] = np.nan
    return Predictions(table, original.format)


def test_label_without_gallery_keeps_confidence(first_run, warm_cache):
    predictions = _with_labels({ASTRONAUT_QUERY: "atlantis"})
    result = _run(warm_cache, predictions=predictions)
    row = _row(result, ASTRONAUT_QUERY)
    assert row["status"] == "no_gallery"
    assert row["reason"] == "label has no gallery photo"
    assert row["gallery_ids"] == "" and row["inliers"] == ""
    assert row["new_confidence"] == row["old_confidence"] == 0.7594
    assert result.summary["no_gallery"] == 1
    others = result.details["id"] != ASTRONAUT_QUERY
    pd.testing.assert_frame_equal(result.details[others], first_run[0].details[others])


def test_label_without_gallery_suppressed_on_request(warm_cache):
    predictions = _with_labels({ASTRONAUT_QUERY: "atlantis"})
    result = _run(warm_cache, predictions=predictions, on_missing="suppress")
    row = _row(result, ASTRONAUT_QUERY)
    assert row["status"] == "no_gallery"
    assert row["new_confidence"] == pytest.approx(0.7594 / 3)  # the default policy's "no support" tier


def test_invalid_on_missing(tmp_path):
    with pytest.raises(ValueError, match="on_missing"):
        _run(tmp_path, on_missing="drop")
    assert not any(tmp_path.iterdir())  # refused before any work


def test_missing_and_corrupt_query_images_are_errors_and_the_run_goes_on(first_run, warm_cache, data_copy):
    missing, corrupt = ASTRONAUT_QUERY, DISTRACTOR_QUERY
    (data_copy / "queries" / f"{missing}.jpg").unlink()
    (data_copy / "queries" / f"{corrupt}.jpg").write_text("this is not a JPEG\n")
    result = _run(warm_cache, data=data_copy)
    for image_id in (missing, corrupt):
        row = _row(result, image_id)
        assert row["status"] == "error"
        assert f"{image_id}.jpg" in row["reason"] and "query image" in row["reason"]
        assert row["new_confidence"] == row["old_confidence"]  # on_missing="keep"
    assert "not found" in _row(result, missing)["reason"]
    assert result.summary["error"] == 2
    others = ~result.details["id"].isin([missing, corrupt])
    reference = first_run[0].details
    pd.testing.assert_frame_equal(result.details[others], reference[others])
    assert result.summary["pairs_computed"] == 0  # everything else came from the journal


def test_unreadable_query_suppressed_on_request(warm_cache, data_copy):
    (data_copy / "queries" / f"{ASTRONAUT_QUERY}.jpg").write_bytes(b"\x00" * 100)
    result = _run(warm_cache, data=data_copy, on_missing="suppress")
    row = _row(result, ASTRONAUT_QUERY)
    assert row["status"] == "error"
    assert row["new_confidence"] == pytest.approx(0.7594 / 3)


def test_broken_gallery_photo_leaves_the_others_in_use(first_run, warm_cache, data_copy):
    broken, deleted = ASTRONAUT_GALLERY[0], "6d84d16cdc8d1e68"  # an astronaut and a camera photo
    (data_copy / "gallery" / f"{broken}.jpg").write_text("GIF89a? no.\n")
    (data_copy / "gallery" / f"{deleted}.jpg").unlink()
    result = _run(warm_cache, data=data_copy)
    reference = first_run[0].details.set_index("id")
    for row in result.details.itertuples():
        before = reference.loc[row.id]
        assert row.gallery_ids == before["gallery_ids"]
        photos = row.gallery_ids.split()
        if broken in photos or deleted in photos:
            lost = photos.index(broken if broken in photos else deleted)
            values, expected = row.inliers.split(), before["inliers"].split()
            assert values[lost] == "-"
            assert [v for j, v in enumerate(values) if j != lost] == [v for j, v in enumerate(expected) if j != lost]
            assert (broken if broken in photos else deleted) in row.reason and "gallery image" in row.reason
            assert row.status != "error"
        else:
            assert row.inliers == before["inliers"] and row.reason == ""
    astronaut = _row(result, ASTRONAUT_QUERY)
    assert astronaut["status"] == "boosted"  # two good photos are still enough


def test_all_gallery_photos_broken_is_an_error(warm_cache, data_copy):
    for image_id in ASTRONAUT_GALLERY:
        (data_copy / "gallery" / f"{image_id}.jpg").write_text(f"broken {image_id}\n")
    result = _run(warm_cache, data=data_copy)
    row = _row(result, ASTRONAUT_QUERY)
    assert row["status"] == "error"
    assert all(image_id in row["reason"] for image_id in ASTRONAUT_GALLERY)
    assert row["new_confidence"] == row["old_confidence"]


def test_gallery_path_escaping_the_folder_is_an_error_not_a_crash(warm_cache):
    gallery = read_gallery(DATA / "gallery.csv")
    gallery.table.loc[gallery.table["id"] == ASTRONAUT_GALLERY[0], "path"] = "../truth.csv"
    result = _run(warm_cache, gallery=gallery)
    row = _row(result, ASTRONAUT_QUERY)
    assert "escapes" in row["reason"]
    assert row["status"] == "boosted"


def test_empty_predictions_are_no_prediction_and_written_back_empty(first_run, warm_cache, tmp_path):
    predictions = _with_labels({ASTRONAUT_QUERY: "", DISTRACTOR_QUERY: ""})
    result = _run(warm_cache, predictions=predictions)
    for image_id in (ASTRONAUT_QUERY, DISTRACTOR_QUERY):
        row = _row(result, image_id)
        assert row["status"] == "no_prediction"
        assert row["label"] == "" and row["gallery_ids"] == "" and row["band"] == ""
        assert np.isnan(row["new_confidence"])
    assert result.summary["no_prediction"] == 2
    write_predictions(result.predictions, tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert f"{ASTRONAUT_QUERY}," in lines and f"{DISTRACTOR_QUERY}," in lines
    back = read_predictions(tmp_path / "out.csv").table.set_index("id")
    assert back.loc[ASTRONAUT_QUERY, "label"] == "" and np.isnan(back.loc[ASTRONAUT_QUERY, "confidence"])


def test_no_predictions_at_all(warm_cache, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("id,landmarks\n")
    result = _run(warm_cache, predictions=read_predictions(path))
    assert len(result.predictions.table) == 0 and len(result.details) == 0
    assert result.summary["pairs_computed"] == 0
    write_predictions(result.predictions, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == "id,landmarks\n"


# --- the steps on their own ----------------------------------------------------------------------------------------

def test_plan_pairs_is_a_pure_function_of_its_inputs():
    predictions = read_predictions(DATA / "predictions.csv")
    gallery = read_gallery(DATA / "gallery.csv")
    k = np.where(predictions.has_label, 3, 0)
    k[:4] = [0, 1, 2, 5]
    first = plan_pairs(predictions, gallery, k, "random", 7)
    again = plan_pairs(read_predictions(DATA / "predictions.csv"), read_gallery(DATA / "gallery.csv"), k.copy(),
                       "random", 7)
    assert first == again
    ids_by_label = gallery.ids_by_label()
    for label, count, chosen in zip(predictions.labels, k, first.gallery_ids):
        assert chosen == gallery_order(ids_by_label[label], "random", 7, label)[:count]
    assert first.gallery_ids[0] == [] and len(first.gallery_ids[3]) == min(5, len(ids_by_label[predictions.labels[3]]))
    assert first.width == max(len(c) for c in first.gallery_ids)


def test_plan_pairs_leaves_out_labels_without_gallery_and_checks_k():
    predictions = _with_labels({ASTRONAUT_QUERY: "atlantis", DISTRACTOR_QUERY: ""})
    gallery = read_gallery(DATA / "gallery.csv")
    plan = plan_pairs(predictions, gallery, np.full(len(predictions), 2))
    rows = dict(zip(predictions.ids, plan.gallery_ids))
    assert rows[ASTRONAUT_QUERY] == [] and rows[DISTRACTOR_QUERY] == []
    with pytest.raises(ValueError, match="one count per prediction"):
        plan_pairs(predictions, gallery, np.ones(3))


def test_rescale_gives_policy_confidences_and_statuses():
    predictions = Predictions(pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "label": ["x", "x", "y", "z", ""],
                                            "confidence": [0.6, 0.3, 0.9, 0.5, np.nan]}))
    inliers = np.array([[14.0], [2.0], [np.nan], [np.nan], [np.nan]])
    policy = builtin_policy("default", "rootsift")  # boost at 14, suppress below 11
    out = rescale(predictions, inliers, policy, errors=["", "", "query image: gone", "", ""],
                  gallery_labels={"x", "y"})
    np.testing.assert_allclose(out.confidence[:4], [2 / 3 + 0.6 / 3, 0.3 / 3, 0.9, 0.5])
    assert np.isnan(out.confidence[4])
    assert list(out.status) == ["boosted", "suppressed", "error", "no_gallery", "no_prediction"]
    assert list(out.reason) == ["", "", "query image: gone", "label has no gallery photo", ""]
    suppressed = rescale(predictions, inliers, policy, errors=["", "", "query image: gone", "", ""],
                         gallery_labels={"x", "y"}, on_missing="suppress")
    np.testing.assert_allclose(suppressed.confidence[2:4], [0.9 / 3, 0.5 / 3])


def test_rerank_accepts_tables_or_paths_and_writes_both_files(first_run, warm_cache, tmp_path):
    result = _run(warm_cache, predictions=read_predictions(DATA / "predictions.csv"),
                  gallery=read_gallery(DATA / "gallery.csv"), output=tmp_path / "out.csv",
                  details=tmp_path / "details.csv")
    pd.testing.assert_frame_equal(result.details, first_run[0].details)
    assert read_predictions(tmp_path / "out.csv").table.shape == (26, 3)
    assert list(pd.read_csv(tmp_path / "details.csv").columns) == list(DETAILS_COLUMNS)


def test_rerank_in_one_process_takes_an_extractor_object(first_run, warm_cache):
    """An extractor object (not a name) works in a one-process run: nothing is rebuilt from a spec. It has the
    same settings as the default, so every pair comes from the journal."""
    result = _run(warm_cache, features=RootSIFT())
    assert result.summary["pairs_reused"] == 26 * 3
    pd.testing.assert_frame_equal(result.details, first_run[0].details)


def test_a_cold_run_reads_each_image_file_once(tmp_path, monkeypatch):
    """Each photo is read once: the bytes read to hash it are the ones decoded."""
    import collections

    from delfverify import images, pipeline, verifier

    reads = collections.Counter()
    original = images.read_bytes

    def counting(image):
        if not isinstance(image, bytes):
            reads[str(image)] += 1
        return original(image)

    monkeypatch.setattr(pipeline, "read_bytes", counting)
    monkeypatch.setattr(verifier, "read_bytes", counting)
    result = _run(tmp_path)
    assert result.summary["features_extracted"] == 26 + 15
    assert len(reads) == 26 + 15 and set(reads.values()) == {1}
