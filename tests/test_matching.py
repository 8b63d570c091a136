"""delfverify.matching: exact nearest neighbours with a distance bound, ratio test and mutual filter; the
brute-force method against the KD-tree reference."""

from __future__ import annotations

import csv
import itertools
from dataclasses import replace

import numpy as np
import pytest

from delfverify import matching
from delfverify.matching import MatchConfig, Matches, choose_method, limit_blas_threads, match_descriptors


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
     ({"ratio": -0.2}, "ratio"), ({"method": "faiss"}, "method"), ({"method": "KDTree"}, "method")],
)
def test_match_config_invalid_values_raise_value_error_naming_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MatchConfig(**kwargs)


def test_match_config_defaults_are_the_research_settings():
    config = MatchConfig()
    assert (config.max_distance, config.ratio, config.mutual, config.method) == (0.8, None, False, "auto")
    assert MatchConfig(ratio=1.0).ratio == 1.0


# --- brute force against the KD-tree reference ---------------------------------------------------------------


def _same_as_kdtree(desc_a, desc_b, config) -> Matches:
    """Match with both methods, assert identical pairs and bit-identical distances, return the matches."""
    brute = match_descriptors(desc_a, desc_b, replace(config, method="brute"))
    kdtree = match_descriptors(desc_a, desc_b, replace(config, method="kdtree"))
    np.testing.assert_array_equal(brute.pairs, kdtree.pairs)
    np.testing.assert_array_equal(brute.distances, kdtree.distances)
    assert brute.pairs.dtype == np.int64 and brute.distances.dtype == np.float32
    return kdtree


def _related_pair(n_a, n_b, dim, seed) -> tuple[np.ndarray, np.ndarray]:
    """Unit descriptors; half of B are copies of rows of A with noise of random strength (nearest distances
    spread across 0.8), the other half unrelated."""
    rng = np.random.default_rng(seed)
    desc_a = _unit(rng.normal(size=(n_a, dim)))
    desc_b = _unit(rng.normal(size=(n_b, dim)))
    near = n_b // 2 if n_a else 0
    noise = rng.normal(size=(near, dim)) * rng.uniform(0.1, 1.2, size=(near, 1)) / np.sqrt(dim)
    desc_b[:near] = _unit(desc_a[rng.integers(0, max(n_a, 1), near)] + noise)
    return desc_a, desc_b


def _quantised(desc) -> np.ndarray:
    """RootSIFT as it will be stored: round(255 d), re-normalised to unit length, float32."""
    return _unit(np.round(255 * np.asarray(desc, np.float64)))


