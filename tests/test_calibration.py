"""Null tables and false-match rates: the model (empirical share, geometric tail, inverse), setting aside shared
geometry, calibration on held-out synthetic counts, the JSON format (round trip, every field checked, arbitrary
bytes and JSON), the built-in tables, pair sampling and measuring a gallery."""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import replace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_textured_image, warp_affine
from delfverify.calibration import (EMPIRICAL_MIN_PAIRS, MIN_PAIRS, MIN_RATE, CalibrationError, NullTable,
                                    NullTableError, builtin_table, check_calibration, check_table_for,
                                    different_label_pairs,
                                    fit_null_table, measure_null_table, null_table_from_dict, null_table_from_json,
                                    read_null_table, sample_pairs, shared_geometry_cut, write_null_table)
from delfverify.errors import DelfverifyError
from delfverify.extractors import RootSIFT


def null_counts(n: int, seed: int) -> np.ndarray:
    """Seeded counts shaped like the fundamental-matrix null: 15% zeros (too few matches), the rest 7 + a
    binomial (mode 8-9, tail to about 13)."""
    rng = np.random.default_rng(seed)
    counts = 7 + rng.binomial(12, 0.15, size=n)
    counts[rng.random(n) < 0.15] = 0
    return counts


def table_of(counts, **fields) -> NullTable:
    return fit_null_table(counts, extractor="rootsift", geometry="fundamental", **fields)


counts_lists = st.lists(st.integers(0, 40), min_size=MIN_PAIRS, max_size=400)


# ---------------------------------------------------------------------------------------------------------------
# The model


def test_rates_by_hand():
    # 1,000 pairs: 40 reach 10, 10 reach 11, 2 reach 12; the anchor is 10 (the last count at least 30 pairs reach)
    counts = [0] * 60 + [7] * 300 + [8] * 400 + [9] * 200 + [10] * 30 + [11] * 8 + [12] * 2
    table = table_of(counts, set_aside=False)
    assert table.reaching == (1000, 940, 940, 940, 940, 940, 940, 940, 640, 240, 40, 10, 2)
    assert table.anchor == 10
    q = (12 + 1) / (12 + 40 + 2)  # 12 steps beyond the anchor (8 pairs one step, 2 pairs two), 40 stops
    assert table.continuation == pytest.approx(q)
    assert table.false_match_rate(0) == 1.0
    assert table.false_match_rate(9) == pytest.approx(241 / 1001)
    assert table.false_match_rate(10) == pytest.approx(41 / 1001)
    assert table.false_match_rate(11) == pytest.approx(41 / 1001 * q)
    assert table.false_match_rate(20) == pytest.approx(41 / 1001 * q**10)
    assert table.count_for_rate(1.0) == 0
    assert table.count_for_rate(0.25) == 9
    assert table.count_for_rate(41 / 1001) == 10
    assert table.count_for_rate(41 / 1001 * q**3) == 13
    assert table.count_for_rate(41 / 1001 * q**3 * 0.999) == 14


@settings(max_examples=60, deadline=None)
@given(counts=counts_lists, data=st.data())
def test_rates_are_in_unit_interval_non_increasing_and_empirical_where_plentiful(counts, data):
    table = table_of(counts, set_aside=False)
    k = np.arange(0, 200)
    rate = table.false_match_rate(k)
    assert np.all((rate > 0) & (rate <= 1))
    assert rate[0] == 1.0
    assert np.all(np.diff(rate) <= 0)
    tail = rate[table.anchor:]
    assert np.all(np.diff(tail)[tail[1:] > MIN_RATE] < 0)  # strictly decreasing from the anchor to the floor
    values = np.asarray(counts)
    n = len(values)
    for count in range(table.anchor + 1):
        reached = int((values >= count).sum())
        assert rate[count] == pytest.approx((reached + 1) / (n + 1))
    plentiful = [c for c in range(60) if (values >= c).sum() >= EMPIRICAL_MIN_PAIRS]
    assert table.anchor == max(plentiful)
    # the inverse
    r = data.draw(st.floats(1e-30, 1.0))
    found = table.count_for_rate(r)
    assert table.false_match_rate(found) <= r
    assert found == 0 or table.false_match_rate(found - 1) > r


