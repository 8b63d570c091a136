"""Step 4 of the pipeline: several candidate labels per query, and the one the photos confirm.

Each candidate is rescaled as a top-1 prediction would be (``rescale``), and the query's prediction is the one with
the highest rescaled confidence (ties: the classifier's order): ``choose_candidates``; ``best_candidates`` is that
choice on any confidences, vectorised. ``verify_in_rounds`` verifies candidates in rounds of rank (every query's
first, then the second of the queries still ``undecided``, ...), each round through ``measure``; a query is decided,
and its later candidates never verified, once its best rescaled confidence is at least the most the policy could
give any candidate left (``Policy.max_confidence``): stopping changes no choice.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Collection, Sequence

import numpy as np

from .measuring import ImageCache, InlierTable, Photos, Session, measure
from .planning import plan_pairs
from .policy import Policy
from .rescaling import Rescaled, rescale
from .tables import Gallery, Predictions

logger = logging.getLogger(__name__)

#: The first this many candidates of each query are verified (``rerank(candidates=...)``, ``--candidates``).
DEFAULT_CANDIDATES = 5


def best_candidates(starts: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """The row of each query's best candidate: the highest confidence, ties to the earliest row.

    The choice rule of ``rerank`` on any confidences, vectorised (no Python loop) for callers that apply it many
    times, such as a tuner scoring policies on fixed inlier counts.

    Parameters
    ----------
    starts : int array (Q,)
        The first row of each query (``Predictions.query_starts``); a query's rows are consecutive and in the
        classifier's order, so a tie goes to the classifier's choice.
    confidence : float array (n,)
        Rescaled confidence of each row; NaN (no prediction, only ever a query's sole row) loses to any number.

    Returns
    -------
    int array (Q,)
    """
    confidence = np.nan_to_num(np.asarray(confidence, float), nan=-np.inf)
    n = confidence.size
    if not len(starts):
        return np.zeros(0, np.intp)
    best = np.maximum.reduceat(confidence, starts)
    rows = np.where(confidence == np.repeat(best, np.diff(np.append(starts, n))), np.arange(n), n)
    return np.minimum.reduceat(rows, starts)


@dataclass(frozen=True)
class Choice:
    """Each query's chosen candidate: ``rows`` (int, one per query, into the predictions table) and what the
    policy made of every candidate (``rescaled``, one entry per row)."""

    rows: np.ndarray
    rescaled: Rescaled


def choose_candidates(
    predictions: Predictions,
    inliers: np.ndarray,
    policy: Policy,
    *,
    errors: Sequence[str] | None = None,
    unverifiable: Sequence[str] | None = None,
    gallery_labels: Collection[str] | None = None,
    on_missing: str = "keep",
) -> Choice:
    """Rescale every candidate by its inlier counts as a top-1 prediction would be (``rescale``, same parameters),
    and choose per query the candidate with the highest rescaled confidence (ties: the classifier's order).

    With one row per query, every row is chosen. A candidate whose images failed, or that was not verified,
    keeps its confidence under ``on_missing="keep"``, as a top-1 prediction would.
    """
    rescaled = rescale(predictions, inliers, policy, errors=errors, unverifiable=unverifiable,
                       gallery_labels=gallery_labels, on_missing=on_missing)
    return Choice(best_candidates(predictions.query_starts, rescaled.confidence), rescaled)


def undecided(starts: np.ndarray, confidence: np.ndarray, verified: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """Which queries a candidate not yet verified could still change (bool, one per query).

    Candidates are verified in rank order, so those left come after the verified ones and lose ties to them. A
    query is decided once the best rescaled ``confidence`` of its ``verified`` candidates is at least the
    ``ceiling`` (``Policy.max_confidence``) of every candidate left: no count of inliers could change its choice.
    """
    if not len(starts):
        return np.zeros(0, bool)
    found = np.where(verified, np.nan_to_num(confidence, nan=-np.inf), -np.inf)
    left = np.where(verified, -np.inf, ceiling)
    return np.maximum.reduceat(left, starts) > np.maximum.reduceat(found, starts)


def verify_in_rounds(predictions: Predictions, gallery: Gallery, policy: Policy, session: Session, photos: Photos,
                      *, early_stop: bool, on_missing: str, progress: bool) -> tuple[InlierTable, np.ndarray]:
    """Plan and measure the candidates of rank 1 of every query, then of rank 2 of the queries still ``undecided``
    (every query when not ``early_stop``), and so on. Returns the inlier table of all rows (none for rows never
    verified) and which rows were verified.

    The gallery's labels and their ``gallery_order`` are built once for all rounds, and with several rounds each
    image file is read and hashed once (an ``ImageCache`` shared by the rounds)."""
    n = len(predictions)
    starts, query, rank = predictions.query_starts, predictions.query, predictions.rank
    confidence = np.nan_to_num(predictions.confidence)
    k = np.where(predictions.has_label, policy.k_for(confidence), 0)
    ceiling = np.where(predictions.has_label, policy.max_confidence(confidence), -np.inf)
    by_label = gallery.ids_by_label()
    orders: dict[str, list[str]] = {}
    inliers = np.full((n, max(policy.max_k, 1)), np.nan)
    gallery_ids: list[list[str]] = [[] for _ in range(n)]
    errors, unverifiable = [""] * n, [""] * n
    counts: Counter = Counter()
    verified = np.zeros(n, bool)
    open_queries = np.ones(len(starts), bool)
    last = int(rank.max(initial=0))
    images = ImageCache() if last > 1 else None  # one round: measure keeps query images per chunk, memory bounded
    for r in range(1, last + 1):
        rows = np.flatnonzero((rank == r) & open_queries[query])
        if not len(rows):
            break
        if last > 1:
            logger.info("candidates of rank %d: verifying %d of %d queries", r, len(rows), len(starts))
        batch = predictions if len(rows) == n else Predictions(predictions.table.iloc[rows].reset_index(drop=True),
                                                              predictions.format)
        plan = plan_pairs(batch, gallery, k[rows], policy.selection, policy.seed, by_label=by_label, orders=orders)
        table = measure(batch, plan, session, photos, progress=progress, images=images)
        inliers[rows, : table.inliers.shape[1]] = table.inliers
        for row, ids, error, doubt in zip(rows.tolist(), table.gallery_ids, table.errors, table.unverifiable):
            gallery_ids[row], errors[row], unverifiable[row] = ids, error, doubt
        counts.update(computed=table.pairs_computed, reused=table.pairs_reused, extracted=table.features_extracted)
        verified[rows] = True
        if early_stop and r < last:
            new = rescale(predictions, inliers, policy, errors=errors, gallery_labels=by_label.keys(),
                          on_missing=on_missing).confidence
            open_queries = undecided(starts, new, verified, ceiling)
    return InlierTable(inliers, gallery_ids, errors, unverifiable, counts["computed"], counts["reused"],
                       counts["extracted"]), verified


def mark_stopped(predictions: Predictions, choice: Choice, verified: np.ndarray, policy: Policy) -> Rescaled:
    """Status ``stopped`` and the reason for candidates left unverified because their query was decided."""
    stopped = np.flatnonzero(~verified & predictions.has_label)
    if not len(stopped):
        return choice.rescaled
    chosen = choice.rows[predictions.query[stopped]]
    status, reason = choice.rescaled.status.copy(), choice.rescaled.reason.copy()
    status[stopped] = "stopped"
    ceiling = policy.max_confidence(predictions.confidence[stopped])
    rank, found = predictions.rank[chosen], choice.rescaled.confidence[chosen]
    reason[stopped] = [f"not verified: candidate {r} reached {v:.4f}, this one could reach at most {c:.4f}"
                       for r, v, c in zip(rank, found, ceiling)]
    return replace(choice.rescaled, status=status, reason=reason)