CONFIGS = [
    MatchConfig(max_distance=0.8),
    MatchConfig(max_distance=0.8, ratio=0.8),
    MatchConfig(max_distance=0.8, mutual=True),
    MatchConfig(max_distance=0.8, ratio=0.8, mutual=True),
    MatchConfig(max_distance=0.45, ratio=0.9, mutual=True),  # the bound binds often
    MatchConfig(max_distance=2.5, ratio=0.7),  # unit vectors are at most 2 apart: the bound never binds
    MatchConfig(max_distance=float("inf"), mutual=True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.max_distance}-{c.ratio}-{c.mutual}")
@pytest.mark.parametrize("dim", [7, 40, 128])
@pytest.mark.parametrize("n_a, n_b", [(1, 50), (50, 1), (2, 2), (2, 50), (50, 50), (1, 1)])
def test_brute_equals_kdtree_on_random_descriptors(config, dim, n_a, n_b):
    desc_a, desc_b = _related_pair(n_a, n_b, dim, seed=n_a * 1000 + n_b + dim)
    _same_as_kdtree(desc_a, desc_b, config)


@pytest.mark.parametrize("config", CONFIGS[:4], ids=lambda c: f"{c.max_distance}-{c.ratio}-{c.mutual}")
@pytest.mark.parametrize("dim", [40, 128])
def test_brute_equals_kdtree_on_1000_random_descriptors(config, dim):
    desc_a, desc_b = _related_pair(1000, 400, dim, seed=dim)
    matches = _same_as_kdtree(desc_a, desc_b, config)
    assert len(matches) > 50


@pytest.mark.parametrize("config", [MatchConfig(), MatchConfig(ratio=0.8, mutual=True)])
def test_brute_equals_kdtree_on_empty_inputs(config):
    for n_a, n_b in [(0, 5), (5, 0), (0, 0)]:
        matches = _same_as_kdtree(np.zeros((n_a, 40), np.float32), np.ones((n_b, 40), np.float32), config)
        assert matches.pairs.shape == (0, 2) and matches.distances.shape == (0,)


@pytest.mark.parametrize("config", CONFIGS[:4], ids=lambda c: f"{c.max_distance}-{c.ratio}-{c.mutual}")
def test_brute_equals_kdtree_across_many_blocks(monkeypatch, config):
    monkeypatch.setattr(matching, "_BLOCK_ENTRIES", 500)  # a few rows of B per block
    desc_a, desc_b = _related_pair(120, 230, 40, seed=7)
    assert len(_same_as_kdtree(desc_a, desc_b, config)) > 10


@pytest.mark.parametrize("config", [MatchConfig(max_distance=0.8), MatchConfig(max_distance=0.8, mutual=True)])
def test_brute_equals_kdtree_with_duplicate_descriptors_in_a(config):
    # Exact ties: cKDTree picks among equal distances by its traversal order, not by index.
    rng = np.random.default_rng(11)
    desc_a, desc_b = _related_pair(300, 200, 40, seed=11)
    copies = rng.choice(300, size=(60, 2), replace=False)
    desc_a[copies[:, 1]] = desc_a[copies[:, 0]]
    desc_b[:100] = _unit(desc_a[copies[rng.integers(0, 60, 100), 0]] + rng.normal(scale=0.05, size=(100, 40)))
    matches = _same_as_kdtree(desc_a, desc_b, config)
    assert np.isin(matches.pairs[:, 0], copies).sum() >= 40  # these matches had two nearest at equal distance


@pytest.mark.parametrize("config", [MatchConfig(max_distance=0.8, mutual=True),
                                    MatchConfig(max_distance=0.8, ratio=0.8, mutual=True)])
def test_brute_equals_kdtree_with_duplicate_descriptors_in_b_under_mutual_check(config):
    # Duplicates in B tie in the mutual check's reverse query (A's nearest in B, no bound).
    rng = np.random.default_rng(12)
    desc_a, desc_b = _related_pair(200, 300, 128, seed=12)
    copies = rng.choice(np.arange(150), size=(40, 2), replace=False)  # among the near copies of A
    desc_b[copies[:, 1]] = desc_b[copies[:, 0]]
    matches = _same_as_kdtree(desc_a, desc_b, config)
    kept = np.isin(matches.pairs[:, 1], copies)
    assert kept.sum() >= 10
    assert len(np.unique(matches.pairs[:, 0])) == len(matches)


@pytest.mark.parametrize("ratio", [None, 0.8, 1.0])
@pytest.mark.parametrize("dim", [7, 40, 128])
def test_brute_equals_kdtree_on_exact_and_near_ties(ratio, dim):
    # Permutations of one vector are all at the same distance from a constant vector in exact arithmetic; summed
    # in float64 in different orders, their distances tie exactly or differ by an ulp or two.
    rng = np.random.default_rng(dim)
    base = rng.uniform(0, 1, size=dim)
    desc_a = np.vstack([rng.permutation(base) for _ in range(60)] + [rng.uniform(0, 1, size=(40, dim))])
    desc_b = np.vstack([np.full((5, dim), base.mean()) + rng.normal(scale=1e-9, size=(5, dim)),
                        np.full((1, dim), base.mean())])
    bound = float(np.linalg.norm(desc_a[0] - desc_b[-1])) * 1.5
    for mutual in (False, True):
        _same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=bound, ratio=ratio, mutual=mutual))