def test_rates_never_zero_and_vectorised():
    table = table_of(null_counts(2000, 0))
    assert table.false_match_rate(10**9) == MIN_RATE
    assert table.false_match_rate(1e300) == MIN_RATE
    rates = table.false_match_rate(np.array([[0, 5], [np.nan, 14]]))
    assert rates.shape == (2, 2) and np.isnan(rates[1, 0]) and rates[0, 0] == 1.0
    assert isinstance(table.false_match_rate(3), float)
    assert table.count_for_rate(np.array([1.0, 0.1, 1e-3])).tolist() == [
        table.count_for_rate(1.0), table.count_for_rate(0.1), table.count_for_rate(1e-3)]
    assert isinstance(table.count_for_rate(0.5), int)
    assert table.false_match_rate(table.count_for_rate(MIN_RATE)) == MIN_RATE


@pytest.mark.parametrize("bad", [-1, 2.5, np.inf, [3, -2]])
def test_false_match_rate_refuses_counts_that_are_not_whole(bad):
    with pytest.raises(ValueError, match="counts"):
        table_of(null_counts(500, 1)).false_match_rate(bad)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, np.nan, 1e-320])
def test_count_for_rate_refuses_rates_out_of_range(bad):
    with pytest.raises(ValueError, match="rate"):
        table_of(null_counts(500, 1)).count_for_rate(bad)


def test_a_table_of_zeros_still_has_a_tail():
    table = table_of([0] * MIN_PAIRS)
    assert table.anchor == 0
    assert table.false_match_rate(1) == pytest.approx(1 / (MIN_PAIRS + 2))
    assert 0 < table.false_match_rate(50) < table.false_match_rate(1)


@pytest.mark.parametrize("counts, match", [([1] * (MIN_PAIRS - 1), "at least"), ([1.5] * MIN_PAIRS, "whole"),
                                           ([-1] * MIN_PAIRS, "whole"), ([[1, 2]] * MIN_PAIRS, "one-dimensional")])
def test_fit_refuses_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        table_of(counts)


# ---------------------------------------------------------------------------------------------------------------
# Pairs that share geometry


def test_far_counts_are_set_aside_and_chance_counts_are_not():
    chance = null_counts(2000, 3)
    assert shared_geometry_cut(chance) is None
    assert table_of(chance).set_aside == ()
    shared = np.array([18, 20, 25, 40, 118, 131] * 5)
    table = table_of(np.concatenate([chance, shared]))
    assert table.set_aside == tuple(sorted(shared.tolist()))
    assert table == replace(table_of(chance), set_aside=table.set_aside)
    everything = table_of(np.concatenate([chance, shared]), set_aside=False)
    assert everything.false_match_rate(14) > 10 * table.false_match_rate(14)


@pytest.mark.parametrize("seed", range(20))
def test_pure_chance_counts_are_rarely_set_aside(seed):
    # the rule's level: a Bonferroni test at 1%; on 20 seeded null samples nothing is set aside
    assert shared_geometry_cut(null_counts(3000, 100 + seed)) is None


def test_at_most_five_percent_is_set_aside():
    chance = null_counts(1000, 4)
    assert shared_geometry_cut(np.concatenate([chance, [100] * 60])) is None  # 60 of 1060: more than 5%
    assert shared_geometry_cut(np.concatenate([chance, [100] * 50])) == 100


# ---------------------------------------------------------------------------------------------------------------
# Calibration on held-out counts (issue #23, point 4)


@pytest.mark.parametrize("seed", range(10))
def test_held_out_shares_are_within_a_factor_of_two_where_the_rate_is_at_least_one_percent(seed):
    fit, held_out = null_counts(3000, 2 * seed), null_counts(3000, 2 * seed + 1)
    check = check_calibration(table_of(fit), held_out, min_rate=0.01)
    assert len(check.counts) >= 8 and np.all(check.predicted >= 0.01)
    assert check.within(2.0), (check.counts, check.ratio)


