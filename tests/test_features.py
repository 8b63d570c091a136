"""delfverify.features: ``Features`` validates its arrays, keeps empty shapes, maps locations to the photo's pixels;
fingerprints follow the extractor's parameters."""

from __future__ import annotations

import numpy as np
import pytest

from delfverify.extractors import RootSIFT
from delfverify.extractors.base import fingerprint
from delfverify.features import Features, short_hash


def _features(n: int = 4, dim: int = 8) -> Features:
    rng = np.random.default_rng(0)
    return Features(rng.uniform(0, 50, (n, 2)).astype(np.float32), rng.random((n, dim), np.float32),
                    np.ones(n, np.float32), np.ones(n, np.float32))


def test_empty_features_keep_their_shapes():
    empty = Features.empty(40)
    assert len(empty) == 0 and empty.locations.shape == (0, 2) and empty.descriptors.shape == (0, 40)


@pytest.mark.parametrize("change, message", [
    ({"locations": np.zeros((4, 3), np.float32)}, "locations"),
    ({"descriptors": np.zeros((3, 8), np.float32)}, "descriptors"),
    ({"scales": np.zeros(5, np.float32)}, "scales"),
    ({"scores": np.zeros(4, np.float64)}, "scores must be float32"),
    ({"extraction_scale": (0.0, 1.0)}, "extraction_scale"),
    ({"extraction_scale": (1.5, 1.0)}, "extraction_scale"),
])
def test_features_reject_bad_arrays_naming_them(change, message):
    fields = {name: getattr(_features(), name) for name in ("locations", "descriptors", "scales", "scores")}
    with pytest.raises(ValueError, match=message):
        Features(**{**fields, **change})


def test_locations_in_original_pixels_and_back():
    features = _features()
    original = features.in_original_pixels((0.5, 0.25), (200, 400))
    np.testing.assert_allclose(original.locations, features.locations * [2, 4], rtol=1e-6)
    assert original.extraction_scale == (0.5, 0.25) and original.image_shape == (200, 400)
    np.testing.assert_allclose(original.locations_xy_extracted(), features.locations[:, ::-1], rtol=1e-6)
    np.testing.assert_array_equal(original.descriptors, features.descriptors)


def test_fingerprint_follows_parameters():
    assert fingerprint(RootSIFT()) == fingerprint(RootSIFT(max_features=2000))
    assert fingerprint(RootSIFT()) != fingerprint(RootSIFT(max_features=500))
    assert short_hash({"a": 1, "b": 2}) == short_hash({"b": 2, "a": 1}) and len(short_hash({})) == 16
