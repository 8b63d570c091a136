"""Tests for delfverify.metrics: hand-computed GAP cases, input errors and properties."""

import doctest
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SAMPLE
from test_report import synthetic_details

from delfverify import metrics
from delfverify.details import read_details
from delfverify.metrics import (GapResult, TruthError, global_average_precision, load_truth, oracle_gap, ranked_gap,
                                run_scores)
from delfverify.tables import Solution, read_predictions, read_solution

PROPERTY_SETTINGS = settings(derandomize=True, max_examples=60, deadline=None)


def make_truth(landmarks_by_id):
    return pd.DataFrame({"id": list(landmarks_by_id), "landmarks": list(landmarks_by_id.values())})


def make_predictions(rows):
    """rows: list of (id, label, confidence)."""
    return pd.DataFrame(rows, columns=["id", "label", "confidence"])


def brute_force_gap(predictions, truth):
    """GAP straight from the definition, one prediction at a time."""
    solution = {
        query_id: landmarks.split() if isinstance(landmarks, str) else []
        for query_id, landmarks in zip(truth["id"], truth["landmarks"])
    }
    num_landmark_queries = sum(1 for labels in solution.values() if labels)
    ranked = sorted(
        (
            (query_id, label, confidence)
            for query_id, label, confidence in zip(
                predictions["id"], predictions["label"], predictions["confidence"]
            )
            if isinstance(label, str) and label != ""
        ),
        key=lambda row: (-row[2], row[0], row[1]),
    )
    total = 0.0
    num_correct = 0
    for rank, (query_id, label, _) in enumerate(ranked, start=1):
        if label in solution[query_id]:
            num_correct += 1
            total += num_correct / rank
    return total / num_landmark_queries


def is_correct(predictions, truth):
    """Per prediction row: is its label one of the truth labels of its query?"""
    solution = dict(zip(truth["id"], truth["landmarks"]))
    return [
        isinstance(label, str) and label != "" and label in str(solution[query_id]).split()
        for query_id, label in zip(predictions["id"], predictions["label"])
    ]


# --- hand-computed cases -------------------------------------------------------------


def test_gap_of_three_predictions_matches_hand_computation():
    truth = make_truth({"q1": "a", "q2": "b", "q3": "c"})
    predictions = make_predictions([("q1", "a", 0.9), ("q2", "x", 0.8), ("q3", "c", 0.7)])
    # rank 1: q1 correct, P(1) = 1/1; rank 2: q2 wrong; rank 3: q3 correct, P(3) = 2/3.
    # M = 3, GAP = (1 + 2/3) / 3 = 5/9.
    result = global_average_precision(predictions, truth)
    assert result == GapResult(
        gap=pytest.approx(5 / 9), num_predictions=3, num_landmark_queries=3, num_correct=2,
        accuracy=pytest.approx(2 / 3),
    )


def test_gap_does_not_depend_on_row_order_of_the_frames():
    truth = make_truth({"q1": "a", "q2": "b", "q3": "c"})
    predictions = make_predictions([("q3", "c", 0.7), ("q1", "a", 0.9), ("q2", "x", 0.8)])
    assert global_average_precision(predictions, truth.iloc[::-1]).gap == pytest.approx(5 / 9)


def test_all_correct_predictions_give_gap_one():
    truth = make_truth({"q1": "a", "q2": "b"})
    predictions = make_predictions([("q1", "a", 0.9), ("q2", "b", 0.8)])
    assert global_average_precision(predictions, truth).gap == 1.0


def test_confident_non_landmark_prediction_lowers_gap():
    truth = make_truth({"q1": "a", "q2": "b", "q3": None})
    predictions = make_predictions([("q1", "a", 0.9), ("q2", "b", 0.8), ("q3", "e", 0.95)])
    # rank 1: q3 non-landmark, rel = 0; rank 2: q1, P = 1/2; rank 3: q2, P = 2/3.
    # M = 2 (q3 is not a landmark query), GAP = (1/2 + 2/3) / 2 = 7/12.
    assert global_average_precision(predictions, truth).gap == pytest.approx(7 / 12)


def test_non_landmark_prediction_ranked_last_costs_nothing():
    truth = make_truth({"q1": "a", "q2": "b", "q3": None})
    predictions = make_predictions([("q1", "a", 0.9), ("q2", "b", 0.8), ("q3", "e", 0.1)])
    # P(1) = 1, P(2) = 1, rank 3 has rel = 0: GAP = (1 + 1) / 2 = 1.
    assert global_average_precision(predictions, truth).gap == 1.0