def test_the_tail_errs_high_for_a_lighter_tailed_null_far_out():
    # null_counts' true share reaching k falls off faster than geometrically (a binomial tail), as the measured
    # counts do. Fitted on 3,000 pairs (20 seeds; anchor 12), the geometric tail is never below a quarter of the truth
    # up to 19 inliers, its median is above the truth from 14 on (near the anchor sampling error dominates), and far
    # out it is always above: a match is called less certain, never more.
    from scipy.stats import binom

    k = np.arange(13, 20)
    true = 0.85 * binom.sf(k - 8, 12, 0.15)
    ratios = np.array([table_of(null_counts(3000, 50 + seed)).false_match_rate(k) / true for seed in range(20)])
    assert np.all(ratios >= 0.25)
    assert np.all(np.median(ratios, axis=0)[1:] > 1)
    assert np.all(ratios[:, k >= 18] > 1)


def test_check_calibration_parameters():
    table = table_of(null_counts(500, 2))
    with pytest.raises(ValueError, match="min_rate"):
        check_calibration(table, [1, 2], min_rate=0)
    with pytest.raises(ValueError, match="counts"):
        check_calibration(table, [])


# ---------------------------------------------------------------------------------------------------------------
# The file format


def test_write_then_read_is_equal(tmp_path):
    table = table_of(np.concatenate([null_counts(1500, 5), [60, 70]]), source="a gallery: 1502 pairs, seed 3",
                     seed=3, pair_fingerprint="0123456789abcdef", unverifiable=4, failed=1)
    assert table.set_aside == (60, 70)
    path = tmp_path / "null.json"
    write_null_table(table, path)
    again = read_null_table(path)
    assert again == table
    assert again.continuation == table.continuation  # floats round-trip exactly
    assert null_table_from_dict(json.loads(path.read_text())) == table
    assert json.loads(path.read_text())["format"] == "delfverify-null-table"
    write_null_table(again, path)  # replaces atomically
    assert read_null_table(path) == table


def valid_doc() -> dict:
    return table_of(null_counts(400, 6), source="test", seed=1).to_dict()


@pytest.mark.parametrize("change, field", [
    ({"format": "something"}, "format"),
    ({"version": 2}, "version"),
    ({"version": "1"}, "version"),
    ({"extractor": ""}, "extractor"),
    ({"extractor": 3}, "extractor"),
    ({"geometry": "similarity"}, "geometry"),
    ({"pair_fingerprint": "XYZ"}, "pair_fingerprint"),
    ({"source": None}, "source"),
    ({"source": "x" * 3000}, "source"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.0}, "seed"),
    ({"seed": True}, "seed"),
    ({"pairs": 5}, "pairs"),
    ({"pairs": "400"}, "pairs"),
    ({"reaching": []}, "reaching"),
    ({"reaching": "1,2"}, "reaching"),
    ({"reaching": [400, 300, 301]}, "reaching[2]"),
    ({"reaching": [400, 300, 0]}, "reaching[2]"),
    ({"reaching": [400, 2.5]}, "reaching[1]"),
    ({"reaching": [400, True]}, "reaching[1]"),
    ({"reaching": [50, 20]}, "reaching[0]"),
    ({"tail": {"anchor": 1}}, "tail"),
    ({"tail": [1, 0.5]}, "tail"),
    ({"tail": {"anchor": 99, "continuation": 0.3}}, "tail.anchor"),
    ({"tail": {"anchor": -1, "continuation": 0.3}}, "tail.anchor"),
    ({"tail": {"anchor": 1, "continuation": 1.0}}, "tail.continuation"),
    ({"tail": {"anchor": 1, "continuation": 0}}, "tail.continuation"),
    ({"tail": {"anchor": 1, "continuation": "0.3"}}, "tail.continuation"),
    ({"set_aside": [30, 20]}, "set_aside"),
    ({"set_aside": [-3]}, "set_aside"),
    ({"set_aside": 5}, "set_aside"),
    ({"unverifiable": -1}, "unverifiable"),
    ({"failed": 0.5}, "failed"),
    ({"extra": 1}, "unknown field"),
])
def test_every_bad_field_is_named_with_the_file(tmp_path, change, field):
    doc = valid_doc()
    if "pairs" not in change and "reaching" in change and change["reaching"] and isinstance(change["reaching"], list):
        doc["pairs"] = change["reaching"][0] if isinstance(change["reaching"][0], int) else doc["pairs"]
    doc.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(NullTableError, match=r"bad\.json: .*") as caught:
        read_null_table(path)
    assert field in str(caught.value)
    assert isinstance(caught.value, DelfverifyError) and isinstance(caught.value, ValueError)


