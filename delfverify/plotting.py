"""Pictures of a verification: the two photos side by side with their inlier matches drawn."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from .features import Features
from .fileio import atomic_write
from .verification import Verification


def plot_matches(
    image_a: np.ndarray,
    image_b: np.ndarray,
    features_a: Features,
    features_b: Features,
    verification: Verification,
    path: str | os.PathLike,
) -> None:
    """Write a PNG with ``image_a`` left, ``image_b`` right, inlier matches as green lines.

    The images must be the ones the features were extracted from (same size), e.g. ``load_image(x, max_side)``.
    """
    height = max(image_a.shape[0], image_b.shape[0])
    canvas = np.zeros((height, image_a.shape[1] + image_b.shape[1], 3), np.uint8)
    canvas[: image_a.shape[0], : image_a.shape[1]] = image_a
    canvas[: image_b.shape[0], image_a.shape[1] :] = image_b
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    pairs = verification.matches[verification.inlier_mask]
    for ia, ib in pairs:
        ya, xa = features_a.locations[ia]
        yb, xb = features_b.locations[ib]
        draw.line([(float(xa), float(ya)), (float(xb) + image_a.shape[1], float(yb))], fill=(0, 255, 0), width=1)
        for x, y in ((xa, ya), (xb + image_a.shape[1], yb)):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], outline=(255, 255, 0))
    draw.text((8, 8), f"{verification.num_inliers} inliers / {verification.num_putative} putative", fill=(255, 0, 0))
    with atomic_write(path, "wb") as handle:
        picture.save(handle, format="PNG")
