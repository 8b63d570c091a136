"""Tune a re-ranking policy on labelled predictions (``delfverify tune``).

Stages: measure the inlier counts once, up to the largest ``k`` the search will try (``measure_inliers``, with the
feature store and pair journal of ``delfverify.rerank``); then search policies without touching an image again
(``tune``). ``Policy.apply`` reads only the first ``k`` columns of an inlier table, so one table with ``K``
columns serves every candidate with ``k <= K``.

Search (``SearchSpace``, defined once as data): the built-in ``default`` and the ``seed`` thresholds, then a
seeded random sample of policies (band edges, per band ``k``, ``min_inliers`` and suppress action,
``boost_inliers`` and boost action, skipped bands, the combine rule, and the additive and multiplicative fusion
modes with their weight, floor and cap), then coordinate ascent from the best one: one parameter at a time, every
value of the space, while the score improves. Invalid (non-monotone) candidates are skipped.

Cross-validation over queries (``assign_folds``): every truth id gets a seeded fold, stratified so that every
fold holds landmark queries (GAP needs M > 0); the same query id is in the same fold in every predictions file.
The score of a candidate on a fold is the mean over files of its GAP on that fold's rows, with M counted from
the fold's truth rows. The chosen policy is the candidate with the best mean held-out score (mean over folds).
Selecting among thousands of candidates with that score is itself fitting, so the cross-validated estimate is
nested: for each fold, the search is run again on the other folds only ("train": mean score on the other folds)
and its winner is scored on the held-out fold. That honest held-out GAP is ``TuneResult.cv_gap``.

Speed (``PolicyScorer``): the new confidences of a candidate come from precomputed combined inlier counts
(equal to ``Policy.apply``'s, checked by the tests), and one integer sort ranks every file and fold at once: the
key packs (ranking, confidence descending, query id ascending, correct), the Kaggle order of
``delfverify.metrics``. Confidences are ranked rounded to 6 decimals, as ``rerank`` writes them, so a score is
the GAP of the file the policy would produce. Rows whose confidence one monotone map changes keep their order,
so the keys form a few sorted runs that numpy's merge sort ranks in near-linear time. The GAP of each ranking
then comes from ``delfverify.metrics.ranked_gap``. About 3 ms per candidate for 100,000 predictions
(``benchmarks/bench_tune.py``). ``frequency_penalty`` is not searched.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .features import DEFAULT_EXTRACTOR
from .fileio import atomic_write
from .metrics import global_average_precision, match_predictions, oracle_gap, ranked_gap
from .policy import BUILTINS, COMBINES, SELECTIONS, Action, Band, Policy, PolicyError, builtin_policy, \
    combine_inliers, policy_from_dict
from .tables import Predictions

if TYPE_CHECKING:
    from .journal import PairJournal
    from .tables import ImageDirectory
    from .verifier import Verifier

logger = logging.getLogger(__name__)

__all__ = [
    "Curve", "FoldResult", "PolicyScorer", "SearchSpace", "TuneConfig", "TuneResult", "assign_folds",
    "describe_policy", "format_summary", "measure_builtin_inliers", "measure_inliers", "plot_tuning",
    "random_policies", "tune", "write_policy",
]

#: Fusion modes of ``Policy``.
_FUSION_MODES = ("additive", "multiplicative")
#: ``delfverify rerank`` writes confidences with this many decimals (``tables.format_confidence``); tuning ranks
#: them as written.
CONFIDENCE_DECIMALS = 6
#: Outcomes of a prediction in ``TuneResult.inliers_by_outcome``.
OUTCOMES = ("correct", "wrong", "non_landmark")


@dataclass(frozen=True)
class SearchSpace:
    """The policies the search may try; every tuple is a set of values to choose from.

    Attributes
    ----------
    max_k : int
        Inlier counts are measured against this many gallery photos per prediction; no candidate uses more.
    selection : {"first", "random", "spread"}
        How the gallery photos are chosen (fixed: the inlier table depends on it).
    ks : tuple of int
        Gallery photos per band (or for fusion); values above ``max_k`` are dropped.
    combines : tuple of str
        How the k counts combine (``max``, ``mean``, ``second``).
    band_edges : tuple of tuple of float
        Inner band edges: ``()`` is one band [0, 1].
    min_inliers : tuple of int
        Suppress below this many inliers; 0 never suppresses.
    boost_inliers : tuple of int or None
        Boost at or above this many (None: no boost); only values >= the band's ``min_inliers`` are used.
    suppress_actions, boost_actions : tuple of Action
        Tier maps ``c -> low + (high - low) c``; those that are not monotone in a band are not used there.
    skip_share : float
        Share of randomly drawn bands left alone (``skip``).
    fusion_share : float
        Share of random candidates in the additive or multiplicative mode.
    fusion_weights, fusion_min_inliers, fusion_caps : tuple of float
        Fusion parameters (multiplicative weights above 1 are invalid and skipped).
    random_candidates : int
        Random candidates drawn (besides the built-ins).
    coordinate_rounds : int
        At most this many passes of coordinate ascent over all parameters.
    """

    max_k: int = 5
    selection: str = "spread"
    ks: tuple[int, ...] = (1, 2, 3, 5)
    combines: tuple[str, ...] = ("max", "second", "mean")
    band_edges: tuple[tuple[float, ...], ...] = ((), (0.5,), (0.4, 0.8), (0.4, 0.6, 0.8))
    min_inliers: tuple[int, ...] = tuple(range(16))
    boost_inliers: tuple[int | None, ...] = (None, 6, 8, 10, 12, 15, 20, 25, 30)
    suppress_actions: tuple[Action, ...] = (Action(0.0, 1 / 3), Action(0.0, 0.0), Action(0.0, 0.5))
    boost_actions: tuple[Action, ...] = (Action(2 / 3, 1.0), Action(0.5, 1.0), Action(0.6, 0.6))
    skip_share: float = 0.1
    fusion_share: float = 0.2
    fusion_weights: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    fusion_min_inliers: tuple[float, ...] = (0.0, 3.0, 5.0, 8.0, 10.0)
    fusion_caps: tuple[float, ...] = (10.0, 15.0, 20.0, 30.0, 50.0, 70.0)
    random_candidates: int = 1500
    coordinate_rounds: int = 3

    def __post_init__(self) -> None:
        if not (isinstance(self.max_k, int) and self.max_k >= 1):
            raise ValueError(f"max_k must be a positive integer, got {self.max_k!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if not self.ks or any(not (isinstance(k, int) and k >= 1) for k in self.ks):
            raise ValueError(f"ks must be positive integers, got {self.ks!r}")
        if not self.combines or any(c not in COMBINES for c in self.combines):
            raise ValueError(f"combines must be among {', '.join(COMBINES)}, got {self.combines!r}")
        for edges in self.band_edges:
            if list(edges) != sorted(set(edges)) or any(not 0 < e < 1 for e in edges):
                raise ValueError(f"band_edges: {edges!r} must be increasing values inside (0, 1)")
        if not self.band_edges:
            raise ValueError("band_edges must hold at least one set of edges, e.g. ()")
        if not self.min_inliers or any(m < 0 for m in self.min_inliers):
            raise ValueError(f"min_inliers must be non-negative integers, got {self.min_inliers!r}")
        if not (self.suppress_actions and self.boost_actions):
            raise ValueError("suppress_actions and boost_actions must not be empty")
        for name in ("skip_share", "fusion_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.fusion_share > 0 and not (self.fusion_weights and self.fusion_min_inliers and self.fusion_caps):
            raise ValueError("fusion_weights, fusion_min_inliers and fusion_caps must not be empty")
        for name in ("random_candidates", "coordinate_rounds"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")

    @property
    def usable_ks(self) -> tuple[int, ...]:
        """``ks`` without values above ``max_k`` (``max_k`` itself when none is left)."""
        return tuple(k for k in self.ks if k <= self.max_k) or (self.max_k,)


@dataclass(frozen=True)
class TuneConfig:
    """How ``tune`` searches and cross-validates (the CLI's defaults come from here).

    Attributes
    ----------
    folds : int
        Cross-validation folds over queries (at least 2, at most the number of landmark queries).
    seed : int
        Seeds the folds and the random search.
    space : SearchSpace
        The candidates.
    workers : int
        Threads scoring candidates (numpy's sorts release the GIL).
    """

    folds: int = 5
    seed: int = 0
    space: SearchSpace = SearchSpace()
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    def __post_init__(self) -> None:
        if not (isinstance(self.folds, int) and self.folds >= 2):
            raise ValueError(f"folds must be an integer >= 2, got {self.folds!r}")
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")


@dataclass(frozen=True)
class FoldResult:
    """One cross-validation fold.

    Attributes
    ----------
    fold : int
    num_queries, num_landmark_queries : int
        Truth rows in the fold, and how many of them are landmarks (M of the fold).
    train_gap : float
        Score on the other folds (mean over them of the per-fold GAP) of the policy tuned on them.
    heldout_gap : float
        GAP on this fold of that policy (mean over prediction files).
    chosen_gap : float
        GAP on this fold of the finally chosen policy.
    policy : Policy
        The policy tuned without this fold.
    """

    fold: int
    num_queries: int
    num_landmark_queries: int
    train_gap: float
    heldout_gap: float
    chosen_gap: float
    policy: Policy


@dataclass(frozen=True)
class Curve:
    """GAP (mean over files, all queries) as one parameter varies, the others at the chosen values."""

    band: str
    parameter: str
    values: tuple[float, ...]
    gaps: tuple[float, ...]
    chosen: float | None


@dataclass(frozen=True)
class TuneResult:
    """What ``tune`` found.

    Attributes
    ----------
    policy : Policy
        The chosen policy; its ``info`` records the data, the search and the scores below.
    cv_gap, cv_gap_std : float
        Nested cross-validated GAP: mean and standard deviation over folds of ``FoldResult.heldout_gap``.
    chosen_score : float
        The chosen policy's mean over folds of its per-fold GAP (the selection score; optimistic).
    folds : tuple of FoldResult
    candidates_evaluated : int
        Distinct valid candidates scored.
    candidates_invalid : int
        Candidates skipped because ``policy_from_dict`` rejected them.
    gaps : pandas.DataFrame
        One row per predictions file (``file``, ``before``, ``default``, ``seed``, ``tuned``, ``oracle``): GAP on
        all queries, computed with ``delfverify.metrics`` (the tuned column is in-sample).
    baseline_scores : dict
        Mean held-out score of the built-ins (when evaluated on the tuning table).
    curves : tuple of Curve
        GAP against each band's ``min_inliers`` (fusion: ``fusion.min_inliers``).
    inliers_by_outcome : dict of str to float array
        Combined inlier counts, as the chosen policy combines them, of correct, wrong (landmark query) and
        non-landmark predictions (predictions without a count are left out).
    """

    policy: Policy
    cv_gap: float
    cv_gap_std: float
    chosen_score: float
    folds: tuple[FoldResult, ...]
    candidates_evaluated: int
    candidates_invalid: int
    gaps: pd.DataFrame
    baseline_scores: Mapping[str, float]
    curves: tuple[Curve, ...]
    inliers_by_outcome: Mapping[str, np.ndarray]


# --- fast scoring --------------------------------------------------------------------------------------------


class PolicyScorer:
    """Score many policies on fixed predictions and inlier counts: the GAP of each of several rankings.

    Parameters
    ----------
    confidence : float array (n,)
        Original confidences in [0, 1] of the predictions (rows without a label left out).
    inliers : float array (n, K)
        Inlier counts as ``Policy.apply`` takes them (NaN: not verified).
    correct : bool array (n,)
        Whether each prediction is correct.
    query_rank : int array (n,)
        Rank of each prediction's query id in string order (the Kaggle tie-break); unique within a ranking.
    ranking : int array (n,)
        Which ranking each prediction belongs to (e.g. file x fold), 0 .. G-1.
    num_landmark_queries : int array (G,)
        M of each ranking, at least 1.
    decimals : int or None
        Rank confidences rounded to this many decimals, as ``delfverify rerank`` writes them (6), so that the GAP
        is that of the written file; None: compare them at the finest binary resolution that fits the sort key
        (``2**-resolution_bits``, about ``2**-40`` for 100,000 rows).

    Notes
    -----
    ``confidences(policy)`` equals ``policy.apply(confidence, inliers)[0]`` (``frequency_penalty`` is not
    supported); ``gaps(policy)`` equals ``global_average_precision`` of each ranking with those confidences
    rounded to ``decimals`` (up to exact half-way cases), or unrounded when they do not lie closer than the
    resolution.
    """

    def __init__(
        self,
        confidence: np.ndarray,
        inliers: np.ndarray,
        correct: np.ndarray,
        query_rank: np.ndarray,
        ranking: np.ndarray,
        num_landmark_queries: np.ndarray,
        decimals: int | None = CONFIDENCE_DECIMALS,
    ):
        confidence = np.asarray(confidence, np.float64)
        n = confidence.size
        inliers = np.asarray(inliers, np.float64)
        if inliers.ndim != 2:
            inliers = inliers.reshape(n, -1 if n else 1)
        correct = np.asarray(correct, bool)
        query_rank = np.asarray(query_rank, np.int64)
        ranking = np.asarray(ranking, np.int64)
        m = np.atleast_1d(np.asarray(num_landmark_queries, np.int64))
        if confidence.ndim != 1 or any(a.shape != (n,) for a in (correct, query_rank, ranking)):
            raise ValueError("confidence, correct, query_rank and ranking must be 1-D arrays of one length")
        if inliers.shape[0] != n:
            raise ValueError(f"inliers must have one row per prediction ({n}), got shape {inliers.shape}")
        if n and (np.isnan(confidence).any() or confidence.min() < 0 or confidence.max() > 1):
            raise ValueError("confidence must lie in [0, 1] (no NaN)")
        if n and (query_rank.min() < 0 or ranking.min() < 0 or ranking.max() >= m.size):
            raise ValueError(f"query_rank must be >= 0 and ranking in [0, {m.size})")
        if np.any(m < 1):
            raise ValueError("num_landmark_queries must be at least 1 for every ranking")
        id_bits = max(1, int(query_rank.max(initial=0)).bit_length())
        ranking_bits = int(m.size - 1).bit_length()
        # Key bits, high to low: ranking, (top - quantised confidence) in [0, top], query rank, correct.
        self.resolution_bits = min(52, 61 - id_bits - ranking_bits)
        if decimals is None:
            top = 2 ** self.resolution_bits
        elif isinstance(decimals, int) and 0 <= decimals <= 9:
            top = 10 ** decimals
        else:
            raise ValueError(f"decimals must be an integer in [0, 9] or None, got {decimals!r}")
        if self.resolution_bits < 24 or ranking_bits + top.bit_length() + id_bits + 1 > 63:
            raise ValueError(f"too many queries or rankings to pack into a sort key ({n} rows, {m.size} rankings)")
        self.decimals = decimals
        self._scale = float(top)
        self._confidence_shift = id_bits + 1
        ranking_shift = self._confidence_shift + top.bit_length()
        base = (ranking << ranking_shift) | (np.int64(top) << self._confidence_shift) \
            | (query_rank << 1) | correct.astype(np.int64)
        key = base - (self._quantise(confidence) << self._confidence_shift)
        if np.unique((ranking << id_bits) | query_rank).size != n:
            raise ValueError("query_rank must be unique within each ranking")
        # Canonical layout: rows in their original rank order, so that a monotone map keeps runs sorted.
        self._order = np.argsort(key, kind="stable")
        self._inverse = np.empty(n, np.intp)
        self._inverse[self._order] = np.arange(n)
        self._base = base[self._order]
        self.confidence = confidence[self._order]
        self._inliers = inliers[self._order]
        self.num_landmark_queries = m
        self.starts = np.searchsorted(ranking[self._order], np.arange(m.size))
        self.size = n
        self._evidence: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._bands: dict[tuple[float, ...], tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]] = {}
        self._band_evidence: dict[tuple[tuple[float, ...], int, str, int], np.ndarray] = {}

    def _quantise(self, confidence: np.ndarray) -> np.ndarray:
        scaled = confidence * self._scale
        if self.decimals is not None:
            np.rint(scaled, out=scaled)  # half to even, like round(c, decimals)
        return scaled.astype(np.int64)

    def evidence(self, combine: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(combined counts with NaN, NaN -> 0, a stable order grouping equal counts), canonical layout."""
        cached = self._evidence.get((combine, k))
        if cached is None:
            combined = combine_inliers(self._inliers, np.full(self.size, k), combine)
            filled = np.nan_to_num(combined, nan=-1.0)
            codes = np.unique(filled, return_inverse=True)[1].reshape(-1)
            order = np.argsort(codes.astype(np.uint16 if codes.max(initial=0) < 2 ** 16 else np.int64),
                               kind="stable")
            cached = (combined, np.nan_to_num(combined, nan=0.0), order)
            self._evidence[combine, k] = cached
        return cached

    def _band_rows(self, edges: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """(segment of each row when unchanged, rows of each band, their confidences)."""
        cached = self._bands.get(edges)
        if cached is None:
            index = np.searchsorted(np.array(edges, float), self.confidence, side="right")
            rows = [np.flatnonzero(index == i) for i in range(len(edges) + 1)]
            cached = (index.astype(np.uint8) * 3 + 1, rows, [self.confidence[r] for r in rows])
            self._bands[edges] = cached
        return cached

    def _evidence_in_band(self, edges: tuple[float, ...], band: int, combine: str, k: int) -> np.ndarray:
        cached = self._band_evidence.get((edges, band, combine, k))
        if cached is None:
            cached = self.evidence(combine, k)[0][self._band_rows(edges)[1][band]]
            self._band_evidence[edges, band, combine, k] = cached
        return cached

    def _apply(self, policy: Policy) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """New confidences (canonical layout) and either per-row segments or a fixed order of monotone runs."""
        if policy.frequency_penalty is not None:
            raise ValueError("PolicyScorer does not support frequency_penalty")
        confidence = self.confidence
        if policy.mode == "bands":
            if len(policy.bands) > 80:
                raise ValueError("PolicyScorer supports at most 80 bands")
            edges = tuple(b.lower for b in policy.bands[1:])
            segments, rows_of_band, confidence_of_band = self._band_rows(edges)
            new = confidence.copy()
            segments = segments.copy()
            for i, band in enumerate(policy.bands):
                if band.skip or (band.min_inliers is None and band.boost_inliers is None):
                    continue
                rows = rows_of_band[i]
                evidence = self._evidence_in_band(edges, i, policy.combine, band.k)
                values = confidence_of_band[i]
                if band.min_inliers is not None:
                    low = evidence < band.min_inliers
                    new[rows[low]] = band.suppress(values[low])
                    segments[rows[low]] = 3 * i
                if band.boost_inliers is not None:
                    high = evidence >= band.boost_inliers
                    new[rows[high]] = band.boost(values[high])
                    segments[rows[high]] = 3 * i + 2
            np.clip(new, 0.0, 1.0, out=new)
            return new, segments, None
        f = policy.fusion
        combined, evidence, order = self.evidence(policy.combine, f.k)
        strength = np.clip((evidence - f.min_inliers) / (f.cap - f.min_inliers), 0.0, 1.0)
        if policy.mode == "additive":
            new = (confidence + f.weight * strength) / (1.0 + f.weight)
        else:
            new = confidence * (1.0 - f.weight + f.weight * strength)
        new = np.where(np.isnan(combined), confidence, new)
        np.clip(new, 0.0, 1.0, out=new)
        return new, None, order

    def confidences(self, policy: Policy) -> np.ndarray:
        """The policy's new confidences, in the input row order (equal to ``policy.apply``'s)."""
        return self._apply(policy)[0][self._inverse]

    def gaps(self, policy: Policy) -> np.ndarray:
        """GAP of each ranking, float (G,)."""
        new, segments, order = self._apply(policy)
        key = self._base - (self._quantise(new) << self._confidence_shift)
        # Rows with one monotone map keep their canonical order: laid out run after run, the keys are a few
        # sorted runs, which a merge sort (numpy's stable sort) ranks in near-linear time.
        if order is None:
            order = np.argsort(segments, kind="stable")
        key = key[order]
        key.sort(kind="stable")
        return ranked_gap((key & 1).astype(bool), self.num_landmark_queries, self.starts)

    def gaps_many(self, policies: Sequence[Policy], workers: int = 1) -> np.ndarray:
        """GAP of each ranking for each policy, float (len(policies), G); ``workers`` threads."""
        out = np.empty((len(policies), self.num_landmark_queries.size))
        if workers <= 1 or len(policies) < 2:
            for i, policy in enumerate(policies):
                out[i] = self.gaps(policy)
            return out
        for policy in policies[:1]:  # fill the caches before threads share them
            self.gaps(policy)
        with ThreadPoolExecutor(workers) as pool:
            for i, gaps in enumerate(pool.map(self.gaps, policies)):
                out[i] = gaps
        return out


# --- data ------------------------------------------------------------------------------------------------------


def assign_folds(truth: pd.DataFrame, folds: int, seed: int = 0) -> np.ndarray:
    """A cross-validation fold per truth row, stratified: landmark and non-landmark queries are each dealt out
    in a seeded random order, so every fold gets ``M // folds`` or one more landmark queries.

    Returns
    -------
    int array (T,)
        Fold of each truth row, in truth order; depends only on the set of ids, the labels, ``folds`` and ``seed``.

    Raises
    ------
    ValueError
        If ``folds`` < 2 or there are fewer landmark queries than folds (a fold would have M = 0).
    """
    if not (isinstance(folds, int) and folds >= 2):
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    no_predictions = pd.DataFrame({"id": pd.Series([], dtype=object), "label": pd.Series([], dtype=object),
                                   "confidence": pd.Series([], dtype=float)})
    matched = match_predictions(no_predictions, truth)
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


@dataclass(frozen=True)
class _Data:
    """All labelled predictions of all files, one row each."""

    file: np.ndarray  # (n,) int
    truth_row: np.ndarray  # (n,) int
    confidence: np.ndarray  # (n,) float
    correct: np.ndarray  # (n,) bool
    inliers: np.ndarray  # (n, K) float
    query_rank: np.ndarray  # (T,) int, rank of each truth id in string order
    is_landmark: np.ndarray  # (T,) bool
    num_files: int


def _tables(predictions: Sequence[pd.DataFrame | Predictions]) -> list[pd.DataFrame]:
    return [p.table if isinstance(p, Predictions) else p for p in predictions]


def _collect(predictions: Sequence[pd.DataFrame | Predictions], truth: pd.DataFrame,
             inliers: Sequence[np.ndarray], what: str = "inliers") -> _Data:
    tables = _tables(predictions)
    if not tables:
        raise ValueError("give at least one predictions table")
    if len(inliers) != len(tables):
        raise ValueError(f"{what}: one inlier table per predictions table, got {len(inliers)} for {len(tables)}")
    width = 1
    arrays = []
    for i, (table, counts) in enumerate(zip(tables, inliers)):
        counts = np.asarray(counts, np.float64)
        if counts.ndim != 2 or counts.shape[0] != len(table) or counts.shape[1] < 1:
            raise ValueError(f"{what}[{i}]: expected shape ({len(table)}, K) with K >= 1, got {counts.shape}")
        arrays.append(counts)
        width = max(width, counts.shape[1])
    parts = []
    for i, (table, counts) in enumerate(zip(tables, arrays)):
        matched = match_predictions(table, truth)
        padded = np.full((len(matched.truth_rows), width), np.nan)
        padded[:, : counts.shape[1]] = counts[matched.prediction_rows]
        parts.append((matched, padded))
    first = parts[0][0]
    ids = first.truth_ids.to_numpy(dtype=object)
    query_rank = np.empty(len(ids), np.int64)
    query_rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))  # Python str order, as metrics sorts
    return _Data(
        file=np.concatenate([np.full(len(m.truth_rows), i) for i, (m, _) in enumerate(parts)]).astype(np.int64),
        truth_row=np.concatenate([m.truth_rows for m, _ in parts]).astype(np.int64),
        confidence=np.concatenate([m.confidence for m, _ in parts]),
        correct=np.concatenate([m.correct for m, _ in parts]),
        inliers=np.concatenate([p for _, p in parts]),
        query_rank=query_rank,
        is_landmark=first.is_landmark,
        num_files=len(tables),
    )


def _scorer(data: _Data, fold_of_truth: np.ndarray, folds: int) -> PolicyScorer:
    """Rankings file x fold, each with the M of its fold."""
    m = np.bincount(fold_of_truth[data.is_landmark], minlength=folds)
    return PolicyScorer(
        data.confidence, data.inliers, data.correct, data.query_rank[data.truth_row],
        data.file * folds + fold_of_truth[data.truth_row], np.tile(m, data.num_files),
    )


def measure_inliers(
    predictions: Sequence[pd.DataFrame | Predictions],
    gallery: pd.DataFrame,
    verifier: Verifier,
    *,
    query_images: ImageDirectory,
    gallery_images: ImageDirectory,
    max_k: int = SearchSpace().max_k,
    selection: str = SearchSpace().selection,
    seed: int = 0,
    journal: PairJournal | None = None,
    progress: bool = False,
    workers: int = 1,
    scheduler=None,
) -> list[np.ndarray]:
    """Inlier counts of every labelled prediction against the first ``max_k`` gallery photos of its label.

    Uses ``delfverify.rerank.inlier_table``: images already in the verifier's feature store are not extracted
    again, and with a ``journal`` no pair is verified twice (across tables, runs and ``rerank``). ``workers``
    and ``scheduler`` are those of ``delfverify.rerank.rerank`` (local processes, or a Dask cluster).

    Returns
    -------
    list of float array (n_i, max_k)
        Per predictions table, in its row order; NaN where not verified (no label, fewer photos, unreadable).
    """
    if not (isinstance(max_k, int) and max_k >= 1):
        raise ValueError(f"max_k must be a positive integer, got {max_k!r}")
    probe = Policy(name="measure", bands=(Band(0.0, 1.0, k=max_k),), selection=selection, seed=seed)
    from .parallel import Runner

    with Runner(verifier, workers, scheduler) as runner:
        return _measure(predictions, gallery, verifier, probe, query_images, gallery_images, journal, progress,
                        runner)


def _measure(predictions: Sequence[pd.DataFrame | Predictions], gallery: pd.DataFrame, verifier: Verifier,
             policy: Policy, query_images: ImageDirectory, gallery_images: ImageDirectory,
             journal: PairJournal | None, progress: bool, runner) -> list[np.ndarray]:
    """Inlier tables (n_i, policy.max_k) for the k that ``policy`` gives each labelled prediction, as rerank."""
    from .rerank import inlier_table

    out = []
    for table in _tables(predictions):
        has_label = (table["label"].fillna("") != "").to_numpy()
        k = np.where(has_label, policy.k_for(np.nan_to_num(table["confidence"].to_numpy(float))), 0)
        result = inlier_table(table, k, gallery, verifier, policy, query_images, gallery_images, journal,
                              progress, runner)
        width = max(policy.max_k, 1)
        counts = np.full((len(table), width), np.nan)
        counts[:, : min(width, result.inliers.shape[1])] = result.inliers[:, :width]
        failed = sum(bool(e) for e in result.errors)
        if failed:
            logger.warning("%d prediction(s) had unreadable images; they keep their confidence", failed)
        logger.info("inliers: %d pairs verified, %d reused", result.pairs_computed, result.pairs_reused)
        out.append(counts)
    return out


def measure_builtin_inliers(
    predictions: Sequence[pd.DataFrame | Predictions],
    gallery: pd.DataFrame,
    verifier: Verifier,
    *,
    query_images: ImageDirectory,
    gallery_images: ImageDirectory,
    extractor: str = DEFAULT_EXTRACTOR,
    space: SearchSpace = SearchSpace(),
    journal: PairJournal | None = None,
    progress: bool = False,
    workers: int = 1,
    scheduler=None,
) -> dict[str, list[np.ndarray]]:
    """Inlier tables for the built-in policies that the tuning table cannot serve (another ``selection``, or a
    larger ``k`` than ``space.max_k``), for ``tune(baseline_inliers=...)``: the comparison is then exact.

    Each is measured as ``rerank`` measures it for that policy (its own ``k`` per band, skipped bands not at all).
    """
    from .parallel import Runner

    out: dict[str, list[np.ndarray]] = {}
    policies = {name: builtin_policy(name, extractor) for name in BUILTINS}
    needed = {name: p for name, p in policies.items() if p.selection != space.selection or p.max_k > space.max_k}
    if needed:
        with Runner(verifier, workers, scheduler) as runner:
            for name, policy in needed.items():
                out[name] = _measure(predictions, gallery, verifier, policy, query_images, gallery_images,
                                     journal, progress, runner)
    return out


# --- candidates --------------------------------------------------------------------------------------------------


def _key(doc: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in ("name", "info")}, sort_keys=True)


