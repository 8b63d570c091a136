"""Step 4 of the pipeline: several candidate labels per query, and the one the photos confirm.

``decide`` is the step as ``rerank`` runs it: it verifies candidates in rounds of rank (every query's first, then the
second of the queries still ``undecided``, ...), each round through ``measure``, and returns the final choice with
every candidate's status. A query is decided, and its later candidates never verified (status ``stopped``), once its
best rescaled confidence is at least the most the policy could give any candidate left (``Policy.max_confidence``,
computed once): stopping changes no choice.

The rule itself, on known inlier counts: each candidate is rescaled as a top-1 prediction would be (``rescale``),
and the query's prediction is the one with the highest rescaled confidence (ties: the classifier's order):
``choose_candidates``, once per round; ``best_candidates`` is that choice on any confidences, vectorised.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .images import Photos
from .measuring import ImageCache, InlierTable, Session, measure
from .planning import plan_pairs
from .policy import Policy
from .rescaling import Rescaled, rescale
from .settings import RunSettings
from .tables import Gallery, Predictions

logger = logging.getLogger(__name__)


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


def choose_candidates(predictions: Predictions, inliers: np.ndarray, policy: Policy, **options: Any) -> Choice:
    """Rescale every candidate by its inlier counts as a top-1 prediction would be (``rescale``, with the same
    keywords: ``errors``, ``unverifiable``, ``gallery_labels``, ``on_missing``), and choose per query the candidate
    with the highest rescaled confidence (ties: the classifier's order).

    With one row per query, every row is chosen. A candidate whose images failed, or that was not verified,
    keeps its confidence under ``on_missing="keep"``, as a top-1 prediction would.
    """
    rescaled = rescale(predictions, inliers, policy, **options)
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


@dataclass(frozen=True)
class Decision:
    """What step 4 decided: every candidate's inlier counts (``table``; none for those never verified), which were
    ``verified``, and the ``choice``, where a candidate left unverified because its query was decided has status
    ``stopped`` and a reason naming the candidate that decided it."""

    table: InlierTable
    verified: np.ndarray
    choice: Choice


def decide(predictions: Predictions, gallery: Gallery, policy: Policy, session: Session, photos: Photos,
           run: RunSettings) -> Decision:
    """Verify the candidates of rank 1 of every query, then of rank 2 of the queries still ``undecided`` (every
    query with ``run.keep_candidates``), and so on; rescale and choose after each round, and return the last
    round's choice.

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
    choice = None
    for r in range(1, last + 1):
        rows = np.flatnonzero((rank == r) & open_queries[query])
        if not len(rows):
            break
        if last > 1:
            logger.info("candidates of rank %d: verifying %d of %d queries", r, len(rows), len(starts))
        batch = predictions if len(rows) == n else Predictions(predictions.table.iloc[rows].reset_index(drop=True),
                                                              predictions.format)
        plan = plan_pairs(batch, gallery, k[rows], policy.selection, policy.seed, by_label=by_label, orders=orders)
        table = measure(batch, plan, session, photos, progress=run.progress, images=images)
        inliers[rows, : table.inliers.shape[1]] = table.inliers
        for row, ids, error, doubt in zip(rows.tolist(), table.gallery_ids, table.errors, table.unverifiable):
            gallery_ids[row], errors[row], unverifiable[row] = ids, error, doubt
        counts.update(computed=table.pairs_computed, reused=table.pairs_reused, extracted=table.features_extracted)
        verified[rows] = True
        choice = None
        if not run.keep_candidates and r < last:
            choice = choose_candidates(predictions, inliers, policy, errors=errors, unverifiable=unverifiable,
                                       gallery_labels=by_label.keys(), on_missing=run.on_missing)
            open_queries = undecided(starts, choice.rescaled.confidence, verified, ceiling)
    if choice is None:
        choice = choose_candidates(predictions, inliers, policy, errors=errors, unverifiable=unverifiable,
                                   gallery_labels=by_label.keys(), on_missing=run.on_missing)
    table = InlierTable(inliers, gallery_ids, errors, unverifiable, counts["computed"], counts["reused"],
                        counts["extracted"])
    return Decision(table, verified, _mark_stopped(predictions, choice, verified, ceiling))


def _mark_stopped(predictions: Predictions, choice: Choice, verified: np.ndarray, ceiling: np.ndarray) -> Choice:
    """Status ``stopped`` and the reason for candidates left unverified because their query was decided."""
    stopped = np.flatnonzero(~verified & predictions.has_label)
    if not len(stopped):
        return choice
    chosen = choice.rows[predictions.query[stopped]]
    status, reason = choice.rescaled.status.copy(), choice.rescaled.reason.copy()
    status[stopped] = "stopped"
    rank, found = predictions.rank[chosen], choice.rescaled.confidence[chosen]
    reason[stopped] = [f"not verified: candidate {r} reached {v:.4f}, this one could reach at most {c:.4f}"
                       for r, v, c in zip(rank, found, ceiling[stopped])]
    return replace(choice, rescaled=replace(choice.rescaled, status=status, reason=reason))