def test_brute_equals_kdtree_with_bound_right_at_a_distance():
    desc_a, desc_b = _related_pair(200, 200, 128, seed=3)
    nearest, _ = matching._query_kdtree(desc_a, desc_b, 1, 2.5)  # float64, as cKDTree compares them
    for distance in np.sort(nearest[:, 0])[[30, 100]]:
        found = {}
        for bound in (distance, np.nextafter(distance, 0), np.nextafter(distance, 3), np.float32(distance)):
            found[bound] = len(_same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=float(bound))))
            _same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=float(bound), ratio=0.9, mutual=True))
        assert found[np.nextafter(distance, 3)] == found[np.nextafter(distance, 0)] + 1  # the bound decided


def test_brute_equals_kdtree_with_ratio_right_at_a_distance_ratio():
    desc_a, desc_b = _related_pair(200, 200, 40, seed=4)
    dist, _ = matching._query_kdtree(desc_a, desc_b, 2, 2.5)
    for row in (0, 10, 50, 120):
        ratio = dist[row, 0] / dist[row, 1]
        for r in (ratio, np.nextafter(ratio, 0), np.nextafter(ratio, 1)):
            matches = _same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=2.5, ratio=float(r)))
            kept = row in matches.pairs[:, 1]
            assert kept == (dist[row, 0] < float(r) * dist[row, 1])


@pytest.mark.parametrize("factor", [1e-30, 1e30])
def test_brute_equals_kdtree_on_tiny_and_huge_descriptors(factor):
    desc_a, desc_b = _related_pair(80, 80, 40, seed=5)
    desc_a, desc_b = desc_a.astype(np.float64) * factor, desc_b.astype(np.float64) * factor
    assert len(_same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=0.8 * factor, ratio=0.9))) > 10


def test_brute_equals_kdtree_on_float64_descriptors():
    desc_a, desc_b = _related_pair(100, 100, 128, seed=6)
    desc_a = desc_a.astype(np.float64) + np.random.default_rng(6).normal(scale=1e-9, size=desc_a.shape)
    _same_as_kdtree(desc_a, desc_b.astype(np.float64), MatchConfig(ratio=0.8, mutual=True))


@pytest.mark.parametrize("dtype, scale", [(np.float16, 1.0), (np.uint8, 512.0)])  # uint8: raw-SIFT-like bytes
def test_brute_equals_kdtree_on_half_and_byte_descriptors(dtype, scale):
    desc_a, desc_b = _related_pair(100, 100, 128, seed=9)
    desc_a, desc_b = (np.abs(desc_a) * scale).astype(dtype), (np.abs(desc_b) * scale).astype(dtype)
    assert len(_same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=0.8 * scale, ratio=0.9, mutual=True))) > 10


# --- brute force: one product's shortcuts against its exact paths ---------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.max_distance}-{c.ratio}-{c.mutual}")
def test_brute_equals_kdtree_when_every_decision_is_left_to_the_exact_paths(monkeypatch, config):
    # A float32 eps of 1/4 makes the error margin cover every estimate: no row's nearest is certain, every entry
    # within the bound is recomputed in float64, and every mutual check looks A's nearest neighbour up again.
    monkeypatch.setattr(matching, "_EPS", 0.25)
    lookups = []
    match_brute = matching._match_brute
    monkeypatch.setattr(matching, "_match_brute", lambda *args: lookups.append(args) or match_brute(*args))
    desc_a, desc_b = _related_pair(60, 80, 40, seed=13)
    matches = _same_as_kdtree(desc_a, desc_b, config)
    assert len(lookups) == 1 + (config.mutual and len(matches) > 0)  # the match, then A's nearest in B