def _fits(action: Action, lower: float, upper: float, suppress: bool) -> bool:
    ends = [action(c) - c for c in (lower, upper)]
    return all(d <= 1e-12 for d in ends) if suppress else all(d >= -1e-12 for d in ends)


def _random_band(space: SearchSpace, rng: np.random.Generator, lower: float, upper: float) -> dict[str, Any]:
    band: dict[str, Any] = {"lower": lower, "upper": upper}
    if rng.random() < space.skip_share:
        band["skip"] = True
        return band
    ks = space.usable_ks
    band["k"] = int(ks[rng.integers(len(ks))])
    low = int(space.min_inliers[rng.integers(len(space.min_inliers))])
    if low > 0:
        actions = [a for a in space.suppress_actions if _fits(a, lower, upper, True)]
        if actions:
            band["min_inliers"] = low
            band["suppress"] = actions[rng.integers(len(actions))].to_json()
    boosts = [b for b in space.boost_inliers if b is None or b >= max(low, 1)]
    high = boosts[rng.integers(len(boosts))] if boosts else None
    actions = [a for a in space.boost_actions if _fits(a, lower, upper, False)]
    if high is not None and actions:
        band["boost_inliers"] = int(high)
        band["boost"] = actions[rng.integers(len(actions))].to_json()
    return band


