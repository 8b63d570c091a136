"""delfverify.candidates: the choice among a query's candidates (the highest rescaled confidence, ties to the
classifier's order) and the early-stop rule, on synthetic inlier tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from delfverify.candidates import best_candidates, choose_candidates, undecided
from delfverify.policy import builtin_policy, policy_from_dict
from delfverify.rescaling import rescale
from delfverify.tables import Predictions


def test_best_candidates_by_hand():
    starts = np.array([0, 3, 4, 6])
    confidence = np.array([0.2, 0.7, 0.7, np.nan, 0.1, 0.1, 0.0])
    # query 0: a tie goes to the earlier row; 1: no prediction; 2: a tie again; 3: one candidate
    np.testing.assert_array_equal(best_candidates(starts, confidence), [1, 3, 4, 6])
    assert best_candidates(np.zeros(0, int), np.zeros(0)).size == 0


def _synthetic_candidates(rng, queries: int) -> tuple[Predictions, np.ndarray]:
    """Queries with 1-5 candidates at decreasing confidences, and inlier tables (K = 3, some missing)."""
    ids, confidence = [], []
    for q in range(queries):
        count = int(rng.integers(1, 6))
        ids += [f"q{q:03d}"] * count
        confidence += sorted(np.round(rng.random(count), 3), reverse=True)
    n = len(ids)
    predictions = Predictions(pd.DataFrame({"id": ids, "label": [f"l{i}" for i in range(n)],
                                            "confidence": confidence}))
    inliers = rng.poisson(rng.choice([2.0, 7.0, 20.0], n)[:, None], (n, 3)).astype(float)
    inliers[rng.random((n, 3)) < 0.1] = np.nan
    return predictions, inliers


@pytest.mark.parametrize("seed", range(5))
def test_best_candidates_is_the_argmax_with_ties_to_the_classifier(seed):
    rng = np.random.default_rng(seed)
    predictions, inliers = _synthetic_candidates(rng, 60)
    policy = builtin_policy("default", "rootsift")
    choice = choose_candidates(predictions, inliers, policy)
    new = choice.rescaled.confidence
    for q, start in enumerate(predictions.query_starts):
        rows = np.flatnonzero(predictions.ids == predictions.ids[start])
        assert choice.rows[q] == rows[np.argmax(new[rows])]  # np.argmax: the first of equal maxima


@pytest.mark.parametrize("policy_name", ["default", "seed", "additive"])
@pytest.mark.parametrize("seed", range(4))
def test_early_stop_rule_never_changes_a_choice(policy_name, seed):
    """Verifying rank by rank and stopping where ``undecided`` says so gives the choice of verifying everything,
    whatever inliers the candidates never verified would have had."""
    rng = np.random.default_rng(seed)
    predictions, inliers = _synthetic_candidates(rng, 80)
    policy = (policy_from_dict({"mode": "additive", "fusion": {"k": 3, "min_inliers": 4, "cap": 30, "weight": 1}})
              if policy_name == "additive" else builtin_policy(policy_name, "rootsift"))
    starts, query, rank = predictions.query_starts, predictions.query, predictions.rank
    ceiling = policy.max_confidence(predictions.confidence)
    verified = np.zeros(len(predictions), bool)
    open_queries = np.ones(len(starts), bool)
    for r in range(1, rank.max() + 1):
        verified |= (rank == r) & open_queries[query]
        known = np.where(verified[:, None], inliers, np.nan)
        open_queries = undecided(starts, rescale(predictions, known, policy).confidence, verified, ceiling)
    assert verified.sum() < len(predictions)  # some candidates were never verified
    chosen = choose_candidates(predictions, inliers, policy).rows
    for fill in (0.0, 1e6, np.nan):  # whatever the unverified candidates would have had
        counts = np.where(verified[:, None], inliers, fill)
        np.testing.assert_array_equal(choose_candidates(predictions, counts, policy).rows, chosen)
    assert verified[chosen].all()


def test_a_confirmed_first_candidate_decides_its_query():
    policy = builtin_policy("default", "rootsift")  # boost at 14 to 2/3 + c/3, suppress below 11 to c/3
    predictions = Predictions(pd.DataFrame({"id": ["a", "a", "b", "b", "c", "c"], "label": list("xyxyxy"),
                                            "confidence": [0.5, 0.4, 0.5, 0.4, 0.8, 0.1]}))
    verified = np.array([True, False] * 3)
    inliers = np.array([[16.0], [np.nan], [2.0], [np.nan], [12.0], [np.nan]])
    new = rescale(predictions, inliers, policy).confidence
    # a: boosted to 0.833 >= 2/3 + 0.4/3; b: suppressed to 0.167, rank 2 could reach 0.8; c: 0.8 unchanged, rank 2
    # could reach 2/3 + 0.1/3 = 0.7 at most
    decided = ~undecided(predictions.query_starts, new, verified, policy.max_confidence(predictions.confidence))
    np.testing.assert_array_equal(decided, [True, False, True])
