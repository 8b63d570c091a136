"""``delfverify.pipeline``: the steps (plan, measure, rescale, choose) and ``rerank`` on the sample data: GAP
improves, format and order are kept, details and statuses, a second run reuses every pair and feature, gallery photo
selection, missing or broken photos that are reported per prediction without stopping the run, and several
candidate labels per query (the choice rule and its early stop, on synthetic inlier tables and on the sample)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from delfverify.extractors import RootSIFT
from delfverify.metrics import global_average_precision
from delfverify.pipeline import CANDIDATE_DETAILS_COLUMNS, DETAILS_COLUMNS, STATUSES, rerank
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
        assert row.reason == "" if row.status != "unverifiable" else row.reason.startswith("query has")
    astronaut = _row(result, ASTRONAUT_QUERY)
    assert astronaut["status"] == "boosted" and astronaut["new_confidence"] > astronaut["old_confidence"]
    assert set(astronaut["gallery_ids"].split()) == set(ASTRONAUT_GALLERY)
    assert min(int(v) for v in astronaut["inliers"].split()) >= 10
    distractor = _row(result, DISTRACTOR_QUERY)  # a photo of a few flat shapes: 11 keypoints
    assert distractor["status"] == "unverifiable"
    assert distractor["reason"] == "query has 11 keypoints (fewer than 50): no evidence either way"
    assert distractor["new_confidence"] == pytest.approx(distractor["old_confidence"] / 3)  # as 0 inliers give


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


def test_gallery_order_selection_is_prefix_consistent(warm_cache):
    """A band with more photos verifies the same photos first: k=2 is a prefix of k=3 (random selection)."""
    def policy(k):
        return policy_from_dict({"selection": "random", "seed": 5,
                                 "bands": [{"lower": 0, "upper": 1, "k": k, "min_inliers": 5}]})

    two = _run(warm_cache, policy=policy(2)).details["gallery_ids"].str.split()
    three = _run(warm_cache, policy=policy(3)).details["gallery_ids"].str.split()
    for a, b in zip(two, three):
        assert len(a) == 2 and len(b) == 3 and b[:2] == a


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
            assert row.inliers == before["inliers"] and row.reason == before["reason"]
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


def test_rerank_accepts_tables_or_paths_and_writes_both_files(first_run, warm_cache, tmp_path):
    result = _run(warm_cache, predictions=read_predictions(DATA / "predictions.csv"),
                  gallery=read_gallery(DATA / "gallery.csv"), output=tmp_path / "out.csv",
                  details=tmp_path / "details.csv")
    pd.testing.assert_frame_equal(result.details, first_run[0].details)
    assert read_predictions(tmp_path / "out.csv").table.shape == (26, 3)
    assert list(pd.read_csv(tmp_path / "details.csv").columns) == list(DETAILS_COLUMNS)


def test_rerank_of_dataframes_writes_the_clis_bytes_and_returns_its_table(sample_run, warm_cache, tmp_path):
    frames = {name: pd.read_csv(DATA / f"{name}.csv", dtype=str, keep_default_na=False)
              for name in ("predictions", "gallery", "truth")}
    result = _run(warm_cache, predictions=frames["predictions"], gallery=frames["gallery"], truth=frames["truth"],
                  output=tmp_path / "out.csv", details=tmp_path / "details.csv")
    assert (tmp_path / "out.csv").read_bytes() == sample_run.output
    assert (tmp_path / "details.csv").read_bytes() == sample_run.details
    pd.testing.assert_frame_equal(result.table, pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False))
    assert result.scores.gap_after > result.scores.gap_before
    long = frames["predictions"]["landmarks"].str.split(" ", expand=True)  # confidences as numbers, not text
    numeric = pd.DataFrame({"id": frames["predictions"]["id"], "label": long[0], "confidence": long[1].astype(float)})
    again = _run(warm_cache, predictions=numeric, gallery=frames["gallery"])
    assert again.table.columns.tolist() == ["id", "label", "confidence"]
    pd.testing.assert_frame_equal(again.details, result.details)


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"id": [1, 2], "label": ["a", "b"], "confidence": [0.5, 0.6]}), "column 'id' holds int"),
    (pd.DataFrame({"id": ["q1"], "label": ["a"]}), "unrecognised predictions columns id,label"),
    (pd.DataFrame({"id": ["q1"], "label": ["a"], "confidence": [2.5]}), r"row 0: confidence '2\.5' must be"),
    (pd.DataFrame({"id": ["q1"], "label": ["a"], "confidence": [object()]}), "column 'confidence' holds object"),
])
def test_rerank_refuses_bad_dataframes_naming_the_column_or_row(warm_cache, frame, message):
    from delfverify.tables import TableError

    with pytest.raises(TableError, match=message):
        _run(warm_cache, predictions=frame)


def test_rerank_in_one_process_takes_an_extractor_object(first_run, warm_cache):
    """An extractor object (not a name) works in a one-process run: nothing is rebuilt from a spec. It has the
    same settings as the default, so every pair comes from the journal."""
    result = _run(warm_cache, features=RootSIFT())
    assert result.summary["pairs_reused"] == 26 * 3
    pd.testing.assert_frame_equal(result.details, first_run[0].details)


# --- several candidates per query ------------------------------------------------------------------------------------

LABELS = ("astronaut", "camera", "chelsea", "coffee", "rocket")


def _sample_candidates() -> Predictions:
    """The sample's predictions as the first of five candidates per query, every sample label once, the others at
    seeded lower confidences (long format)."""
    rng = np.random.default_rng(0)
    rows = []
    for pid, label, confidence in read_predictions(DATA / "predictions.csv").table.itertuples(index=False):
        rows.append((pid, label, confidence))
        others = [other for other in LABELS if other != label]
        lower = np.sort(np.round(rng.uniform(0.0, confidence, len(others)), 4))[::-1]
        rows += [(pid, other, value) for other, value in zip(rng.permutation(others), lower)]
    return Predictions(pd.DataFrame(rows, columns=["id", "label", "confidence"]), "label_confidence")


@pytest.fixture(scope="module")
def candidate_runs(first_run, tmp_path_factory):
    """The sample candidates re-ranked with early stop, and with every candidate verified (``keep_candidates``),
    in one cache; that cache."""
    cache = Path(shutil.copytree(first_run[1], tmp_path_factory.mktemp("candidates") / "cache"))
    candidates = _sample_candidates()
    return _run(cache, predictions=candidates), _run(cache, predictions=candidates, keep_candidates=True), cache


def _chosen(details: pd.DataFrame) -> pd.DataFrame:
    return details[details["chosen"]].set_index("id")


def test_candidates_give_one_row_per_query_in_input_order_and_format(candidate_runs):
    result, _, _ = candidate_runs
    candidates = _sample_candidates()
    out = result.predictions
    assert out.format == "label_confidence"
    assert list(out.table["id"]) == list(read_predictions(DATA / "predictions.csv").table["id"])
    chosen = _chosen(result.details)
    assert list(out.table["label"]) == list(chosen["label"])
    np.testing.assert_array_equal(out.table["confidence"], chosen["new_confidence"])
    assert list(result.details.columns) == list(CANDIDATE_DETAILS_COLUMNS)
    assert list(result.details["rank"]) == list(candidates.rank) == [1, 2, 3, 4, 5] * 26
    assert set(result.details["status"]) <= set(STATUSES)


def test_the_chosen_candidate_has_the_highest_rescaled_confidence(candidate_runs):
    _, every, _ = candidate_runs
    details = every.details
    for _, rows in details.groupby("id", sort=False):
        best = rows["new_confidence"].max()
        assert rows["chosen"].sum() == 1
        assert rows.loc[rows["chosen"], "rank"].item() == rows.loc[rows["new_confidence"] == best, "rank"].min()
    assert (details["status"] != "stopped").all() and (details["gallery_ids"] != "").all()


def test_candidates_lift_gap_and_relabel_to_confirmed_labels(first_run, candidate_runs):
    result, _, _ = candidate_runs
    truth = read_solution(DATA / "truth.csv").table
    gap = global_average_precision(result.predictions.table, truth).gap
    assert gap > global_average_precision(first_run[0].predictions.table, truth).gap
    chosen = _chosen(result.details)
    relabelled = chosen[chosen["rank"] > 1]
    assert result.summary["relabelled"] == len(relabelled) > 0
    truth_of = truth.set_index("id")["landmarks"]
    right = sum(truth_of[i] == label for i, label in relabelled["label"].items())
    assert right >= len(relabelled) / 2
    for status in STATUSES:
        assert result.summary[status] == (result.details["status"] == status).sum()


def test_early_stop_changes_no_choice_and_verifies_fewer_pairs(candidate_runs):
    result, every, _ = candidate_runs
    early, full = result.details, every.details
    pd.testing.assert_frame_equal(_chosen(early), _chosen(full))
    stopped = early[early["status"] == "stopped"]
    assert len(stopped) > 0
    assert (stopped["gallery_ids"] == "").all() and (stopped["inliers"] == "").all()
    assert stopped["reason"].str.startswith("not verified: candidate ").all()
    # every stopped candidate comes after its query's verified ones, which it could not have beaten
    ceiling = builtin_policy("default", "rootsift").max_confidence(stopped["old_confidence"].to_numpy())
    best = _chosen(early).loc[stopped["id"], "new_confidence"].to_numpy()
    assert np.all(ceiling <= best)
    verified = result.summary["pairs_computed"] + result.summary["pairs_reused"]
    assert verified == 3 * (len(early) - len(stopped)) < every.summary["pairs_computed"] + every.summary["pairs_reused"]


def test_keep_candidates_returns_every_candidate_best_first(candidate_runs, tmp_path):
    result, every, _ = candidate_runs
    table = every.predictions.table
    assert len(table) == 26 * 5 and every.predictions.format == "label_confidence"
    assert list(table["id"].drop_duplicates()) == list(result.predictions.table["id"])
    for _, rows in table.groupby("id", sort=False):
        assert rows["confidence"].is_monotonic_decreasing
    pd.testing.assert_frame_equal(table.drop_duplicates("id").reset_index(drop=True), result.predictions.table)
    write_predictions(every.predictions, tmp_path / "all.csv")
    assert read_predictions(tmp_path / "all.csv").table.groupby("id").size().eq(5).all()


def test_kaggle_candidates_in_kaggle_out(candidate_runs, tmp_path):
    result, _, cache = candidate_runs
    path = tmp_path / "candidates.csv"
    write_predictions(Predictions(_sample_candidates().table, "kaggle"), path)
    assert len(path.read_text().splitlines()) == 27  # one cell of five pairs per query
    kaggle = _run(cache, predictions=path, output=tmp_path / "out.csv", details=tmp_path / "details.csv")
    assert kaggle.summary["pairs_computed"] == 0  # the same pairs as the long format
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "id,landmarks" and len(lines) == 27
    assert all(len(line.split(",")[1].split()) == 2 for line in lines[1:])  # one label and score per query
    pd.testing.assert_frame_equal(kaggle.predictions.table, result.predictions.table)
    assert (tmp_path / "details.csv").read_text().splitlines()[0] == ",".join(CANDIDATE_DETAILS_COLUMNS)


def test_candidates_one_is_the_top1_run(first_run, candidate_runs):
    """``candidates=1`` verifies the classifier's first choices only: the top-1 run, details and all."""
    _, _, cache = candidate_runs
    top1 = _run(cache, predictions=_sample_candidates(), candidates=1)
    assert list(top1.details.columns) == list(DETAILS_COLUMNS)
    pd.testing.assert_frame_equal(top1.details, first_run[0].details)
    pd.testing.assert_frame_equal(top1.predictions.table, first_run[0].predictions.table)
    assert top1.summary["relabelled"] == top1.summary["stopped"] == 0


def test_candidates_must_be_a_positive_integer(tmp_path):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="candidates"):
            _run(tmp_path, candidates=bad)
    assert not any(tmp_path.iterdir())


