"""Cross-validation over queries: seeded stratified folds (repeated with other seeds), the labelled data of all
files in one table, and a scorer whose rankings are (repeat, file, fold) triples.

Every truth id gets a fold, stratified so that every fold holds landmark queries (GAP needs M > 0); the same query
id is in the same fold in every predictions file. The score of a candidate on a fold is the mean over files of its
GAP on that fold's rows, with M counted from the fold's truth rows. Repeats partition the same queries again with
other seeds, which averages out the luck of one partition (``delfverify.tuning.selection`` explains what repeats
cannot do).

A candidates file (several labels per query, ``delfverify.tables.Predictions``) keeps every candidate as a row of
its query, in its query's fold; the scorer chooses among them per policy as ``rerank`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import match_predictions
from ..tables import Predictions, Solution
from .scoring import PolicyScorer


def assign_folds(truth: Solution, folds: int, seed: int | Sequence[int] = 0) -> np.ndarray:
    """A cross-validation fold per truth row, stratified: landmark and non-landmark queries are each dealt out
    in a seeded random order, so every fold gets ``M // folds`` or one more landmark queries.

    Returns
    -------
    int array (T,)
        Fold of each truth row, in truth order; depends only on the set of ids, the labels, ``folds`` and ``seed``
        (an integer or a sequence of them, as ``numpy.random.default_rng`` takes it).

    Raises
    ------
    ValueError
        If ``folds`` < 2 or there are fewer landmark queries than folds (a fold would have M = 0).
    """
    if not (isinstance(folds, int) and folds >= 2):
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    no_predictions = pd.DataFrame({"id": pd.Series([], dtype=object), "label": pd.Series([], dtype=object),
                                   "confidence": pd.Series([], dtype=float)})
    matched = match_predictions(no_predictions, truth.table)
    landmark = matched.is_landmark
    if landmark.sum() < folds:
        raise ValueError(f"folds: {folds} folds need at least {folds} landmark queries in the truth, "
                         f"found {int(landmark.sum())}")
    ids = matched.truth_ids.to_numpy(dtype=object)
    out = np.empty(len(ids), np.int64)
    rng = np.random.default_rng(seed)
    offset = 0
    for group in (np.flatnonzero(landmark), np.flatnonzero(~landmark)):
        group = group[np.argsort(ids[group], kind="stable")]  # independent of the truth's row order
        dealt = group[rng.permutation(group.size)]
        out[dealt] = (np.arange(group.size) + offset) % folds
        offset += group.size
    return out


def repeated_folds(truth: Solution, folds: int, repeats: int, seed: int = 0) -> np.ndarray:
    """``repeats`` independent fold assignments (``assign_folds``): repeat 0 with ``seed``, repeat ``r`` with
    ``[seed, r]``.

    Returns
    -------
    int array (repeats, T)
    """
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    return np.stack([assign_folds(truth, folds, seed if r == 0 else [seed, r]) for r in range(repeats)])


@dataclass(frozen=True)
class MatchedCandidates:
    """Every labelled row of a predictions table, a query's candidates each, checked against the truth (see
    ``match_candidates``); rows in the table's order."""

    prediction_rows: np.ndarray  # (n,) int, position in the predictions table
    truth_rows: np.ndarray  # (n,) int, position of the row's id in the truth
    confidence: np.ndarray  # (n,) float
    correct: np.ndarray  # (n,) bool
    rank: np.ndarray  # (n,) int, the candidate's rank in its query (1: the classifier's first)
    truth_ids: pd.Index  # (T,) the truth's ids, in its order
    is_landmark: np.ndarray  # (T,) bool

    @property
    def top_n_oracle(self) -> float:
        """The share of landmark queries whose true label is among their candidates (the top-1 oracle without
        candidates)."""
        found = np.zeros(self.is_landmark.size, bool)
        found[self.truth_rows[self.correct]] = True
        return int(found.sum()) / int(self.is_landmark.sum())


