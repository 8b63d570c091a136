"""delfverify.tuning.selection: the one-standard-error rule on hand-made fold results: default is kept unless the
best candidate beats it by more than the corrected standard error, the closest candidate within one standard error
of the best is chosen, and nested held-out gains must confirm it by two standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from delfverify.tuning import DECISIONS, confirm, corrected_se, select


def test_corrected_se_hand_computed():
    # Differences 0.01, 0.03 / 0.02, 0.04: mean 0.025, sample sd sqrt(0.0005/3); R = 2, F = 2.
    differences = np.array([[0.01, 0.03], [0.02, 0.04]])
    s = math.sqrt(((0.015**2) * 2 + (0.005**2) * 2) / 3)
    assert corrected_se(differences) == pytest.approx(s * math.sqrt(1 / 4 + 1 / 1))


def test_corrected_se_does_not_shrink_with_repeats_of_the_same_differences():
    one = np.array([[0.01, -0.02, 0.03, 0.0, 0.02]])
    many = np.repeat(one, 50, axis=0)
    s = float(one.std(ddof=1))
    assert corrected_se(one) == pytest.approx(s * math.sqrt(1 / 5 + 1 / 4))
    s_many = float(many.std(ddof=1))
    assert corrected_se(many) > s_many / math.sqrt(4) > 5 * s_many / math.sqrt(many.size)  # not s / sqrt(R F)
    assert corrected_se(np.array([[0.1], [0.2]])) == math.inf  # one fold: nothing to estimate it from
    with pytest.raises(ValueError, match="differences must be an"):
        corrected_se(np.zeros(5))


def _scores(*per_fold):
    """Candidates' fold scores as (C, 1, F)."""
    return np.array(per_fold, float)[:, None, :]


def test_select_keeps_default_when_the_best_is_within_one_standard_error():
    default = [0.50, 0.52, 0.48, 0.51, 0.49]
    noisy_best = [0.56, 0.49, 0.47, 0.58, 0.48]  # +0.016 on average, but fold differences spread widely
    selection = select(_scores(default, noisy_best), 0, np.array([0, 3]))
    assert selection.decision == DECISIONS[0] == "kept default" and selection.index == 0
    assert selection.best == 1
    assert selection.best_margin == pytest.approx(0.016)
    differences = np.array(noisy_best) - np.array(default)
    assert selection.best_se == pytest.approx(differences.std(ddof=1) * math.sqrt(1 / 5 + 1 / 4))
    assert selection.best_margin < selection.best_se
    assert selection.margin == 0.0 and selection.se == 0.0
    assert "within one standard error" in selection.reason


def test_select_takes_the_closest_candidate_within_one_standard_error_of_the_best():
    default = [0.50, 0.52, 0.48, 0.51, 0.49]
    best = [0.60, 0.63, 0.57, 0.62, 0.58]  # +0.10, every fold: far above its standard error
    near = [0.59, 0.62, 0.57, 0.61, 0.58]  # 0.006 below the best: within one standard error of it
    far_tie = [0.595, 0.625, 0.565, 0.615, 0.585]
    weaker = [0.55, 0.57, 0.53, 0.56, 0.54]  # clearly below the best
    distance = np.array([0, 6, 2, 4, 1])
    selection = select(_scores(default, best, near, far_tie, weaker), 0, distance)
    assert selection.decision == "tuned" and selection.best == 1
    assert selection.best_margin == pytest.approx(0.1) and selection.best_se < 0.01
    assert selection.index == 2  # the closest of best, near and far_tie; weaker is not within one SE
    assert selection.tied == 3
    assert selection.margin == pytest.approx(0.094)
    assert selection.se == pytest.approx(corrected_se((np.array(near) - np.array(default))[None]))


def test_select_prefers_the_closer_and_then_the_earlier_among_equal_means():
    default = [0.5, 0.5, 0.5]
    better = [0.7, 0.7, 0.7]
    selection = select(_scores(default, better, better, better), 0, np.array([0, 5, 2, 2]))
    assert selection.best == 2 and selection.index == 2
    assert select(_scores(better, default), 1, np.array([1, 0])).decision == "tuned"
    kept = select(_scores(default, default), 0, np.array([0, 1]))
    assert kept.decision == "kept default" and kept.reason == "default scores best" and kept.index == 0


def test_select_works_over_repeats():
    rng = np.random.default_rng(0)
    default = rng.normal(0.5, 0.05, (3, 5))
    shifted = default + 0.03 + rng.normal(0, 0.002, (3, 5))  # a consistent gain on every repeat and fold
    selection = select(np.stack([default, shifted]), 0, np.array([0, 1]))
    assert selection.decision == "tuned" and selection.index == 1
    assert selection.best_se == pytest.approx(corrected_se(shifted - default))


def test_confirm_keeps_default_unless_held_out_gains_exceed_two_standard_errors():
    default = [0.50, 0.52, 0.48, 0.51, 0.49]
    best = [0.60, 0.63, 0.57, 0.62, 0.58]
    tuned = select(_scores(default, best), 0, np.array([0, 1]))
    gains = np.array([[0.02, 0.03, 0.01, 0.04, 0.02]])
    confirmed = confirm(tuned, 0, gains)
    assert confirmed.decision == "tuned" and confirmed.index == 1
    assert confirmed.nested_margin == pytest.approx(0.024)
    assert confirmed.nested_se == pytest.approx(corrected_se(gains))
    noisy = confirm(tuned, 0, np.array([[0.05, -0.04, 0.06, -0.05, 0.0]]))
    assert noisy.decision == "kept default" and noisy.index == 0 and noisy.margin == 0.0
    assert noisy.best_margin == tuned.best_margin  # the record of the first test stays
    assert "held-out" in noisy.reason and noisy.nested_margin == pytest.approx(0.004)
    between = np.array([[0.02, 0.0, 0.015, 0.005, 0.01]])  # mean 0.01: above one standard error, below two
    assert corrected_se(between) < 0.01 < 2 * corrected_se(between)
    assert confirm(tuned, 0, between).decision == "kept default"
    losing = confirm(tuned, 0, np.array([[-0.01, -0.02, -0.01, -0.03, -0.02]]))
    assert losing.decision == "kept default"
    kept = select(_scores(default, default), 0, np.array([0, 1]))
    assert confirm(kept, 0, gains).decision == "kept default"


def test_select_rejects_bad_input():
    with pytest.raises(ValueError, match="scores must be a"):
        select(np.zeros((2, 5)), 0, np.zeros(2))
    with pytest.raises(ValueError, match="default must be a candidate index"):
        select(np.zeros((2, 1, 5)), 2, np.zeros(2))
    with pytest.raises(ValueError, match="distance must hold one value per candidate"):
        select(np.zeros((2, 1, 5)), 0, np.zeros(3))
