"""The pair-verification API: ``Verifier`` for repeated use, ``verify_pair`` for one pair.

A ``Verifier`` holds an extractor, the matching and RANSAC settings, and optionally a ``FeatureStore``: each
distinct image (by content) has its features extracted at most once per store, and recently used features are
also kept in memory. ``Verifier.verify_features`` is the one place where two feature sets are matched and
verified with those settings.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import asdict
from typing import Any

from .extractors import DEFAULT_EXTRACTOR, resolve_extractor
from .extractors.base import Extractor, Thresholds, fingerprint, measured_thresholds
from .features import Features, short_hash
from .images import DEFAULT_MAX_SIDE, ImageInput, decode_image, read_bytes
from .matching import MatchConfig
from .store import FeatureStore, content_hash
from .verification import RansacConfig, Verification, verify_features

logger = logging.getLogger(__name__)

#: Features of this many recently used images are kept in memory.
MEMORY_CACHE_SIZE = 512


class Verifier:
    """Verify photo pairs with one extractor, reusing features across calls and runs.

    Parameters
    ----------
    features : str or Extractor
        ``"rootsift"`` (default, offline), ``"delf"``, or an extractor object
        (``from delfverify.extractors import RootSIFT, DELF``).
    model : str, optional
        DELF by name only: TF-Hub handle or local directory (see ``delfverify.extractors.delf``).
    cache_dir : path, optional
        Feature store directory; ``None`` (default) keeps features in memory only. The CLI and
        ``delfverify.rerank`` use the user cache directory (``delfverify.store.default_cache_dir()``).
    match : MatchConfig, optional
        Matching settings; default: the extractor's own (``extractor.match``).
    ransac : RansacConfig, optional
        Geometric model and RANSAC settings; default: the extractor's own (``extractor.ransac``).
    max_side : int or None
        Photos are shrunk to this longest side before extraction.

    Attributes
    ----------
    extractor : Extractor
    extracted : int
        Images whose features this verifier extracted (not found in memory or the store).
    """

    def __init__(
        self,
        features: str | Extractor = DEFAULT_EXTRACTOR,
        *,
        model: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        match: MatchConfig | None = None,
        ransac: RansacConfig | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
    ):
        if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
            raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
        self.extractor = resolve_extractor(features, None if model is None else str(model))
        self.match = match if match is not None else self.extractor.match
        self.ransac = ransac if ransac is not None else self.extractor.ransac
        self.max_side = max_side
        self.features_fingerprint = short_hash({"extractor": fingerprint(self.extractor), "max_side": max_side})
        self.store = FeatureStore(cache_dir, self.features_fingerprint) if cache_dir is not None else None
        self._memory: OrderedDict[str, Features] = OrderedDict()
        self.extracted = 0

    @property
    def thresholds(self) -> Thresholds:
        """The inlier counts that decide for this extractor and geometric model (``Extractor.thresholds``).

        Raises
        ------
        ValueError
            If they were not measured for this extractor and model.
        """
        return measured_thresholds(self.extractor, self.ransac.geometry)

    @property
    def pair_fingerprint(self) -> str:
        """Identifies everything that determines a pair's inlier count (features, matching, RANSAC)."""
        return short_hash(
            {"features": self.features_fingerprint, "match": self.match.fingerprint_fields(),
             "ransac": asdict(self.ransac)}
        )

    def settings(self) -> dict[str, Any]:
        """The constructor arguments that rebuild an equal verifier (with the same extractor object)."""
        return {"features": self.extractor, "cache_dir": None if self.store is None else self.store.root,
                "match": self.match, "ransac": self.ransac, "max_side": self.max_side}

    def key(self, image: ImageInput) -> str:
        """The content hash identifying an image (encoded bytes for paths/bytes, pixels otherwise).

        Raises
        ------
        ImageError
            If a path is missing or unreadable.
        """
        data = read_bytes(image)
        if data is not None:
            return content_hash(data)
        return content_hash(decode_image(image, max_side=None).pixels)

    def features_of(self, image: ImageInput, key: str | None = None, *, source: str | None = None) -> Features:
        """Features of an image, from memory, the store, or extracted (then stored); locations in its pixels.

        Parameters
        ----------
        image : path, bytes, PIL image or array
        key : str, optional
            The image's content hash if already known (``key(image)``); then a stored entry is used without
            reading the image at all.
        source : str, optional
            The image's name in error messages (default: the path; give it when passing a file's bytes).

        Raises
        ------
        ImageError
            If the image cannot be read; the message names it.
        """
        cached = self._cached(key) if key is not None else None
        if cached is not None:
            return cached
        data = read_bytes(image)
        if key is None:
            key = content_hash(data) if data is not None else self.key(image)
            cached = self._cached(key)
            if cached is not None:
                return cached
        source = source or (str(image) if isinstance(image, (str, os.PathLike)) else None)
        decoded = decode_image(data if data is not None else image, self.max_side, source=source)
        features = self.extractor.extract(decoded.pixels).in_original_pixels(decoded.scale_yx,
                                                                            decoded.original_shape)
        self.extracted += 1
        if self.store is not None:
            self.store.put(key, features)
        self._remember(key, features)
        return features

    def has_features(self, key: str) -> bool:
        """Whether features for this content hash are in memory or in the store (without loading them)."""
        return key in self._memory or (self.store is not None and self.store.path(key).is_file())

    def _cached(self, key: str) -> Features | None:
        features = self._memory.get(key)
        if features is not None:
            self._memory.move_to_end(key)
            return features
        features = self.store.get(key) if self.store is not None else None
        if features is not None:
            self._remember(key, features)
        return features

    def _remember(self, key: str, features: Features) -> None:
        self._memory[key] = features
        if len(self._memory) > MEMORY_CACHE_SIZE:
            self._memory.popitem(last=False)

    def verify_features(self, features_a: Features, features_b: Features) -> Verification:
        """Match two feature sets and verify them geometrically with this verifier's settings."""
        return verify_features(features_a, features_b, self.match, self.ransac)

    def verify(self, image_a: ImageInput, image_b: ImageInput) -> Verification:
        """Match and geometrically verify two photos (see ``verify_pair``)."""
        return self.verify_features(self.features_of(image_a), self.features_of(image_b))