def test_landmark_query_without_prediction_still_counts_in_m():
    truth = make_truth({"q1": "a", "q2": "b", "q3": "c"})
    # q2 has an empty label and q3 has no row at all: neither is a prediction.
    predictions = make_predictions([("q1", "a", 0.9), ("q2", "", 0.8)])
    # one prediction, correct, P(1) = 1; M = 3, GAP = 1/3.
    result = global_average_precision(predictions, truth)
    assert result.gap == pytest.approx(1 / 3)
    assert result.num_predictions == 1
    assert result.num_landmark_queries == 3


@pytest.mark.parametrize("no_label", [None, np.nan, ""])
def test_row_without_label_is_not_a_prediction(no_label):
    truth = make_truth({"q1": "a", "q2": None})
    predictions = make_predictions([("q1", "a", 0.5), ("q2", no_label, 0.9)])
    # Were q2's row ranked, it would come first with rel = 0 and give GAP 1/2.
    result = global_average_precision(predictions, truth)
    assert result.num_predictions == 1
    assert result.gap == 1.0


def test_row_without_label_may_have_no_confidence():
    truth = make_truth({"q1": "a", "q2": "b"})
    predictions = make_predictions([("q1", "a", 0.5), ("q2", None, np.nan)])
    assert global_average_precision(predictions, truth).gap == pytest.approx(1 / 2)


def test_any_of_several_truth_labels_counts_as_correct():
    truth = make_truth({"q1": "a b c", "q2": "d  e", "q3": " f"})
    predictions = make_predictions([("q1", "b", 0.9), ("q2", "e", 0.8), ("q3", "f", 0.7)])
    result = global_average_precision(predictions, truth)
    assert result.num_correct == 3
    assert result.gap == 1.0


def test_truth_label_must_match_whole():
    truth = make_truth({"q1": "ab", "q2": "a b"})
    predictions = make_predictions([("q1", "a", 0.9), ("q2", "a b", 0.8)])
    assert global_average_precision(predictions, truth).num_correct == 0


def test_equal_confidences_are_ranked_by_id():
    truth = make_truth({"q1": "a", "q2": "b", "q3": "c"})
    # Row order puts the wrong prediction first; the id tie-break puts it second.
    predictions = make_predictions([("q2", "x", 0.5), ("q3", "c", 0.5), ("q1", "a", 0.5)])
    # ranked q1 (correct, P = 1), q2 (wrong), q3 (correct, P = 2/3): GAP = (1 + 2/3) / 3 = 5/9.
    # Had q2 come first it would be (1/2 + 2/3) / 3 = 7/18.
    assert global_average_precision(predictions, truth).gap == pytest.approx(5 / 9)


def test_ids_are_compared_as_strings_in_the_tie_break():
    truth = make_truth({"q9": "a", "q10": "b"})
    # "q10" < "q9" as strings, so the wrong q10 prediction is ranked first.
    predictions = make_predictions([("q9", "a", 0.5), ("q10", "x", 0.5)])
    # rank 1 wrong, rank 2 correct with P = 1/2; M = 2, GAP = 1/4.
    assert global_average_precision(predictions, truth).gap == pytest.approx(1 / 4)


def test_non_ascii_ids_are_ordered_by_code_point():
    truth = make_truth({"\u00e9": "b", "z": "a"})
    # "z" (U+007A) < "\u00e9" (U+00E9), so the correct z prediction is ranked first.
    predictions = make_predictions([("\u00e9", "x", 0.5), ("z", "a", 0.5)])
    # P(1) = 1, rank 2 wrong; M = 2, GAP = 1/2 (1/4 the other way round).
    assert global_average_precision(predictions, truth).gap == pytest.approx(1 / 2)


def test_confidence_outranks_id():
    truth = make_truth({"q1": "a", "q2": "b"})
    predictions = make_predictions([("q1", "x", 0.4), ("q2", "b", 0.6)])
    # q2 first despite its larger id: P(1) = 1, GAP = 1/2.
    assert global_average_precision(predictions, truth).gap == pytest.approx(1 / 2)


def test_no_predictions_give_gap_zero():
    truth = make_truth({"q1": "a"})
    predictions = make_predictions([])
    assert global_average_precision(predictions, truth) == GapResult(0.0, 0, 1, 0, 0.0)


