"""delfverify.extractors: the registry by name, extractor objects accepted wherever ``features=`` is, RootSIFT's
features, and extractors that travel to worker processes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from delfverify.extractors import EXTRACTORS, RootSIFT, extractor_class, make_extractor, resolve_extractor
from delfverify.extractors.base import Extractor, fingerprint


def test_registry_knows_each_extractor_by_name():
    assert EXTRACTORS == ("rootsift", "delf")
    assert extractor_class("rootsift") is RootSIFT
    assert extractor_class("delf").thresholds["affine"].accept == 10  # a class attribute: no model is loaded
    with pytest.raises(ValueError, match="unknown extractor 'surf'; choose one of rootsift, delf"):
        extractor_class("surf")


def test_resolve_extractor_takes_names_and_objects():
    sift = RootSIFT(max_features=300)
    assert resolve_extractor(sift) is sift
    assert isinstance(resolve_extractor("rootsift"), RootSIFT)
    assert isinstance(make_extractor("rootsift", max_features=10), Extractor)
    with pytest.raises(ValueError, match="extractor object"):
        resolve_extractor(42)
    with pytest.raises(ValueError, match="model"):
        resolve_extractor(sift, model="x")


def test_rootsift_descriptors_are_unit_length_and_strongest_first(textured_image):
    features = RootSIFT(max_features=200).extract(textured_image)
    assert 100 < len(features) <= 200
    np.testing.assert_allclose(np.linalg.norm(features.unit_descriptors, axis=1), 1.0, atol=1e-5)
    assert (features.unit_descriptors >= 0).all()  # square roots of an L1-normalised histogram
    assert np.all(np.diff(features.scores) <= 0)
    h, w = textured_image.shape[:2]
    assert features.locations[:, 0].max() < h and features.locations[:, 1].max() < w  # (y, x)


def test_compact_rootsift_keeps_sifts_histograms_and_matches_the_float_vectors_bit_for_bit(textured_image):
    """uint8 SIFT histograms, whose RootSIFT vectors are those of RootSIFT(compact=False), keypoint for keypoint."""
    compact, full = (RootSIFT(max_features=300, compact=c).extract(textured_image) for c in (True, False))
    assert compact.descriptors.dtype == np.uint8 and full.descriptors.dtype == np.float32
    np.testing.assert_array_equal(compact.locations, full.locations)
    np.testing.assert_array_equal(compact.unit_descriptors, full.descriptors)
    assert compact.descriptors.max() > 100  # histograms, not unit vectors
    with pytest.raises(ValueError, match="compact"):
        RootSIFT(compact="yes")


def test_rootsift_of_a_blank_image_is_empty():
    features = RootSIFT().extract(np.full((50, 60, 3), 128, np.uint8))
    assert len(features) == 0 and features.descriptors.shape == (0, 128)


def test_rootsift_pickles_without_its_opencv_detector(textured_image):
    sift = RootSIFT(max_features=100)
    first = sift.extract(textured_image)  # creates the detector
    copy = pickle.loads(pickle.dumps(sift))
    assert fingerprint(copy) == fingerprint(sift)
    np.testing.assert_array_equal(copy.extract(textured_image).descriptors, first.descriptors)