def _random_doc(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    combine = str(space.combines[rng.integers(len(space.combines))])
    if rng.random() < space.fusion_share:
        mode = _FUSION_MODES[rng.integers(2)]
        weights = [w for w in space.fusion_weights if mode == "additive" or w <= 1] or [1.0]
        floor = float(space.fusion_min_inliers[rng.integers(len(space.fusion_min_inliers))])
        caps = [c for c in space.fusion_caps if c > floor] or [floor + 1]
        ks = space.usable_ks
        return {"name": "tuned", "mode": mode, "combine": combine, "selection": space.selection, "fusion": {
            "k": int(ks[rng.integers(len(ks))]), "weight": float(weights[rng.integers(len(weights))]),
            "min_inliers": floor, "cap": float(caps[rng.integers(len(caps))])}}
    edges = space.band_edges[rng.integers(len(space.band_edges))]
    bounds = (0.0, *map(float, edges), 1.0)
    bands = [_random_band(space, rng, lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    return {"name": "tuned", "mode": "bands", "combine": combine, "selection": space.selection, "bands": bands}


def _as_candidate(policy: Policy, space: SearchSpace) -> dict[str, Any]:
    """A built-in as a candidate: the search's selection, k clipped to ``max_k``."""
    doc = policy.to_dict()
    doc.pop("extractor", None)
    doc.pop("info", None)
    doc["selection"] = space.selection
    for band in doc.get("bands", []):
        if "k" in band:
            band["k"] = min(band["k"], space.max_k)
    if "fusion" in doc:
        doc["fusion"]["k"] = min(doc["fusion"]["k"], space.max_k)
    return doc


def random_policies(space: SearchSpace, count: int, seed: int = 0) -> list[Policy]:
    """``count`` distinct valid random policies from ``space`` (fewer if the space is smaller), seeded."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out = []
    for _ in range(20 * count + 100):
        if len(out) >= count:
            break
        doc = _random_doc(space, rng)
        key = _key(doc)
        if key in seen:
            continue
        seen.add(key)
        try:
            out.append(policy_from_dict(doc))
        except PolicyError:
            continue
    return out


def _parameters(doc: Mapping[str, Any]) -> list[tuple[str, int | None]]:
    if doc["mode"] != "bands":
        return [("mode", None), ("combine", None), ("fusion.k", None), ("fusion.weight", None),
                ("fusion.min_inliers", None), ("fusion.cap", None)]
    names = [("combine", None), ("edges", None)]
    for i in range(len(doc["bands"])):
        names += [(p, i) for p in ("min_inliers", "boost_inliers", "k", "suppress", "boost", "skip")]
    return names



def _with_min_inliers(doc: dict, band: int, min_inliers: int, space: "SearchSpace") -> dict:
    """``doc`` (modified in place) with band ``band`` suppressing below ``min_inliers`` (0: never)."""
    b = doc["bands"][band]
    if min_inliers == 0:
        b.pop("min_inliers", None)
        b.pop("suppress", None)
    else:
        b["min_inliers"] = min_inliers
        b.setdefault("suppress", space.suppress_actions[0].to_json())
    return doc

def _variants(doc: Mapping[str, Any], parameter: str, index: int | None, space: SearchSpace) -> list[dict]:
    """``doc`` with one parameter set to each value of the space (invalid ones are weeded out later)."""
    out = []

    def copy() -> dict[str, Any]:
        return json.loads(json.dumps(doc))

    if parameter == "combine":
        for c in space.combines:
            d = copy()
            d["combine"] = c
            out.append(d)
    elif parameter == "mode":
        for mode in _FUSION_MODES:
            d = copy()
            d["mode"] = mode
            out.append(d)
    elif parameter.startswith("fusion."):
        name = parameter.split(".", 1)[1]
        values = {"k": space.usable_ks, "weight": space.fusion_weights, "min_inliers": space.fusion_min_inliers,
                  "cap": space.fusion_caps}[name]
        for v in values:
            d = copy()
            d["fusion"][name] = int(v) if name == "k" else float(v)
            out.append(d)
    elif parameter == "edges":
        old = doc["bands"]
        for edges in space.band_edges:
            bounds = (0.0, *map(float, edges), 1.0)
            bands = []
            for lo, hi in zip(bounds, bounds[1:]):
                middle = (lo + hi) / 2
                source = next(b for b in old if b["lower"] <= middle < b["upper"] or b is old[-1])
                band = json.loads(json.dumps(source))
                band.update(lower=lo, upper=hi)
                bands.append(band)
            d = copy()
            d["bands"] = bands
            out.append(d)
    else:
        band = doc["bands"][index]
        if band.get("skip"):
            if parameter == "skip":
                for m in space.min_inliers:
                    d = copy()
                    d["bands"][index] = {"lower": band["lower"], "upper": band["upper"], "k": space.usable_ks[-1]}
                    if m > 0:
                        d["bands"][index].update(min_inliers=m, suppress=space.suppress_actions[0].to_json())
                    out.append(d)
            return out
        if parameter == "skip":
            d = copy()
            d["bands"][index] = {"lower": band["lower"], "upper": band["upper"], "skip": True}
            out.append(d)
        elif parameter == "k":
            for k in space.usable_ks:
                d = copy()
                d["bands"][index]["k"] = k
                out.append(d)
        elif parameter == "min_inliers":
            out += [_with_min_inliers(copy(), index, m, space) for m in space.min_inliers]
        elif parameter == "boost_inliers":
            for v in space.boost_inliers:
                d = copy()
                b = d["bands"][index]
                if v is None:
                    b.pop("boost_inliers", None)
                    b.pop("boost", None)
                else:
                    b["boost_inliers"] = v
                    fits = [a for a in space.boost_actions if _fits(a, b["lower"], b["upper"], False)]
                    if "boost" not in b and fits:
                        b["boost"] = fits[0].to_json()
                out.append(d)
        elif parameter in ("suppress", "boost") and parameter in band:
            for action in space.suppress_actions if parameter == "suppress" else space.boost_actions:
                d = copy()
                d["bands"][index][parameter] = action.to_json()
                out.append(d)
    return out


class _Pool:
    """Every candidate scored so far: documents, policies and per-(file, fold) GAPs, without duplicates."""

    def __init__(self, scorer: PolicyScorer, num_files: int, folds: int, workers: int):
        self.scorer, self.num_files, self.folds, self.workers = scorer, num_files, folds, workers
        self.docs: list[dict[str, Any]] = []
        self.policies: list[Policy] = []
        self.fold_gaps: list[np.ndarray] = []  # (folds,) mean over files
        self.index: dict[str, int] = {}
        self.invalid: set[str] = set()

    def add(self, docs: Iterable[Mapping[str, Any]]) -> list[int]:
        """Score new documents; the pool indices of all valid ones, in order."""
        wanted, fresh = [], []
        for doc in docs:
            key = _key(doc)
            if key in self.invalid:
                continue
            if key not in self.index:
                try:
                    policy = policy_from_dict(doc)
                except PolicyError:
                    self.invalid.add(key)
                    continue
                self.index[key] = len(self.docs)
                self.docs.append(dict(doc))
                self.policies.append(policy)
                fresh.append(policy)
            wanted.append(self.index[key])
        if fresh:
            gaps = self.scorer.gaps_many(fresh, self.workers)
            self.fold_gaps.extend(gaps.reshape(len(fresh), self.num_files, self.folds).mean(axis=1))
        return wanted

    def scores(self) -> np.ndarray:
        return np.array(self.fold_gaps).reshape(len(self.fold_gaps), self.folds)


def _objective(train_on: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Mean score over the folds in ``train_on`` (bool per fold)."""
    weights = train_on.astype(float) / train_on.sum()
    return lambda scores: scores @ weights


def _search(pool: _Pool, start: Sequence[int], objective: Callable[[np.ndarray], np.ndarray],
            space: SearchSpace) -> tuple[int, list[int]]:
    """Coordinate ascent from the best of ``start``; returns the best index and every index it scored."""
    seen = list(start)
    values = objective(pool.scores()[seen])
    best = seen[int(np.argmax(values))]
    best_value = float(values.max())
    for _ in range(space.coordinate_rounds):
        improved = False
        step = 0
        while step < len(_parameters(pool.docs[best])):
            parameter, index = _parameters(pool.docs[best])[step]
            step += 1
            found = pool.add(_variants(pool.docs[best], parameter, index, space))
            if not found:
                continue
            seen += found
            values = objective(pool.scores()[found])
            j = int(np.argmax(values))
            if values[j] > best_value + 1e-12:
                best, best_value, improved = found[j], float(values[j]), True
        if not improved:
            break
    return best, seen


# --- tune -----------------------------------------------------------------------------------------------------------


def _exact_gaps(tables: list[pd.DataFrame], truth: pd.DataFrame, policy: Policy,
                inliers: Sequence[np.ndarray]) -> list[float]:
    """GAP per file of ``policy`` as ``rerank`` applies it (on_missing keep), via ``delfverify.metrics``."""
    out = []
    for table, counts in zip(tables, inliers):
        confidence = table["confidence"].to_numpy(float)
        has_label = (table["label"].fillna("") != "").to_numpy()
        new, _ = policy.apply(np.nan_to_num(confidence), np.where(has_label[:, None], counts, np.nan))
        new = np.where(has_label, new, np.nan)
        out.append(global_average_precision(table.assign(confidence=new), truth).gap)
    return out


def _curves(policy: Policy, scorer: PolicyScorer, space: SearchSpace) -> tuple[Curve, ...]:
    """GAP (mean over the scorer's rankings) as each band's ``min_inliers`` varies, the rest as in ``policy``."""
    doc = policy.to_dict()
    doc.pop("info", None)
    curves = []

    def score(docs: list[dict]) -> tuple[list[float], list[float]]:
        values, gaps = [], []
        for value, d in docs:
            try:
                p = policy_from_dict(d)
            except PolicyError:
                continue
            values.append(float(value))
            gaps.append(float(scorer.gaps(p).mean()))
        return values, gaps

    if policy.mode == "bands":
        for i, band in enumerate(policy.bands):
            if band.skip:
                continue
            variants = []
            for m in space.min_inliers:
                variants.append((m, _with_min_inliers(json.loads(json.dumps(doc)), i, m, space)))
            values, gaps = score(variants)
            curves.append(Curve(f"{band.lower:g}-{band.upper:g}", "min_inliers", tuple(values), tuple(gaps),
                                float(band.min_inliers or 0)))
    else:
        variants = []
        for m in sorted(set(space.min_inliers) | set(space.fusion_min_inliers)):
            d = json.loads(json.dumps(doc))
            d["fusion"]["min_inliers"] = float(m)
            variants.append((m, d))
        values, gaps = score(variants)
        curves.append(Curve("all", "fusion.min_inliers", tuple(values), tuple(gaps), policy.fusion.min_inliers))
    return tuple(curves)


def _inliers_by_outcome(policy: Policy, data: _Data) -> dict[str, np.ndarray]:
    k = policy.k_for(data.confidence)
    combined = combine_inliers(data.inliers, k, policy.combine)
    landmark = data.is_landmark[data.truth_row]
    masks = {"correct": data.correct, "wrong": ~data.correct & landmark, "non_landmark": ~landmark}
    return {name: combined[mask & np.isfinite(combined)] for name, mask in masks.items()}


def tune(
    predictions: Sequence[pd.DataFrame | Predictions],
    truth: pd.DataFrame,
    inliers: Sequence[np.ndarray],
    *,
    extractor: str = DEFAULT_EXTRACTOR,
    config: TuneConfig = TuneConfig(),
    baseline_inliers: Mapping[str, Sequence[np.ndarray]] | None = None,
    names: Sequence[str] | None = None,
) -> TuneResult:
    """Search the policy that maximises cross-validated GAP on labelled predictions.

    Parameters
    ----------
    predictions : sequence of DataFrame or Predictions
        One or more predictions tables (``id``, ``label``, ``confidence``) for the queries of ``truth``.
    truth : pandas.DataFrame
        ``id``, ``landmarks`` (e.g. ``delfverify.tables.read_solution``).
    inliers : sequence of float array (n_i, K)
        Per table, the inlier counts against its first K gallery photos chosen by ``config.space.selection``
        (``measure_inliers``); K should be at least ``config.space.max_k``.
    extractor : str
        The extractor the counts come from (the built-in ``default`` policy's thresholds depend on it).
    config : TuneConfig
        Folds, seed, search space, threads.
    baseline_inliers : mapping of str to sequence of arrays, optional
        Inlier tables for built-ins whose selection or k differs from the search's (``seed`` uses ``first``);
        without one, a built-in is compared on ``inliers``.
    names : sequence of str, optional
        Names of the predictions files, for the record.

    Returns
    -------
    TuneResult
        The chosen policy (``name`` "tuned", ``info`` with what it was tuned on and its scores), the nested
        cross-validated GAP, per-fold results, GAPs per file before and after the built-ins and the tuned policy,
        curves and inlier histograms for ``plot_tuning``.

    Raises
    ------
    ValueError
        Mismatched tables, ids not in the truth, too few landmark queries for the folds, and the errors of
        ``delfverify.metrics.global_average_precision``.
    """
    space = config.space
    tables = _tables(predictions)
    names = list(names) if names is not None else [f"predictions[{i}]" for i in range(len(tables))]
    if len(names) != len(tables):
        raise ValueError(f"names: {len(names)} names for {len(tables)} predictions tables")
    data = _collect(tables, truth, inliers)
    if data.inliers.shape[1] < space.max_k:
        logger.warning("inlier tables have %d columns, fewer than max_k %d: larger k use what there is",
                       data.inliers.shape[1], space.max_k)
    folds = config.folds
    fold_of_truth = assign_folds(truth, folds, config.seed)
    scorer = _scorer(data, fold_of_truth, folds)
    pool = _Pool(scorer, data.num_files, folds, config.workers)

    # Candidates: the built-ins first (ties go to the earliest), then a seeded random sample.
    builtins = {name: builtin_policy(name, extractor) for name in BUILTINS}
    start = pool.add(_as_candidate(p, space) for p in builtins.values())
    rng = np.random.default_rng([config.seed, 1])
    start += pool.add(_random_doc(space, rng) for _ in range(space.random_candidates))
    logger.info("scored %d starting candidates", len(pool.docs))

    everyone = np.ones(folds, bool)
    _search(pool, start, _objective(everyone), space)
    fold_winners = []
    for f in range(folds):
        train_on = everyone.copy()
        train_on[f] = False
        objective = _objective(train_on)
        _, searched = _search(pool, start, objective, space)
        # The fold's winner among what its own search saw (never what other searches found using this fold).
        values = objective(pool.scores()[searched])
        winner = searched[int(np.argmax(values))]
        fold_winners.append((winner, float(values.max())))
    scores = pool.scores()
    final = scores.mean(axis=1)
    chosen_index = int(np.argmax(final))  # the best held-out mean over every candidate; ties: the earliest
    chosen = pool.policies[chosen_index]

    m_fold = np.bincount(fold_of_truth[data.is_landmark], minlength=folds)
    q_fold = np.bincount(fold_of_truth, minlength=folds)
    fold_results = tuple(
        FoldResult(f, int(q_fold[f]), int(m_fold[f]), train, float(scores[w, f]), float(scores[chosen_index, f]),
                   pool.policies[w])
        for f, (w, train) in enumerate(fold_winners)
    )
    heldout = np.array([r.heldout_gap for r in fold_results])

    # GAP per file on all queries, exactly as rerank would give it.
    baseline_inliers = dict(baseline_inliers or {})
    gaps = {"file": names,
            "before": [global_average_precision(t, truth).gap for t in tables]}
    compared_on = {}
    for name, policy in builtins.items():
        own = baseline_inliers.get(name)
        if own is not None:
            if len(own) != len(tables) or any(np.shape(o)[0] != len(t) for o, t in zip(own, tables)):
                raise ValueError(f"baseline_inliers[{name!r}]: one table of n_i rows per predictions table")
            compared_on[name] = f"own inlier table ({policy.selection} selection)"
        else:
            own = inliers
            compared_on[name] = f"tuning inlier table ({space.selection} selection, K {data.inliers.shape[1]})"
        gaps[name] = _exact_gaps(tables, truth, policy, own)
    gaps["tuned"] = _exact_gaps(tables, truth, chosen, inliers)
    gaps["oracle"] = [oracle_gap(t, truth) for t in tables]
    gap_table = pd.DataFrame(gaps)
    baseline_scores, same_as = {}, []
    for name, policy in builtins.items():
        candidate = _key(_as_candidate(policy, space))
        index = pool.index.get(candidate)
        if index is not None:
            exact = candidate == _key({k: v for k, v in policy.to_dict().items() if k != "extractor"})
            baseline_scores[name if exact else f"{name} thresholds ({space.selection}, k <= {space.max_k})"] = \
                float(final[index])
            if exact and index == chosen_index:
                same_as.append(name)

    whole = _scorer(data, np.zeros(len(data.is_landmark), np.int64), 1)
    curves = _curves(chosen, whole, space)
    histogram = _inliers_by_outcome(chosen, data)

    means = gap_table.drop(columns="file").mean()
    info = {
        "tuned_on": {
            "files": names,
            "extractor": extractor,
            "predictions": int(data.confidence.size),
            "queries": int(len(data.is_landmark)),
            "landmark_queries": int(data.is_landmark.sum()),
            "max_k": space.max_k,
            "selection": space.selection,
            "folds": folds,
            "seed": config.seed,
            "candidates": len(pool.docs),
            "candidates_invalid": len(pool.invalid),
        },
        "cv": {
            "heldout_gap_mean": float(heldout.mean()),
            "heldout_gap_std": float(heldout.std()),
            "chosen_heldout_mean": float(final[chosen_index]),
            "folds": [{"fold": r.fold, "queries": r.num_queries, "landmark_queries": r.num_landmark_queries,
                       "train_gap": r.train_gap, "heldout_gap": r.heldout_gap, "chosen_gap": r.chosen_gap}
                      for r in fold_results],
        },
        "gap": {
            "mean": {name: float(v) for name, v in means.items()},
            "per_file": [{k: v if isinstance(v, str) else float(v) for k, v in row.items()}
                         for row in gap_table.to_dict(orient="records")],
            "builtins_compared_on": compared_on,
            "builtins_heldout_mean": baseline_scores,
        },
    }
    if same_as:
        info["same_as_builtin"] = same_as[0]
    policy = replace(chosen, name="tuned", extractor=extractor, info=info)
    return TuneResult(
        policy=policy,
        cv_gap=float(heldout.mean()),
        cv_gap_std=float(heldout.std()),
        chosen_score=float(final[chosen_index]),
        folds=fold_results,
        candidates_evaluated=len(pool.docs),
        candidates_invalid=len(pool.invalid),
        gaps=gap_table,
        baseline_scores=baseline_scores,
        curves=curves,
        inliers_by_outcome=histogram,
    )


# --- output ---------------------------------------------------------------------------------------------------------


def write_policy(policy: Policy, path: str | os.PathLike) -> None:
    """Write a policy JSON document atomically (readable by ``delfverify.policy.load_policy``)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(policy.to_dict(), handle, indent=2)
        handle.write("\n")


def _action_text(action: Action) -> str:
    doc = action.to_json()
    (op, value), = doc.items()
    if op == "range":
        return f"->[{value[0]:.3g},{value[1]:.3g}]"
    return f"x{value:.3g}" if op == "multiply" else f"={value:.3g}"


def describe_policy(policy: Policy) -> str:
    """The policy in one line, e.g. ``bands (max, spread): [0-1) k3 <5 x0.333 >=10 ->[0.667,1]``."""
    if policy.mode != "bands":
        f = policy.fusion
        return (f"{policy.mode} ({policy.combine}, {policy.selection}): k{f.k} weight {f.weight:g} "
                f"min_inliers {f.min_inliers:g} cap {f.cap:g}")
    parts = []
    for band in policy.bands:
        text = f"[{band.lower:g}-{band.upper:g})"
        if band.skip:
            parts.append(f"{text} skip")
            continue
        text += f" k{band.k}"
        if band.min_inliers is not None:
            text += f" <{band.min_inliers} {_action_text(band.suppress)}"
        if band.boost_inliers is not None:
            text += f" >={band.boost_inliers} {_action_text(band.boost)}"
        parts.append(text)
    return f"bands ({policy.combine}, {policy.selection}): " + "; ".join(parts)


def format_summary(result: TuneResult) -> str:
    """A few lines for the terminal: cross-validated GAP, the policy, and the comparison with the built-ins."""
    info = result.policy.info
    means = result.gaps.drop(columns="file").mean()
    builtins = ", ".join(f"{name} {value:.4f}" for name, value in result.baseline_scores.items())
    lines = [
        f"tuned on {info['tuned_on']['predictions']} predictions of {info['tuned_on']['queries']} queries "
        f"({len(result.gaps)} file(s)), {result.candidates_evaluated} candidates, {len(result.folds)} folds",
        f"cross-validated held-out GAP (nested) {result.cv_gap:.4f} +/- {result.cv_gap_std:.4f} "
        f"(per fold: {', '.join(f'{r.heldout_gap:.3f}' for r in result.folds)}); "
        f"chosen policy's held-out mean {result.chosen_score:.4f} (built-ins: {builtins})",
        f"policy: {describe_policy(result.policy)}",
        "GAP on all queries (mean over files): " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
        + " (tuned: in-sample)",
    ]
    if "same_as_builtin" in info:
        lines.append(f"(the tuned policy is the built-in {info['same_as_builtin']!r} policy)")
    default = result.baseline_scores.get("default")
    if default is not None and result.cv_gap < default - 1e-12:
        lines.append(f"note: on held-out queries, tuning scored below the built-in default ({result.cv_gap:.4f} < "
                     f"{default:.4f}): the tuned thresholds may not carry over to new photos; more labelled "
                     f"queries, or --policy default, may serve better")
    return "\n".join(lines)


def plot_tuning(result: TuneResult, path: str | os.PathLike) -> None:
    """Write a PNG: GAP against each band's ``min_inliers`` (the others at the chosen values), and histograms of
    the combined inlier counts of correct, wrong and non-landmark predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = result.gaps.drop(columns="file").mean()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for curve in result.curves:
        (line,) = left.plot(curve.values, curve.gaps, marker="o", ms=3, label=f"band {curve.band}")
        if curve.chosen is not None and curve.chosen in curve.values:
            left.plot([curve.chosen], [curve.gaps[curve.values.index(curve.chosen)]], "*", ms=12,
                      color=line.get_color())
    for name, style in (("before", ":"), ("default", "--"), ("seed", "-.")):
        if name in means:
            left.axhline(means[name], ls=style, color="grey", lw=1, label=f"{name} {means[name]:.3f}")
    left.set_xlabel(result.curves[0].parameter if result.curves else "min_inliers")
    left.set_ylabel("GAP (mean over files, all queries)")
    left.set_title("GAP vs suppress threshold (star: chosen)")
    left.legend(fontsize=8)
    counts = [result.inliers_by_outcome[name] for name in OUTCOMES]
    top = max([int(np.nanmax(c)) for c in counts if c.size] + [1])
    bins = np.arange(0, min(top, 100) + 2) - 0.5
    for name, values in zip(OUTCOMES, counts):
        right.hist(np.minimum(values, bins[-1] - 0.5), bins=bins, histtype="step", lw=1.5,
                   label=f"{name.replace('_', '-')} ({values.size})")
    right.set_xlabel("combined inlier count (chosen policy's k and combine)"
                     + (f"; {int(bins[-1] - 0.5)} or more at {int(bins[-1] - 0.5)}" if top > 100 else ""))
    right.set_ylabel("predictions")
    right.set_title("inlier counts by outcome")
    right.legend(fontsize=8)
    fig.suptitle(f"delfverify tune: CV held-out GAP {result.cv_gap:.4f} +/- {result.cv_gap_std:.4f}", fontsize=10)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)


def compare_policies(
    predictions: Mapping[str, Predictions],
    truth: pd.DataFrame,
    gallery: pd.DataFrame,
    verifier: "Verifier",
    policies: Mapping[str, Policy],
    *,
    query_images: "ImageDirectory",
    gallery_images: "ImageDirectory",
    journal: "PairJournal | None" = None,
) -> pd.DataFrame:
    """GAP of each predictions file before re-ranking, after each policy, and the oracle (correct / M).

    Returns
    -------
    pandas.DataFrame
        One row per file: ``file``, ``before``, one column per policy name, ``oracle``.
    """
    from .rerank import rerank

    rows = []
    for name, table in predictions.items():
        row = {"file": name, "before": global_average_precision(table.table, truth).gap}
        for label, policy in policies.items():
            result = rerank(table, gallery, verifier, policy, query_images=query_images,
                            gallery_images=gallery_images, journal=journal)
            row[label] = global_average_precision(result.predictions.table, truth).gap
        row["oracle"] = oracle_gap(table.table, truth)
        rows.append(row)
    return pd.DataFrame(rows)
