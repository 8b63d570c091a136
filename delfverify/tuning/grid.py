"""The small search space of ``delfverify tune`` (``--search small``, the default): ``default`` and its neighbours.

A candidate is ``default``'s one band with a handful of interpretable parameters moved a few steps:

- ``k``: gallery photos verified per prediction (``ks``; ``default`` 3);
- ``min_inliers``: suppress below this many inliers (``default``: the extractor's ``Thresholds.support`` for its
  geometric model), moved by ``threshold_offsets`` inliers;
- ``boost_inliers``: boost at or above this many (``default``: ``Thresholds.accept``), moved the same way;
- the suppress and the boost weight: how much a tier weighs the evidence against the confidence,
  ``c -> c / (1 + w)`` and ``c -> (c + w) / (1 + w)`` (``delfverify.policy.tier_actions``; ``default`` 2, the
  tiers in thirds), each one of ``weights``.

Every combination is a candidate (``boost_inliers`` below ``min_inliers`` excepted), so the grid is searched
exhaustively and every candidate is scored on the same folds. Its distance to ``default`` is the number of grid
steps from ``default``'s values, summed over the parameters; ``delfverify.tuning.selection`` prefers the closest.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from ..policy import DEFAULT_EVIDENCE_WEIGHT, Policy, tier_actions
from .search import Space, as_candidate, candidate_key

#: The grid's parameters, in the order of ``GridCandidates.steps`` columns.
PARAMETERS = ("k", "min_inliers", "boost_inliers", "suppress_weight", "boost_weight")


@dataclass(frozen=True)
class SmallSpace(Space):
    """``default``'s neighbourhood; see the module docstring.

    Attributes
    ----------
    max_k, selection
        As in ``delfverify.tuning.search.Space``.
    ks : tuple of int
        Gallery photos per prediction; values above ``max_k`` are dropped. One grid step between neighbours.
    threshold_offsets : tuple of int
        Inliers added to ``default``'s suppress and boost thresholds (each independently); must hold 0.
    weights : tuple of float
        Suppress and boost weights (each independently), increasing; must hold ``default``'s 2.
    """

    ks: tuple[int, ...] = (1, 2, 3, 4, 5)
    threshold_offsets: tuple[int, ...] = (-3, -2, -1, 0, 1, 2, 3)
    weights: tuple[float, ...] = (1.0, 2.0, 3.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.ks or list(self.ks) != sorted(set(self.ks)) or any(
                not (isinstance(k, int) and k >= 1) for k in self.ks):
            raise ValueError(f"ks must be increasing positive integers, got {self.ks!r}")
        if 0 not in self.threshold_offsets or list(self.threshold_offsets) != sorted(set(self.threshold_offsets)) \
                or any(not isinstance(o, int) for o in self.threshold_offsets):
            raise ValueError(f"threshold_offsets must be increasing integers holding 0, got {self.threshold_offsets!r}")
        if DEFAULT_EVIDENCE_WEIGHT not in self.weights or list(self.weights) != sorted(set(self.weights)) \
                or min(self.weights) <= 0:
            raise ValueError(f"weights must be increasing positive numbers holding {DEFAULT_EVIDENCE_WEIGHT:g}, "
                             f"got {self.weights!r}")


@dataclass(frozen=True)
class GridCandidates:
    """The candidates of a ``SmallSpace`` around one ``default`` policy.

    Attributes
    ----------
    docs : list of dict
        Policy documents (``policy_from_dict``); ``docs[0]`` is ``default`` itself (with ``k`` at most ``max_k``).
    steps : int array (C, len(PARAMETERS))
        Grid steps of each candidate from ``default``'s value, per parameter.
    """

    docs: list[dict[str, Any]]
    steps: np.ndarray

    @property
    def distance(self) -> np.ndarray:
        """Grid steps from ``default``, summed over the parameters (0 for ``docs[0]``)."""
        return self.steps.sum(axis=1)


def grid_candidates(space: SmallSpace, default: Policy) -> GridCandidates:
    """Every candidate of ``space`` around ``default`` (a one-band policy such as the built-in ``default``).

    Raises
    ------
    ValueError
        If ``default`` is not a one-band policy with both a suppress and a boost tier.
    """
    if default.mode != "bands" or len(default.bands) != 1 or default.bands[0].skip \
            or default.bands[0].min_inliers is None or default.bands[0].boost_inliers is None:
        raise ValueError(f"default must be one band with a suppress and a boost tier, got {default.to_dict()}")
    band = default.bands[0]
    ks = space.usable_ks
    k0 = min(band.k, space.max_k)
    # Nearest grid value to default's k (its own when it is on the grid).
    k_index = int(np.argmin([abs(k - k0) for k in ks]))
    weight_index = space.weights.index(DEFAULT_EVIDENCE_WEIGHT)
    offset_index = space.threshold_offsets.index(0)
    docs = [as_candidate(default, space)]
    steps = [(0, 0, 0, 0, 0)]
    for (ki, k), (si, s), (bi, b), (wi, ws), (vi, wb) in product(
            enumerate(ks), enumerate(space.threshold_offsets), enumerate(space.threshold_offsets),
            enumerate(space.weights), enumerate(space.weights)):
        step = (abs(ki - k_index), abs(si - offset_index), abs(bi - offset_index), abs(wi - weight_index),
                abs(vi - weight_index))
        low, high = band.min_inliers + s, band.boost_inliers + b
        doc = _moved(docs[0], k, low, high, ws, wb)
        if low < 1 or high < low or candidate_key(doc) == candidate_key(docs[0]):
            continue
        docs.append(doc)
        steps.append(step)
    return GridCandidates(docs, np.array(steps, np.int64))


def _moved(base: dict[str, Any], k: int, low: int, high: int, suppress_weight: float,
           boost_weight: float) -> dict[str, Any]:
    """``base`` (a one-band document) with its band's parameters set to these values."""
    suppress, _ = tier_actions(suppress_weight)
    _, boost = tier_actions(boost_weight)
    band = {**base["bands"][0], "k": int(k), "min_inliers": int(low), "suppress": suppress.to_json(),
            "boost_inliers": int(high), "boost": boost.to_json()}
    return {**base, "name": "tuned", "bands": [band]}
