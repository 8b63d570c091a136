"""delfverify.matching: KD-tree nearest neighbours with a distance bound, ratio test and mutual filter."""

from __future__ import annotations

import numpy as np
import pytest

from delfverify.matching import MatchConfig, Matches, match_descriptors


def _unit(rows) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _random_unit(n, dim, seed) -> np.ndarray:
    return _unit(np.random.default_rng(seed).normal(size=(n, dim)))


def test_match_descriptors_finds_exact_copies_in_b_order():
    desc_a = _random_unit(50, 16, seed=0)
    perm = np.random.default_rng(1).permutation(50)
    desc_b = desc_a[perm]
    matches = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.1))
    assert isinstance(matches, Matches)
    assert len(matches) == 50
    np.testing.assert_array_equal(matches.pairs[:, 1], np.arange(50))
    np.testing.assert_array_equal(matches.pairs[:, 0], perm)
    np.testing.assert_allclose(matches.distances, 0, atol=1e-6)
    assert matches.pairs.dtype == np.int64 and matches.distances.dtype == np.float32


def test_match_descriptors_respects_distance_bound():
    desc_a = np.eye(4, dtype=np.float32)
    # B's rows lie at known distances from A's first row: 0.3, 0.79, 0.81, 1.2 (nearest is always A[0]).
    offsets = np.array([0.3, 0.79, 0.81, 1.2], np.float32)
    desc_b = np.zeros((4, 4), np.float32)
    desc_b[:, 0] = 1.0 + offsets
    matches = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8))
    np.testing.assert_array_equal(matches.pairs, [[0, 0], [0, 1]])
    np.testing.assert_allclose(matches.distances, [0.3, 0.79], rtol=1e-5)
    assert np.all(matches.distances < 0.8)


def test_match_descriptors_distances_are_true_euclidean_distances():
    desc_a = _random_unit(40, 8, seed=2)
    desc_b = _random_unit(60, 8, seed=3)
    matches = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=2.5))
    assert len(matches) == 60  # unit vectors are at most 2 apart: nothing misses
    expected = np.linalg.norm(desc_a[matches.pairs[:, 0]] - desc_b[matches.pairs[:, 1]], axis=1)
    np.testing.assert_allclose(matches.distances, expected, rtol=1e-5)
    brute = np.linalg.norm(desc_b[:, None] - desc_a[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(matches.pairs[:, 0], brute)


def test_match_descriptors_miss_returns_nothing():
    desc_a = _unit([[1, 0, 0]])
    desc_b = _unit([[0, 1, 0], [0, 0, 1]])  # both sqrt(2) away
    matches = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8))
    assert len(matches) == 0
    assert matches.pairs.shape == (0, 2) and matches.distances.shape == (0,)


def test_match_descriptors_ratio_test_removes_ambiguous_matches():
    desc_a = _unit([[1, 0, 0, 0], [1, 0.05, 0, 0], [0, 0, 1, 0]])  # A[0] and A[1] nearly identical
    desc_b = _unit([[1, 0.025, 0, 0], [0, 0, 1, 0.05]])  # B[0] halfway between A[0] and A[1]
    plain = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8))
    assert len(plain) == 2
    ratio = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8, ratio=0.8))
    # B[0] is about equally close to A[0] and A[1]: ambiguous, dropped. B[1] is unambiguous: kept.
    np.testing.assert_array_equal(ratio.pairs, [[2, 1]])


def test_match_descriptors_ratio_test_keeps_match_without_second_neighbour_in_bound():
    desc_a = _unit([[1, 0, 0], [0, 1, 0]])
    desc_b = _unit([[1, 0.1, 0]])  # second neighbour is ~1.3 away, outside the bound (inf distance)
    matches = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8, ratio=0.8))
    np.testing.assert_array_equal(matches.pairs, [[0, 0]])


def test_match_descriptors_ratio_test_with_single_descriptor_in_a():
    desc_a = _unit([[1, 0, 0]])
    desc_b = _unit([[1, 0.1, 0], [0, 0, 1]])
    matches = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8, ratio=0.8))
    np.testing.assert_array_equal(matches.pairs, [[0, 0]])


def test_match_descriptors_mutual_filter():
    desc_a = _unit([[1, 0, 0], [0, 1, 0]])
    # B[0] and B[1] both have A[0] as nearest, but A[0]'s nearest in B is B[1]; B[2] <-> A[1] is mutual.
    desc_b = _unit([[1, 0.3, 0], [1, 0.05, 0], [0.1, 1, 0]])
    plain = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8))
    np.testing.assert_array_equal(plain.pairs, [[0, 0], [0, 1], [1, 2]])
    mutual = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=0.8, mutual=True))
    np.testing.assert_array_equal(mutual.pairs, [[0, 1], [1, 2]])
    expected = np.linalg.norm(desc_a[mutual.pairs[:, 0]] - desc_b[mutual.pairs[:, 1]], axis=1)
    np.testing.assert_allclose(mutual.distances, expected, rtol=1e-5)


def test_match_descriptors_mutual_matches_are_one_to_one():
    desc_a = _random_unit(80, 8, seed=4)
    desc_b = _random_unit(120, 8, seed=5)
    matches = match_descriptors(desc_a, desc_b, MatchConfig(max_distance=2.5, ratio=0.9, mutual=True))
    assert len(matches) > 0
    assert len(np.unique(matches.pairs[:, 0])) == len(matches)
    assert len(np.unique(matches.pairs[:, 1])) == len(matches)


@pytest.mark.parametrize("config", [MatchConfig(), MatchConfig(ratio=0.8), MatchConfig(ratio=0.8, mutual=True)])
@pytest.mark.parametrize("n_a, n_b", [(0, 5), (5, 0), (0, 0)])
def test_match_descriptors_empty_inputs_keep_shapes(config, n_a, n_b):
    matches = match_descriptors(np.zeros((n_a, 40), np.float32), np.ones((n_b, 40), np.float32), config)
    assert matches.pairs.shape == (0, 2) and matches.pairs.dtype == np.int64
    assert matches.distances.shape == (0,) and matches.distances.dtype == np.float32


@pytest.mark.parametrize(
    "shape_a, shape_b", [((5, 40), (5, 128)), ((5, 40), (40,)), ((0, 40), (0, 128)), ((5,), (5,))]
)
def test_match_descriptors_dimension_mismatch_raises_value_error(shape_a, shape_b):
    with pytest.raises(ValueError, match="descriptor shapes"):
        match_descriptors(np.zeros(shape_a, np.float32), np.zeros(shape_b, np.float32))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"max_distance": 0}, "max_distance"), ({"max_distance": -1.0}, "max_distance"),
     ({"max_distance": float("nan")}, "max_distance"), ({"ratio": 0}, "ratio"), ({"ratio": 1.5}, "ratio"),
     ({"ratio": -0.2}, "ratio")],
)
def test_match_config_invalid_values_raise_value_error_naming_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MatchConfig(**kwargs)


def test_match_config_defaults_are_the_research_settings():
    config = MatchConfig()
    assert (config.max_distance, config.ratio, config.mutual) == (0.8, None, False)
    assert MatchConfig(ratio=1.0).ratio == 1.0