def verify_pair(
    image_a: ImageInput,
    image_b: ImageInput,
    *,
    features: str | Extractor = DEFAULT_EXTRACTOR,
    model: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    ransac: RansacConfig | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> Verification:
    """How well two photos match: local features, nearest-neighbour matching and a geometric model fitted with
    RANSAC.

    For many pairs, create one ``Verifier`` instead (a DELF model is loaded once, features are reused).

    Parameters
    ----------
    image_a, image_b : path, bytes, PIL image or numpy array
    features : {"rootsift", "delf"} or Extractor
    model : str, optional
        DELF handle or local directory.
    cache_dir : path, optional
        Feature store directory (default: none).
    ransac : RansacConfig, optional
        Default: the extractor's (RootSIFT: a fundamental matrix; DELF: the research's affine fit).
    max_side : int or None

    Returns
    -------
    Verification
        ``num_inliers`` (0 when verification failed), ``num_putative``, ``num_features_a``, ``num_features_b``,
        ``matches``, ``inlier_mask`` and ``transform`` (the model, in the pixels of the photos as given).

    Examples
    --------
    >>> from delfverify import verify_pair
    >>> result = verify_pair("a.jpg", "b.jpg")  # doctest: +SKIP
    >>> result.num_inliers >= 14  # RootSIFT's acceptance threshold with its fundamental matrix  # doctest: +SKIP
    True
    """
    verifier = Verifier(features, model=model, cache_dir=cache_dir, ransac=ransac, max_side=max_side)
    return verifier.verify(image_a, image_b)
