"""Pictures: the two photos of a verification side by side with their inlier matches drawn (``plot_matches``),
and what ``delfverify tune`` found (``plot_tuning``, with matplotlib)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from .features import Features
from .fileio import atomic_write
from .verification import Verification

if TYPE_CHECKING:
    from .tuning import TuneResult


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


def plot_tuning(result: "TuneResult", path: str | os.PathLike) -> None:
    """Write a PNG: GAP against each band's ``min_inliers`` (the others at the chosen values), and histograms of
    the combined inlier counts of correct, wrong and non-landmark predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .tuning import OUTCOMES

    means = result.gaps.drop(columns="file").mean()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for curve in result.curves:
        (line,) = left.plot(curve.values, curve.gaps, marker="o", ms=3, label=f"band {curve.band}")
        if curve.chosen is not None and curve.chosen in curve.values:
            left.plot([curve.chosen], [curve.gaps[curve.values.index(curve.chosen)]], "*", ms=12,
                      color=line.get_color())
    for name, style in (("before", ":"), ("default", "--"), ("seed", "-.")):
        if name in means:
            left.axhline(means[name], ls=style, color="grey", lw=1, label=f"{name} {means[name]:.3f}")
    left.set_xlabel(result.curves[0].parameter if result.curves else "min_inliers")
    left.set_ylabel("GAP (mean over files, all queries)")
    left.set_title("GAP vs suppress threshold (star: chosen)")
    left.legend(fontsize=8)
    counts = [result.inliers_by_outcome[name] for name in OUTCOMES]
    top = max([int(np.nanmax(c)) for c in counts if c.size] + [1])
    bins = np.arange(0, min(top, 100) + 2) - 0.5
    for name, values in zip(OUTCOMES, counts):
        right.hist(np.minimum(values, bins[-1] - 0.5), bins=bins, histtype="step", lw=1.5,
                   label=f"{name.replace('_', '-')} ({values.size})")
    right.set_xlabel("combined inlier count (chosen policy's k and combine)"
                     + (f"; {int(bins[-1] - 0.5)} or more at {int(bins[-1] - 0.5)}" if top > 100 else ""))
    right.set_ylabel("predictions")
    right.set_title("inlier counts by outcome")
    right.legend(fontsize=8)
    fig.suptitle(f"delfverify tune: CV held-out GAP {result.cv_gap:.4f} +/- {result.cv_gap_std:.4f}", fontsize=10)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