def _estimates_off_by_nine_tenths_of_the_margin(monkeypatch, seed):
    """Replace every float32 estimate of a squared distance by the exact value plus or minus 0.9 times the error
    margin (at random): the decisions must come out the same for any estimates within the margin. The margin here
    is computed as ``_match_brute`` computes it, from this block's largest norm (at most the whole of B's)."""
    rng = np.random.default_rng(seed)
    products = matching._products

    def off(queries, scale, data32):
        dim = queries.shape[1]
        scaled_a = data32[:, :dim].astype(np.float64) / -2  # exactly: A's descriptors are float32 in these tests
        for start, queries32, h in products(queries, scale, data32):
            scaled_b = queries[start : start + len(h)].astype(np.float64) * scale
            exact = (scaled_b**2).sum(1)[:, None] + (scaled_a**2).sum(1)[None, :] - 2 * scaled_b @ scaled_a.T
            margin = (2 * dim + 16) * (matching._EPS * (data32[:, dim + 1].max() + queries32[:, dim].max())
                                       + matching._TINY)
            h[:] = exact + 0.9 * margin * rng.choice([-1.0, 1.0], size=h.shape)
            yield start, queries32, h

    monkeypatch.setattr(matching, "_products", off)


def _with_mirrors(desc_a, desc_b) -> tuple[np.ndarray, np.ndarray]:
    """Near-ties on both sides: the last third of A mirrors A's nearest to each of the first rows of B through
    that row (two descriptors of A as far from it), and B's middle rows mirror its first through A's nearest."""
    n = len(desc_a) // 3
    _, nearest = matching._query_kdtree(desc_a, desc_b[:n], 1, np.inf)
    desc_a, desc_b = desc_a.copy(), desc_b.copy()
    desc_b[n : 2 * n] = 2 * desc_a[nearest[:, 0]] - desc_b[:n]
    desc_a[-n:] = 2 * desc_b[:n] - desc_a[nearest[:, 0]]
    return desc_a, desc_b


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.max_distance}-{c.ratio}-{c.mutual}")
@pytest.mark.parametrize("dim", [7, 128])
def test_brute_equals_kdtree_when_every_estimate_is_nearly_as_wrong_as_allowed(monkeypatch, config, dim):
    _estimates_off_by_nine_tenths_of_the_margin(monkeypatch, seed=dim)
    desc_a, desc_b = _related_pair(150, 200, dim, seed=dim + 17)
    _same_as_kdtree(desc_a, desc_b, config)
    _same_as_kdtree(*_with_mirrors(desc_a, desc_b), config)


def test_brute_equals_kdtree_with_bound_and_ratio_at_the_second_distance_and_wrong_estimates(monkeypatch):
    _estimates_off_by_nine_tenths_of_the_margin(monkeypatch, seed=18)
    desc_a, desc_b = _related_pair(200, 200, 40, seed=18)
    dist, _ = matching._query_kdtree(desc_a, desc_b, 2, 2.5)
    for row in (0, 10, 50, 120):
        ratio = dist[row, 0] / dist[row, 1]
        for bound in (dist[row, 1], np.nextafter(dist[row, 1], 3), dist[row, 0], np.nextafter(dist[row, 0], 3)):
            for r, mutual in itertools.product((ratio, np.nextafter(ratio, 0), np.nextafter(ratio, 1), ratio / 2),
                                               (False, True)):
                config = MatchConfig(max_distance=float(bound), ratio=min(float(r), 1.0), mutual=mutual)
                _same_as_kdtree(desc_a, desc_b, config)


@pytest.mark.parametrize("ratio", [None, 0.8])
def test_brute_equals_kdtree_when_several_descriptors_of_b_compete_for_one_of_a(ratio):
    # 120 noisy copies of 30 descriptors of A: the copies that chose the same descriptor are each other's rivals
    # in the mutual check, and only the nearest of them is A's mutual nearest neighbour.
    rng = np.random.default_rng(14)
    desc_a = _random_unit(200, 128, seed=14)
    owners = rng.integers(0, 30, 120)
    desc_b = _unit(desc_a[owners] + rng.normal(size=(120, 128)) * rng.uniform(0.002, 0.01, size=(120, 1)))
    matches = _same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=0.8, ratio=ratio, mutual=True))
    assert len(matches) == len(np.unique(owners))