def test_oracle_gap_is_correct_predictions_over_landmark_queries():
    truth = make_truth({"q1": "a", "q2": "b", "q3": "c", "q4": None})
    predictions = make_predictions(
        [("q1", "a", 0.1), ("q2", "x", 0.9), ("q3", "c", 0.2), ("q4", "d", 0.8)]
    )
    # 2 correct out of M = 3 landmark queries.
    assert oracle_gap(predictions, truth) == pytest.approx(2 / 3)
    # As ranked: q2 wrong, q4 wrong, q3 P = 1/3, q1 P = 2/4; GAP = (1/3 + 1/2) / 3 = 5/18.
    result = global_average_precision(predictions, truth)
    assert result.gap == pytest.approx(5 / 18)
    assert result.accuracy == pytest.approx(2 / 3)


def test_docstring_examples_run():
    failures, attempted = doctest.testmod(metrics)
    assert attempted > 0
    assert failures == 0


# --- input errors --------------------------------------------------------------------


@pytest.mark.parametrize("landmarks", [[None, None], ["", " "], [np.nan, ""]])
def test_truth_without_landmark_queries_raises(landmarks):
    truth = pd.DataFrame({"id": ["q1", "q2"], "landmarks": landmarks})
    predictions = make_predictions([("q1", "a", 0.5)])
    with pytest.raises(ValueError, match="no landmark query"):
        global_average_precision(predictions, truth)
    with pytest.raises(ValueError, match="no landmark query"):
        oracle_gap(predictions, truth)


def test_duplicate_prediction_id_raises_naming_it():
    truth = make_truth({"q1": "a", "q2": "b"})
    predictions = make_predictions([("q1", "a", 0.5), ("q2", "b", 0.4), ("q2", "c", 0.3)])
    with pytest.raises(ValueError, match="more than one prediction for id 'q2'"):
        global_average_precision(predictions, truth)


def test_duplicate_truth_id_raises_naming_it():
    truth = pd.DataFrame({"id": ["q1", "q2", "q1"], "landmarks": ["a", "b", "c"]})
    predictions = make_predictions([("q1", "a", 0.5)])
    with pytest.raises(ValueError, match="truth has more than one row for id 'q1'"):
        global_average_precision(predictions, truth)


def test_prediction_for_unknown_id_raises_with_count_and_examples():
    truth = make_truth({"q1": "a"})
    predictions = make_predictions(
        [("q1", "a", 0.5)] + [(f"z{i}", "a", 0.5) for i in range(7)]
    )
    with pytest.raises(ValueError, match=r"7 id\(s\) that are not in truth, e.g. 'z0', 'z1'") as error:
        global_average_precision(predictions, truth)
    assert "'z4'" in str(error.value)
    assert "'z5'" not in str(error.value)


def test_nan_confidence_raises_naming_the_id():
    truth = make_truth({"q1": "a", "q2": "b"})
    predictions = make_predictions([("q1", "a", 0.5), ("q2", "b", np.nan)])
    with pytest.raises(ValueError, match="NaN confidence for id 'q2'"):
        global_average_precision(predictions, truth)


def test_missing_column_raises_naming_it():
    truth = make_truth({"q1": "a"})
    predictions = pd.DataFrame({"id": ["q1"], "label": ["a"]})
    with pytest.raises(ValueError, match=r"predictions is missing column\(s\) \['confidence'\]"):
        global_average_precision(predictions, truth)
    with pytest.raises(ValueError, match=r"truth is missing column\(s\) \['landmarks'\]"):
        global_average_precision(make_predictions([("q1", "a", 0.5)]), truth[["id"]])


def test_labels_parsed_as_numbers_raise():
    truth = pd.DataFrame({"id": ["q1", "q2"], "landmarks": [12.0, np.nan]})
    predictions = pd.DataFrame({"id": ["q1"], "label": ["12"], "confidence": [0.5]})
    with pytest.raises(ValueError, match=r"truth\['landmarks'\] must hold strings, found floating"):
        global_average_precision(predictions, truth)
    predictions = pd.DataFrame({"id": ["q1"], "label": [12], "confidence": [0.5]})
    with pytest.raises(ValueError, match=r"predictions\['label'\] must hold strings, found integer"):
        global_average_precision(predictions, make_truth({"q1": "12"}))