def test_a_missing_field_is_named():
    doc = valid_doc()
    del doc["tail"]
    with pytest.raises(NullTableError, match="missing field.*tail"):
        null_table_from_dict(doc, "t.json")


def test_pairs_must_equal_reaching_zero():
    doc = valid_doc()
    doc["pairs"] += 1
    with pytest.raises(NullTableError, match="pairs: .* differs from reaching"):
        null_table_from_dict(doc)


@pytest.mark.parametrize("text, match", [
    (b"", "invalid JSON at line 1"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'\xef\xbb\xbf{"format": 1}', "invalid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"pairs": NaN}', "pairs: 'NaN' is not a number"),
    (b'{"pairs": -Infinity}', "Infinity"),
    (b'{"pairs": 1e999}', "out of range"),
    (b'{"pairs": ' + b"9" * 5000 + b"}", "5000 digits"),
    (b'{"format": "a", "format": "b"}', "appears twice"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|invalid JSON"),
])
def test_bad_json_is_one_clear_error(text, match):
    with pytest.raises(NullTableError, match=match) as caught:
        null_table_from_json(text, "t.json")
    assert str(caught.value).startswith("t.json: ")


def test_unreadable_files(tmp_path):
    with pytest.raises(NullTableError, match="not found"):
        read_null_table(tmp_path / "missing.json")
    with pytest.raises(NullTableError, match="directory"):
        read_null_table(tmp_path)


def test_a_table_from_a_fifo_is_read_and_an_endless_device_refused(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(json.dumps(valid_doc()),))
    writer.start()
    try:
        assert read_null_table(fifo) == null_table_from_dict(valid_doc())
    finally:
        writer.join()
    with pytest.raises(NullTableError, match=r"^/dev/zero: is a character device that gives more than 8388608 bytes"):
        read_null_table("/dev/zero")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_table_or_a_null_table_error(data):
    try:
        null_table_from_json(data, "fuzz.json")
    except NullTableError as exc:
        assert str(exc).startswith("fuzz.json: ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(doc=json_values)
def test_arbitrary_json_gives_a_null_table_error(doc):
    with pytest.raises(NullTableError):
        null_table_from_json(json.dumps(doc), "fuzz.json")


@settings(max_examples=400, deadline=None)
@given(key=st.sampled_from(sorted(valid_doc())), value=json_values, nested=st.sampled_from([None, "anchor",
                                                                                          "continuation"]))
def test_a_valid_document_with_one_field_replaced_is_valid_or_one_clear_error(key, value, nested):
    doc = valid_doc()
    if nested is not None:
        doc["tail"][nested] = value
    else:
        doc[key] = value
    try:
        table = null_table_from_json(json.dumps(doc), "fuzz.json")
    except NullTableError as exc:
        assert str(exc).startswith("fuzz.json: ")
    else:
        rates = table.false_match_rate(np.arange(0, 50))
        assert np.all((rates > 0) & (rates <= 1)) and np.all(np.diff(rates) <= 0)


# ---------------------------------------------------------------------------------------------------------------
# Built-in tables


@pytest.mark.parametrize("geometry", ["fundamental", "affine", "homography"])
def test_builtin_tables_state_todays_thresholds_as_rates(geometry):
    table = builtin_table("rootsift", geometry)
    assert (table.extractor, table.geometry) == ("rootsift", geometry)
    assert table.pairs >= 2900 and table.set_aside == ()
    assert builtin_table(RootSIFT(), geometry) is table
    thresholds = RootSIFT.thresholds[geometry]
    # support: the count that at most 10% of unrelated pairs reach; accept: at most 0.1%
    assert table.count_for_rate(0.10) == thresholds.support
    assert table.count_for_rate(0.001) == thresholds.accept


def test_builtin_fundamental_table_pinned():
    table = builtin_table("rootsift", "fundamental")
    assert table.reaching == (2949, 2509, 2509, 2509, 2509, 2509, 2509, 2509, 2101, 1242, 546, 177, 36, 10)
    assert (table.anchor, table.unverifiable) == (12, 84)
    assert table.false_match_rate(11) == pytest.approx(178 / 2950)
    assert table.false_match_rate(14) == pytest.approx(37 / 2950 * 0.22916666666666666**2)


def test_check_table_for_a_verifier():
    from delfverify import Verifier, VerifySettings
    from delfverify.verification import GEOMETRY_SETTINGS

    table = builtin_table("rootsift", "fundamental")
    assert check_table_for(table, Verifier()) == ""  # whatever OpenCV's version: settings only are compared
    assert "other verification settings" in check_table_for(table, Verifier(RootSIFT(max_features=1000)))
    assert check_table_for(replace(table, pair_fingerprint=""), Verifier(VerifySettings(max_side=512))) == ""
    with pytest.raises(NullTableError, match="t.json: measured for rootsift features with the fundamental model, "
                                             "not rootsift with the affine model"):
        check_table_for(table, Verifier(VerifySettings(ransac=GEOMETRY_SETTINGS["affine"])), "t.json")


def test_no_builtin_table_for_delf_and_bad_geometry():
    assert builtin_table("delf", "affine") is None
    assert builtin_table("../../etc/passwd", "affine") is None
    with pytest.raises(ValueError, match="geometry"):
        builtin_table("rootsift", "similarity")


# ---------------------------------------------------------------------------------------------------------------
# Sampling pairs


@pytest.mark.parametrize("labels, pairs", [(list("aabbbcdddd"), 20), (list("ab") * 300 + ["c"] * 5000, 100)])
def test_sample_pairs_are_seeded_unique_and_of_different_labels(labels, pairs):
    found = sample_pairs(labels, pairs, seed=4)
    assert found.shape == (pairs, 2)
    assert np.array_equal(found, sample_pairs(labels, pairs, seed=4))
    assert not np.array_equal(found, sample_pairs(labels, pairs, seed=5))
    assert np.all(found[:, 0] < found[:, 1])
    assert len({tuple(p) for p in found.tolist()}) == pairs
    labels = np.asarray(labels)
    assert np.all(labels[found[:, 0]] != labels[found[:, 1]])


def test_sample_pairs_takes_every_pair_when_there_are_fewer():
    labels = list("aabbc")
    assert different_label_pairs(labels) == 8
    found = sample_pairs(labels, 100, seed=0)
    assert sorted(map(tuple, found.tolist())) == [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 4), (3, 4)]
    assert sample_pairs(list("aaaa"), 10, seed=0).shape == (0, 2)


@pytest.mark.parametrize("labels", [["a"] * 6 + ["b"] * 3 + ["c"], ["a", "b"] * 200 + ["c"] * 30000])
def test_sample_pairs_is_uniform_over_pairs(labels):
    # photos of each label are drawn as often as the uniform law over pairs says: a photo of label l is in
    # (n - n_l) of the pairs of different labels (both branches: every pair listed, and drawn photo by photo)
    draws = np.concatenate([sample_pairs(labels, 5, seed=s) for s in range(600)]) if len(labels) < 100 else \
        np.concatenate([sample_pairs(labels, 150, seed=s) for s in range(20)])
    labels = np.asarray(labels)
    names, sizes = np.unique(labels, return_counts=True)
    total = different_label_pairs(labels)
    seen = np.bincount(draws.ravel(), minlength=len(labels))
    for name, size in zip(names, sizes):
        wanted = 2 * len(draws) * size * (len(labels) - size) / (2 * total)
        observed = seen[labels == name].sum()
        assert abs(observed - wanted) < 5 * math.sqrt(wanted) + 1, (name, observed, wanted)


def test_sample_pairs_among_max_photos():
    labels = [str(i % 7) for i in range(200)]
    found = sample_pairs(labels, 300, seed=1, max_photos=30)
    assert len(np.unique(found)) <= 30
    assert np.array_equal(found, sample_pairs(labels, 300, seed=1, max_photos=30))


# ---------------------------------------------------------------------------------------------------------------
# Measuring a gallery


class FakeVerification:
    def __init__(self, num_inliers, unverifiable=""):
        self.num_inliers, self.unverifiable = num_inliers, unverifiable


class FakeVerifier:
    """Counts from a seeded table, one photo unreadable, one with too few keypoints, two showing one scene."""

    extractor = RootSIFT()
    settings_fingerprint = "fedcba9876543210"

    class ransac:  # stands for a RansacConfig
        geometry = "affine"

    def __init__(self, broken="p3", poor="p4", shared=("p0", "p1")):
        self.broken, self.poor, self.shared = broken, poor, shared

    def key(self, image):
        return os.path.basename(image)

    def features_of(self, image, key=None, *, source=None):
        from delfverify.images import ImageError

        name = os.path.splitext(os.path.basename(image))[0]
        if name == self.broken:
            raise ImageError(str(image), "cannot decode image")
        return name

    def verify_features(self, a, b):
        if self.poor in (a, b):
            return FakeVerification(0, "query has 3 keypoints")
        if a in self.shared and b in self.shared:
            return FakeVerification(400)
        seed = int(a[1:]) * 1000 + int(b[1:])
        return FakeVerification(max(0, int(null_counts(1, seed)[0]) - 3) if seed % 7 else 0)


def write_gallery(folder, labels):
    folder.mkdir(exist_ok=True)
    lines = ["id,landmark_id"] + [f"p{i},{label}" for i, label in enumerate(labels)]
    (folder / "gallery.csv").write_text("\n".join(lines) + "\n")
    return folder / "gallery.csv"


def test_measure_null_table_with_a_fake_verifier(tmp_path):
    labels = [f"l{i % 9}" for i in range(40)]
    gallery = write_gallery(tmp_path, labels)
    (tmp_path / "images").mkdir()
    result = measure_null_table(FakeVerifier(), gallery, tmp_path / "images", pairs=300, seed=2)
    table, pairs = result.table, result.pairs
    assert len(pairs) == 300 and set(pairs.columns) >= {"id_a", "id_b", "label_a", "label_b", "inliers", "status"}
    assert (pairs["label_a"] != pairs["label_b"]).all()
    status = pairs["status"].value_counts().to_dict()
    assert status["failed"] == table.failed > 0 and status["unverifiable"] == table.unverifiable > 0
    assert pairs.loc[pairs["status"] == "failed", "reason"].str.contains("cannot decode").all()
    assert table.pairs == status["used"]
    assert (table.extractor, table.geometry, table.seed) == ("rootsift", "affine", 2)
    assert table.pair_fingerprint == "fedcba9876543210"
    assert "seed 2" in table.source and "gallery.csv" in table.source
    again = measure_null_table(FakeVerifier(), gallery, tmp_path / "images", pairs=300, seed=2)
    assert again.table == table and again.pairs.equals(pairs)


def test_measure_null_table_sets_aside_a_shared_scene(tmp_path):
    labels = [f"l{i}" for i in range(30)]  # 435 pairs, all of them used
    gallery = write_gallery(tmp_path, labels)
    result = measure_null_table(FakeVerifier(broken="none", poor="none"), gallery, tmp_path, pairs=1000)
    assert result.table.seed is None and "all 435 pairs" in result.table.source
    aside = result.pairs[result.pairs["status"] == "set_aside"]
    assert aside[["id_a", "id_b"]].values.tolist() == [["p0", "p1"]]
    assert result.table.set_aside == (400,)


@pytest.mark.parametrize("option, match", [({"pairs": 10}, "pairs"), ({"pairs": 2.0 * MIN_PAIRS}, "pairs"),
                                           ({"seed": -1}, "seed"), ({"max_photos": 1}, "max_photos"),
                                           ({"source": "x" * 3000}, "source")])
def test_measure_null_table_parameters(tmp_path, option, match):
    gallery = write_gallery(tmp_path, [f"l{i}" for i in range(30)])
    with pytest.raises(ValueError, match=match):
        measure_null_table(FakeVerifier(), gallery, tmp_path, **option)


def test_measure_null_table_needs_enough_pairs(tmp_path):
    gallery = write_gallery(tmp_path, [f"l{i % 2}" for i in range(12)])  # 36 pairs of different labels
    with pytest.raises(CalibrationError, match="36 pairs.*at least 100"):
        measure_null_table(FakeVerifier(), gallery, tmp_path)
    gallery = write_gallery(tmp_path, [f"l{i}" for i in range(16)])  # 120 pairs, 15 with the broken photo
    with pytest.raises(CalibrationError, match="could be verified"):
        measure_null_table(FakeVerifier(poor="p5"), gallery, tmp_path)
    labels = ["l0", "l1", "l2", "l3", "l3", "l5", "l5", "l7", "l7"] + [f"l{i}" for i in range(9, 15)]
    gallery = write_gallery(tmp_path, labels)  # 102 pairs, 3 of them (among p0, p1, p2) set aside: 99 left
    with pytest.raises(CalibrationError, match="needs at least 100 pairs, got 99"):
        measure_null_table(FakeVerifier(broken="none", poor="none", shared=("p0", "p1", "p2")), gallery, tmp_path)


def test_measure_null_table_with_real_photos(tmp_path):
    """RootSIFT and the fundamental matrix on 16 synthetic photos of different labels, one of them a warped copy of
    another under its own label (a shared scene), one unreadable."""
    from delfverify import Verifier

    folder = tmp_path / "gallery"
    folder.mkdir()
    labels = []
    for i in range(16):
        image = make_textured_image(seed=i, height=240, width=320)
        cv2.imwrite(str(folder / f"p{i}.jpg"), image[:, :, ::-1])
        labels.append(f"l{i}")
    cv2.imwrite(str(folder / "p16.jpg"), warp_affine(make_textured_image(seed=0, height=240, width=320))[:, :, ::-1])
    labels.append("l16")
    (folder / "p17.jpg").write_bytes(b"not a photo")
    labels.append("l17")
    gallery = write_gallery(tmp_path, labels)
    verifier = Verifier(cache_dir=tmp_path / "cache")
    result = measure_null_table(verifier, gallery, folder, pairs=200, seed=0)
    table, pairs = result.table, result.pairs
    assert table.failed == 17 and table.pairs + len(table.set_aside) == different_label_pairs(labels) - 17
    shared = pairs[(pairs["id_a"] == "p0") & (pairs["id_b"] == "p16")]
    assert shared["inliers"].iloc[0] > 50 and shared["status"].iloc[0] == "set_aside"
    assert table.pair_fingerprint == verifier.settings_fingerprint
    assert table.false_match_rate(14) < 0.05


def test_a_library_version_changes_the_journal_key_not_the_settings_a_table_names(monkeypatch):
    """Another OpenCV may extract other features (the store and journal keys change), but a null table measured
    with the same settings still describes the counts: a new OpenCV release made every shipped table 'other
    settings'."""
    import cv2

    from delfverify import Verifier

    before = Verifier()
    monkeypatch.setattr(cv2, "__version__", "99.0.0")
    after = Verifier()
    assert after.pair_fingerprint != before.pair_fingerprint
    assert after.settings_fingerprint == before.settings_fingerprint
    assert check_table_for(builtin_table("rootsift", "fundamental"), after) == ""
