"""delfverify.verifier: ``verify_pair`` on synthetic photos, ``Verifier`` reusing features from memory and the
store, keypoints and transforms in the pixels of the photos as given, and extractors given by name or object."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import KNOWN_AFFINE, make_textured_image

from delfverify import RansacConfig, Verifier, VerifySettings, verify_pair
from delfverify.extractors import RootSIFT
from delfverify.verification import ENGINES


def _apply(transform: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ transform[:2, :2].T + transform[:2, 2]


def _assert_same(a, b) -> None:
    for name in ("locations", "descriptors", "scales", "scores"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def _corrupt_truncated(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _image_file(tmp_path, textured_image):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(textured_image).save(path)
    return path


def test_verifier_recomputes_corrupt_entry_then_reuses_store(tmp_path, textured_image, caplog):
    image = _image_file(tmp_path, textured_image)
    cache = tmp_path / "cache"
    first = Verifier("rootsift", cache_dir=cache)
    features = first.features_of(image)
    assert first.extracted == 1 and first.store.stats.writes == 1
    entry = first.store.path(first.key(image))
    assert entry.is_file() and entry.is_relative_to(cache / first.features_fingerprint)

    _corrupt_truncated(entry)
    second = Verifier("rootsift", cache_dir=cache)
    with caplog.at_level(logging.WARNING, logger="delfverify.store"):
        recomputed = second.features_of(image)
    assert second.store.stats.corrupt == 1 and second.extracted == 1
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    _assert_same(recomputed, features)
    assert entry.is_file()

    third = Verifier("rootsift", cache_dir=cache)
    _assert_same(third.features_of(image), features)
    assert third.extracted == 0 and third.store.stats.hits == 1 and third.store.stats.corrupt == 0


def test_verifier_memory_cache_extracts_once(tmp_path, textured_image):
    image = _image_file(tmp_path, textured_image)
    verifier = Verifier("rootsift")
    verifier.features_of(image)
    verifier.features_of(image.read_bytes())  # same content, same key
    assert verifier.extracted == 1 and verifier.store is None


def _corner_error(transform: np.ndarray, width: int, height: int) -> float:
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], float)
    known = np.vstack([KNOWN_AFFINE, [0, 0, 1]])
    return float(np.abs(_apply(transform, corners) - _apply(known, corners)).max())


@pytest.mark.parametrize("engine", ENGINES)
def test_verify_pair_warped_copy_matches(textured_image, warp, engine):
    warped = warp(textured_image)
    result = verify_pair(textured_image, warped, ransac=RansacConfig(engine=engine))  # the research's affine fit
    assert result.num_inliers >= 30
    assert result.num_inliers >= 0.8 * result.num_putative
    assert result.num_features_a > 100 and result.num_features_b > 100
    assert _corner_error(result.transform, 400, 300) < 2.0


@pytest.mark.parametrize("engine", ENGINES)
def test_verify_pair_unrelated_images_do_not_match(textured_image, engine):
    result = verify_pair(textured_image, make_textured_image(seed=4), ransac=RansacConfig(engine=engine))
    assert result.num_features_b > 100
    assert result.num_inliers < RootSIFT.thresholds["affine"].accept


def test_verify_pair_is_deterministic(textured_image, warp):
    other = warp(make_textured_image(seed=2), np.array([[0.7, 0.1, 20.0], [-0.1, 0.8, 5.0]]))
    first = verify_pair(textured_image, other)
    second = verify_pair(textured_image, other)
    assert first.num_inliers == second.num_inliers
    np.testing.assert_array_equal(first.matches, second.matches)
    np.testing.assert_array_equal(first.inlier_mask, second.inlier_mask)


def test_keypoints_and_transform_are_in_the_pixels_of_the_photo_as_given(textured_image, warp):
    """Shrinking before extraction changes neither the inliers nor the units: locations and the transform are in
    the original photo's pixels."""
    big = np.kron(textured_image, np.ones((2, 2, 1), np.uint8))  # 600 x 800
    warped = warp(big, np.array([[0.95, -0.17, 60.0], [0.15, 0.97, 24.0]]))
    full = Verifier(VerifySettings(max_side=None)).verify(big, warped)
    shrunk_verifier = Verifier(VerifySettings(max_side=400))
    features = shrunk_verifier.features_of(big)
    assert features.extraction_scale == (0.5, 0.5)
    assert features.locations[:, 0].max() > 300 and features.locations[:, 1].max() > 400  # beyond 300 x 400
    shrunk = shrunk_verifier.verify(big, warped)
    assert shrunk.num_inliers >= 30
    corners = np.array([[0, 0], [800, 0], [0, 600], [800, 600]], float)
    np.testing.assert_allclose(_apply(shrunk.transform, corners), _apply(full.transform, corners), atol=6.0)


def test_extractor_object_or_name_give_the_same_verifier(textured_image, warp):
    by_name = Verifier("rootsift")
    by_object = Verifier(RootSIFT())
    assert by_name.pair_fingerprint == by_object.pair_fingerprint
    assert by_name.verify(textured_image, warp(textured_image)).num_inliers == \
        by_object.verify(textured_image, warp(textured_image)).num_inliers


def test_verify_pair_refuses_float_levels_of_0_to_255_and_reads_big_endian_16_bit(textured_image, warp):
    """The issue's cases: a float64 array of 0..255 was clipped to white (a confident 0 inliers); a big-endian uint16
    array was refused."""
    from delfverify.images import ImageError

    other = warp(textured_image)
    with pytest.raises(ImageError, match=r"^<array float64 \(300, 400, 3\)>: float array levels must be in \[0, 1\]"):
        verify_pair(textured_image.astype(np.float64), other)
    plain = verify_pair(textured_image, other)
    assert plain.num_inliers > 50
    wide = (textured_image.astype(np.uint16) * 257).astype(">u2")
    assert verify_pair(wide, other).num_inliers == plain.num_inliers
    assert verify_pair(textured_image / 255.0, other).num_inliers == plain.num_inliers
    verifier = Verifier("rootsift")
    assert verifier.key(wide) == verifier.key(wide.astype("<u2")) == verifier.key(textured_image)
