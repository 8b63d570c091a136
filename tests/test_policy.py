"""Re-ranking policies: the built-ins' exact rules, JSON round trips, validation messages that name the field,
combining inlier counts, and (property-based) monotonicity in inliers with outputs in [0, 1]."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delfverify.policy import (
    BUILTINS,
    Policy,
    PolicyError,
    builtin_policy,
    combine_inliers,
    load_policy,
    policy_from_dict,
)

NAN = math.nan


def _apply(policy: Policy, confidence, inliers, share=None):
    new, status = policy.apply(np.array(confidence, float), np.array(inliers, float),
                               None if share is None else np.array(share, float))
    return new, list(status)


# --- built-ins ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "confidence, inliers, expected, status",
    [
        (0.3, [12, 0, 0, 0, 0], 0.6, "boosted"),  # low band, >= 10 inliers: raised to 0.6
        (0.3, [10, NAN, NAN, NAN, NAN], 0.6, "boosted"),
        (0.3, [9, 9, 9, 9, 9], 0.3, "verified"),  # between 3 and 10: unchanged
        (0.3, [2, 1, NAN, NAN, NAN], 0.0, "suppressed"),
        (0.0, [2, 2, 0, 0, 0], 0.0, "verified"),  # already 0
        (0.5, [2, 2, 0, 0, 0], 0.0, "suppressed"),
        (0.5, [5, 0, 0, 0, 0], 0.5, "verified"),
        (0.5, [30, 0, 0, 0, 0], 0.5, "verified"),  # the middle band is never boosted
        (0.5, [0, 3, 0, 0, 0], 0.5, "verified"),  # max of the first k=2
        (0.5, [0, 0, 50, 50, 50], 0.0, "suppressed"),  # columns beyond k=2 are not used
        (0.7, [2, 2, 2, 2, 2], 0.0, "suppressed"),
        (0.7, [2, 2, 2, 2, 3], 0.7, "verified"),  # k=5 in the 0.6-0.8 band: the fifth photo counts
        (0.7, [50, 50, 50, 50, 50], 0.7, "verified"),
        (0.4, [2, 2, 0, 0, 0], 0.0, "suppressed"),  # band edges: lower inclusive
        (0.8, [0, 0, 0, 0, 0], 0.8, "skipped"),  # 0.8-1.0: untouched
        (0.85, [0, 0, 0, 0, 0], 0.85, "skipped"),
        (1.0, [100, 100, 100, 100, 100], 1.0, "skipped"),
        (0.3, [NAN] * 5, 0.3, "skipped"),  # no inlier count at all: left as it is
    ],
)
def test_seed_policy_exact_rules(confidence, inliers, expected, status):
    policy = builtin_policy("seed", "rootsift")
    new, statuses = _apply(policy, [confidence], [inliers])
    assert new[0] == pytest.approx(expected, abs=1e-12)
    assert statuses == [status]


def test_seed_policy_k_and_selection():
    policy = builtin_policy("seed", "rootsift")
    assert list(policy.k_for([0.0, 0.39, 0.4, 0.59, 0.6, 0.79, 0.8, 1.0])) == [2, 2, 2, 2, 5, 5, 0, 0]
    assert policy.max_k == 5
    assert policy.selection == "first" and policy.combine == "max"
    assert list(policy.band_names([0.1, 0.5, 0.7, 0.9])) == ["0-0.4", "0.4-0.6", "0.6-0.8", "0.8-1"]


def test_seed_policy_same_for_both_extractors():
    rootsift, delf = builtin_policy("seed", "rootsift"), builtin_policy("seed", "delf")
    assert rootsift.bands == delf.bands
    assert (rootsift.extractor, delf.extractor) == ("rootsift", "delf")


@pytest.mark.parametrize("extractor, geometry, suppress_below, boost_at", [
    ("rootsift", None, 11, 14), ("rootsift", "fundamental", 11, 14), ("rootsift", "affine", 6, 8),
    ("rootsift", "homography", 6, 8), ("delf", None, 6, 10)])
def test_default_policy_thresholds_per_extractor_and_model(extractor, geometry, suppress_below, boost_at):
    policy = builtin_policy("default", extractor, geometry)
    (band,) = policy.bands
    assert (band.lower, band.upper, band.k) == (0.0, 1.0, 3)
    assert (band.min_inliers, band.boost_inliers) == (suppress_below, boost_at)
    assert policy.selection == "spread" and policy.combine == "max" and policy.extractor == extractor
    c = 0.6
    rows = [[suppress_below - 1, 0, 0], [suppress_below, 0, 0], [boost_at - 1, NAN, 0], [0, NAN, boost_at]]
    new, status = _apply(policy, [c] * 4, rows)
    np.testing.assert_allclose(new, [c / 3, c, c, 2 / 3 + c / 3])
    assert status == ["suppressed", "verified", "verified", "boosted"]


def test_default_policy_needs_measured_thresholds():
    with pytest.raises(PolicyError, match="no thresholds for delf features with the fundamental model"):
        builtin_policy("default", "delf", "fundamental")


def test_default_policy_keeps_order_within_tiers():
    policy = builtin_policy("default", "rootsift")
    confidence = np.linspace(0, 1, 11)
    for inliers in (0, 12, 50):
        new, _ = _apply(policy, confidence, np.full((11, 3), inliers))
        assert np.all(np.diff(new) > 0)
    low, _ = _apply(policy, [1.0], [[0, 0, 0]])
    high, _ = _apply(policy, [0.0], [[14, 0, 0]])
    assert low[0] <= 1 / 3 + 1e-12 and high[0] >= 2 / 3 - 1e-12


def test_unknown_builtin():
    with pytest.raises(PolicyError, match="seed"):
        builtin_policy("fancy", "rootsift")


# --- round trips ------------------------------------------------------------------------------------------------

FUSION_DOCS = [
    {"name": "add", "mode": "additive", "fusion": {"k": 4, "weight": 0.5, "min_inliers": 3, "cap": 40}},
    {"name": "mul", "mode": "multiplicative", "combine": "mean", "selection": "random", "seed": 11,
     "fusion": {"k": 2, "weight": 1.0, "min_inliers": 0.0, "cap": 70.0}},
    {"name": "bands-penalty", "mode": "bands", "combine": "second", "extractor": "delf",
     "bands": [{"lower": 0.0, "upper": 0.4, "k": 2, "min_inliers": 3, "suppress": {"set": 0.0},
                "boost_inliers": 10, "boost": {"set": 0.6}},
               {"lower": 0.4, "upper": 0.9, "k": 3, "min_inliers": 5, "suppress": {"multiply": 0.5},
                "boost_inliers": 20, "boost": {"range": [0.5, 1.0]}},
               {"lower": 0.9, "upper": 1.0, "skip": True}],
     "frequency_penalty": {"max_share": 0.05, "factor": 0.5, "below_inliers": 5},
     "info": {"fitted_on": "dev", "gap": 0.9}},
]


@pytest.mark.parametrize("name", sorted(BUILTINS))
@pytest.mark.parametrize("extractor", ["rootsift", "delf"])
def test_builtin_policies_round_trip_through_json(name, extractor):
    policy = builtin_policy(name, extractor)
    doc = json.loads(json.dumps(policy.to_dict()))
    assert policy_from_dict(doc) == policy
    assert policy_from_dict(doc).to_dict() == policy.to_dict()


@pytest.mark.parametrize("doc", FUSION_DOCS, ids=[d["name"] for d in FUSION_DOCS])
def test_custom_policies_round_trip_through_json(doc):
    policy = policy_from_dict(doc)
    again = policy_from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again == policy
    assert again.info == policy.info
    assert again.to_dict() == policy.to_dict()


def test_policy_from_dict_defaults():
    policy = policy_from_dict({"bands": [{"lower": 0, "upper": 1}]})
    assert (policy.name, policy.mode, policy.combine, policy.selection, policy.seed) == (
        "custom", "bands", "max", "spread", 0)
    assert policy.bands[0].k == 2 and policy.extractor is None
    fusion = policy_from_dict({"mode": "additive", "fusion": {}}).fusion
    assert (fusion.k, fusion.weight, fusion.min_inliers, fusion.cap) == (3, 1.0, 0.0, 70.0)


def test_load_policy_file_and_builtin(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(FUSION_DOCS[0]))
    policy = load_policy(path, "delf")
    assert policy.mode == "additive" and policy.extractor == "delf"  # takes the extractor in use
    path.write_text(json.dumps(FUSION_DOCS[2]))
    assert load_policy(str(path), "rootsift").extractor == "delf"  # keeps its own
    assert load_policy("seed", "rootsift") == builtin_policy("seed", "rootsift")


# --- validation -----------------------------------------------------------------------------------------------

def _band(**extra):
    return {"lower": 0.0, "upper": 1.0, **extra}


@pytest.mark.parametrize(
    "doc, field",
    [
        ({"bands": [_band()], "colour": "red"}, "colour"),
        ({"bands": [_band(kk=3)]}, "policy.bands[0]: unknown field(s) kk"),
        ({"mode": "additive", "fusion": {"weigth": 1}}, "policy.fusion: unknown field(s) weigth"),
        ({"bands": [_band(suppress={"set": 0, "multiply": 0.5}, min_inliers=2)]}, "policy.bands[0].suppress"),
        ({"bands": [_band(suppress={"scale": 0.5}, min_inliers=2)]}, "policy.bands[0].suppress"),
        ({"bands": []}, "policy.bands"),
        ({}, "bands"),
        ({"bands": [{"lower": 0.0, "upper": 0.9}]}, "policy.bands"),
        ({"bands": [{"lower": 0.1, "upper": 1.0}]}, "policy.bands"),
        ({"bands": [{"lower": 0.0, "upper": 0.4}, {"lower": 0.5, "upper": 1.0}]}, "policy.bands[1]"),
        ({"bands": [{"lower": 0.0, "upper": 0.6}, {"lower": 0.4, "upper": 1.0}]}, "policy.bands[1]"),
        ({"bands": [{"lower": 0.0, "upper": 0.5}, {"lower": 0.5, "upper": 0.5}, {"lower": 0.5, "upper": 1.0}]},
         "policy.bands[2]"),
        ({"bands": [{"lower": 0.0}]}, "upper"),
        ({"bands": [_band(k=0)]}, "policy.bands[0].k"),
        ({"bands": [_band(k=-2)]}, "policy.bands[0].k"),
        ({"mode": "additive", "fusion": {"k": 0}}, "policy.fusion.k"),
        ({"bands": [_band(min_inliers=-1)]}, "policy.bands[0].min_inliers"),
        ({"bands": [_band(min_inliers=10, boost_inliers=5)]}, "boost_inliers"),
        ({"bands": [{"lower": 0.0, "upper": 0.4, "min_inliers": 3, "suppress": {"set": 0.5}},
                    {"lower": 0.4, "upper": 1.0}]}, "policy.bands[0].suppress"),
        ({"bands": [_band(min_inliers=3, suppress={"range": [0.1, 1.0]})]}, "policy.bands[0].suppress"),
        ({"bands": [{"lower": 0.0, "upper": 0.5}, {"lower": 0.5, "upper": 1.0, "boost_inliers": 9,
                                                     "boost": {"set": 0.6}}]}, "policy.bands[1].boost"),
        ({"bands": [_band(boost_inliers=9, boost={"multiply": 0.9})]}, "policy.bands[0].boost"),
        ({"bands": [_band(min_inliers=3, suppress={"set": 1.5})]}, "policy.bands[0].suppress"),
        ({"bands": [_band(boost_inliers=3, boost={"range": [0.5]})]}, "policy.bands[0].boost.range"),
        ({"mode": "voting", "bands": [_band()]}, "policy.mode"),
        ({"combine": "median", "bands": [_band()]}, "policy.combine"),
        ({"selection": "best", "bands": [_band()]}, "policy.selection"),
        ({"bands": [_band(k="3")]}, "policy.bands[0].k"),
        ({"bands": [_band(k=2.5)]}, "policy.bands[0].k"),
        ({"bands": [_band(k=True)]}, "policy.bands[0].k"),
        ({"bands": [{"lower": "0", "upper": 1.0}]}, "policy.bands[0].lower"),
        ({"bands": [{"lower": 0.0, "upper": float("nan")}]}, "policy.bands[0].upper"),
        ({"bands": [_band(min_inliers="five")]}, "policy.bands[0].min_inliers"),
        ({"bands": [_band(min_inliers=3, suppress={"set": "zero"})]}, "policy.bands[0].suppress.set"),
        ({"bands": [_band(skip="yes")]}, "policy.bands[0].skip"),
        ({"bands": "0-1"}, "policy.bands"),
        ({"bands": [[0, 1]]}, "policy.bands[0]"),
        ({"name": 3, "bands": [_band()]}, "policy.name"),
        ({"seed": 1.5, "bands": [_band()]}, "policy.seed"),
        ({"mode": "additive", "fusion": {"weight": "heavy"}}, "policy.fusion.weight"),
        ({"mode": "additive", "fusion": {"weight": -0.5}}, "policy.fusion.weight"),
        ({"mode": "multiplicative", "fusion": {"weight": 1.5}}, "policy.fusion.weight"),
        ({"mode": "additive", "fusion": {"cap": 5, "min_inliers": 5}}, "cap"),
        ({"mode": "additive"}, "fusion"),
        ({"bands": [_band()], "frequency_penalty": {"max_share": 0.1, "factor": 0.5}}, "below_inliers"),
        ({"bands": [_band()], "frequency_penalty": {"max_share": 1.5, "factor": 0.5, "below_inliers": 3}},
         "policy.frequency_penalty"),
        ({"bands": [_band()], "frequency_penalty": {"max_share": 0.1, "factor": 2, "below_inliers": 3}},
         "policy.frequency_penalty"),
        ({"bands": [_band()], "info": "free text"}, "policy.info"),
    ],
)
def test_invalid_policy_names_the_field(doc, field):
    with pytest.raises(PolicyError) as info:
        policy_from_dict(doc)
    assert field in str(info.value)


def test_policy_document_must_be_an_object():
    with pytest.raises(PolicyError, match="expected an object"):
        policy_from_dict([{"lower": 0, "upper": 1}])


def test_multiplicative_weight_one_and_additive_weight_above_one_are_valid():
    assert policy_from_dict({"mode": "multiplicative", "fusion": {"weight": 1}}).fusion.weight == 1.0
    assert policy_from_dict({"mode": "additive", "fusion": {"weight": 3}}).fusion.weight == 3.0


def test_load_policy_invalid_json_reports_line_column_and_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "bands": [\n    {"lower": 0, "upper": 1,}\n  ]\n}\n')
    with pytest.raises(PolicyError) as info:
        load_policy(path, "rootsift")
    message = str(info.value)
    assert str(path) in message
    assert "line 4" in message and "column" in message


def test_load_policy_invalid_document_names_file_and_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"bands": [_band(k=0)]}))
    with pytest.raises(PolicyError) as info:
        load_policy(path, "rootsift")
    assert str(path) in str(info.value) and "policy.bands[0].k" in str(info.value)


def test_load_policy_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "absent.json", "rootsift")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(PolicyError) as info:
        load_policy(path, "rootsift")
    assert str(path) in str(info.value)


# --- combining inlier counts -------------------------------------------------------------------------------------

def test_combine_inliers_max_mean_second():
    inliers = np.array([[4, 9, 7], [4, 9, 7], [3, NAN, 8], [NAN, NAN, NAN], [6, NAN, NAN], [5, 5, 1]], float)
    k = np.array([3, 2, 3, 3, 3, 1])
    np.testing.assert_array_equal(combine_inliers(inliers, k, "max"), [9, 9, 8, NAN, 6, 5])
    np.testing.assert_allclose(combine_inliers(inliers, k, "mean"), [20 / 3, 6.5, 5.5, NAN, 6, 5])
    np.testing.assert_array_equal(combine_inliers(inliers, k, "second"), [7, 4, 3, NAN, 6, 5])


def test_combine_inliers_single_column_and_k_zero():
    inliers = np.array([[7.0], [NAN], [3.0]])
    for how in ("max", "mean", "second"):
        np.testing.assert_array_equal(combine_inliers(inliers, np.array([1, 1, 0]), how), [7, NAN, NAN])


def test_combine_inliers_unknown_method():
    with pytest.raises(ValueError, match="combine"):
        combine_inliers(np.ones((2, 2)), np.array([2, 2]), "median")


def test_second_best_policy_needs_two_photos():
    policy = policy_from_dict({"combine": "second", "bands": [_band(k=3, min_inliers=5, suppress={"set": 0.0})]})
    new, status = _apply(policy, [0.5, 0.5, 0.5], [[20, 1, 0], [20, 6, NAN], [20, NAN, NAN]])
    np.testing.assert_array_equal(new, [0.0, 0.5, 0.5])
    assert status == ["suppressed", "verified", "verified"]


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_apply_to_no_predictions(name):
    policy = builtin_policy(name, "rootsift")
    for inliers in (np.zeros((0, 3)), np.zeros((0, 1)), np.zeros(0)):
        new, status = policy.apply(np.zeros(0), inliers, np.zeros(0))
        assert new.shape == (0,) and status.shape == (0,)


def test_apply_accepts_one_count_per_prediction():
    policy = builtin_policy("default", "rootsift")
    new, status = policy.apply(np.array([0.6, 0.6]), np.array([0.0, 50.0]))
    np.testing.assert_allclose(new, [0.2, 0.8667], atol=1e-4)
    assert list(status) == ["suppressed", "boosted"]


# --- fusion modes and the frequency penalty ------------------------------------------------------------------------

def test_additive_and_multiplicative_formulas():
    additive = policy_from_dict({"mode": "additive", "fusion": {"k": 1, "weight": 1.0, "min_inliers": 10, "cap": 30}})
    new, status = _apply(additive, [0.5, 0.5, 0.5, 0.2], [[0], [20], [100], [NAN]])
    np.testing.assert_allclose(new, [0.25, 0.5, 0.75, 0.2])
    assert status == ["suppressed", "verified", "boosted", "skipped"]
    multiplicative = policy_from_dict({"mode": "multiplicative", "fusion": {"k": 1, "weight": 0.5, "cap": 70}})
    new, _ = _apply(multiplicative, [0.8, 0.8, 0.8], [[0], [35], [70]])
    np.testing.assert_allclose(new, [0.4, 0.6, 0.8])


def test_frequency_penalty_lowers_frequent_unverified_labels_only():
    policy = policy_from_dict({"bands": [_band(k=1)],
                               "frequency_penalty": {"max_share": 0.3, "factor": 0.5, "below_inliers": 10}})
    confidence = [0.8, 0.8, 0.8, 0.8]
    inliers = [[3], [12], [3], [NAN]]
    share = [0.5, 0.5, 0.1, 0.5]  # rows 0, 1, 3 carry a frequent label; row 2 a rare one
    new, status = _apply(policy, confidence, inliers, share)
    np.testing.assert_allclose(new, [0.4, 0.8, 0.8, 0.8])
    assert status == ["suppressed", "verified", "verified", "skipped"]
    unpenalised, _ = _apply(policy, confidence, inliers)  # without shares the penalty is off
    np.testing.assert_allclose(unpenalised, confidence)


def test_frequency_penalty_share_at_threshold_is_not_frequent():
    policy = policy_from_dict({"bands": [_band(k=1)],
                               "frequency_penalty": {"max_share": 0.25, "factor": 0.0, "below_inliers": 10}})
    new, _ = _apply(policy, [0.6, 0.6], [[0], [0]], [0.25, 0.26])
    np.testing.assert_allclose(new, [0.6, 0.0])


# --- properties ------------------------------------------------------------------------------------------------

_unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def actions(draw, kind, lower, upper):
    """Any action, or where it would lower (``boost``) or raise (``suppress``) a confidence in the band
    ``[lower, upper]``, one that never does anywhere in [0, 1]."""
    a, b = sorted((draw(_unit), draw(_unit)))
    op = draw(st.sampled_from(["set", "multiply", "range"]))
    doc = {"set": a} if op == "set" else {"multiply": b} if op == "multiply" else {"range": [a, b]}
    low, high = (a, a) if op == "set" else (0.0, b) if op == "multiply" else (a, b)
    ends = [low + (high - low) * c - c for c in (lower, upper)]
    if kind == "boost" and min(ends) < 0:
        return {"range": [a, 1.0]} if draw(st.booleans()) else {"set": 1.0}
    if kind == "suppress" and max(ends) > 0:
        return {"range": [0.0, b]} if draw(st.booleans()) else {"multiply": a}
    return doc


@st.composite
def valid_policies(draw):
    mode = draw(st.sampled_from(["bands", "additive", "multiplicative"]))
    doc = {"mode": mode, "combine": draw(st.sampled_from(["max", "mean", "second"]))}
    if mode == "bands":
        cuts = sorted(set(draw(st.lists(st.floats(0.01, 0.99), max_size=3))))
        edges = [0.0, *cuts, 1.0]
        bands = []
        for lower, upper in zip(edges, edges[1:]):
            band = {"lower": lower, "upper": upper}
            if draw(st.integers(0, 4)) == 0:
                band["skip"] = True
            else:
                band["k"] = draw(st.integers(1, 4))
                if draw(st.booleans()):
                    band["min_inliers"] = draw(st.integers(0, 20))
                    band["suppress"] = draw(actions("suppress", lower, upper))
                if draw(st.booleans()):
                    band["boost_inliers"] = band.get("min_inliers", 0) + draw(st.integers(0, 30))
                    band["boost"] = draw(actions("boost", lower, upper))
            bands.append(band)
        doc["bands"] = bands
    else:
        low = draw(st.floats(0, 30))
        doc["fusion"] = {"k": draw(st.integers(1, 4)), "min_inliers": low, "cap": low + draw(st.floats(1, 100)),
                         "weight": draw(st.floats(0, 1 if mode == "multiplicative" else 5))}
    if draw(st.booleans()):
        doc["frequency_penalty"] = {"max_share": draw(st.floats(0.01, 0.99)), "factor": draw(_unit),
                                    "below_inliers": draw(st.integers(0, 30))}
    return policy_from_dict(doc)


@given(policy=valid_policies(), data=st.data())
@settings(max_examples=100, deadline=None)
def test_apply_is_monotone_in_inliers_and_stays_in_unit_interval(policy, data):
    n, width = 6, 4
    confidence = np.array(data.draw(st.lists(_unit, min_size=n, max_size=n)))
    counts = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 120)), min_size=n * width, max_size=n * width))
    inliers = np.array([np.nan if c is None else c for c in counts], float).reshape(n, width)
    share = np.array(data.draw(st.lists(_unit, min_size=n, max_size=n)))
    more = inliers.copy()
    present = np.isfinite(more)
    bumps = np.array(data.draw(st.lists(st.integers(0, 60), min_size=n * width, max_size=n * width)))
    more[present] += bumps.reshape(n, width)[present]  # raise some counts, never add or remove a NaN

    before, status = policy.apply(confidence, inliers, share)
    after, _ = policy.apply(confidence, more, share)
    assert np.all((before >= 0) & (before <= 1)) and np.all((after >= 0) & (after <= 1))
    assert np.all(after >= before - 1e-12)
    assert set(status) <= {"verified", "suppressed", "boosted", "skipped"}
    skipped = status == "skipped"
    np.testing.assert_array_equal(before[skipped], confidence[skipped])


@given(policy=valid_policies(), confidence=st.lists(_unit, min_size=1, max_size=8))
@settings(max_examples=100, deadline=None)
def test_to_dict_round_trips_random_policies(policy, confidence):
    again = policy_from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again == policy
    np.testing.assert_array_equal(again.k_for(confidence), policy.k_for(confidence))


# --- policy files that would exhaust memory, time or the stack ---------------------------------------------------

def _one_band(**fields) -> dict:
    return {"bands": [{"lower": 0.0, "upper": 1.0, **fields}]}


@pytest.mark.parametrize("doc, message", [
    (_one_band(k=10**12), "policy.bands[0].k: must be an integer in [1, 1000], got 1000000000000"),
    (_one_band(k=1001), "policy.bands[0].k: must be an integer in [1, 1000], got 1001"),
    ({"mode": "additive", "fusion": {"k": 10**12}},
     "policy.fusion.k: must be an integer in [1, 1000], got 1000000000000"),
    (_one_band(min_inliers=10**7), "policy.bands[0].min_inliers: must be an integer in [0, 1000000], got 10000000"),
    (_one_band(boost_inliers=-1), "policy.bands[0].boost_inliers: must be an integer in [0, 1000000], got -1"),
    ({**_one_band(), "frequency_penalty": {"max_share": 0.1, "factor": 0.5, "below_inliers": -3}},
     "policy.frequency_penalty.below_inliers: must be an integer in [0, 1000000], got -3"),
    ({**_one_band(), "seed": -1}, f"policy.seed: must be an integer in [0, {2**63 - 1}], got -1"),
    ({**_one_band(), "seed": 2**63}, f"policy.seed: must be an integer in [0, {2**63 - 1}], got {2**63}"),
])
def test_policy_integers_out_of_range_name_the_field(tmp_path, doc, message):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PolicyError) as info:
        load_policy(path, "rootsift")
    assert str(info.value) == f"{path}: {message}"
    assert policy_from_dict({**_one_band(k=1000), "seed": 2**63 - 1}).max_k == 1000  # the bounds are valid


@pytest.mark.parametrize("text, field", [
    ('{"bands": [{"lower": 0, "upper": 1, "k": %s}]}', "policy.bands[0].k"),
    ('{"bands": [{"lower": 0, "upper": 1}], "seed": -%s}', "policy.seed"),
    ('{"bands": [{"lower": 0, "upper": 1}], "info": {"notes": [1, {"x": %s}]}}', "policy.info.notes[1].x"),
])
def test_policy_integer_of_5000_digits_names_the_file_and_field(tmp_path, text, field):
    path = tmp_path / "policy.json"
    path.write_text(text % ("9" * 5000))  # Python refuses to convert it (ValueError), and it is out of any range
    with pytest.raises(PolicyError) as info:
        load_policy(path, "rootsift")
    message = str(info.value)  # the number quoted shortened, to 80 characters
    assert message.startswith(f"{path}: {field}: '") and len(message) < len(f"{path}: {field}: ") + 160
    assert message.endswith("…' is an integer of 5000 digits, out of range (at most 20 digits)")


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_policy_nested_100000_deep_is_one_error_naming_the_file(tmp_path, opening, closing):
    path = tmp_path / "deep.json"
    path.write_text('{"bands": [{"lower": 0, "upper": 1}], "info": ' + opening * 100_000 + "1" + closing * 100_000
                    + "}")
    with pytest.raises(PolicyError) as info:
        load_policy(path, "rootsift")
    assert str(info.value) == f"{path}: invalid policy: JSON nested too deeply (a policy is a few levels deep)"


@given(policy=valid_policies(), data=st.data())
@settings(max_examples=100, deadline=None)
def test_max_confidence_bounds_every_outcome_and_is_reached(policy, data):
    """The bound ``rerank`` stops verifying candidates on: no inlier counts (or none at all), no label share, can
    give more, and enough inliers reach it."""
    n, width = 6, 4
    confidence = np.array(data.draw(st.lists(_unit, min_size=n, max_size=n)))
    counts = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 500)), min_size=n * width, max_size=n * width))
    inliers = np.array([np.nan if c is None else c for c in counts], float).reshape(n, width)
    share = np.array(data.draw(st.lists(_unit, min_size=n, max_size=n)))
    ceiling = policy.max_confidence(confidence)
    assert np.all(ceiling >= confidence) and np.all(ceiling <= 1)
    assert np.all(policy.apply(confidence, inliers, share)[0] <= ceiling)
    np.testing.assert_array_equal(policy.apply(confidence, np.full((n, width), 1e9))[0], ceiling)


def test_max_confidence_of_the_builtins():
    confidence = np.array([0.0, 0.3, 0.9])
    np.testing.assert_allclose(builtin_policy("default", "rootsift").max_confidence(confidence),
                               2 / 3 + confidence / 3)
    # seed: the low band is raised to 0.6, the others are never raised
    np.testing.assert_allclose(builtin_policy("seed", "rootsift").max_confidence(confidence), [0.6, 0.6, 0.9])
