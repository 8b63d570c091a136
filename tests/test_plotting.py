"""delfverify.plotting: the match picture of a verification (PNG, or a shrunk JPEG)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from delfverify import Verifier
from delfverify.plotting import draw_matches, plot_matches

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


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


def test_draw_matches_shrinks_the_picture_and_draws_each_match_where_its_keypoints_went(textured_image, warp):
    verifier = Verifier()
    warped = warp(textured_image)
    a, b = verifier.features_of(textured_image), verifier.features_of(warped)
    result = verifier.verify_features(a, b)
    assert result.num_inliers > 20
    picture = np.asarray(draw_matches(textured_image, warped, a, b, result, max_side=400)).astype(int)
    assert picture.shape == (150, 400, 3)  # 300 x 800 side by side, halved
    green = (picture[:, :, 1] > 200) & (picture[:, :, 0] < 80) & (picture[:, :, 2] < 80)
    for ia, ib in result.matches[result.inlier_mask][:20]:
        (ya, xa), (yb, xb) = a.locations[ia] / 2, b.locations[ib] / 2
        for x, y in ((xa, ya), (xb + 200, yb)):  # each end of the line, in the shrunk picture
            near = green[max(0, round(y) - 3): round(y) + 4, max(0, round(x) - 3): round(x) + 4]
            assert near.any(), (x, y)


def test_plot_matches_writes_a_small_jpeg(tmp_path, textured_image, warp):
    verifier = Verifier()
    warped = warp(textured_image)
    a, b = verifier.features_of(textured_image), verifier.features_of(warped)
    result = verifier.verify_features(a, b)
    plot_matches(textured_image, warped, a, b, result, tmp_path / "m.jpg", max_side=320, image_format="jpeg")
    data = (tmp_path / "m.jpg").read_bytes()
    assert data[:3] == JPEG_MAGIC and len(data) < 40_000
    assert Image.open(tmp_path / "m.jpg").size == (320, 120)
    with pytest.raises(ValueError, match="image_format"):
        plot_matches(textured_image, warped, a, b, result, tmp_path / "m.gif", image_format="gif")
    with pytest.raises(ValueError, match="max_side"):
        draw_matches(textured_image, warped, a, b, result, max_side=0)
