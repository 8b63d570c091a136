"""Global Average Precision (GAP, micro-AP) of landmark recognition predictions.

Each query gets at most one prediction, a (label, confidence) pair. All predictions are
ranked by confidence, highest first, and

    GAP = (1 / M) * sum over ranks i of P(i) * rel(i)

where P(i) is the precision of the first i predictions, rel(i) is 1 when prediction i is
correct and M is the number of queries whose ground truth holds at least one landmark. A
landmark query without a prediction still counts in M; a non-landmark query with a
prediction takes a rank with rel(i) = 0 and lowers the precision of every rank below it.

Ties are broken as Kaggle does (tensorflow/models research/delf metrics.py): confidence
descending, then query id ascending, then label ascending.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .csv_input import words, words_by_row
from .details import check_details, first_and_chosen
from .errors import DelfverifyError, shorten
from .tables import Solution, as_solution

__all__ = ["OUTCOMES", "GapResult", "MatchedPredictions", "RunScores", "TruthError", "global_average_precision",
           "load_truth", "match_predictions", "oracle_gap", "outcomes", "ranked_gap", "run_scores"]

#: Outcomes of a prediction against the truth.
OUTCOMES = ("correct", "wrong", "non-landmark")

_PREDICTION_COLUMNS = ("id", "label", "confidence")
_TRUTH_COLUMNS = ("id", "landmarks")
_MAX_IDS_IN_MESSAGE = 5


@dataclass(frozen=True)
class GapResult:
    """Global Average Precision of a set of predictions, with the counts behind it.

    Attributes
    ----------
    gap : float
        Global Average Precision, in [0, 1].
    num_predictions : int
        Number of predictions ranked, i.e. rows of ``predictions`` that carry a label.
    num_landmark_queries : int
        M: number of truth rows with at least one landmark label. GAP is divided by it.
    num_correct : int
        Number of predictions whose label is one of the truth labels of their query.
    accuracy : float
        ``num_correct / num_landmark_queries``: top-1 accuracy over the landmark
        queries. It is also the highest GAP any re-ranking of these predictions can
        reach (see `oracle_gap`).
    """

    gap: float
    num_predictions: int
    num_landmark_queries: int
    num_correct: int
    accuracy: float


@dataclass(frozen=True)
class MatchedPredictions:
    """Predictions that carry a label, validated and checked against the truth (see `match_predictions`).

    Attributes
    ----------
    truth_ids : pandas.Index (T,)
        The unique query ids of the truth, in its row order.
    truth_rows : int array (N,)
        Position in ``truth_ids`` of each prediction's id.
    prediction_rows : int array (N,)
        Position in the predictions frame of each prediction (rows without a label are left out).
    confidence : float64 array (N,)
        The predictions' confidences, no NaN.
    correct : bool array (N,)
        Whether each prediction's label is one of its query's truth labels.
    is_landmark : bool array (T,)
        Whether each truth row holds at least one landmark label.
    num_landmark_queries : int
        M, the number of True values in ``is_landmark``; at least 1.
    """

    truth_ids: pd.Index
    truth_rows: np.ndarray
    prediction_rows: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray
    is_landmark: np.ndarray
    num_landmark_queries: int


def global_average_precision(predictions: pd.DataFrame, truth: pd.DataFrame) -> GapResult:
    """Compute the Global Average Precision (micro-AP) of landmark predictions.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per query, columns ``id`` (str), ``label`` (str) and ``confidence``
        (float, not NaN). A row whose label is NaN, None or ``""`` is no prediction and
        is dropped before any other check. Each remaining id must appear once and must
        be an id of ``truth``.
    truth : pandas.DataFrame
        One row per query, columns ``id`` (str, unique) and ``landmarks`` (str: labels
        separated by spaces, any one of which counts as correct; NaN, None or ``""``
        for a query that shows no landmark). At least one row must hold a label.

    Returns
    -------
    GapResult
        The GAP, in [0, 1], with the number of predictions, landmark queries (M) and
        correct predictions, and the top-1 accuracy ``num_correct / M``.

    Raises
    ------
    ValueError
        If a column is missing or holds numbers instead of label strings, if an id is
        repeated in either frame, if a prediction's id is not in ``truth``, if a
        prediction's confidence is NaN, or if ``truth`` has no landmark query (M = 0,
        GAP undefined).

    Notes
    -----
    Predictions are ranked by confidence descending, then id ascending (Kaggle's
    convention; its last key, the label, never decides because ids are unique), so
    the result does not depend on row order. No Python loop runs over the rows: a
    million predictions take about a second.

    Examples
    --------
    A confident prediction for a non-landmark query (q3) takes rank 1 with rel = 0,
    so the two correct predictions below it score P(2) = 1/2 and P(3) = 2/3; q4 has no
    prediction but counts in M = 3, so GAP = (1/2 + 2/3) / 3 = 7/18.

    >>> import pandas as pd
    >>> truth = pd.DataFrame({"id": ["q1", "q2", "q3", "q4"],
    ...                       "landmarks": ["a", "b c", None, "d"]})
    >>> predictions = pd.DataFrame({"id": ["q1", "q2", "q3"],
    ...                             "label": ["a", "c", "e"],
    ...                             "confidence": [0.8, 0.6, 0.9]})
    >>> result = global_average_precision(predictions, truth)
    >>> round(result.gap, 4), result.num_correct, result.num_landmark_queries
    (0.3889, 2, 3)
    """
    matched = match_predictions(predictions, truth)
    # Convert each truth id once and pick the one of each prediction.
    ids = _sort_keys(matched.truth_ids)[matched.truth_rows]
    # np.lexsort sorts by its last key first and is stable.
    order = np.lexsort((ids, -matched.confidence))
    correct_in_order = matched.correct[order]
    num_correct = int(np.count_nonzero(correct_in_order))
    num_landmark_queries = matched.num_landmark_queries
    return GapResult(
        gap=ranked_gap(correct_in_order, num_landmark_queries),
        num_predictions=int(matched.truth_rows.size),
        num_landmark_queries=num_landmark_queries,
        num_correct=num_correct,
        accuracy=num_correct / num_landmark_queries,
    )


def oracle_gap(predictions: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Return the highest GAP that re-ranking these predictions can reach.

    The labels are fixed; only the confidences change. GAP is highest when every
    correct prediction outranks every wrong one, and is then ``num_correct / M``. This
    is the ceiling for a re-ranker such as local-feature verification, and equals
    ``global_average_precision(predictions, truth).accuracy``.

    Parameters
    ----------
    predictions, truth : pandas.DataFrame
        As for `global_average_precision`, and validated the same way.

    Returns
    -------
    float
        ``num_correct / M``, in [0, 1].

    Raises
    ------
    ValueError
        As for `global_average_precision`.

    Examples
    --------
    >>> import pandas as pd
    >>> truth = pd.DataFrame({"id": ["q1", "q2", "q3"], "landmarks": ["a", "b", None]})
    >>> predictions = pd.DataFrame({"id": ["q1", "q2", "q3"], "label": ["a", "x", "e"],
    ...                             "confidence": [0.1, 0.9, 0.8]})
    >>> oracle_gap(predictions, truth)
    0.5
    """
    matched = match_predictions(predictions, truth)
    return int(matched.correct.sum()) / matched.num_landmark_queries


