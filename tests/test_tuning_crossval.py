"""delfverify.tuning.crossval: folds are seeded, stratified and follow the ids, and repeat with other seeds;
``collect`` lays every file's labelled predictions in one table, every candidate of a query with its own counts;
the scorer ranks each repeat on its own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tuning_cases import candidates, random_candidates_case, random_case, separable

from delfverify.metrics import oracle_gap
from delfverify.tables import Predictions, Solution
from delfverify.tuning.crossval import assign_folds, collect, fold_scorer, match_candidates, repeated_folds


def test_folds_are_seeded_stratified_and_follow_the_ids():
    frame, _, _, _ = random_case(6, 103)
    truth = Solution(frame)
    folds = assign_folds(truth, 5, seed=7)
    assert folds.shape == (103,) and set(folds) == set(range(5))
    np.testing.assert_array_equal(folds, assign_folds(truth, 5, seed=7))
    assert not np.array_equal(folds, assign_folds(truth, 5, seed=8))
    landmark = (frame["landmarks"] != "").to_numpy()
    per_fold = np.bincount(folds[landmark], minlength=5)
    assert per_fold.max() - per_fold.min() <= 1
    shuffled = frame.sample(frac=1.0, random_state=0)
    again = dict(zip(shuffled["id"], assign_folds(Solution(shuffled), 5, seed=7)))
    assert again == dict(zip(frame["id"], folds))


def test_folds_need_a_landmark_query_each():
    truth = Solution(pd.DataFrame({"id": ["a", "b", "c"], "landmarks": ["x", "", "y"]}))
    with pytest.raises(ValueError, match="3 folds need at least 3 landmark queries"):
        assign_folds(truth, 3)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        assign_folds(truth, 1)


def test_collect_pads_inliers_and_keeps_only_labelled_rows():
    truth, tables, inliers = separable(seed=1, n=30, files=2)
    unlabelled = tables[1].table.copy()
    unlabelled.loc[:4, ["label", "confidence"]] = ["", np.nan]
    data = collect([tables[0], type(tables[1])(unlabelled)], truth, [inliers[0], inliers[1][:, :2]])
    assert data.num_files == 2 and data.inliers.shape == (55, 5)
    assert np.isnan(data.inliers[30:, 2:]).all() and not np.isnan(data.inliers[:30]).any()
    assert np.bincount(data.file).tolist() == [30, 25]


def test_repeated_folds_start_with_the_seed_and_partition_again():
    frame, _, _, _ = random_case(6, 103)
    truth = Solution(frame)
    repeats = repeated_folds(truth, 5, 3, seed=7)
    assert repeats.shape == (3, 103)
    np.testing.assert_array_equal(repeats[0], assign_folds(truth, 5, seed=7))
    assert not np.array_equal(repeats[1], repeats[0]) and not np.array_equal(repeats[2], repeats[1])
    np.testing.assert_array_equal(repeats, repeated_folds(truth, 5, 3, seed=7))
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        repeated_folds(truth, 5, 0)


def test_fold_scorer_over_repeats_scores_each_repeat_as_its_own_scorer():
    truth, tables, inliers = separable(seed=3, n=90, files=2)
    data = collect(tables, truth, inliers)
    assignments = repeated_folds(truth, 3, 2, seed=1)
    together = fold_scorer(data, assignments, 3)
    for policy in candidates(20):
        gaps = together.gaps(policy).reshape(2, 2, 3)  # repeat, file, fold
        for r in range(2):
            np.testing.assert_array_equal(gaps[r].reshape(-1), fold_scorer(data, assignments[r], 3).gaps(policy))


def test_collect_keeps_every_candidate_with_its_truth_row_and_its_own_counts():
    frame, table, correct, inliers = random_candidates_case(7, 60, most=4)
    truth = Solution(frame)
    n = len(table)
    data = collect([table, table], truth, [inliers, inliers[:, :2]])
    assert data.num_files == 2 and data.inliers.shape == (2 * n, 3)
    np.testing.assert_array_equal(data.file, np.repeat([0, 1], n))
    np.testing.assert_array_equal(data.truth_row, np.tile(table.query, 2))  # truth row q is query q
    np.testing.assert_array_equal(data.rank, np.tile(table.rank, 2))
    np.testing.assert_array_equal(data.correct, np.tile(correct, 2))
    np.testing.assert_array_equal(data.confidence, np.tile(table.confidence, 2))
    np.testing.assert_array_equal(data.inliers[:n], inliers)
    np.testing.assert_array_equal(data.inliers[n:, :2], inliers[:, :2])
    assert np.isnan(data.inliers[n:, 2:]).all()
    # M of a fold counts its landmark queries, not their candidate rows
    folds = assign_folds(truth, 3, seed=2)
    landmark = (frame["landmarks"] != "").to_numpy()
    np.testing.assert_array_equal(fold_scorer(data, folds, 3).num_landmark_queries,
                                  np.tile(np.bincount(folds[landmark], minlength=3), 2))


def test_match_candidates_matches_each_rank_and_gives_the_top_n_oracle():
    truth = Solution(pd.DataFrame({"id": ["a", "b", "c", "d"], "landmarks": ["x", "y", "", "z w"]}))
    table = Predictions(pd.DataFrame({"id": ["b", "b", "b", "a", "c", "c", "d"],
                                      "label": ["x", "u", "y", "x", "x", "y", "v"],
                                      "confidence": [0.9, 0.5, 0.4, 0.3, 0.8, 0.1, 0.7]}))
    matched = match_candidates(table, truth)
    np.testing.assert_array_equal(matched.prediction_rows, np.arange(7))
    np.testing.assert_array_equal(matched.truth_rows, [1, 1, 1, 0, 2, 2, 3])
    np.testing.assert_array_equal(matched.rank, [1, 2, 3, 1, 1, 2, 1])
    np.testing.assert_array_equal(matched.correct, [False, False, True, True, False, False, False])
    assert matched.top_n_oracle == 2 / 3  # a and b (at rank 3) of the landmark queries a, b, d
    one_label = Predictions(table.table[table.rank == 1].reset_index(drop=True))
    assert match_candidates(one_label, truth).top_n_oracle == oracle_gap(one_label.table, truth.table)
    with pytest.raises(ValueError, match="not in truth"):
        match_candidates(Predictions(table.table.assign(id=table.table["id"] + "?")), truth)