@pytest.mark.parametrize("ratio", [None, 0.8])
@pytest.mark.parametrize("dim", [7, 40, 128])
def test_brute_equals_kdtree_when_two_descriptors_of_b_are_as_far_from_one_of_a(ratio, dim):
    # a + e and a - e are equally far from a in exact arithmetic; rounded, their distances tie or differ by an ulp,
    # far less than the float32 error margin, so the mutual check must look A's nearest neighbour up exactly.
    rng = np.random.default_rng(dim)
    desc_a = rng.normal(size=(100, dim)).astype(np.float32)
    noise = rng.normal(size=(50, dim)).astype(np.float32) * 0.05
    desc_b = np.vstack([desc_a[:50] + noise, desc_a[:50] - noise, rng.normal(size=(20, dim)).astype(np.float32)])
    matches = _same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=2.0, ratio=ratio, mutual=True))
    assert len(matches) > 0


@pytest.mark.parametrize("config", [MatchConfig(max_distance=0.8, ratio=0.8, mutual=True), MatchConfig(),
                                    MatchConfig(max_distance=0.8, mutual=True)])
def test_brute_equals_kdtree_on_quantised_descriptors_with_duplicates(config):
    # Quantised RootSIFT-like descriptors: coarse values, so exact duplicates and exact ties are common.
    rng = np.random.default_rng(15)
    desc_a, desc_b = _related_pair(300, 300, 128, seed=15)
    desc_a, desc_b = _quantised(np.abs(desc_a) ** 2), _quantised(np.abs(desc_b) ** 2)
    desc_a[rng.choice(300, 40, replace=False)] = desc_a[rng.choice(300, 40)]
    desc_b[rng.choice(300, 40, replace=False)] = desc_a[rng.choice(300, 40)]
    assert len(_same_as_kdtree(desc_a, desc_b, config)) > 20


def test_brute_equals_kdtree_on_subnormal_float32_descriptors():
    # Too small for the power-of-two scale to bring them to unit size in float32: still exact, only slower.
    desc_a, desc_b = _related_pair(40, 40, 16, seed=16)
    desc_a, desc_b = desc_a * np.float32(1e-39), desc_b * np.float32(1e-39)
    _same_as_kdtree(desc_a, desc_b, MatchConfig(max_distance=0.8e-39, ratio=0.9, mutual=True))


def test_chooser_rivals_are_the_best_other_row_that_chose_the_same_column():
    col1 = np.array([0, 1, 0, 0, 2, 2])
    v1 = np.array([0.5, 0.1, 0.3, 0.3, 0.7, 0.9], np.float32)
    # Column 0 was chosen by rows 0, 2 and 3 (two of them tie at its best), column 1 by row 1 alone, 2 by 4 and 5.
    rivals = matching._chooser_rivals(col1, v1, 4)
    np.testing.assert_array_equal(rivals, np.float32([0.3, np.inf, 0.3, 0.3, 0.9, 0.7]))
    assert rivals.dtype == np.float32


@pytest.mark.parametrize("n_a, n_b", [(1, 3000), (2000, 7), (200, 300), (64, 64)])
def test_brute_force_products_stay_within_a_block_and_come_in_parts(monkeypatch, n_a, n_b):
    monkeypatch.setattr(matching, "_BLOCK_ENTRIES", 4096)
    monkeypatch.setattr(matching, "_PART_ENTRIES", 1024)
    desc_a, desc_b = _random_unit(n_a, 40, seed=19), _random_unit(n_b, 40, seed=20)
    data32 = matching._augmented(desc_a, 1.0, -2.0, 41, np.empty((n_a, 42), np.float32))
    covered = 0
    for start, queries32, h in matching._products(desc_b, 1.0, data32):
        assert start == covered and h.shape == (len(queries32), n_a) and queries32.shape == (len(h), 42)
        assert queries32.size <= 4096 and (h.size <= 1024 or len(h) == 1)
        expected = ((desc_b[start : start + len(h), None] - desc_a[None]) ** 2).sum(axis=2)  # squared distances
        np.testing.assert_allclose(h, expected, atol=1e-5)
        covered += len(h)
    assert covered == n_b