def ranked_gap(
    correct: np.ndarray,
    num_landmark_queries: int | np.ndarray,
    starts: np.ndarray | None = None,
) -> float | np.ndarray:
    """Return the GAP of predictions already in rank order, from whether each is correct.

    The core of `global_average_precision`, for callers that rank the predictions
    themselves, e.g. to score many re-rankings of the same predictions
    (``delfverify.tuning``). Precision at the k-th correct prediction is k / (its rank).

    Parameters
    ----------
    correct : bool array (N,)
        Whether each prediction is correct, best-ranked first. With ``starts``: several
        rankings laid end to end.
    num_landmark_queries : int, or int array (G,) with ``starts``
        M of the ranking, or of each ranking; must be at least 1.
    starts : int array (G,), optional
        Position of the first prediction of each ranking: ``starts[0] == 0``,
        non-decreasing, at most N. An empty ranking has GAP 0.

    Returns
    -------
    float, or float array (G,) when ``starts`` is given
        The GAP of the ranking, or of each ranking.

    Raises
    ------
    ValueError
        If M is below 1 or ``starts`` is malformed.

    Examples
    --------
    Rank 1 wrong, ranks 2 and 3 correct, M = 3: GAP = (1/2 + 2/3) / 3.

    >>> round(ranked_gap(np.array([False, True, True]), 3), 4)
    0.3889
    >>> ranked_gap(np.array([True, False, False, True]), np.array([1, 2]), starts=np.array([0, 2]))
    array([1.  , 0.25])
    """
    correct = np.asarray(correct, dtype=bool)
    positions = np.flatnonzero(correct)
    if starts is None:
        if not num_landmark_queries >= 1:
            raise ValueError(f"num_landmark_queries must be at least 1, got {num_landmark_queries}")
        precisions = np.arange(1, positions.size + 1) / (positions + 1)
        return float(precisions.sum() / num_landmark_queries)
    starts = np.asarray(starts, dtype=np.intp)
    if (starts.ndim != 1 or starts.size == 0 or starts[0] != 0 or starts[-1] > correct.size
            or np.any(np.diff(starts) < 0)):
        raise ValueError(f"starts must begin at 0 and be non-decreasing up to {correct.size}, got {starts}")
    m = np.broadcast_to(np.asarray(num_landmark_queries, dtype=np.float64), starts.shape)
    if not np.all(m >= 1):
        raise ValueError(f"num_landmark_queries must be at least 1 for every ranking, got {m}")
    ranking = np.searchsorted(starts, positions, side="right") - 1
    k = np.arange(1, positions.size + 1) - np.searchsorted(positions, starts)[ranking]
    rank = positions - starts[ranking] + 1
    return np.bincount(ranking, weights=k / rank, minlength=starts.size) / m


