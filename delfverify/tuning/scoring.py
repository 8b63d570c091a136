"""Fast scoring of many policies on fixed predictions and inlier counts, for the policy search.

The new confidences of a candidate come from precomputed combined inlier counts (equal to those of
``delfverify.pipeline.rescale``, proven by a property test), and one integer sort ranks every file and fold at
once: the key packs (ranking, confidence descending, query id ascending, correct), the Kaggle order of
``delfverify.metrics``. Confidences are ranked rounded to 6 decimals, as ``rerank`` writes them, so a score is the
GAP of the file the policy would produce. Rows whose confidence one monotone map changes keep their order, so the
keys form a few sorted runs that numpy's merge sort ranks in near-linear time. The GAP of each ranking then comes
from ``delfverify.metrics.ranked_gap``. About 3 ms per candidate for 100,000 predictions
(``benchmarks/bench_tune.py``). ``frequency_penalty`` is not supported.

A query may have several candidate labels in a ranking (a candidates file, one row each). The scorer then makes
``rerank``'s choice among them before ranking: per query, the candidate with the highest new confidence, ties to
the classifier's order (``delfverify.pipeline.best_candidates``, the rule of ``choose_candidates``), and ranks only
the chosen rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from ..metrics import ranked_gap
from ..candidates import best_candidates
from ..policy import Policy, combine_inliers
from ..tables import CONFIDENCE_DECIMALS  # rerank writes confidences so rounded; tuning ranks them as written


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
        Rank of each prediction's query id in string order (the Kaggle tie-break).
    ranking : int array (n,)
        Which ranking each prediction belongs to (e.g. file x fold), 0 .. G-1.
    num_landmark_queries : int array (G,)
        M of each ranking, at least 1.
    decimals : int or None
        Rank confidences rounded to this many decimals, as ``delfverify rerank`` writes them (6), so that the GAP
        is that of the written file; None: compare them at the finest binary resolution that fits the sort key
        (``2**-resolution_bits``, about ``2**-40`` for 100,000 rows).
    candidate : int array (n,), optional
        Each row's rank among its query's candidates in the classifier's order (1: its first choice); the pair
        (query_rank, candidate) is unique within a ranking. None: one row per query.

    Notes
    -----
    ``confidences(policy)`` equals ``delfverify.pipeline.rescale``'s confidences (``frequency_penalty`` is not
    supported); ``gaps(policy)`` equals ``global_average_precision`` of each ranking with those confidences
    rounded to ``decimals`` (up to exact half-way cases), or unrounded when they do not lie closer than the
    resolution, on the rows ``delfverify.pipeline.choose_candidates`` chooses (every row without candidates).
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
        candidate: np.ndarray | None = None,
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
        candidate = np.ones(n, np.int64) if candidate is None else np.asarray(candidate, np.int64)
        if confidence.ndim != 1 or any(a.shape != (n,) for a in (correct, query_rank, ranking, candidate)):
            raise ValueError("confidence, correct, query_rank, ranking and candidate must be 1-D arrays of one "
                             "length")
        if inliers.shape[0] != n:
            raise ValueError(f"inliers must have one row per prediction ({n}), got shape {inliers.shape}")
        if n and (np.isnan(confidence).any() or confidence.min() < 0 or confidence.max() > 1):
            raise ValueError("confidence must lie in [0, 1] (no NaN)")
        if n and (query_rank.min() < 0 or ranking.min() < 0 or ranking.max() >= m.size or candidate.min() < 1):
            raise ValueError(f"query_rank must be >= 0, ranking in [0, {m.size}) and candidate >= 1")
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
        self._ranking_shift = self._confidence_shift + top.bit_length()
        base = (ranking << self._ranking_shift) | (np.int64(top) << self._confidence_shift) \
            | (query_rank << 1) | correct.astype(np.int64)
        key = base - (self._quantise(confidence) << self._confidence_shift)
        query = (ranking << id_bits) | query_rank
        by_query = np.lexsort((candidate, query))  # each query's rows together, in the classifier's order
        query, candidate = query[by_query], candidate[by_query]
        if np.any((query[1:] == query[:-1]) & (candidate[1:] == candidate[:-1])):
            raise ValueError("query_rank (with candidate) must be unique within each ranking")
        # Canonical layout: rows in their original rank order, so that a monotone map keeps runs sorted.
        self._order = np.argsort(key, kind="stable")
        self._inverse = np.empty(n, np.intp)
        self._inverse[self._order] = np.arange(n)
        starts = np.flatnonzero(np.append(True, query[1:] != query[:-1])) if n else np.zeros(0, np.intp)
        #: (canonical rows query after query, each query's first position) when a query has several candidates.
        self._queries = (self._inverse[by_query], starts) if starts.size < n else None
        self._base = base[self._order]
        self.confidence = confidence[self._order]
        self._inliers = inliers[self._order]
        self.num_landmark_queries = m
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
        """GAP of each ranking, float (G,), of each query's chosen candidate."""
        new, segments, order = self._apply(policy)
        if order is None:
            order = np.argsort(segments, kind="stable")
        if self._queries is not None:
            order = order[self._chosen(new)[order]]
        return self._ranked_gaps(new, order)

    def _chosen(self, new: np.ndarray) -> np.ndarray:
        """Whether each row (canonical layout) is its query's choice among its candidates under ``new``."""
        rows, starts = self._queries
        chosen = np.zeros(self.size, bool)
        chosen[rows[best_candidates(starts, new[rows])]] = True
        return chosen

    def _ranked_gaps(self, new: np.ndarray, order: np.ndarray) -> np.ndarray:
        """GAP of each ranking from new confidences (canonical layout) of the rows ``order`` lists, run after run.

        Rows with one monotone map keep their canonical order, so laid out run after run the keys are a few sorted
        runs, which a merge sort (numpy's stable sort) ranks in near-linear time. Any subset of ``order`` that keeps
        its sequence (e.g. one chosen row per query) keeps the runs sorted.
        """
        key = (self._base - (self._quantise(new) << self._confidence_shift))[order]
        key.sort(kind="stable")
        starts = np.searchsorted(key, np.arange(self.num_landmark_queries.size, dtype=np.int64) << self._ranking_shift)
        return ranked_gap((key & 1).astype(bool), self.num_landmark_queries, starts)

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
