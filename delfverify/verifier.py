"""The pair-verification API: ``Verifier`` for repeated use, ``verify_pair`` for one pair.

A ``Verifier`` holds an extractor, the matching and RANSAC settings, and optionally a ``FeatureStore``: each
distinct image (by content) has its features extracted at most once per store, and recently used features are
also kept in memory. ``Verifier.verify_features`` is the one place where two feature sets are matched and
verified with those settings.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import NullTable, builtin_table, check_table_for, read_null_table
from .extractors import resolve_extractor
from .extractors.base import Extractor, Thresholds, fingerprint, measured_thresholds
from .features import Features, short_hash
from .fileio import check_path
from .images import ImageInput, check_image, decode_image, read_bytes
from .settings import VerifySettings
from .store import FeatureStore, content_hash
from .verification import Verification, verify_features

logger = logging.getLogger(__name__)

#: Features of this many recently used images are kept in memory.
MEMORY_CACHE_SIZE = 512


class Verifier:
    """Verify photo pairs with one extractor, reusing features across calls and runs.

    Parameters
    ----------
    settings : VerifySettings, str or Extractor, optional
        What decides a pair's inlier count: the extractor, its model, the photo size, matching and RANSAC
        (``delfverify.settings.VerifySettings``; default: its defaults). An extractor's name (``"rootsift"``,
        ``"delf"``) or object is short for ``VerifySettings(features=...)``.
    cache_dir : path, optional
        Feature store directory; ``None`` (default) keeps features in memory only. The CLI and
        ``delfverify.rerank`` use the user cache directory (``delfverify.store.default_cache_dir()``).
    null_table : path or NullTable, optional
        What unrelated pairs reach with these settings (``delfverify.calibration``), for
        ``Verification.false_match_rate``; default: the table shipped for the extractor and geometric model, if
        any. A table of another extractor or model is refused; one measured with other settings is used with a
        warning.

    Raises
    ------
    InputTypeError, InputValueError
        ``cache_dir`` or ``null_table`` of a type it does not take, or a path that is empty or holds a NUL
        character, naming it (``delfverify.fileio.check_path``); before anything is loaded.

    Attributes
    ----------
    settings : VerifySettings
        The settings, with the extractor object in ``features`` (what worker processes rebuild an equal verifier
        from).
    extractor : Extractor
    match : MatchConfig
        The matching settings in use (the extractor's unless ``settings.match`` is given).
    ransac : RansacConfig
        The geometric model and RANSAC settings in use (the extractor's unless ``settings.ransac`` is given).
    max_side : int or None
    null_table : NullTable or None
        The table the false-match rates come from (``None``: none for these settings; the rates are NaN).
    extracted : int
        Images whose features this verifier extracted (not found in memory or the store).
    """

    def __init__(self, settings: VerifySettings | str | Extractor | None = None, *,
                 cache_dir: str | os.PathLike | None = None, null_table: str | os.PathLike | NullTable | None = None):
        cache_dir = check_path(cache_dir, "cache_dir", optional=True)
        null_table = check_path(null_table, "null_table", (NullTable,), optional=True)
        if settings is None:
            settings = VerifySettings()
        elif not isinstance(settings, VerifySettings):
            settings = VerifySettings(features=settings)
        self.extractor = resolve_extractor(settings.features, None if settings.model is None else str(settings.model))
        self.settings = replace(settings, features=self.extractor, model=None)
        self.match = settings.match if settings.match is not None else self.extractor.match
        self.ransac = settings.ransac if settings.ransac is not None else self.extractor.ransac
        self.max_side = settings.max_side
        self.features_fingerprint = short_hash({"extractor": fingerprint(self.extractor), "max_side": self.max_side})
        self.store = FeatureStore(cache_dir, self.features_fingerprint, self.extractor.dim) \
            if cache_dir is not None else None
        self._memory: OrderedDict[str, Features] = OrderedDict()
        self.extracted = 0
        self.null_table = self._null_table(null_table)

    def _null_table(self, given: str | os.PathLike | NullTable | None) -> NullTable | None:
        """The given table (read and checked against these settings), else the one shipped for them."""
        if given is None:
            return builtin_table(self.extractor, self.ransac.geometry)
        table = given if isinstance(given, NullTable) else read_null_table(given)
        source = "the null table" if isinstance(given, NullTable) else str(given)
        warning = check_table_for(table, self, source)
        if warning:
            logger.warning("%s", warning)
        return table

    def false_match_rate(self, counts):
        """``null_table.false_match_rate(counts)`` (NaN where a count is NaN), or NaN for every count without a
        table."""
        if self.null_table is None:
            return np.full(np.shape(counts), np.nan) if np.ndim(counts) else math.nan
        return self.null_table.false_match_rate(counts)

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
        """Identifies everything that determines a pair's inlier count (features, matching, RANSAC), library
        versions included: the pair journal's key."""
        return self._pair_hash(self.features_fingerprint)

    @property
    def settings_fingerprint(self) -> str:
        """``pair_fingerprint`` without library versions: the settings a null table was measured with."""
        return self._pair_hash(short_hash({"extractor": fingerprint(self.extractor, versions=False),
                                           "max_side": self.max_side}))

    def _pair_hash(self, features: str) -> str:
        return short_hash({"features": features, "match": self.match.fingerprint_fields(),
                           "ransac": asdict(self.ransac)})

    @property
    def cache_dir(self) -> Path | None:
        """The feature store's folder, or ``None`` without a store."""
        return None if self.store is None else self.store.root

    def key(self, image: ImageInput) -> str:
        """The content hash identifying an image: of its encoded bytes for a path or bytes-like input, of the RGB
        ``uint8`` pixels it reads as for a PIL image or an array (so arrays of any dtype or byte order that read as
        the same pixels have one key; ``delfverify.images``).

        Raises
        ------
        InputTypeError
            (a ``TypeError``) If ``image`` is of no accepted type (``delfverify.images.check_image``).
        ImageError
            If a path is missing or unreadable, or an array cannot be read as pixels.
        """
        data = read_bytes(image)
        if data is not None:
            return content_hash(data)
        return content_hash(decode_image(image, max_side=None).pixels)

    def features_of(self, image: ImageInput, key: str | None = None, *, source: str | None = None) -> Features:
        """Features of an image, from memory, the store, or extracted (then stored); locations in its pixels.

        Parameters
        ----------
        image : path, bytes, bytearray, memoryview, PIL image or numpy array
            The accepted types and what each may hold: ``delfverify.images``.
        key : str, optional
            The image's content hash if already known (``key(image)``); then a stored entry is used without
            reading the image at all.
        source : str, optional
            The image's name in error messages (default: the path; give it when passing a file's bytes).

        Raises
        ------
        InputTypeError
            (a ``TypeError``) If ``image`` is of no accepted type.
        ImageError
            If the image cannot be read; the message names it.
        """
        image = check_image(image)
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
        """Match two feature sets and verify them geometrically with this verifier's settings; the result's
        ``false_match_rate`` is that of its inlier count."""
        result = verify_features(features_a, features_b, self.match, self.ransac)
        return replace(result, false_match_rate=float(self.false_match_rate(result.num_inliers)))

    def verify(self, image_a: ImageInput, image_b: ImageInput) -> Verification:
        """Match and geometrically verify two photos (see ``verify_pair``)."""
        return self.verify_features(self.features_of(image_a), self.features_of(image_b))


def verify_pair(
    image_a: ImageInput,
    image_b: ImageInput,
    *,
    cache_dir: str | os.PathLike | None = None,
    null_table: str | os.PathLike | NullTable | None = None,
    settings: VerifySettings | None = None,
    **options: Any,
) -> Verification:
    """How well two photos match: local features, nearest-neighbour matching and a geometric model fitted with
    RANSAC.

    For many pairs, create one ``Verifier`` instead (a DELF model is loaded once, features are reused).

    Parameters
    ----------
    image_a, image_b : path, bytes, bytearray, memoryview, PIL image or numpy array
        Arrays: ``[H, W]``, ``[H, W, 3]`` or ``[H, W, 4]`` of uint8, uint16 (divided by 257), another integer type
        (at the depth its values need) or float in [0, 1], in any byte order; ``delfverify.images`` has the rules.
    cache_dir : path, optional
        Feature store directory (default: none).
    null_table : path or NullTable, optional
        Where ``false_match_rate`` comes from (default: the table shipped for the extractor and model).
    settings : VerifySettings, optional
        What decides the inlier count (default: ``VerifySettings()``, RootSIFT with a fundamental matrix).
    **options
        Any field of ``VerifySettings`` (``features``, ``model``, ``max_side``, ``match``, ``ransac``), laid over
        ``settings``.

    Returns
    -------
    Verification
        ``num_inliers`` (0 when verification failed), ``num_putative``, ``num_features_a``, ``num_features_b``,
        ``matches``, ``inlier_mask``, ``transform`` (the model, in the pixels of the photos as given) and
        ``false_match_rate`` (the share of unrelated photo pairs that reach as many inliers).

    Raises
    ------
    InputTypeError
        (a ``TypeError``) An image of no accepted type, naming ``image_a`` or ``image_b``; raised before anything
        is loaded.
    TypeError
        A keyword that is no field of ``VerifySettings``.
    SettingsError
        A setting out of range.
    ImageError
        (a ``ValueError``) An image that cannot be read, or an array whose levels are out of its type's range (a
        float array outside [0, 1], 0..255 included, is refused, never clipped); the message names it.

    Examples
    --------
    >>> from delfverify import verify_pair
    >>> result = verify_pair("a.jpg", "b.jpg")  # doctest: +SKIP
    >>> result.num_inliers >= 14  # RootSIFT's acceptance threshold with its fundamental matrix  # doctest: +SKIP
    True
    """
    image_a, image_b = check_image(image_a, "image_a"), check_image(image_b, "image_b")
    verifier = Verifier(replace(settings or VerifySettings(), **options), cache_dir=cache_dir, null_table=null_table)
    return verifier.verify(image_a, image_b)