def match_predictions(predictions: pd.DataFrame, truth: pd.DataFrame) -> MatchedPredictions:
    """Validate both frames and mark each prediction that carries a label correct or not.

    Parameters and errors are those of `global_average_precision`.
    """
    _require_columns(predictions, _PREDICTION_COLUMNS, "predictions")
    _require_columns(truth, _TRUTH_COLUMNS, "truth")

    truth_ids = pd.Index(truth["id"])
    if not truth_ids.is_unique:
        duplicate = truth_ids[truth_ids.duplicated()][0]
        raise ValueError(f"truth has more than one row for id {shorten(duplicate)!r}")
    landmarks, has_landmarks = _text_values(truth["landmarks"], "truth['landmarks']")
    truth_rows, truth_labels = _landmark_pairs(landmarks[has_landmarks], np.flatnonzero(has_landmarks))
    is_landmark_row = np.zeros(len(truth_ids), dtype=bool)
    is_landmark_row[truth_rows] = True
    num_landmark_queries = int(np.count_nonzero(is_landmark_row))
    if num_landmark_queries == 0:
        raise ValueError(
            "truth has no landmark query (every 'landmarks' value is empty), "
            "so GAP is undefined: it is divided by the number of landmark queries"
        )

    labels, has_label = _text_values(predictions["label"], "predictions['label']")
    labels = labels[has_label]
    ids = predictions["id"][has_label]
    confidence = predictions["confidence"][has_label].to_numpy(dtype=np.float64, na_value=np.nan)

    nan_confidence = np.isnan(confidence)
    if nan_confidence.any():
        first = ids.iloc[nan_confidence.argmax()]
        raise ValueError(f"predictions has a NaN confidence for id {shorten(first)!r}")

    rows = truth_ids.get_indexer(ids)
    unknown = rows < 0
    if unknown.any():
        examples = ", ".join(repr(shorten(i)) for i in ids[unknown].iloc[:_MAX_IDS_IN_MESSAGE])
        raise ValueError(
            f"predictions has {int(unknown.sum())} id(s) that are not in truth, e.g. {examples}"
        )
    repeated = pd.Series(rows).duplicated().to_numpy()
    if repeated.any():
        raise ValueError(
            f"predictions has more than one prediction for id {shorten(ids.iloc[repeated.argmax()])!r}"
        )

    # Lay each prediction's label on its truth row, then compare it with every truth
    # label of that row: no label strings are hashed and no loop runs over rows.
    predicted_label_of_row = np.full(len(truth_ids), None, dtype=object)
    predicted_label_of_row[rows] = labels
    hit = truth_labels == predicted_label_of_row[truth_rows]
    row_is_correct = np.zeros(len(truth_ids), dtype=bool)
    row_is_correct[truth_rows[hit]] = True
    return MatchedPredictions(
        truth_ids=truth_ids,
        truth_rows=rows,
        prediction_rows=np.flatnonzero(has_label),
        confidence=confidence,
        correct=row_is_correct[rows],
        is_landmark=is_landmark_row,
        num_landmark_queries=num_landmark_queries,
    )


