"""Step 3 of the pipeline: ``rescale`` applies a policy to predictions and their inlier counts.

It is the one implementation of the policy rules for a predictions table (``delfverify tune``'s fast scorer is
proven equal to it), and gives each prediction its status and reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np
import pandas as pd

from .policy import Policy
from .tables import Predictions

ON_MISSING = ("keep", "suppress")
#: Every status a prediction can end with (``stopped``: a candidate left unverified, ``delfverify.candidates``).
STATUSES = ("verified", "suppressed", "boosted", "skipped", "unverifiable", "no_gallery", "error", "no_prediction",
            "stopped")


@dataclass(frozen=True)
class Rescaled:
    """What a policy made of each prediction: ``confidence`` (NaN where none), ``status`` (one of ``STATUSES``),
    ``reason`` and ``band`` (object arrays of str)."""

    confidence: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    band: np.ndarray


def rescale(
    predictions: Predictions,
    inliers: np.ndarray,
    policy: Policy,
    *,
    errors: Sequence[str] | None = None,
    unverifiable: Sequence[str] | None = None,
    gallery_labels: Collection[str] | None = None,
    on_missing: str = "keep",
) -> Rescaled:
    """Rescale each prediction's confidence by its inlier counts under ``policy``.

    Every row is rescaled on its own, a query's candidates each as a top-1 prediction; a ``frequency_penalty``
    takes a label's share among the queries' first candidates (the classifier's predictions).

    Parameters
    ----------
    predictions : Predictions
    inliers : float [n, K]
        Counts against the planned gallery photos (``InlierTable.inliers``); NaN where not verified.
    policy : Policy
    errors : sequence of str, optional
        Per prediction, why its images failed (``InlierTable.errors``).
    unverifiable : sequence of str, optional
        Per prediction, why its pairs give no evidence either way (``InlierTable.unverifiable``): its status is
        then ``unverifiable`` with that reason, and its confidence is what its inlier count gives. Measured on
        the dev and hard sets: leaving such predictions unchanged instead cost 0.02 to 0.06 of the oracle GAP,
        because non-landmark photos also have few keypoints and matches.
    gallery_labels : collection of str, optional
        Labels that have gallery photos; a prediction of another label gets status ``no_gallery``.
    on_missing : {"keep", "suppress"}
        A prediction whose images failed, or whose label has no gallery photo, keeps its confidence or is treated
        as verified with 0 inliers.
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
    n = len(predictions)
    confidence = predictions.confidence
    has_prediction = predictions.has_label
    known_confidence = np.nan_to_num(confidence)
    k = np.where(has_prediction, policy.k_for(known_confidence), 0)
    labels = predictions.labels
    no_gallery = np.zeros(n, bool)
    if gallery_labels is not None:
        no_gallery = has_prediction & (k > 0) & ~pd.Series(labels).isin(gallery_labels).to_numpy()
    errors = list(errors) if errors is not None else [""] * n
    inliers = np.array(inliers, float).reshape(n, -1 if n else 1)
    failed = np.array([bool(e) for e in errors], bool) & np.all(np.isnan(inliers), axis=1)
    if on_missing == "suppress":
        inliers[no_gallery | failed, 0] = 0.0
    first = has_prediction & (predictions.rank == 1)  # the classifier's predictions, one per query
    counts = Counter(labels[first])
    share = pd.Series(labels).map(counts).fillna(0).to_numpy(float) / max(int(first.sum()), 1)
    new, status = policy.apply(known_confidence, inliers, share)
    reason = np.array(errors, object)
    if unverifiable is not None:
        doubtful = np.array([bool(d) for d in unverifiable], bool) & (status != "skipped")
        status[doubtful] = "unverifiable"
        reason[doubtful & (reason == "")] = np.array(unverifiable, object)[doubtful & (reason == "")]
    status[no_gallery] = "no_gallery"
    status[failed] = "error"
    status[~has_prediction] = "no_prediction"
    reason[no_gallery] = "label has no gallery photo"
    band = np.where(has_prediction, policy.band_names(known_confidence), "")
    return Rescaled(np.where(has_prediction, new, np.nan), status, reason, band.astype(object))
