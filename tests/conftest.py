"""Shared fixtures: the dev photo set, a seeded textured synthetic image, and a known-affine warp helper."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = REPO.parent / "shared" / "data" / "landmarks-dev"

#: A mild, well-conditioned affine map (x, y) -> (x', y'): ~10 degree rotation, slight scale, translation.
KNOWN_AFFINE = np.array([[0.95, -0.17, 30.0], [0.15, 0.97, 12.0]], np.float64)


@pytest.fixture(scope="session")
def dev_data() -> Path:
    """The dev photo set beside the repository; skips the test when it is absent."""
    if not (DEV_DATA / "gallery.csv").is_file():
        pytest.skip(f"dev data not found at {DEV_DATA}")
    return DEV_DATA


def make_textured_image(seed: int = 0, height: int = 300, width: int = 400) -> np.ndarray:
    """A seeded RGB uint8 image full of corners and blobs (rectangles, circles, lines, noise patches)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 127, np.uint8)
    image[:] = rng.integers(60, 200, size=3, dtype=np.uint8)
    for _ in range(60):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.integers(0, 3)
        if kind == 0:
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x1, y1 = x0 + int(rng.integers(8, 60)), y0 + int(rng.integers(8, 60))
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness=-1)
        elif kind == 1:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(image, centre, int(rng.integers(4, 30)), colour, thickness=-1)
        else:
            p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(image, p0, p1, colour, thickness=int(rng.integers(1, 4)))
    for _ in range(15):  # blurred noise patches give blob-like structure at several scales
        y, x = int(rng.integers(0, height - 40)), int(rng.integers(0, width - 40))
        size = int(rng.integers(16, 40))
        patch = rng.integers(0, 256, size=(size // 4, size // 4, 3), dtype=np.uint8)
        patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_CUBIC)
        image[y : y + size, x : x + size] = patch
    return image


def warp_affine(image: np.ndarray, matrix: np.ndarray = KNOWN_AFFINE, size: tuple[int, int] | None = None) -> np.ndarray:
    """``image`` warped by the 2x3 affine ``matrix`` mapping its (x, y) pixels to the output's."""
    height, width = image.shape[:2]
    out_w, out_h = size if size is not None else (width, height)
    return cv2.warpAffine(image, np.asarray(matrix, np.float64), (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


@pytest.fixture
def textured_image() -> np.ndarray:
    """Seeded synthetic RGB uint8 image, 300x400, with many SIFT keypoints."""
    return make_textured_image(seed=0)


@pytest.fixture
def warp():
    """The helper ``warp_affine(image, matrix=KNOWN_AFFINE, size=None)``."""
    return warp_affine
