"""The pair-verification API: ``Verifier`` for repeated use, ``verify_pair`` for one pair.

A ``Verifier`` holds an extractor, the matching and RANSAC settings, and optionally a ``FeatureStore``: each
distinct image (by content) has its features extracted at most once per store, and recently used features are
also kept in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass


from .features import DEFAULT_EXTRACTOR, Extractor, Features, fingerprint, make_extractor
from .images import DEFAULT_MAX_SIDE, ImageInput, load_image, read_bytes
from .matching import MatchConfig
from .store import FeatureStore, content_hash
from .verification import RansacConfig, Verification, verify_features

logger = logging.getLogger(__name__)

#: Features of this many recently used images are kept in memory.
MEMORY_CACHE_SIZE = 512


@dataclass(frozen=True)
class VerifierSpec:
    """A picklable recipe for a ``Verifier``, to build the same one in worker processes."""

    extractor: str
    model: str | None
    cache_dir: str | None
    match: MatchConfig
    ransac: RansacConfig
    max_side: int | None

    def build(self) -> "Verifier":
        return Verifier(self.extractor, model=self.model, cache_dir=self.cache_dir, match=self.match,
                        ransac=self.ransac, max_side=self.max_side)


class Verifier:
    """Verify photo pairs with one extractor, reusing features across calls and runs.

    Parameters
    ----------
    extractor : str or Extractor
        ``"rootsift"`` (default, offline), ``"delf"``, or an extractor object.
    model : str, optional
        DELF only: TF-Hub handle or local directory (see ``delfverify.extractors.delf``).
    cache_dir : path, optional
        Feature store directory; ``None`` (default) keeps features in memory only. The CLI uses the user cache
        directory (``delfverify.store.default_cache_dir()``).
    match : MatchConfig, optional
        Matching settings; default: the extractor's own (``extractor.match``).
    ransac : RansacConfig
        RANSAC settings.
    max_side : int or None
        Photos are shrunk to this longest side before extraction.
    """

    def __init__(
        self,
        extractor: str | Extractor = DEFAULT_EXTRACTOR,
        *,
        model: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        match: MatchConfig | None = None,
        ransac: RansacConfig = RansacConfig(),
        max_side: int | None = DEFAULT_MAX_SIDE,
    ):
        self._recipe = (extractor, None if model is None else str(model)) if isinstance(extractor, str) else None
        if isinstance(extractor, str):
            extractor = make_extractor(extractor, **({"model": model} if model is not None else {}))
        elif model is not None:
            raise ValueError("model is only used when extractor is given by name")
        if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
            raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
        self.extractor = extractor
        self.match = match if match is not None else extractor.match
        self.ransac = ransac
        self.max_side = max_side
        self.features_fingerprint = _short_hash({"extractor": fingerprint(extractor), "max_side": max_side})
        self.store = FeatureStore(cache_dir, self.features_fingerprint) if cache_dir is not None else None
        self._memory: OrderedDict[str, Features] = OrderedDict()
        self.extracted = 0

    @property
    def pair_fingerprint(self) -> str:
        """Identifies everything that determines a pair's inlier count (features, matching, RANSAC)."""
        return _short_hash(
            {"features": self.features_fingerprint, "match": asdict(self.match), "ransac": asdict(self.ransac)}
        )

    def spec(self, cache_dir: str | os.PathLike | None = None) -> VerifierSpec:
        """The recipe of this verifier (with ``cache_dir`` instead of its own store, when given).

        Raises
        ------
        ValueError
            If the extractor was given as an object rather than by name (it cannot be rebuilt elsewhere).
        """
        if self._recipe is None:
            raise ValueError("parallel or distributed runs need the extractor given by name, not as an object")
        store_dir = cache_dir if cache_dir is not None else (self.store.root if self.store is not None else None)
        return VerifierSpec(self._recipe[0], self._recipe[1], None if store_dir is None else str(store_dir),
                            self.match, self.ransac, self.max_side)

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
        return content_hash(load_image(image, max_side=None))

    def features(self, image: ImageInput, key: str | None = None) -> Features:
        """Features of an image, from memory, the store, or extracted (then stored).

        Parameters
        ----------
        image : path, bytes, PIL image or array
        key : str, optional
            The image's content hash if already known (``key(image)``); then a stored entry is used without
            reading the image at all.

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
        source = str(image) if isinstance(image, (str, os.PathLike)) else None
        pixels = load_image(data if data is not None else image, self.max_side, source=source)
        features = self.extractor.extract(pixels)
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

    def verify(self, image_a: ImageInput, image_b: ImageInput) -> Verification:
        """Match and geometrically verify two photos (see ``verify_pair``)."""
        return verify_features(self.features(image_a), self.features(image_b), self.match, self.ransac)


def verify_pair(
    image_a: ImageInput,
    image_b: ImageInput,
    *,
    features: str = DEFAULT_EXTRACTOR,
    model: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    ransac: RansacConfig = RansacConfig(),
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> Verification:
    """How well two photos match: local features, nearest-neighbour matching and affine RANSAC.

    For many pairs, create one ``Verifier`` instead (a DELF model is loaded once, features are reused).

    Parameters
    ----------
    image_a, image_b : path, bytes, PIL image or numpy array
    features : {"rootsift", "delf"}
    model : str, optional
        DELF handle or local directory.
    cache_dir : path, optional
        Feature store directory (default: none).
    ransac : RansacConfig
    max_side : int or None

    Returns
    -------
    Verification
        ``num_inliers`` (0 when verification failed), ``num_putative``, ``num_features_a``, ``num_features_b``,
        ``matches``, ``inlier_mask`` and ``transform``.

    Examples
    --------
    >>> from delfverify import verify_pair
    >>> result = verify_pair("a.jpg", "b.jpg")  # doctest: +SKIP
    >>> result.num_inliers >= 12  # the RootSIFT default acceptance threshold  # doctest: +SKIP
    True
    """
    verifier = Verifier(features, model=model, cache_dir=cache_dir, ransac=ransac, max_side=max_side)
    return verifier.verify(image_a, image_b)


def _short_hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
