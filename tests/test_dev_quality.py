"""Quality on the labelled photo sets (skipped when ../shared/data is absent), read from the precomputed inlier
tables in ``tests/data`` (the slow tests here recompute a sample of them with today's verifier): the inlier count
separates a query of the right landmark from a non-landmark query, and candidates lift GAP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from delfverify import Verifier

SEED = 0


def _roc_auc(positives, negatives) -> float:
    pos = np.asarray(positives, float)[:, None]
    neg = np.asarray(negatives, float)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def test_roc_auc_helper_hand_computed():
    assert _roc_auc([3, 4], [1, 2]) == 1.0
    assert _roc_auc([1], [2]) == 0.0
    assert _roc_auc([2, 0], [1, 2]) == pytest.approx((1 + 0.5 + 0 + 0) / 4)


@pytest.mark.slow
def test_precomputed_dev_inlier_tables_are_current(dev_data, tmp_path):
    """``tests/data/dev_inliers.npz`` (read by the dev tuning test) holds what today's default verifier gives: a
    sample of its rows is recomputed. When this fails, run ``python benchmarks/make_dev_inliers.py``."""
    from delfverify.images import ImageDirectory
    from delfverify.pipeline import Photos, measure, open_session, plan_pairs
    from delfverify.settings import RunSettings
    from delfverify.tables import Predictions, read_gallery, read_predictions

    with np.load(Path(__file__).parent / "data" / "dev_inliers.npz", allow_pickle=False) as npz:
        stored = {"spread": npz["spread"][3], "first": npz["first"][3]}
    predictions = read_predictions(dev_data / "predictions" / "03.csv")
    rows = np.random.default_rng(SEED).choice(len(predictions), 3, replace=False)
    sample = Predictions(predictions.table.iloc[rows].reset_index(drop=True), predictions.format)
    gallery = read_gallery(dev_data / "gallery.csv")
    photos = Photos(ImageDirectory(dev_data / "queries"), ImageDirectory(dev_data / "gallery"), gallery.paths())
    with open_session(run=RunSettings(cache_dir=tmp_path)) as session:
        for selection, tables in stored.items():
            plan = plan_pairs(sample, gallery, np.where(sample.has_label, tables.shape[1], 0), selection)
            inliers = measure(sample, plan, session, photos).inliers
            expected = tables[rows][:, : inliers.shape[1]]
            np.testing.assert_array_equal(inliers, expected, err_msg=f"stale dev_inliers.npz ({selection})")


# --- several candidates per query: both labelled sets ----------------------------------------------------------------

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CANDIDATE_SETS = ("landmarks-dev", "landmarks-hard")
#: Mean GAP with candidates over the ten top-5 files, as a multiple of the mean top-1 oracle of the same seeds:
#: measured 1.56 (dev) and 1.33 (hard) with RootSIFT and the default policy (README); asserted with a margin, so
#: that changes of verification do not break the test unless they lose most of the gain.
MIN_TOP1_ORACLE_MULTIPLE = {"landmarks-dev": 1.50, "landmarks-hard": 1.25}


@pytest.fixture(scope="module")
def candidate_inliers() -> dict:
    """Per set, ``(ids, labels, inliers)``: every query against every landmark (``make_candidate_inliers.py``)."""
    with np.load(Path(__file__).parent / "data" / "candidate_inliers.npz", allow_pickle=False) as npz:
        return {name: tuple(npz[f"{name}/{key}"] for key in ("ids", "labels", "inliers")) for name in CANDIDATE_SETS}


def _labelled_set(name: str) -> Path:
    data = SHARED_DATA / name
    if not (data / "predictions-top5").is_dir():
        pytest.skip(f"labelled set not found at {data}")
    return data


def _stored_inliers(predictions, stored) -> np.ndarray:
    """The stored counts of each (query, label) row of a predictions table."""
    ids, labels, inliers = stored
    rows = pd.Index(ids).get_indexer(predictions.ids)
    columns = pd.Index(labels).get_indexer(predictions.labels)
    assert (rows >= 0).all() and (columns >= 0).all()
    return inliers[rows, columns]


#: ROC AUC of the max inliers of a landmark query against its own landmark's photos, over those of every
#: non-landmark query against every landmark: measured 1.000 (dev) and 0.914 (hard, wide baselines).
MIN_AUC = {"landmarks-dev": 0.97, "landmarks-hard": 0.85}


@pytest.mark.parametrize("name", CANDIDATE_SETS)
def test_inliers_separate_landmark_queries_from_distractors(name, candidate_inliers):
    from delfverify.tables import read_solution

    data = _labelled_set(name)
    ids, labels, inliers = candidate_inliers[name]
    best = np.nanmax(inliers, axis=2)  # over the landmark's gallery photos
    truth = read_solution(data / "truth.csv").table.set_index("id")["landmarks"].reindex(ids.astype(str))
    column = pd.Index(labels).get_indexer(truth)
    positives = best[column >= 0, column[column >= 0]]
    negatives = best[(truth == "").to_numpy()].ravel()
    assert len(positives) >= 20 and len(negatives) >= 200
    auc = _roc_auc(positives, negatives)
    accepted = (negatives >= Verifier("rootsift").thresholds.accept).mean()
    print(f"{name}: ROC AUC {auc:.3f}, distractor pairs accepted {accepted:.3f}")
    assert auc >= MIN_AUC[name] and accepted <= 0.02, (auc, accepted, sorted(positives))


@pytest.mark.parametrize("name", CANDIDATE_SETS)
def test_candidates_lift_gap_beyond_the_top1_oracle(name, candidate_inliers):
    """On the ten top-5 files of each set, choosing among candidates beats the top-1 run of the same seed on every
    file and lifts the mean GAP well beyond the best any re-ranking of the top-1 labels could reach."""
    from delfverify.metrics import global_average_precision, oracle_gap
    from delfverify.pipeline import choose_candidates, rescale
    from delfverify.policy import builtin_policy
    from delfverify.tables import read_gallery, read_predictions, read_solution

    data = _labelled_set(name)
    truth = read_solution(data / "truth.csv").table
    policy = builtin_policy("default", "rootsift")
    gallery_labels = set(read_gallery(data / "gallery.csv").table["landmark_id"])
    gaps, oracles = [], []
    for path in sorted((data / "predictions-top5").glob("*.csv")):
        candidates = read_predictions(path)
        top1 = read_predictions(data / "predictions" / path.name)
        choice = choose_candidates(candidates, _stored_inliers(candidates, candidate_inliers[name]), policy,
                                   gallery_labels=gallery_labels)
        chosen = candidates.table.iloc[choice.rows].assign(confidence=choice.rescaled.confidence[choice.rows])
        first = rescale(top1, _stored_inliers(top1, candidate_inliers[name]), policy, gallery_labels=gallery_labels)
        gap = global_average_precision(chosen, truth).gap
        assert gap > global_average_precision(top1.with_confidence(first.confidence).table, truth).gap, path.name
        gaps.append(gap)
        oracles.append(oracle_gap(top1.table, truth))
    multiple = np.mean(gaps) / np.mean(oracles)
    print(f"{name}: mean GAP {np.mean(gaps):.4f} = {multiple:.3f}x the mean top-1 oracle {np.mean(oracles):.4f}")
    assert len(gaps) == 10 and multiple >= MIN_TOP1_ORACLE_MULTIPLE[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", CANDIDATE_SETS)
def test_precomputed_candidate_inliers_are_current(name, candidate_inliers, tmp_path):
    """``tests/data/candidate_inliers.npz`` holds what today's default verifier gives: a sample of its pairs is
    measured again. When this fails, run ``python benchmarks/make_candidate_inliers.py``."""
    from delfverify.images import ImageDirectory
    from delfverify.pipeline import Photos, measure, open_session, plan_pairs
    from delfverify.settings import RunSettings
    from delfverify.policy import builtin_policy
    from delfverify.tables import Predictions, read_gallery

    data = _labelled_set(name)
    ids, labels, inliers = candidate_inliers[name]
    rng = np.random.default_rng(SEED)
    queries = rng.choice(len(ids), 6, replace=False)
    columns = rng.integers(len(labels), size=6)
    sample = Predictions(pd.DataFrame({"id": ids[queries].astype(object), "label": labels[columns].astype(object),
                                       "confidence": 0.5}))
    policy = builtin_policy("default", "rootsift")
    gallery = read_gallery(data / "gallery.csv")
    photos = Photos(ImageDirectory(data / "queries"), ImageDirectory(data / "gallery"), gallery.paths())
    with open_session(run=RunSettings(cache_dir=tmp_path)) as session:
        plan = plan_pairs(sample, gallery, policy.k_for(sample.confidence), policy.selection, policy.seed)
        measured = measure(sample, plan, session, photos).inliers
    expected = inliers[queries, columns][:, : measured.shape[1]]
    np.testing.assert_array_equal(measured, expected, err_msg=f"stale candidate_inliers.npz ({name})")
