"""Local features: the ``Features`` result of an extractor (``delfverify.extractors``), and ``short_hash``, the
stable hash that names features and pair results in the caches."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: The array fields of ``Features``, in order.
ARRAY_FIELDS = ("locations", "descriptors", "scales", "scores")


@dataclass(frozen=True)
class Features:
    """Local features of one image.

    Attributes
    ----------
    locations : float32 [N, 2]
        Keypoint centres as (y, x). An extractor gives them in the pixels of the image it was given; a
        ``Verifier`` maps them to the pixels of the photo as the user gave it (``in_original_pixels``).
    descriptors : float32 [N, D]
        L2-normalised descriptors.
    scales : float32 [N]
        Keypoint scale (extractor-specific units).
    scores : float32 [N]
        Keypoint strength (DELF attention, SIFT response).
    extraction_scale : (float, float)
        Pixels of the image the extractor saw per pixel of ``locations``, along y and x (1.0, 1.0 unless the
        photo was shrunk before extraction). RANSAC measures its thresholds in the extractor's pixels (or at a
        fixed photo size, ``RansacConfig.image_side``), so the same photo gives the same inliers whatever its
        size on disk.
    image_shape : (int, int)
        Height and width of the photo ``locations`` refer to; (0, 0) when unknown.
    """

    locations: np.ndarray
    descriptors: np.ndarray
    scales: np.ndarray
    scores: np.ndarray
    extraction_scale: tuple[float, float] = (1.0, 1.0)
    image_shape: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        n = self.locations.shape[0] if self.locations.ndim == 2 else -1
        if self.locations.ndim != 2 or self.locations.shape[1] != 2:
            raise ValueError(f"locations must have shape [N, 2], got {self.locations.shape}")
        if self.descriptors.ndim != 2 or self.descriptors.shape[0] != n:
            raise ValueError(f"descriptors must have shape [{n}, D], got {self.descriptors.shape}")
        for name in ("scales", "scores"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape [{n}], got {getattr(self, name).shape}")
        for name in ARRAY_FIELDS:
            if getattr(self, name).dtype != np.float32:
                raise ValueError(f"{name} must be float32, got {getattr(self, name).dtype}")
        if len(self.extraction_scale) != 2 or not all(0 < s <= 1 for s in self.extraction_scale):
            raise ValueError(f"extraction_scale must be two factors in (0, 1], got {self.extraction_scale!r}")

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

    def in_original_pixels(self, scale_yx: tuple[float, float], shape: tuple[int, int]) -> "Features":
        """These features, extracted from a photo of ``shape`` (height, width) shrunk by ``scale_yx``, with
        locations in the photo's pixels."""
        scale = (float(scale_yx[0]), float(scale_yx[1]))
        locations = (self.locations / np.array(scale, np.float32)).astype(np.float32)
        return replace(self, locations=locations, extraction_scale=scale, image_shape=(int(shape[0]), int(shape[1])))

    def locations_xy_extracted(self) -> np.ndarray:
        """Keypoint centres as (x, y) in the pixels of the image the extractor saw (float64 [N, 2])."""
        return self.locations[:, ::-1].astype(np.float64) * np.array(self.extraction_scale[::-1])


def short_hash(doc: Any) -> str:
    """The first 16 hex digits of the SHA-256 of a JSON document (keys sorted): a stable cache key."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
