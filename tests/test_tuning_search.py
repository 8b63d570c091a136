"""delfverify.tuning.search: random candidates are valid, distinct and seeded; built-ins become candidates of the
search's space; coordinate ascent never ends below where it started."""

from __future__ import annotations

import numpy as np
from tuning_cases import separable

from delfverify.policy import builtin_policy, policy_from_dict
from delfverify.tuning import SearchSpace, random_policies
from delfverify.tuning.crossval import assign_folds, collect, fold_scorer
from delfverify.tuning.search import CandidatePool, as_candidate, climb, mean_over_folds


def test_random_policies_are_valid_distinct_and_seeded():
    space = SearchSpace(max_k=3)
    policies = random_policies(space, 80, seed=4)
    assert len(policies) == 80
    assert len({str(p.to_dict()) for p in policies}) == 80
    assert [p.to_dict() for p in random_policies(space, 80, seed=4)] == [p.to_dict() for p in policies]
    assert [p.to_dict() for p in random_policies(space, 80, seed=5)] != [p.to_dict() for p in policies]
    assert max(p.max_k for p in policies) <= 3
    assert all(p.selection == "spread" for p in policies)


def test_builtins_become_candidates_of_the_space():
    space = SearchSpace(max_k=2, selection="random")
    doc = as_candidate(builtin_policy("seed", "rootsift"), space)
    policy = policy_from_dict(doc)
    assert policy.selection == "random" and policy.max_k == 2
    assert [b.min_inliers for b in policy.bands] == [b.min_inliers for b in builtin_policy("seed", "rootsift").bands]


def test_coordinate_ascent_never_ends_below_its_start():
    truth, tables, inliers = separable(seed=7, n=120, files=2)
    data = collect(tables, truth, inliers)
    scorer = fold_scorer(data, assign_folds(truth, 3, seed=0), 3)
    space = SearchSpace(random_candidates=0, coordinate_rounds=2)
    pool = CandidatePool(scorer, data.num_files, 1, 3, workers=1)
    start = pool.add([as_candidate(builtin_policy("seed", "rootsift"), space)])
    objective = mean_over_folds(np.ones(3, bool))
    best, seen = climb(pool, start, objective, space)
    scores = objective(pool.scores())
    assert scores[best] >= scores[start[0]]
    assert scores[best] == scores[seen].max()
    assert len(seen) > 1