def _landmark_pairs(texts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split truth cells into (row, label) pairs by the one rule for label lists (``csv_input.words_by_row``);
    ``texts[i]`` is row ``rows[i]``."""
    pairs = words_by_row(pd.Series(texts, index=rows, dtype=object))
    return pairs.index.to_numpy(), pairs.to_numpy(dtype=object)


def _sort_keys(ids: pd.Index) -> np.ndarray:
    """Return fixed-width copies of the ids, which sort fast and in Python's str order.

    Sorting Python strings is several times slower. ASCII ids become bytes, a quarter
    of the memory of UCS-4 unicode; allocating fresh memory is a large part of the
    run time on a million ids.
    """
    values = ids.to_numpy(dtype=object)
    try:
        return values.astype(np.bytes_)
    except UnicodeEncodeError:
        return values.astype(np.str_)


def _text_values(column: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return a column as an object array and a mask of its values that are not NaN, None or "".

    Raises ValueError when another value is not a string, e.g. labels parsed as numbers
    from a CSV file.
    """
    values = column.to_numpy(dtype=object)
    present = ~pd.isna(values)
    texts = values[present]
    kind = pd.api.types.infer_dtype(texts, skipna=False)
    if kind not in ("string", "empty"):
        raise ValueError(
            f"{name} must hold strings, found {kind} values; read CSV files with "
            "dtype=str so that labels such as '123' are not parsed as numbers"
        )
    present[present] = texts != ""
    return values, present


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it needs {list(columns)}")


# --- a run against the truth ---------------------------------------------------------------------------------------


class TruthError(DelfverifyError, ValueError):
    """A truth that cannot score a run: no landmark query (GAP undefined), or some of the run's queries missing."""


@dataclass(frozen=True)
class RunScores:
    """How a run did against the truth.

    Attributes
    ----------
    gap_before, gap_after : float
        GAP of the classifier's predictions (each query's first candidate, old confidence) and of the re-ranked
        ones (each query's chosen candidate, new confidence).
    oracle : float
        The best GAP any re-ranking of the classifier's first labels can reach (= ``accuracy_before``).
    oracle_candidates : float or None
        With candidates: the share of landmark queries whose true label is among their candidates, the best GAP
        choosing among them can reach; ``None`` with one label per query.
    candidates : int
        The most candidates of any query (1 without candidates).
    accuracy_before, accuracy_after : float
        Correct first labels, and correct chosen labels, per landmark query.
    landmark_queries : int
        M, the queries of the truth that show a landmark.
    """

    gap_before: float
    gap_after: float
    oracle: float
    oracle_candidates: float | None
    candidates: int
    accuracy_before: float
    accuracy_after: float
    landmark_queries: int

    def describe(self) -> str:
        """One line for the terminal."""
        top = "" if self.oracle_candidates is None else f", top-{self.candidates} {self.oracle_candidates:.4f}"
        return (f"GAP {self.gap_before:.4f} -> {self.gap_after:.4f} (oracle {self.oracle:.4f}{top}); accuracy "
                f"{self.accuracy_before:.4f} -> {self.accuracy_after:.4f} ({self.landmark_queries} landmark queries)")


def load_truth(truth: str | os.PathLike | Solution | pd.DataFrame, ids: Sequence[str] | None = None) -> Solution:
    """Read the truth (a solution CSV, or a DataFrame ``id,landmarks``: ``delfverify.tables.as_solution``) or take
    it as given; refuse one without a landmark query (GAP would be undefined) and, with ``ids``, one that lacks
    some of them.

    Raises
    ------
    TableError
        The truth file is missing or malformed.
    TruthError
        The truth has no landmark query, or some ids are not in it; the message says how many and names a few.
    """
    name = str(truth) if isinstance(truth, (str, os.PathLike)) else "truth"
    truth = as_solution(truth)
    if not len(words_by_row(truth.table["landmarks"].fillna(""))):
        raise TruthError(f"{name}: no query of the truth shows a landmark, so GAP is undefined")
    if ids is not None:
        unknown = pd.Index(pd.unique(np.asarray(ids, object))).difference(pd.Index(truth.table["id"]))
        if len(unknown):
            examples = ", ".join(repr(shorten(i)) for i in unknown[:_MAX_IDS_IN_MESSAGE])
            raise TruthError(f"{name}: {len(unknown)} query id(s) of the predictions are not in the truth, e.g. "
                             f"{examples}")
    return truth


def run_scores(details: pd.DataFrame, truth: str | os.PathLike | Solution | pd.DataFrame) -> RunScores:
    """GAP before and after, the oracle and the accuracy of a run, from its details (``delfverify.details``) and
    the truth.

    Before: each query's first candidate (every row without candidates) with its old confidence. After: each
    query's chosen candidate with its new confidence.

    Raises
    ------
    TableError
        The truth file is malformed.
    TruthError
        The truth lacks some queries, holds no landmark query, or does not fit the details.
    """
    details = check_details(details)
    truth = load_truth(truth, details["id"])
    first, chosen = first_and_chosen(details)
    try:
        before = global_average_precision(_run_predictions(details, first, "old_confidence"), truth.table)
        after = global_average_precision(_run_predictions(details, chosen, "new_confidence"), truth.table)
    except ValueError as exc:  # e.g. an id twice in details without candidate columns
        raise TruthError(f"details against the truth: {exc}") from None
    candidates = int(details["rank"].max()) if "rank" in details.columns and len(details) else 1
    among = None
    if candidates > 1:
        hit = outcomes(details, truth) == "correct"
        among = details["id"][hit].nunique() / before.num_landmark_queries
    return RunScores(before.gap, after.gap, before.accuracy, among, candidates, before.accuracy, after.accuracy,
                     before.num_landmark_queries)


def _run_predictions(details: pd.DataFrame, rows: np.ndarray, column: str) -> pd.DataFrame:
    chosen = details[rows]
    return pd.DataFrame({"id": chosen["id"], "label": chosen["label"], "confidence": chosen[column].fillna(0.0)})


def outcomes(details: pd.DataFrame, truth: Solution) -> np.ndarray:
    """One of ``OUTCOMES`` per details row ("" for a row without a label)."""
    landmarks = dict(zip(truth.table["id"], truth.table["landmarks"]))
    out = []
    for pid, label in zip(details["id"], details["label"]):
        true = words(landmarks.get(pid, ""))
        out.append("" if not label else "non-landmark" if not true else "correct" if label in true else "wrong")
    return np.array(out, object)
