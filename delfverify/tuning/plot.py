"""What ``delfverify tune`` found, as a picture (``tune --plot``, with matplotlib): GAP against each band's
``min_inliers``, and the inlier counts of correct, wrong and non-landmark predictions."""

from __future__ import annotations

import io
import os

import numpy as np

from ..outputs import Output, write_output
from ..metrics import OUTCOMES
from .fitting import TuneResult


def plot_tuning(result: "TuneResult", path: str | os.PathLike | Output) -> None:
    """Write the PNG of ``tuning_png`` through the output layer (``delfverify.outputs``)."""
    write_output(path, tuning_png(result), name="the plot")


def tuning_png(result: "TuneResult") -> bytes:
    """A PNG: GAP against each band's ``min_inliers`` (the others at the chosen values), and histograms of the
    combined inlier counts of correct, wrong and non-landmark predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
                   label=f"{name} ({values.size})")
    right.set_xlabel("combined inlier count (chosen policy's k and combine)"
                     + (f"; {int(bins[-1] - 0.5)} or more at {int(bins[-1] - 0.5)}" if top > 100 else ""))
    right.set_ylabel("predictions")
    right.set_title("inlier counts by outcome")
    right.legend(fontsize=8)
    fig.suptitle(f"delfverify tune: CV held-out GAP {result.cv_gap:.4f} +/- {result.cv_gap_std:.4f}", fontsize=10)
    fig.tight_layout()
    data = io.BytesIO()
    fig.savefig(data, format="png", dpi=100)
    plt.close(fig)
    return data.getvalue()
