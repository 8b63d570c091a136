"""The policy model: ``Policy`` and its parts (``Action``, ``Band``, ``Fusion``, ``FrequencyPenalty``), how a policy
rescales confidences (``Policy.apply``) and how inlier counts of several gallery photos combine (``combine_inliers``).

Policies are built and validated from their JSON documents by ``delfverify.policy.schema``; every policy is
monotone: more inliers never lower a confidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

MODES = ("bands", "additive", "multiplicative")
COMBINES = ("max", "mean", "second")
SELECTIONS = ("first", "random", "spread")


@dataclass(frozen=True)
class Action:
    """``c -> low + (high - low) * c``."""

    low: float
    high: float

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        return self.low + (self.high - self.low) * confidence

    def to_json(self) -> dict[str, Any]:
        if self.low == self.high:
            return {"set": self.low}
        if self.low == 0:
            return {"multiply": self.high}
        return {"range": [self.low, self.high]}


@dataclass(frozen=True)
class Band:
    """A confidence band ``[lower, upper)`` (the last band includes 1.0) and what verification does in it."""

    lower: float
    upper: float
    k: int = 2
    skip: bool = False
    min_inliers: int | None = None
    suppress: Action = Action(0.0, 0.0)
    boost_inliers: int | None = None
    boost: Action = Action(1.0, 1.0)


@dataclass(frozen=True)
class Fusion:
    """Parameters of the ``additive`` and ``multiplicative`` modes."""

    k: int = 3
    weight: float = 1.0
    min_inliers: float = 0.0
    cap: float = 70.0


@dataclass(frozen=True)
class FrequencyPenalty:
    """Multiply confidences of labels predicted for more than ``max_share`` of predictions by ``factor``."""

    max_share: float
    factor: float
    below_inliers: int


@dataclass(frozen=True)
class Policy:
    """A validated re-ranking policy. Build with ``policy_from_dict`` or ``builtin_policy``."""

    name: str
    mode: str = "bands"
    bands: tuple[Band, ...] = ()
    fusion: Fusion = Fusion()
    combine: str = "max"
    selection: str = "spread"
    seed: int = 0
    frequency_penalty: FrequencyPenalty | None = None
    extractor: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def max_k(self) -> int:
        """The most gallery photos any prediction is verified against."""
        if self.mode != "bands":
            return self.fusion.k
        return max((b.k for b in self.bands if not b.skip), default=0)

    def k_for(self, confidence: np.ndarray) -> np.ndarray:
        """Gallery photos to verify per prediction (0 in skipped bands)."""
        confidence = np.asarray(confidence, float)
        if self.mode != "bands":
            return np.full(confidence.shape, self.fusion.k, int)
        k = np.zeros(confidence.shape, int)
        index = self._band_index(confidence)
        for i, band in enumerate(self.bands):
            k[index == i] = 0 if band.skip else band.k
        return k

    def band_names(self, confidence: np.ndarray) -> np.ndarray:
        """A readable band name per prediction, e.g. ``"0.4-0.6"`` (``"all"`` in fusion modes)."""
        if self.mode != "bands":
            return np.full(np.shape(confidence), "all", object)
        names = np.array([f"{b.lower:g}-{b.upper:g}" for b in self.bands], object)
        return names[self._band_index(np.asarray(confidence, float))]

    def _band_index(self, confidence: np.ndarray) -> np.ndarray:
        edges = np.array([b.lower for b in self.bands[1:]], float)
        return np.searchsorted(edges, confidence, side="right")

    def apply(
        self,
        confidence: np.ndarray,
        inliers: np.ndarray,
        label_share: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rescale confidences by inlier counts.

        Parameters
        ----------
        confidence : float [n]
            Original confidences in [0, 1].
        inliers : float [n, K]
            Inlier counts against the selected gallery photos in selection order; NaN where a photo is missing
            or failed. Column ``j`` is used when ``j < k`` of the prediction's band.
        label_share : float [n], optional
            Share of all predictions that carry the same label (for ``frequency_penalty``).

        Returns
        -------
        (new_confidence, status)
            ``status`` per prediction: ``verified``, ``suppressed``, ``boosted`` or ``skipped`` (predictions in a
            skipped band or without any inlier count are left unchanged), the first statuses of
            ``delfverify.rescaling.STATUSES``.
        """
        confidence = np.asarray(confidence, float)
        inliers = np.asarray(inliers, float)
        if inliers.ndim != 2:  # one count per prediction (also for no predictions at all)
            inliers = inliers.reshape(len(confidence), -1 if len(confidence) else 1)
        k = self.k_for(confidence)
        combined = combine_inliers(inliers, k, self.combine)
        k = np.where(np.isnan(combined), 0, k)  # nothing verified: left as it is
        evidence = np.nan_to_num(combined, nan=0.0)
        if self.mode == "bands":
            new = confidence.copy()
            index = self._band_index(confidence)
            for i, band in enumerate(self.bands):
                if band.skip:
                    continue
                rows = (index == i) & (k > 0)
                if band.min_inliers is not None:
                    low = rows & (evidence < band.min_inliers)
                    new[low] = band.suppress(confidence[low])
                if band.boost_inliers is not None:
                    high = rows & (evidence >= band.boost_inliers)
                    new[high] = band.boost(confidence[high])
        else:
            f = self.fusion
            strength = np.clip((evidence - f.min_inliers) / (f.cap - f.min_inliers), 0.0, 1.0)
            if self.mode == "additive":
                new = (confidence + f.weight * strength) / (1.0 + f.weight)
            else:
                new = confidence * (1.0 - f.weight + f.weight * strength)
            new = np.where(k > 0, new, confidence)
        penalty = self.frequency_penalty
        if penalty is not None and label_share is not None:
            frequent = (np.asarray(label_share) > penalty.max_share) & (evidence < penalty.below_inliers) & (k > 0)
            new = np.where(frequent, new * penalty.factor, new)
        new = np.clip(new, 0.0, 1.0)
        status = np.where(k == 0, "skipped", np.where(new > confidence, "boosted",
                          np.where(new < confidence, "suppressed", "verified"))).astype(object)
        return new, status

    def max_confidence(self, confidence: np.ndarray) -> np.ndarray:
        """The highest confidence this policy can give a prediction of each confidence, whatever its inliers.

        Every policy is monotone in the inlier counts, so this is its confidence at infinitely many inliers (a
        prediction left unverified keeps its confidence, which is never more). ``rerank`` stops verifying a
        query's candidates once none left can reach the best rescaled confidence found.
        """
        confidence = np.asarray(confidence, float)
        most = np.full((confidence.size, 1), np.finfo(float).max)  # beyond every threshold (inf reads as missing)
        with np.errstate(over="ignore"):
            return self.apply(confidence, most)[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of this policy (``policy_from_dict(p.to_dict()) == p``)."""
        doc: dict[str, Any] = {"name": self.name, "mode": self.mode, "combine": self.combine,
                               "selection": self.selection, "seed": self.seed}
        if self.extractor:
            doc["extractor"] = self.extractor
        if self.mode == "bands":
            doc["bands"] = [_band_to_json(b) for b in self.bands]
        else:
            doc["fusion"] = asdict(self.fusion)
        if self.frequency_penalty is not None:
            doc["frequency_penalty"] = asdict(self.frequency_penalty)
        if self.info:
            doc["info"] = dict(self.info)
        return doc


def combine_inliers(inliers: np.ndarray, k: np.ndarray, how: str) -> np.ndarray:
    """Combine each row's first ``k`` inlier counts (NaN ignored): max, mean or second best.

    ``second`` is the second-highest count, or the only one when a single gallery photo was verified.
    Rows without any count give NaN.
    """
    inliers = np.asarray(inliers, float)
    columns = np.arange(inliers.shape[1])[None, :]
    used = np.where(columns < np.asarray(k)[:, None], inliers, np.nan)
    present = np.isfinite(used).sum(axis=1)
    out = np.full(len(used), np.nan)
    rows = present > 0
    if not rows.any():
        return out
    values = used[rows]
    if how == "max":
        out[rows] = np.nanmax(values, axis=1)
    elif how == "mean":
        out[rows] = np.nanmean(values, axis=1)
    elif how == "second":
        ordered = -np.sort(-np.nan_to_num(values, nan=-np.inf), axis=1)
        second = ordered[:, 1] if ordered.shape[1] > 1 else ordered[:, 0]
        out[rows] = np.where(present[rows] > 1, second, ordered[:, 0])
    else:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {how!r}")
    return out


def _band_to_json(band: Band) -> dict[str, Any]:
    doc: dict[str, Any] = {"lower": band.lower, "upper": band.upper}
    if band.skip:
        doc["skip"] = True
        return doc
    doc["k"] = band.k
    if band.min_inliers is not None:
        doc["min_inliers"] = band.min_inliers
        doc["suppress"] = band.suppress.to_json()
    if band.boost_inliers is not None:
        doc["boost_inliers"] = band.boost_inliers
        doc["boost"] = band.boost.to_json()
    return doc
