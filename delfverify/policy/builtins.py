"""The built-in policies, ``seed`` and ``default`` (see ``delfverify.policy``), for an extractor and geometric
model, whose thresholds differ by both."""

from __future__ import annotations

import math
from typing import Any

from .model import Action, Band, Policy
from .schema import PolicyError

#: The default policy's tier actions weigh the geometric evidence this much against the confidence (``tier_actions``).
DEFAULT_EVIDENCE_WEIGHT = 2.0

def _seed_policy(extractor: str | Any, geometry: str | None = None) -> Policy:
    suppress = Action(0.0, 0.0)
    return Policy(
        name="seed",
        bands=(
            Band(0.0, 0.4, k=2, min_inliers=3, suppress=suppress, boost_inliers=10, boost=Action(0.6, 0.6)),
            Band(0.4, 0.6, k=2, min_inliers=3, suppress=suppress),
            Band(0.6, 0.8, k=5, min_inliers=3, suppress=suppress),
            Band(0.8, 1.0, skip=True),
        ),
        combine="max",
        selection="first",
        extractor=extractor if isinstance(extractor, str) else extractor.name,
    )


def tier_actions(weight: float) -> tuple[Action, Action]:
    """The suppress and boost actions that weigh the evidence ``s`` (0: none, 1: clear) ``weight`` times against
    the confidence, as additive fusion does: ``c -> (c + weight * s) / (1 + weight)``, that is ``c / (1 + weight)``
    and ``(c + weight) / (1 + weight)``. ``default``'s weight 2 puts the tiers in thirds."""
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"weight must be a positive number, got {weight!r}")
    return Action(0.0, 1.0 / (1.0 + weight)), Action(weight / (1.0 + weight), 1.0)


def _default_policy(extractor: str | Any, geometry: str | None = None) -> Policy:
    from ..extractors import extractor_class
    from ..extractors.base import measured_thresholds

    cls = extractor_class(extractor) if isinstance(extractor, str) else extractor
    try:
        thresholds = measured_thresholds(cls, geometry or cls.ransac.geometry)
    except ValueError as exc:
        raise PolicyError(f"the default policy has {exc}; give a policy file") from None
    suppress, boost = tier_actions(DEFAULT_EVIDENCE_WEIGHT)
    return Policy(
        name="default",
        bands=(
            Band(0.0, 1.0, k=3, min_inliers=thresholds.support, suppress=suppress,
                 boost_inliers=thresholds.accept, boost=boost),
        ),
        combine="max",
        selection="spread",
        extractor=cls.name,
    )


BUILTINS = {"seed": _seed_policy, "default": _default_policy}


def builtin_policy(name: str, extractor: str | Any, geometry: str | None = None) -> Policy:
    """A built-in policy for an extractor (a name or an object) and geometric model (default: the extractor's);
    thresholds differ by both."""
    if name not in BUILTINS:
        raise PolicyError(f"unknown built-in policy {name!r}; choose one of {', '.join(BUILTINS)} or give a JSON file")
    return BUILTINS[name](extractor, geometry)
