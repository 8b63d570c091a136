"""Choosing a policy from cross-validated fold scores without preferring a candidate on noise.

Every candidate, ``default`` included, is scored on the same folds (``R`` repeats of ``F``-fold cross-validation
over queries), so each candidate has ``R x F`` paired differences to ``default``. Two tests decide:

1. ``select``, Breiman's one-standard-error rule with ``default`` as the simplest candidate. ``best`` is the
   candidate with the highest mean fold score; its *margin* is the mean of its paired differences to ``default``,
   and ``se`` the standard error of that mean (below). Every candidate whose mean lies within ``se`` of the best's
   is as good as the best, as far as these folds can tell. If ``default`` is among them (``margin <= se``), it is
   kept. Otherwise the candidate closest to ``default`` among them is chosen (the space's distance, e.g. grid
   steps; ties: the higher mean, then the earlier).
2. ``confirm``: the best of many candidates beats ``default`` on the folds it was chosen on partly by luck, and
   step 1 cannot see how much: on seeded data where nothing predicts correctness (``tests/tuning_cases.noise``),
   the best of the small grid's 2,160 candidates clears one standard error in 50 of 72 data sets. Nested
   cross-validation measures what the luck is worth: for each repeat and fold, step 1 is run on the repeat's other
   folds only and its choice is scored on the held-out fold, against ``default`` on the same fold. The chosen
   policy is written only if these held-out gains exceed ``CONFIRM_SE`` (2) standard errors, a one-sided test at
   about the 2.5% level. This is the test of step 1 applied to *tuning* (search and rule) as the candidate instead
   of one fixed policy, with the threshold of a significance test rather than of a tie-break: at one standard
   error, 6 of 72 pure-noise data sets were still tuned (seeds 0-11 and 100-129 with 240 queries, 100-129 with
   80; ``benchmarks/bench_tune_selection.py``), at two none.

**Regularisation toward default.** With ``M`` landmark queries, each fold holds ``M/F`` of them and the standard
errors fall as ``1/sqrt(M)``. The tolerance of step 1 is one standard error, so the fewer the queries, the more
candidates count as tied with the best and the closer to ``default`` the choice (``default`` itself once the best
margin is within the tolerance), and the held-out gain of step 2 must clear a larger bar. Written out: a candidate
``c`` replaces ``default`` only if ``mean(best) - mean(default) > SE`` and ``mean(nested gain) > 2 SE'``, and then
``c = argmin {distance(c) : mean(c) >= mean(best) - SE}``.

**The standard error.** A paired comparison on the folds needs no distributional assumption beyond the folds
being exchangeable. Repeating the cross-validation with other fold seeds averages out the luck of one partition,
but every repeat tests the same queries, so the ``R x F`` differences are not independent: their naive standard
error ``s / sqrt(R F)`` would shrink with ``R`` without any new data. ``corrected_se`` uses the correction of
Nadeau and Bengio (2003, "Inference for the generalization error"; recommended for repeated k-fold by Bouckaert
and Frank 2004): ``s * sqrt(1 / (R F) + 1 / (F - 1))``, where ``s`` is the standard deviation of the differences
and ``1 / (F - 1)`` is the ratio of test to training queries. It does not fall below ``s / sqrt(F - 1)`` however
many repeats are run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

#: Held-out gains of tuning must exceed this many standard errors (``confirm``).
CONFIRM_SE = 2.0
#: The selection rule, as recorded in a tuned policy's ``info``.
RULE = ("one-standard-error: keep default unless the best candidate's mean fold score beats default's by more than "
        "the corrected standard error of their paired fold differences, and tuning (nested cross-validation) beats "
        f"default on held-out folds by more than {CONFIRM_SE:g} standard errors; then the candidate closest to "
        "default within one standard error of the best")
#: ``Selection.decision`` values.
DECISIONS = ("kept default", "tuned")


@dataclass(frozen=True)
class Selection:
    """What the one-standard-error rule chose, and why.

    Attributes
    ----------
    index : int
        The chosen candidate (``default``'s index when it is kept).
    decision : {"kept default", "tuned"}
    reason : str
        Why, in words.
    best : int
        The candidate with the highest mean fold score.
    best_margin, best_se : float
        Mean paired fold difference best minus ``default``, and its corrected standard error (the test).
    margin, se : float
        The same for the chosen candidate (0 and 0 when ``default`` is kept).
    tied : int
        Candidates within one standard error of the best (``default`` among them when the best margin is within
        it).
    nested_margin, nested_se : float
        Mean held-out gain of tuning over ``default`` in nested cross-validation and its corrected standard error
        (NaN until ``confirm``).
    """

    index: int
    decision: str
    reason: str
    best: int
    best_margin: float
    best_se: float
    margin: float
    se: float
    tied: int
    nested_margin: float = math.nan
    nested_se: float = math.nan


def corrected_se(differences: np.ndarray) -> float:
    """Standard error of the mean of paired fold differences from ``R`` repeats of ``F``-fold cross-validation.

    Parameters
    ----------
    differences : float array (R, F)
        Per repeat and fold, a candidate's score minus ``default``'s.

    Returns
    -------
    float
        ``s * sqrt(1 / (R F) + 1 / (F - 1))`` with ``s`` the sample standard deviation of all ``R F`` differences
        (Nadeau and Bengio's correction); ``inf`` with fewer than 2 folds (nothing to estimate it from).
    """
    differences = np.asarray(differences, float)
    if differences.ndim != 2:
        raise ValueError(f"differences must be an (R, F) array, got shape {differences.shape}")
    repeats, folds = differences.shape
    if folds < 2:
        return math.inf
    spread = float(differences.std(ddof=1))
    return spread * math.sqrt(1.0 / (repeats * folds) + 1.0 / (folds - 1))


def select(scores: np.ndarray, default: int, distance: np.ndarray) -> Selection:
    """Apply the one-standard-error rule to fold scores (step 1 of the module docstring).

    Parameters
    ----------
    scores : float array (C, R, F)
        Score (GAP, higher is better) of each of ``C`` candidates on each repeat and fold; every candidate on the
        same folds.
    default : int
        Index of ``default`` among the candidates.
    distance : float array (C,)
        How far each candidate is from ``default`` (0 for ``default``); the rule prefers the closest.

    Returns
    -------
    Selection
    """
    scores = np.asarray(scores, float)
    distance = np.asarray(distance, float)
    if scores.ndim != 3 or scores.shape[0] < 1:
        raise ValueError(f"scores must be a (candidates, repeats, folds) array, got shape {scores.shape}")
    count = scores.shape[0]
    if not (isinstance(default, (int, np.integer)) and 0 <= default < count):
        raise ValueError(f"default must be a candidate index in [0, {count}), got {default!r}")
    if distance.shape != (count,):
        raise ValueError(f"distance must hold one value per candidate ({count}), got shape {distance.shape}")
    means = scores.mean(axis=(1, 2))
    # The best mean; among equal means the closest to default, then the earliest.
    best = int(np.lexsort((np.arange(count), distance, -means))[0])
    best_margin = float(means[best] - means[default])
    best_se = corrected_se(scores[best] - scores[default]) if best != default else 0.0
    tied = np.flatnonzero(means >= means[best] - best_se - 1e-12)
    if best == default:
        return Selection(default, DECISIONS[0], "default scores best", best, 0.0, 0.0, 0.0, 0.0, int(tied.size))
    if not best_margin > best_se:
        return Selection(default, DECISIONS[0], "the best candidate is within one standard error of default", best,
                         best_margin, best_se, 0.0, 0.0, int(tied.size))
    chosen = int(tied[np.lexsort((tied, -means[tied], distance[tied]))[0]])
    return Selection(chosen, DECISIONS[1], "the best candidate beats default by more than one standard error", best,
                     best_margin, best_se, float(means[chosen] - means[default]),
                     corrected_se(scores[chosen] - scores[default]), int(tied.size))


def confirm(selection: Selection, default: int, nested_gain: np.ndarray) -> Selection:
    """Step 2 of the module docstring: keep ``default`` unless tuning gained on held-out folds by more than
    ``CONFIRM_SE`` standard errors.

    Parameters
    ----------
    selection : Selection
        ``select`` on all folds.
    default : int
        Index of ``default`` among the candidates ``selection`` was made from.
    nested_gain : float array (R, F)
        Per repeat and fold, the held-out score of what ``select`` chose on the repeat's other folds, minus
        ``default``'s score on that fold.

    Returns
    -------
    Selection
        ``selection`` with ``nested_margin`` and ``nested_se`` filled in; turned into ``default`` (decision
        "kept default") when the mean gain is not above ``CONFIRM_SE`` corrected standard errors.
    """
    nested_gain = np.asarray(nested_gain, float)
    margin, se = float(nested_gain.mean()), corrected_se(nested_gain)
    confirmed = replace(selection, nested_margin=margin, nested_se=se)
    if selection.decision == DECISIONS[0] or margin > CONFIRM_SE * se:
        return confirmed
    return replace(confirmed, index=default, decision=DECISIONS[0], margin=0.0, se=0.0,
                   reason=f"tuning did not beat default on held-out folds (nested cross-validation) by more than "
                          f"{CONFIRM_SE:g} standard errors")