def match_candidates(predictions: Predictions, truth: Solution) -> MatchedCandidates:
    """``delfverify.metrics.match_predictions`` for a table with several candidates per query: the candidates of
    each rank, at most one per query, are matched on their own.

    Raises
    ------
    ValueError
        The errors of ``match_predictions``: ids not in the truth, a truth without landmarks, malformed frames.
    """
    rank = predictions.rank
    parts = []
    for r in range(1, max(int(rank.max(initial=0)), 1) + 1):
        rows = np.flatnonzero(rank == r)
        matched = match_predictions(predictions.table.iloc[rows], truth.table)
        parts.append((rows[matched.prediction_rows], matched))
    prediction_rows = np.concatenate([rows for rows, _ in parts])
    order = np.argsort(prediction_rows, kind="stable")
    first = parts[0][1]
    return MatchedCandidates(
        prediction_rows=prediction_rows[order],
        truth_rows=np.concatenate([m.truth_rows for _, m in parts])[order],
        confidence=np.concatenate([m.confidence for _, m in parts])[order],
        correct=np.concatenate([m.correct for _, m in parts])[order],
        rank=rank[prediction_rows[order]],
        truth_ids=first.truth_ids,
        is_landmark=first.is_landmark,
    )


@dataclass(frozen=True)
class LabelledData:
    """All labelled predictions of all files, one row each, a query's candidates each (see ``collect``)."""

    file: np.ndarray  # (n,) int
    truth_row: np.ndarray  # (n,) int
    confidence: np.ndarray  # (n,) float
    correct: np.ndarray  # (n,) bool
    rank: np.ndarray  # (n,) int, the candidate's rank in its query (1: the classifier's first)
    inliers: np.ndarray  # (n, K) float
    query_rank: np.ndarray  # (T,) int, rank of each truth id in string order
    is_landmark: np.ndarray  # (T,) bool
    num_files: int


def collect(predictions: Sequence[Predictions], truth: Solution, inliers: Sequence[np.ndarray]) -> LabelledData:
    """All labelled predictions of all files in one table, every candidate of a query with its own inlier counts,
    padded to the widest."""
    tables = [p.table for p in predictions]
    if not tables:
        raise ValueError("give at least one predictions table")
    if len(inliers) != len(tables):
        raise ValueError(f"inliers: one inlier table per predictions table, got {len(inliers)} for {len(tables)}")
    width = 1
    arrays = []
    for i, (table, counts) in enumerate(zip(tables, inliers)):
        counts = np.asarray(counts, np.float64)
        if counts.ndim != 2 or counts.shape[0] != len(table) or counts.shape[1] < 1:
            raise ValueError(f"inliers[{i}]: expected shape ({len(table)}, K) with K >= 1, got {counts.shape}")
        arrays.append(counts)
        width = max(width, counts.shape[1])
    parts = []
    for table, counts in zip(predictions, arrays):
        matched = match_candidates(table, truth)
        padded = np.full((len(matched.truth_rows), width), np.nan)
        padded[:, : counts.shape[1]] = counts[matched.prediction_rows]
        parts.append((matched, padded))
    first = parts[0][0]
    ids = first.truth_ids.to_numpy(dtype=object)
    query_rank = np.empty(len(ids), np.int64)
    query_rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))  # Python str order, as metrics sorts
    return LabelledData(
        file=np.concatenate([np.full(len(m.truth_rows), i) for i, (m, _) in enumerate(parts)]).astype(np.int64),
        truth_row=np.concatenate([m.truth_rows for m, _ in parts]).astype(np.int64),
        confidence=np.concatenate([m.confidence for m, _ in parts]),
        correct=np.concatenate([m.correct for m, _ in parts]),
        rank=np.concatenate([m.rank for m, _ in parts]),
        inliers=np.concatenate([p for _, p in parts]),
        query_rank=query_rank,
        is_landmark=first.is_landmark,
        num_files=len(tables),
    )


def fold_scorer(data: LabelledData, fold_of_truth: np.ndarray, folds: int) -> PolicyScorer:
    """Rankings repeat x file x fold (ranking ``(r * files + file) * folds + fold``), each with the M of its fold.

    ``fold_of_truth`` is one assignment (T,) or one per repeat (R, T); every repeat holds every labelled row once.
    """
    assignments = np.atleast_2d(fold_of_truth)
    repeats = assignments.shape[0]
    m = np.stack([np.bincount(a[data.is_landmark], minlength=folds) for a in assignments])  # (R, F)
    ranking = np.concatenate([(r * data.num_files + data.file) * folds + a[data.truth_row]
                              for r, a in enumerate(assignments)])
    return PolicyScorer(
        np.tile(data.confidence, repeats), np.tile(data.inliers, (repeats, 1)), np.tile(data.correct, repeats),
        np.tile(data.query_rank[data.truth_row], repeats), ranking,
        np.repeat(m[:, None, :], data.num_files, axis=1).reshape(-1), candidate=np.tile(data.rank, repeats),
    )
