"""Match pictures: the two photos of a verification side by side with their inlier matches drawn (``draw_matches``),
written by ``plot_matches`` as PNG or as a small JPEG (``verify --plot`` and the run report). The tuning plot is
``delfverify.tuning.plot``."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageDraw

from .features import Features
from .outputs import Output, write_output
from .verification import Verification


#: JPEG quality of ``plot_matches(..., image_format="jpeg")`` unless given.
JPEG_QUALITY = 80
IMAGE_FORMATS = ("png", "jpeg")


def draw_matches(
    image_a: np.ndarray,
    image_b: np.ndarray,
    features_a: Features,
    features_b: Features,
    verification: Verification,
    *,
    max_side: int | None = None,
) -> Image.Image:
    """``image_a`` left, ``image_b`` right (tops aligned), inlier matches as green lines with yellow ends, and the
    inlier and putative counts written in the corner.

    The images must be the photos in their own pixels, those of ``Features.locations`` (``load_image(x, None)``).
    With ``max_side`` the picture is shrunk (never enlarged) so that its longest side is at most that many pixels,
    and the matches are drawn at that size.
    """
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    height, width = max(image_a.shape[0], image_b.shape[0]), image_a.shape[1] + image_b.shape[1]
    scale = 1.0 if max_side is None else min(1.0, max_side / max(height, width))
    photos = [Image.fromarray(image) for image in (image_a, image_b)]
    if scale < 1.0:
        photos = [photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                               Image.LANCZOS) for photo in photos]
    picture = Image.new("RGB", (photos[0].width + photos[1].width, max(photos[0].height, photos[1].height)))
    picture.paste(photos[0], (0, 0))
    picture.paste(photos[1], (photos[0].width, 0))
    # Each photo's own factor: rounding its size may change its aspect ratio by a fraction of a pixel.
    factor_a = np.array([photos[0].height / image_a.shape[0], photos[0].width / image_a.shape[1]])
    factor_b = np.array([photos[1].height / image_b.shape[0], photos[1].width / image_b.shape[1]])
    draw = ImageDraw.Draw(picture)
    pairs = verification.matches[verification.inlier_mask]
    for ia, ib in pairs:
        ya, xa = features_a.locations[ia] * factor_a
        yb, xb = features_b.locations[ib] * factor_b
        xb += photos[0].width
        draw.line([(float(xa), float(ya)), (float(xb), float(yb))], fill=(0, 255, 0), width=1)
        for x, y in ((xa, ya), (xb, yb)):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], outline=(255, 255, 0))
    draw.text((8, 8), f"{verification.num_inliers} inliers / {verification.num_putative} putative", fill=(255, 0, 0))
    return picture


def plot_matches(
    image_a: np.ndarray,
    image_b: np.ndarray,
    features_a: Features,
    features_b: Features,
    verification: Verification,
    path: str | os.PathLike | Output,
    *,
    max_side: int | None = None,
    image_format: str = "png",
    quality: int = JPEG_QUALITY,
) -> None:
    """Write the picture of ``draw_matches`` (same images, features and ``max_side``) as a PNG, or as a JPEG of
    ``quality`` (1-95) with ``image_format="jpeg"``: encoded in memory (``encode_picture``), then written through
    the output layer (``delfverify.outputs``: a regular file atomically, a device, a FIFO or ``-`` written into)."""
    picture = draw_matches(image_a, image_b, features_a, features_b, verification, max_side=max_side)
    write_output(path, encode_picture(picture, image_format, quality), name="the plot")


def encode_picture(picture: Image.Image, image_format: str = "png", quality: int = JPEG_QUALITY) -> bytes:
    """The bytes of a picture as a PNG, or as a JPEG of ``quality`` (1-95) with ``image_format="jpeg"``."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be in 1..95, got {quality!r}")
    options = {"quality": quality, "optimize": True} if image_format == "jpeg" else {}
    data = io.BytesIO()
    picture.save(data, format=image_format.upper(), **options)
    return data.getvalue()
