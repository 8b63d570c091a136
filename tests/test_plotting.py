"""delfverify.plotting: the match picture of a verification and the tuning plot are written as PNG files."""

from __future__ import annotations

import numpy as np
from PIL import Image
from tuning_cases import separable

from delfverify import Verifier
from delfverify.plotting import plot_matches, plot_tuning
from delfverify.tuning import SearchSpace, TuneConfig, tune

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_matches_draws_both_photos_side_by_side(tmp_path, textured_image, warp):
    verifier = Verifier()
    warped = warp(textured_image)
    a, b = verifier.features_of(textured_image), verifier.features_of(warped)
    result = verifier.verify_features(a, b)
    plot_matches(textured_image, warped, a, b, result, tmp_path / "m.png")
    picture = np.asarray(Image.open(tmp_path / "m.png"))
    assert picture.shape == (300, 800, 3)
    drawn = np.any(picture != np.concatenate([textured_image, warped], axis=1), axis=2)
    assert 0.001 < drawn.mean() < 0.6  # the photos, with the inlier lines and markers over them
    green = (picture[:, :, 1] == 255) & (picture[:, :, 0] == 0) & (picture[:, :, 2] == 0)
    assert green.sum() > 100


def test_plot_tuning_writes_a_png(tmp_path):
    truth, tables, inliers = separable(seed=5, n=80, files=1)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=30, coordinate_rounds=1), workers=1)
    result = tune(tables, truth, inliers, config=config)
    assert set(result.inliers_by_outcome) == {"correct", "wrong", "non_landmark"}
    plot_tuning(result, tmp_path / "tuning.png")
    assert (tmp_path / "tuning.png").read_bytes()[:8] == PNG_MAGIC