def test_label_column_mixing_strings_and_numbers_raises():
    truth = make_truth({"q1": "a", "q2": "b"})
    predictions = pd.DataFrame(
        {"id": ["q1", "q2"], "label": pd.Series(["a", 7], dtype=object), "confidence": [0.5, 0.4]}
    )
    with pytest.raises(ValueError, match=r"predictions\['label'\] must hold strings, found mixed"):
        global_average_precision(predictions, truth)


# --- properties ----------------------------------------------------------------------

LABELS = ["a", "b", "c", "d"]


@st.composite
def predictions_and_truth(draw):
    """Small frames with few labels and few confidence values, so ties and hits are common."""
    ids = draw(st.lists(st.text(alphabet="qQ0\u00e9", min_size=1, max_size=3), min_size=1,
                        max_size=12, unique=True))
    landmarks = [
        draw(st.one_of(st.none(), st.just(""),
                       st.lists(st.sampled_from(LABELS), min_size=1, max_size=3).map(" ".join)))
        for _ in ids
    ]
    # Make sure there is a landmark query, so that GAP is defined.
    landmarks[draw(st.integers(0, len(ids) - 1))] = draw(st.sampled_from(LABELS))
    truth = pd.DataFrame({"id": ids, "landmarks": landmarks})

    predicted_ids = draw(st.lists(st.sampled_from(ids), unique=True, max_size=len(ids)))
    rows = [
        (query_id,
         draw(st.one_of(st.sampled_from(LABELS + ["e"]), st.none())),
         draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])))
        for query_id in predicted_ids
    ]
    return make_predictions(rows), truth


@PROPERTY_SETTINGS
@given(predictions_and_truth())
def test_gap_lies_between_zero_and_one(frames):
    gap = global_average_precision(*frames).gap
    assert 0.0 <= gap <= 1.0


@PROPERTY_SETTINGS
@given(predictions_and_truth(), st.randoms(use_true_random=False))
def test_gap_is_invariant_under_row_shuffling(frames, random):
    predictions, truth = frames
    shuffled_predictions = predictions.iloc[random.sample(range(len(predictions)), len(predictions))]
    shuffled_truth = truth.iloc[random.sample(range(len(truth)), len(truth))]
    assert global_average_precision(shuffled_predictions, shuffled_truth) == (
        global_average_precision(predictions, truth)
    )


@PROPERTY_SETTINGS
@given(predictions_and_truth())
def test_gap_equals_brute_force_definition(frames):
    assert global_average_precision(*frames).gap == pytest.approx(brute_force_gap(*frames), abs=1e-12)


@PROPERTY_SETTINGS
@given(predictions_and_truth())
def test_gap_never_exceeds_oracle_gap(frames):
    assert global_average_precision(*frames).gap <= oracle_gap(*frames) + 1e-12


@PROPERTY_SETTINGS
@given(predictions_and_truth())
def test_gap_reaches_oracle_when_correct_predictions_outrank_wrong_ones(frames):
    predictions, truth = frames
    # Confidences lie in [0, 1]; adding 2 to the correct ones puts them all on top.
    correct = np.array(is_correct(predictions, truth), dtype=bool)
    boosted = predictions.assign(confidence=predictions["confidence"] + 2.0 * correct)
    result = global_average_precision(boosted, truth)
    assert result.gap == pytest.approx(oracle_gap(predictions, truth), abs=1e-12)
    assert math.isclose(result.gap, result.accuracy, abs_tol=1e-12)


# --- ranked_gap (the core the tuning scorer uses) ---------------------------------------------------------


def test_ranked_gap_matches_hand_computation():
    assert ranked_gap(np.array([False, True, True]), 3) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert ranked_gap(np.array([], bool), 2) == 0.0


def test_ranked_gap_of_several_rankings_equals_each_alone():
    rng = np.random.default_rng(0)
    parts = [rng.random(size) < 0.5 for size in (7, 0, 12, 1)]
    m = np.array([5, 2, 9, 1])
    starts = np.cumsum([0] + [p.size for p in parts[:-1]])
    together = ranked_gap(np.concatenate(parts), m, starts)
    assert together == pytest.approx([ranked_gap(p, mi) for p, mi in zip(parts, m)], abs=1e-15)


