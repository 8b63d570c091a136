"""Local features: the ``Features`` result, the extractor interface and the registry of extractors by name.

An extractor turns an RGB ``uint8`` image into ``Features``. Each extractor also says how its descriptors are
matched (``match``) and how many RANSAC inliers make two photos "the same place" (``accept_inliers``), because
both depend on the descriptor: DELF's 40-D PCA-whitened descriptors and RootSIFT's 128-D ones have different
distance scales and inlier statistics. Extractors live in ``delfverify.extractors.<name>``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .matching import MatchConfig


@dataclass(frozen=True)
class Features:
    """Local features of one image.

    Attributes
    ----------
    locations : float32 [N, 2]
        Keypoint centres as (y, x) in the pixels of the image given to the extractor.
    descriptors : float32 [N, D]
        L2-normalised descriptors.
    scales : float32 [N]
        Keypoint scale (extractor-specific units).
    scores : float32 [N]
        Keypoint strength (DELF attention, SIFT response).
    """

    locations: np.ndarray
    descriptors: np.ndarray
    scales: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        n = self.locations.shape[0] if self.locations.ndim == 2 else -1
        if self.locations.ndim != 2 or self.locations.shape[1] != 2:
            raise ValueError(f"locations must have shape [N, 2], got {self.locations.shape}")
        if self.descriptors.ndim != 2 or self.descriptors.shape[0] != n:
            raise ValueError(f"descriptors must have shape [{n}, D], got {self.descriptors.shape}")
        for name in ("scales", "scores"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape [{n}], got {getattr(self, name).shape}")
        for name in ("locations", "descriptors", "scales", "scores"):
            if getattr(self, name).dtype != np.float32:
                raise ValueError(f"{name} must be float32, got {getattr(self, name).dtype}")

    def __len__(self) -> int:
        return int(self.locations.shape[0])

    @classmethod
    def empty(cls, dim: int) -> "Features":
        """Features of an image where nothing was found; shapes stay ``[0, 2]`` and ``[0, dim]``."""
        return cls(
            locations=np.zeros((0, 2), np.float32),
            descriptors=np.zeros((0, dim), np.float32),
            scales=np.zeros((0,), np.float32),
            scores=np.zeros((0,), np.float32),
        )


@runtime_checkable
class Extractor(Protocol):
    """What every extractor provides."""

    #: Registry name, e.g. ``"rootsift"``.
    name: str
    #: Descriptor length D.
    dim: int
    #: How this extractor's descriptors are matched.
    match: MatchConfig
    #: Default number of RANSAC inliers at which two photos count as showing the same place.
    accept_inliers: int

    def params(self) -> dict[str, Any]:
        """Parameters and model identity: everything that changes the features."""
        ...

    def extract(self, image: np.ndarray) -> Features:
        """Features of an RGB ``uint8`` image ``[H, W, 3]``."""
        ...


def fingerprint(extractor: Extractor) -> str:
    """A stable short hash of an extractor's name and parameters, used in cache keys."""
    doc = json.dumps({"name": extractor.name, "params": extractor.params()}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


#: Extractor names accepted by ``make_extractor`` and the CLI's ``--features``.
EXTRACTORS = ("rootsift", "delf")

#: The extractor used when none is named: RootSIFT needs no model download.
DEFAULT_EXTRACTOR = "rootsift"


def extractor_class(name: str) -> type:
    """The extractor class registered under ``name`` (its class attributes, e.g. ``accept_inliers``, can be read
    without creating it, which for DELF would load the model).

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    if name == "rootsift":
        from .extractors.rootsift import RootSIFT

        return RootSIFT
    if name == "delf":
        from .extractors.delf import DELF

        return DELF
    raise ValueError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")


def make_extractor(name: str = DEFAULT_EXTRACTOR, **options: Any) -> Extractor:
    """Create an extractor by name.

    Parameters
    ----------
    name : {"rootsift", "delf"}
        The extractor. ``delf`` imports TensorFlow (lazily, only here).
    **options
        Passed to the extractor's constructor, e.g. ``model="/path/to/delf"`` or ``max_feature_num=500``.

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    return extractor_class(name)(**options)
