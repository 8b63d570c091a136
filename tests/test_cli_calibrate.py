"""False-match rates end to end: ``delfverify calibrate`` measures a table on a gallery, and ``verify``, ``rerank`` (its
details and report) and policies quote or use rates from it or from the shipped tables."""

from __future__ import annotations

import json

import cv2
import pandas as pd
import pytest

from conftest import SAMPLE, make_textured_image
from delfverify import cli
from delfverify.calibration import builtin_table, read_null_table
from delfverify.policy import PolicyError, load_policy

SHIPPED = builtin_table("rootsift", "fundamental")


def _main(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def distinct_gallery(tmp_path_factory):
    """16 synthetic photos of 16 labels: 120 pairs of different labels."""
    folder = tmp_path_factory.mktemp("distinct")
    (folder / "images").mkdir()
    for i in range(16):
        cv2.imwrite(str(folder / "images" / f"p{i:02d}.jpg"), make_textured_image(seed=100 + i))
    pd.DataFrame({"id": [f"p{i:02d}" for i in range(16)], "landmark_id": [f"l{i}" for i in range(16)]}).to_csv(
        folder / "gallery.csv", index=False)
    return folder


def test_calibrate_writes_a_table_that_verify_quotes(distinct_gallery, tmp_path, capsys):
    table_file = tmp_path / "table.json"
    status, out, err = _main(capsys, "calibrate", "--gallery", distinct_gallery / "gallery.csv", "--gallery-images",
                             distinct_gallery / "images", "-o", table_file, "--no-cache", "-q")
    assert status == 0, err
    table = read_null_table(table_file)
    assert table.pairs == 120 and table.extractor == "rootsift" and table.geometry == "fundamental"
    assert out.startswith(f"wrote {table_file}: rootsift with the fundamental model: 120 unrelated pairs")
    a, b = SAMPLE / "queries" / "da07d5ba65959f62.jpg", SAMPLE / "gallery" / "fa2d74be0fd77106.jpg"
    status, out, err = _main(capsys, "verify", a, b, "--no-cache", "--null-table", table_file, "--json", "-q")
    doc = json.loads(out)
    assert status == 0 and doc["match"] and doc["false_match_rate"] == pytest.approx(
        float(table.false_match_rate(doc["num_inliers"])))
    assert doc["accept_false_match_rate"] == pytest.approx(float(table.false_match_rate(doc["accept_inliers"])))
    assert "measured with other verification settings" not in err  # same settings: no warning


def test_verify_states_the_rate_of_the_count_and_of_the_threshold(capsys):
    a, b = SAMPLE / "queries" / "da07d5ba65959f62.jpg", SAMPLE / "gallery" / "fa2d74be0fd77106.jpg"
    status, out, _ = _main(capsys, "verify", a, b, "--no-cache", "-q")
    assert status == 0
    assert "(threshold 14 inliers, which 0.066% of unrelated pairs reach, for rootsift with the fundamental model)" in out
    assert "; false-match rate " in out and "the share of unrelated photo pairs that reach" in out


def test_a_table_of_another_model_is_refused_in_one_line(tmp_path, capsys):
    a, b = SAMPLE / "queries" / "da07d5ba65959f62.jpg", SAMPLE / "gallery" / "fa2d74be0fd77106.jpg"
    affine = tmp_path / "affine.json"
    affine.write_text(json.dumps(builtin_table("rootsift", "affine").to_dict()))
    status, out, err = _main(capsys, "verify", a, b, "--no-cache", "--null-table", affine, "-q")
    assert status == 2 and err.count("\n") == 1 and "affine model, not rootsift with the fundamental model" in err


def test_details_and_report_carry_the_rate_of_each_rows_most_inliers(sample_run):
    details = pd.read_csv(sample_run.folder / "details.csv", dtype={"inliers": str}, keep_default_na=False)
    for cell, rate in zip(details["inliers"], details["false_match_rate"]):
        counts = [int(v) for v in str(cell).split() if v != "-"]
        if counts:
            assert float(rate) == pytest.approx(float(SHIPPED.false_match_rate(max(counts))), rel=1e-3)
        else:
            assert rate == ""


def test_a_policy_may_set_its_thresholds_as_false_match_rates(tmp_path):
    doc = {"name": "rates", "bands": [{"lower": 0, "upper": 1, "k": 3, "min_inliers": {"false_match_rate": 0.1},
                                       "suppress": {"multiply": 0.5}, "boost_inliers": {"false_match_rate": 0.001},
                                       "boost": {"range": [0.5, 1]}}]}
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(doc))
    policy = load_policy(path, "rootsift", "fundamental", SHIPPED)
    assert (policy.bands[0].min_inliers, policy.bands[0].boost_inliers) == (11, 14)  # default's thresholds
    with pytest.raises(PolicyError, match=r"rates\.json: policy\.bands\[0\]\.min_inliers: a false-match rate needs"):
        load_policy(path, "delf", "affine")
    doc["bands"][0]["min_inliers"] = {"false_match_rate": 0}
    path.write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match=r"false_match_rate: must be a number in \(0, 1\]"):
        load_policy(path, "rootsift", "fundamental", SHIPPED)


def test_the_built_in_thresholds_are_the_counts_of_10_and_0_1_percent_of_unrelated_pairs():
    from delfverify.extractors import RootSIFT

    for geometry, thresholds in RootSIFT.thresholds.items():
        table = builtin_table("rootsift", geometry)
        assert (table.count_for_rate(0.1), table.count_for_rate(0.001)) == (thresholds.support, thresholds.accept)
    assert builtin_table("delf", "affine") is None  # nothing to measure it with here: NaN rates
