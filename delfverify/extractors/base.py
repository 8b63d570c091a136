"""What every extractor provides (``Extractor``), the inlier counts that decide for it (``Thresholds``), and its
fingerprint.

An extractor turns an RGB ``uint8`` image into ``Features``. Each extractor also says how its descriptors are
matched (``match``), which geometric model verifies them (``ransac``) and how many inliers decide (``thresholds``),
because all three depend on the descriptor: DELF's 40-D PCA-whitened descriptors and RootSIFT's 128-D ones have
different distance scales and inlier statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from ..features import Features, short_hash
from ..matching import MatchConfig
from ..verification import RansacConfig


@dataclass(frozen=True)
class Thresholds:
    """Inlier counts that decide, for one extractor and model, anchored on what unrelated photos reach.

    Attributes
    ----------
    support : int
        Fewer inliers are no geometric support (the default policy's bottom tier).
    accept : int
        At least this many: the two photos show the same place (``verify``'s decision, the top tier).
    """

    support: int
    accept: int


@runtime_checkable
class Extractor(Protocol):
    """What every extractor provides. Extractors sent to worker processes must be picklable."""

    #: Registry name, e.g. ``"rootsift"``.
    name: str
    #: Descriptor length D.
    dim: int
    #: How this extractor's descriptors are matched.
    match: MatchConfig
    #: The geometric model and RANSAC settings its thresholds were measured with.
    ransac: RansacConfig
    #: Per geometric model, the inlier counts that decide (measured on what unrelated photos reach).
    thresholds: Mapping[str, Thresholds]

    def params(self) -> dict[str, Any]:
        """Parameters and model identity: everything that changes the features."""
        ...

    def extract(self, image: np.ndarray) -> Features:
        """Features of an RGB ``uint8`` image ``[H, W, 3]``, locations in its pixels."""
        ...

    def limit_threads(self, threads: int) -> None:
        """Use at most ``threads`` threads (worker processes call it so that they do not oversubscribe cores)."""
        ...


def measured_thresholds(extractor: Extractor | type, geometry: str) -> Thresholds:
    """The thresholds measured for an extractor (object or class) with a geometric model.

    Raises
    ------
    ValueError
        If they were not measured for this extractor and model.
    """
    if geometry not in extractor.thresholds:
        raise ValueError(f"no thresholds for {extractor.name} features with the {geometry} model (measured: "
                         f"{', '.join(extractor.thresholds)})")
    return extractor.thresholds[geometry]


#: Extractor parameters that name a library's version, not a setting: they key the feature store (another version
#: may extract other features), not what a null table was measured with (its rates carry over).
LIBRARY_VERSION_PARAMS = frozenset({"opencv"})


def fingerprint(extractor: Extractor, versions: bool = True) -> str:
    """A stable short hash of an extractor's name and parameters, used in cache keys; without ``versions``, of its
    settings alone (``LIBRARY_VERSION_PARAMS`` left out)."""
    params = {name: value for name, value in extractor.params().items()
              if versions or name not in LIBRARY_VERSION_PARAMS}
    return short_hash({"name": extractor.name, "params": params})