@pytest.mark.parametrize("method", ["brute", "kdtree", "auto"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_match_descriptors_non_finite_raises_value_error(method, bad):
    desc_a, desc_b = _related_pair(10, 10, 40, seed=8)
    desc_b[3, 5] = bad
    with pytest.raises(ValueError, match="finite"):
        match_descriptors(desc_a, desc_b, MatchConfig(method=method))
    with pytest.raises(ValueError, match="finite"):
        match_descriptors(desc_b, desc_a, MatchConfig(method=method))


@pytest.fixture(scope="module")
def dev_rootsift(dev_data):
    """RootSIFT descriptors (1,000 features) of two dev gallery photos of one landmark and one of another."""
    from delfverify.extractors.rootsift import RootSIFT
    from delfverify.images import load_image

    with open(dev_data / "gallery.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = rows[0]["landmark_id"]
    same = [row["id"] for row in rows if row["landmark_id"] == first][:2]
    other = next(row["id"] for row in rows if row["landmark_id"] != first)
    extractor = RootSIFT(max_features=1000)
    return [extractor.extract(load_image(dev_data / "gallery" / f"{key}.jpg")).unit_descriptors
            for key in same + [other]]


@pytest.mark.parametrize("quantise", [False, True], ids=["float", "quantised"])
@pytest.mark.parametrize("config", [MatchConfig(max_distance=0.8, ratio=0.8, mutual=True),  # RootSIFT's
                                    MatchConfig(max_distance=0.8),  # DELF's
                                    MatchConfig(max_distance=0.8, ratio=0.8)])
def test_brute_equals_kdtree_on_dev_rootsift_descriptors(dev_rootsift, config, quantise):
    same_a, same_b, other = (_quantised(d) if quantise else d for d in dev_rootsift)
    assert len(_same_as_kdtree(same_a, same_b, config)) > 0
    _same_as_kdtree(same_a, other, config)


def test_match_config_fingerprint_fields_leave_out_the_method():
    configs = [MatchConfig(ratio=0.8, mutual=True, method=method) for method in matching.METHODS]
    assert all(c.fingerprint_fields() == {"max_distance": 0.8, "ratio": 0.8, "mutual": True} for c in configs)
    assert MatchConfig(ratio=0.7).fingerprint_fields() != MatchConfig(ratio=0.8).fingerprint_fields()


@pytest.mark.parametrize(
    "dim, n_a, n_b, method",
    [(128, 1000, 1000, "brute"), (40, 1000, 1000, "brute"), (8, 200, 200, "brute"), (128, 4000, 10, "brute"),
     (128, 100, 100, "kdtree"), (40, 1, 1000, "kdtree"), (6, 4000, 4000, "kdtree"), (2, 10**5, 10**5, "kdtree")],
)
def test_choose_method_takes_brute_force_from_8_dimensions_and_200_by_200(dim, n_a, n_b, method):
    assert choose_method(dim, n_a, n_b) == method


# --- BLAS threads ----------------------------------------------------------------------------------------------


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.parametrize("workers, cores, threads", [(4, 2, 1), (2, 2, 1), (1, 2, 2), (3, 8, 2)])
def test_limit_blas_threads_shares_the_cores_between_workers(workers, cores, threads):
    before = _blas_threads()
    with limit_blas_threads(workers, cores):
        assert _blas_threads() == {threads}
    assert _blas_threads() == before


def test_limit_blas_threads_holds_without_a_with_block_until_restored():
    before = _blas_threads()
    limiter = limit_blas_threads(8, 4)
    assert _blas_threads() == {1}
    limiter.restore_original_limits()
    assert _blas_threads() == before


@pytest.mark.parametrize(
    "kwargs, name",
    [({"workers": 0, "cores": 2}, "workers"), ({"workers": 2, "cores": 0}, "cores"),
     ({"workers": 1.5, "cores": 2}, "workers")],
)
def test_limit_blas_threads_invalid_values_raise_value_error_naming_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        limit_blas_threads(**kwargs)