@pytest.mark.parametrize("m, starts, message", [
    (0, None, "at least 1"),
    (np.array([1, 0]), np.array([0, 1]), "at least 1"),
    (1, np.array([1]), "starts"),
    (np.array([1, 1]), np.array([0, 5]), "starts"),
])
def test_ranked_gap_rejects_bad_input(m, starts, message):
    with pytest.raises(ValueError, match=message):
        ranked_gap(np.array([True, False, True]), m, starts)


# --- a run against the truth ---


def test_run_scores_agree_with_the_gap_of_the_files_before_and_after(sample_run):
    details = read_details(sample_run.folder / "details.csv")
    truth = read_solution(SAMPLE / "truth.csv")
    scores = run_scores(details, truth)
    before = global_average_precision(read_predictions(SAMPLE / "predictions.csv").table, truth.table)
    after = global_average_precision(read_predictions(sample_run.folder / "out.csv").table, truth.table)
    assert (scores.gap_before, scores.gap_after) == (pytest.approx(before.gap), pytest.approx(after.gap))
    assert scores.oracle == scores.accuracy_before == pytest.approx(before.accuracy) == pytest.approx(0.8)
    assert scores.oracle_candidates is None and scores.candidates == 1
    assert scores.describe() == (f"GAP {before.gap:.4f} -> {after.gap:.4f} (oracle {before.accuracy:.4f}); "
                                 f"accuracy {before.accuracy:.4f} -> {after.accuracy:.4f} (15 landmark queries)")


def test_run_scores_with_candidates_by_hand():
    # q1: true a, candidates b (first), a (chosen); q2: true c, candidates c (first, chosen), d; q3: no landmark,
    # candidate e; q4: true f, no candidate holds it.
    details = pd.DataFrame({
        "id": ["q1", "q1", "q2", "q2", "q3", "q4"], "rank": [1, 2, 1, 2, 1, 1],
        "label": ["b", "a", "c", "d", "e", "g"], "band": "", "old_confidence": [0.9, 0.5, 0.6, 0.4, 0.8, 0.7],
        "new_confidence": [0.3, 0.95, 0.9, 0.1, 0.2, 0.1], "gallery_ids": "", "inliers": "", "status": "verified",
        "reason": "", "chosen": [False, True, True, False, True, True]})
    truth = Solution(pd.DataFrame({"id": ["q1", "q2", "q3", "q4"], "landmarks": ["a", "c", "", "f"]}))
    scores = run_scores(details, truth)
    # before: b 0.9 (wrong), e 0.8 (non-landmark), g 0.7 (wrong), c 0.6 (correct, rank 4): GAP = (1/4) / 3.
    # after: a 0.95 (correct), c 0.9 (correct), e 0.2, g 0.1: GAP = (1 + 1) / 3.
    assert scores.gap_before == pytest.approx(1 / 12) and scores.gap_after == pytest.approx(2 / 3)
    assert scores.oracle == scores.accuracy_before == pytest.approx(1 / 3)
    assert scores.accuracy_after == pytest.approx(2 / 3)
    assert scores.oracle_candidates == pytest.approx(2 / 3) and scores.candidates == 2
    assert "top-2 0.6667" in scores.describe()


def test_a_truth_without_some_queries_is_refused_naming_them(tmp_path):
    truth = Solution(pd.DataFrame({"id": ["q1"], "landmarks": ["a"]}))
    with pytest.raises(TruthError, match=r"truth: 2 query id\(s\) .* not in the truth, e\.g\. 'q2', 'q3'"):
        load_truth(truth, ["q1", "q2", "q3", "q2"])
    (tmp_path / "t.csv").write_text("id,landmarks\nq1,a\n")
    with pytest.raises(TruthError, match=r"t\.csv: 1 query id"):
        load_truth(tmp_path / "t.csv", ["q1", "q9"])
    (tmp_path / "t.csv").write_text("id,landmarks\nq1,\nq2,\n")
    with pytest.raises(TruthError, match=r"t\.csv: no query of the truth shows a landmark"):
        load_truth(tmp_path / "t.csv", ["q1"])


def test_details_with_an_id_twice_and_no_candidate_columns_cannot_be_scored():
    details = synthetic_details(4).assign(id=["q1", "q1", "q2", "q3"])
    truth = Solution(pd.DataFrame({"id": ["q1", "q2", "q3"], "landmarks": ["a", "b", ""]}))
    with pytest.raises(TruthError, match="details against the truth: .*more than one prediction for id 'q1'"):
        run_scores(details, truth)
