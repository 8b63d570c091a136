"""Local features: the ``Features`` result of an extractor (``delfverify.extractors``), and ``short_hash``, the
stable hash that names features and pair results in the caches."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

#: The array fields of ``Features``, in order.
ARRAY_FIELDS = ("locations", "descriptors", "scales", "scores")
#: The dtypes descriptors may have: an extractor's compact codes (uint8, float16) or float32.
DESCRIPTOR_DTYPES = (np.uint8, np.float16, np.float32)


@dataclass(frozen=True)
class Features:
    """Local features of one image.

    Attributes
    ----------
    locations : float32 [N, 2]
        Keypoint centres as (y, x). An extractor gives them in the pixels of the image it was given; a
        ``Verifier`` maps them to the pixels of the photo as the user gave it (``in_original_pixels``).
    descriptors : uint8, float16 or float32 [N, D]
        As the extractor gives them and the feature store keeps them: uint8 SIFT histograms (RootSIFT's, whole
        numbers in [0, 255]), float16 unit vectors (DELF's), or float32 unit vectors. ``unit_descriptors`` gives the
        float32 unit vectors that are matched.
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
            allowed = DESCRIPTOR_DTYPES if name == "descriptors" else (np.float32,)
            if getattr(self, name).dtype not in allowed:
                raise ValueError(f"{name} must be {' or '.join(np.dtype(d).name for d in allowed)}, got "
                                 f"{getattr(self, name).dtype}")
        if len(self.extraction_scale) != 2 or not all(0 < s <= 1 for s in self.extraction_scale):
            raise ValueError(f"extraction_scale must be two factors in (0, 1], got {self.extraction_scale!r}")

    def __len__(self) -> int:
        return int(self.locations.shape[0])

    @cached_property  # the arrays are never changed in place; a pair of photos asks for both sets
    def unit_descriptors(self) -> np.ndarray:
        """The descriptors as float32 unit vectors, as they are matched: uint8 SIFT histograms as their RootSIFT
        vectors (``root_sift``, bit for bit what RootSIFT would have given as
        float32), float16 values as float32, float32 ones as they are."""
        if self.descriptors.dtype == np.uint8:
            return root_sift(self.descriptors)
        return self.descriptors.astype(np.float32, copy=False)

    @classmethod
    def empty(cls, dim: int, dtype: type = np.float32) -> "Features":
        """Features of an image where nothing was found; shapes stay ``[0, 2]`` and ``[0, dim]`` (descriptors of
        ``dtype``)."""
        return cls(
            locations=np.zeros((0, 2), np.float32),
            descriptors=np.zeros((0, dim), dtype),
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


def root_sift(histograms: np.ndarray) -> np.ndarray:
    """RootSIFT vectors of SIFT histograms [N, 128]: ``sqrt(h / |h|_1)``, then unit length (float32; a histogram of
    zeros stays zero). The one implementation: ``RootSIFT`` and ``Features.unit_descriptors`` of uint8 histograms
    both call it, so stored and fresh descriptors match bit for bit."""
    desc = histograms.astype(np.float32)
    desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-12)
    desc = np.sqrt(desc)
    desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
    return desc
