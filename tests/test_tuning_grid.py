"""delfverify.tuning.grid: the small space is ``default`` and its neighbours: a handful of parameters a few steps
around default's values (thresholds scaled to the extractor), every candidate valid, distances in grid steps."""

from __future__ import annotations

import numpy as np
import pytest

from delfverify.policy import builtin_policy, policy_from_dict, tier_actions
from delfverify.tuning import SmallSpace, grid_candidates
from delfverify.tuning.grid import PARAMETERS
from delfverify.tuning.search import as_candidate, candidate_key


@pytest.mark.parametrize("extractor", ["rootsift", "delf"])
def test_grid_is_default_and_its_neighbours(extractor):
    default = builtin_policy("default", extractor)
    suppress, boost = default.bands[0].min_inliers, default.bands[0].boost_inliers
    space = SmallSpace()
    grid = grid_candidates(space, default)
    assert candidate_key(grid.docs[0]) == candidate_key(as_candidate(default, space))
    assert grid.distance[0] == 0 and (grid.distance[1:] > 0).all()
    assert len({candidate_key(d) for d in grid.docs}) == len(grid.docs)
    policies = [policy_from_dict(d) for d in grid.docs]  # all valid
    bands = [p.bands[0] for p in policies]
    assert {b.k for b in bands} == {1, 2, 3, 4, 5}
    assert {b.min_inliers for b in bands} == set(range(suppress - 3, suppress + 4))
    assert {b.boost_inliers for b in bands} == set(range(boost - 3, boost + 4))
    assert {b.suppress.high for b in bands} == {1 / 2, 1 / 3, 1 / 4}
    assert {b.boost.low for b in bands} == {1 / 2, 2 / 3, 3 / 4}
    assert all(p.mode == "bands" and len(p.bands) == 1 and p.combine == "max" for p in policies)
    # One step from default: one parameter moved to a neighbouring value.
    neighbours = [b for b, d in zip(bands, grid.distance) if d == 1]
    assert len(neighbours) == 2 * len(PARAMETERS)
    assert {(b.k, b.min_inliers, b.boost_inliers) for b in neighbours} >= {
        (2, suppress, boost), (4, suppress, boost), (3, suppress - 1, boost), (3, suppress + 1, boost),
        (3, suppress, boost - 1), (3, suppress, boost + 1)}


def test_grid_distance_counts_steps_per_parameter():
    default = builtin_policy("default", "rootsift")
    grid = grid_candidates(SmallSpace(), default)
    for doc, steps in zip(grid.docs[1:200], grid.steps[1:200]):
        band = doc["bands"][0]
        suppress_weight = 1 / band["suppress"]["multiply"] - 1
        boost_weight = band["boost"]["range"][0] / (1 - band["boost"]["range"][0])
        expected = [abs(band["k"] - 3), abs(band["min_inliers"] - default.bands[0].min_inliers),
                    abs(band["boost_inliers"] - default.bands[0].boost_inliers),
                    abs(round(suppress_weight) - 2), abs(round(boost_weight) - 2)]
        assert steps.tolist() == expected


def test_grid_respects_max_k_and_the_order_of_thresholds():
    space = SmallSpace(max_k=2, threshold_offsets=(-6, 0, 6))
    default = builtin_policy("default", "rootsift")
    suppress, boost = default.bands[0].min_inliers, default.bands[0].boost_inliers
    assert suppress + 6 > boost
    grid = grid_candidates(space, default)
    bands = [policy_from_dict(d).bands[0] for d in grid.docs]
    assert max(b.k for b in bands) == 2 and grid.docs[0]["bands"][0]["k"] == 2
    assert all(1 <= b.min_inliers <= b.boost_inliers for b in bands)
    assert suppress + 6 in {b.min_inliers for b in bands}  # with the highest boost only
    assert all(b.boost_inliers == boost + 6 for b in bands if b.min_inliers == suppress + 6)


def test_tier_actions_put_default_in_thirds():
    suppress, boost = tier_actions(2.0)
    assert (suppress.low, suppress.high, boost.low, boost.high) == (0.0, 1 / 3, 2 / 3, 1.0)
    c = np.array([0.0, 0.3, 1.0])
    np.testing.assert_allclose(tier_actions(1.0)[0](c), c / 2)
    np.testing.assert_allclose(tier_actions(3.0)[1](c), (c + 3) / 4)
    with pytest.raises(ValueError, match="weight must be a positive number"):
        tier_actions(0.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_k": 0}, "max_k must be a positive integer"),
    ({"selection": "best"}, "selection must be one of"),
    ({"ks": (3, 1)}, "ks must be increasing positive integers"),
    ({"threshold_offsets": (-1, 1)}, "threshold_offsets must be increasing integers holding 0"),
    ({"weights": (1.0, 3.0)}, "weights must be increasing positive numbers holding 2"),
])
def test_small_space_validation_names_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SmallSpace(**kwargs)


def test_grid_needs_a_one_band_default_with_both_tiers():
    with pytest.raises(ValueError, match="default must be one band with a suppress and a boost tier"):
        grid_candidates(SmallSpace(), builtin_policy("seed", "rootsift"))
