"""delfverify.tuning.scoring: the fast ``PolicyScorer`` gives exactly ``rescale``'s confidences and the GAP of
``delfverify.metrics`` for every ranking, with ties, unicode ids and threads, and with several candidates per query
the GAP of ``pipeline.choose_candidates``'s choice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tuning_cases import candidates, query_rank, random_candidates_case, random_case

from delfverify.metrics import global_average_precision
from delfverify.pipeline import choose_candidates, rescale
from delfverify.tables import Predictions, format_confidence
from delfverify.tuning import PolicyScorer, SearchSpace, random_policies


def test_candidates_cover_every_policy_mode():
    assert {p.mode for p in candidates()} == {"bands", "additive", "multiplicative"}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 200), policy_seed=st.integers(0, 10_000),
       decimals=st.sampled_from([None, 1, 2]))
def test_scorer_confidences_equal_rescale_on_random_policies_and_tables(seed, n, policy_seed, decimals):
    """The fast scorer is a second implementation of the policy rules: it must give exactly the confidences of
    ``delfverify.pipeline.rescale``, the one ``rerank`` uses."""
    truth, predictions, correct, inliers = random_case(seed, n, decimals=decimals)
    confidence = predictions["confidence"].to_numpy()
    scorer = PolicyScorer(confidence, inliers, correct, query_rank(truth["id"]), np.zeros(n, int), [n])
    policies = candidates(25, policy_seed)
    table = Predictions(predictions)
    for policy in policies:
        expected = rescale(table, inliers, policy).confidence
        np.testing.assert_array_equal(scorer.confidences(policy), expected, err_msg=policy.to_dict())


@pytest.mark.parametrize("decimals", [None, 6])
def test_scorer_gaps_equal_global_average_precision_per_ranking(decimals):
    truth, predictions, correct, inliers = random_case(1, 500, decimals=None if decimals is None else 2)
    confidence = predictions["confidence"].to_numpy()
    fold = np.random.default_rng(2).integers(0, 3, 500)
    m = np.bincount(fold[truth["landmarks"].to_numpy() != ""], minlength=3)
    scorer = PolicyScorer(confidence, inliers, correct, query_rank(truth["id"]), fold, m, decimals=decimals)
    for policy in candidates(60):
        new, _ = policy.apply(confidence, inliers)
        if decimals is not None:  # as rerank writes them
            new = np.array([float(format_confidence(c)) for c in new])
        expected = [global_average_precision(predictions[fold == f].assign(confidence=new[fold == f]),
                                             truth[fold == f]).gap for f in range(3)]
        assert scorer.gaps(policy) == pytest.approx(expected, abs=1e-12), policy.to_dict()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3, 40), policy_seed=st.integers(0, 1000))
def test_scorer_gaps_equal_metrics_with_ties_and_unicode_ids(seed, n, policy_seed):
    alphabet = ["a", "B", "z", "\u00e9", "0", "\u4e2d"]
    rng = np.random.default_rng(seed)
    ids = sorted({"".join(rng.choice(alphabet, 3)) + str(i % 3) + "".join(rng.choice(alphabet, 2)) for i in range(n)})
    ids = list(rng.permutation(np.array(ids, object)))
    truth, predictions, correct, inliers = random_case(seed, len(ids), decimals=1, ids=ids)
    confidence = predictions["confidence"].to_numpy()
    m = int((truth["landmarks"] != "").sum())
    scorer = PolicyScorer(confidence, inliers, correct, query_rank(ids), np.zeros(len(ids), int), [m])
    for policy in random_policies(SearchSpace(), 5, policy_seed):
        new, _ = policy.apply(confidence, inliers)
        new = np.array([float(format_confidence(c)) for c in new])
        expected = global_average_precision(predictions.assign(confidence=new), truth).gap
        assert scorer.gaps(policy)[0] == pytest.approx(expected, abs=1e-12)


def test_scorer_threads_give_the_same_scores():
    truth, predictions, correct, inliers = random_case(4, 300)
    scorer = PolicyScorer(predictions["confidence"], inliers, correct, query_rank(truth["id"]),
                          np.arange(300) % 2, [100, 100])
    policies = candidates(50)
    np.testing.assert_array_equal(scorer.gaps_many(policies, workers=1), scorer.gaps_many(policies, workers=2))


def test_scorer_rejects_bad_input():
    truth, predictions, correct, inliers = random_case(5, 20)
    rank = query_rank(truth["id"])
    confidence = predictions["confidence"].to_numpy()
    with pytest.raises(ValueError, match="confidence must lie in"):
        PolicyScorer(confidence + 1, inliers, correct, rank, np.zeros(20, int), [5])
    with pytest.raises(ValueError, match="unique within each ranking"):
        PolicyScorer(confidence, inliers, correct, np.zeros(20, int), np.zeros(20, int), [5])
    with pytest.raises(ValueError, match="unique within each ranking"):  # one query's candidate 1 twice
        PolicyScorer(confidence, inliers, correct, rank // 2, np.zeros(20, int), [5], candidate=np.ones(20, int))
    PolicyScorer(confidence, inliers, correct, rank // 2, np.zeros(20, int), [5], candidate=rank % 2 + 1)
    with pytest.raises(ValueError, match="candidate >= 1"):
        PolicyScorer(confidence, inliers, correct, rank // 2, np.zeros(20, int), [5], candidate=rank % 2)
    with pytest.raises(ValueError, match="num_landmark_queries"):
        PolicyScorer(confidence, inliers, correct, rank, np.zeros(20, int), [0])
    with pytest.raises(ValueError, match="decimals"):
        PolicyScorer(confidence, inliers, correct, rank, np.zeros(20, int), [5], decimals=-1)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), queries=st.integers(3, 120), most=st.integers(1, 5),
       policy_seed=st.integers(0, 10_000), decimals=st.sampled_from([None, 1, 2]))
def test_scorer_gaps_equal_metrics_of_choose_candidates_on_random_candidate_tables(seed, queries, most, policy_seed,
                                                                                   decimals):
    """With several candidates per query the scorer chooses, per ranking, what ``rerank`` chooses: its GAP per
    ranking equals ``global_average_precision`` of the rows ``pipeline.choose_candidates`` picks, with their new
    confidences as ``rerank`` writes them."""
    truth, predictions, correct, inliers = random_candidates_case(seed, queries, most, decimals)
    frame = predictions.table
    fold_of_query = np.random.default_rng(seed + 1).integers(0, 3, queries)
    fold_of_query[:3] = [0, 1, 2]  # landmark queries: every fold has M >= 1
    m = np.bincount(fold_of_query[truth["landmarks"].to_numpy() != ""], minlength=3)
    fold = fold_of_query[predictions.query]
    scorer = PolicyScorer(frame["confidence"], inliers, correct, query_rank(truth["id"])[predictions.query], fold,
                          m, candidate=predictions.rank)
    for policy in candidates(10, policy_seed):
        np.testing.assert_array_equal(scorer.confidences(policy), rescale(predictions, inliers, policy).confidence)
        choice = choose_candidates(predictions, inliers, policy)
        written = [float(format_confidence(c)) for c in choice.rescaled.confidence[choice.rows]]
        chosen = frame.iloc[choice.rows].assign(confidence=written)
        expected = [global_average_precision(chosen[fold_of_query == f], truth[fold_of_query == f]).gap
                    for f in range(3)]
        assert scorer.gaps(policy) == pytest.approx(expected, abs=1e-12), policy.to_dict()
