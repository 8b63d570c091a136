"""Synthetic labelled predictions for the tuning tests (seeded): random cases and cleanly separable ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from delfverify.policy import builtin_policy
from delfverify.tables import Predictions, Solution
from delfverify.tuning import SearchSpace, random_policies


def random_case(seed: int, n: int, decimals: int | None = None, ids: list[str] | None = None):
    """Random truth, predictions (all queries), correctness, inliers (K = 5, some missing), as DataFrames."""
    rng = np.random.default_rng(seed)
    ids = ids or [f"q{i:05d}" for i in rng.permutation(n)]
    landmark = rng.random(n) < 0.7
    landmark[:3] = True
    truth_label = np.where(landmark, rng.integers(0, 4, n).astype(str), "")
    correct = landmark & (rng.random(n) < 0.5)
    label = np.where(correct, truth_label, "x")
    confidence = rng.random(n)
    if decimals is not None:
        confidence = np.round(confidence, decimals)
    inliers = np.where(correct[:, None], rng.poisson(11, (n, 5)), rng.poisson(4, (n, 5))).astype(float)
    inliers[rng.random((n, 5)) < 0.15] = np.nan
    truth = pd.DataFrame({"id": ids, "landmarks": truth_label})
    predictions = pd.DataFrame({"id": ids, "label": label, "confidence": confidence})
    return truth, predictions, correct, inliers


def random_candidates_case(seed: int, queries: int, most: int = 5, decimals: int | None = 1):
    """Random truth and a candidates table: 1 to ``most`` candidates per query (distinct labels of 6, at most one
    of them true), confidences best first (rounded to ``decimals``: ties), inliers K = 3 (some missing; the true
    label's often higher, and equal counts within a query now and then: ties after rescaling too).

    Returns (truth DataFrame, Predictions, correct (n,), inliers (n, 3)); truth row ``q`` is query ``q`` of the
    table (``Predictions.query``), and the first three are landmark queries.
    """
    rng = np.random.default_rng(seed)
    ids = [f"q{i:04d}" for i in rng.permutation(queries)]
    landmark = rng.random(queries) < 0.7
    landmark[:3] = True
    truth_label = np.where(landmark, rng.integers(0, 6, queries).astype(str), "")
    rows, labels, confidence = [], [], []
    for q in range(queries):
        count = int(rng.integers(1, most + 1))
        rows += [q] * count
        labels += rng.permutation(6)[:count].astype(str).tolist()
        values = np.sort(rng.random(count))[::-1]
        confidence += (values if decimals is None else np.round(values, decimals)).tolist()
    rows, labels = np.array(rows), np.array(labels, object)
    correct = labels == truth_label[rows]
    inliers = rng.poisson(np.where(correct, 12.0, 4.0)[:, None], (rows.size, 3)).astype(float)
    same = rng.random(rows.size) < 0.2  # a candidate with its query's first candidate's counts
    first = np.searchsorted(rows, rows)
    inliers[same] = inliers[first[same]]
    inliers[rng.random((rows.size, 3)) < 0.1] = np.nan
    truth = pd.DataFrame({"id": ids, "landmarks": truth_label})
    table = Predictions(pd.DataFrame({"id": np.array(ids, object)[rows], "label": labels, "confidence": confidence}))
    return truth, table, correct, inliers


def query_rank(ids) -> np.ndarray:
    """Rank of each id in Python string order (the Kaggle tie-break)."""
    ids = np.asarray(ids, object)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    return rank


def candidates(count: int = 120, seed: int = 3) -> list:
    """The built-ins and ``count`` seeded random policies of every mode."""
    return [builtin_policy("default", "rootsift"), builtin_policy("seed", "rootsift")] + random_policies(
        SearchSpace(), count, seed)


#: ``separable``'s cut: three inliers above the RootSIFT ``default``'s suppress threshold, so that the best policy
#: (suppress below it and boost at it) lies inside the small grid.
CUT = builtin_policy("default", "rootsift").bands[0].min_inliers + 3


def separable(seed: int = 0, n: int = 240, files: int = 2):
    """Correct predictions have CUT-40 inliers, wrong ones fewer (equal in every column): CUT separates them.

    Returns (Solution, list of Predictions, list of inlier arrays (n, 5)).
    """
    rng = np.random.default_rng(seed)
    ids = [f"q{i:04d}" for i in range(n)]
    landmark = rng.random(n) < 0.7
    truth = Solution(pd.DataFrame({"id": ids, "landmarks": np.where(landmark, "a", "")}))
    tables, inliers = [], []
    for _ in range(files):
        correct = landmark & (rng.random(n) < 0.5)
        count = np.where(correct, rng.integers(CUT, 41, n), rng.integers(0, CUT, n)).astype(float)
        tables.append(Predictions(pd.DataFrame({"id": ids, "label": np.where(correct, "a", "b"),
                                                "confidence": np.round(rng.random(n), 4)})))
        inliers.append(np.repeat(count[:, None], 5, axis=1))
    return truth, tables, inliers


def noise(seed: int = 0, n: int = 240, files: int = 2):
    """Correctness independent of both the confidence and the inlier counts: no policy is better than another
    except by chance. Returns (Solution, list of Predictions, list of inlier arrays (n, 5))."""
    rng = np.random.default_rng(seed)
    ids = [f"q{i:04d}" for i in range(n)]
    landmark = rng.random(n) < 0.7
    truth = Solution(pd.DataFrame({"id": ids, "landmarks": np.where(landmark, "a", "")}))
    tables, inliers = [], []
    for _ in range(files):
        correct = landmark & (rng.random(n) < 0.5)
        tables.append(Predictions(pd.DataFrame({"id": ids, "label": np.where(correct, "a", "b"),
                                                "confidence": np.round(rng.random(n), 4)})))
        inliers.append(rng.integers(0, 16, (n, 5)).astype(float))
    return truth, tables, inliers


#: ``second_choice``'s evidence of a true second candidate: from three inliers below the RootSIFT ``default``'s boost
#: threshold up to one below it. ``default`` does not boost it; a boost threshold three steps lower, inside the small
#: grid, does.
WEAK = range(builtin_policy("default", "rootsift").bands[0].boost_inliers - 3,
             builtin_policy("default", "rootsift").bands[0].boost_inliers)


def second_choice(seed: int = 0, n: int = 240, files: int = 2):
    """Candidates files where tuning for the choice matters: every query has two candidates. Half the landmark
    queries have the true label first (14-40 inliers), the other half second (``WEAK`` inliers); every wrong
    candidate has fewer inliers than ``default``'s suppress threshold. On the first candidates alone ``default`` is
    already perfect, while the choice gains from a lower boost threshold.

    Returns (Solution, list of Predictions, list of inlier arrays (2 n, 5)).
    """
    rng = np.random.default_rng(seed)
    ids = [f"q{i:04d}" for i in range(n)]
    landmark = rng.random(n) < 0.7
    truth = Solution(pd.DataFrame({"id": ids, "landmarks": np.where(landmark, "a", "")}))
    suppress = builtin_policy("default", "rootsift").bands[0].min_inliers
    tables, inliers = [], []
    for _ in range(files):
        second = landmark & (rng.random(n) < 0.5)
        first = landmark & ~second
        first_confidence = np.round(rng.uniform(0.5, 1.0, n), 4)
        confidence = np.stack([first_confidence, np.round(first_confidence * rng.random(n), 4)], axis=1)
        labels = np.stack([np.where(first, "a", "b"), np.where(second, "a", "c")], axis=1)
        count = rng.integers(0, suppress, (n, 2))
        count[first, 0] = rng.integers(14, 41, int(first.sum()))
        count[second, 1] = rng.integers(WEAK.start, WEAK.stop, int(second.sum()))
        tables.append(Predictions(pd.DataFrame({"id": np.repeat(ids, 2), "label": labels.reshape(-1),
                                                "confidence": confidence.reshape(-1)})))
        inliers.append(np.repeat(count.reshape(-1, 1), 5, axis=1).astype(float))
    return truth, tables, inliers
