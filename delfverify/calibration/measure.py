"""Measuring a null table on a gallery: pairs of photos of different labels, sampled and seeded, verified by a
verifier, and the check that a table describes that verifier's counts."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..fileio import check_path
from ..settings import MAX_SEED, check, count_range
from .table import (_MAX_SOURCE, DEFAULT_PAIRS, MAX_SAMPLE_PAIRS, MIN_PAIRS, CalibrationError, NullTable,
                    NullTableError, _extractor_name, _is_int, fit_null_table)

if TYPE_CHECKING:
    import pandas as pd

    from ..images import ImageDirectory
    from ..tables import Gallery

logger = logging.getLogger(__name__)


def check_table_for(table: NullTable, verifier: PairVerifier, source: str = "null table") -> str:
    """Check that a table describes a verifier's counts before its rates are quoted.

    Parameters
    ----------
    table : NullTable
    verifier : Verifier
    source : str
        The table's name in messages (its file, or "built-in null table").

    Returns
    -------
    str
        ``""``, or a warning to show: the table was measured with other settings (its ``pair_fingerprint`` differs
        from ``verifier.settings_fingerprint``: keypoints, photo size, matching or RANSAC settings; library versions
        do not count), so its rates are approximate.

    Raises
    ------
    NullTableError
        If the table is for another extractor or geometric model: its rates would mean nothing for these counts.
    """
    extractor, geometry = _extractor_name(verifier.extractor), verifier.ransac.geometry
    if (table.extractor, table.geometry) != (extractor, geometry):
        raise NullTableError(f"{source}: measured for {table.extractor} features with the {table.geometry} model, "
                             f"not {extractor} with the {geometry} model")
    if table.pair_fingerprint and table.pair_fingerprint != verifier.settings_fingerprint:
        return (f"{source} was measured with other verification settings (pair fingerprint "
                f"{table.pair_fingerprint}, these are {verifier.settings_fingerprint}): its false-match rates are "
                f"approximate; measure a table with these settings")
    return ""


# ---------------------------------------------------------------------------------------------------------------
# Measuring on a gallery


class PairVerifier(Protocol):
    """What ``measure_null_table`` needs of a verifier (``delfverify.Verifier`` has it)."""

    extractor: Any
    ransac: Any
    settings_fingerprint: str

    def key(self, image: Any) -> str: ...

    def features_of(self, image: Any, key: str | None = None, *, source: str | None = None) -> Any: ...

    def verify_features(self, features_a: Any, features_b: Any) -> Any: ...


@dataclass(frozen=True)
class NullMeasurement:
    """A null table measured on a gallery, and every pair behind it.

    Attributes
    ----------
    table : NullTable
    pairs : pandas.DataFrame
        One row per sampled pair: ``id_a``, ``id_b``, ``label_a``, ``label_b``, ``inliers`` (float, NaN where not
        verified) and ``status``: ``used``, ``set_aside`` (sharing geometry), ``unverifiable`` or ``failed``
        (with the reason in ``reason``).
    """

    table: NullTable
    pairs: pd.DataFrame = field(repr=False)


def sample_pairs(labels, pairs: int, seed: int, max_photos: int | None = None) -> np.ndarray:
    """Seeded sample of pairs of photos of different labels, uniform over all such unordered pairs.

    Parameters
    ----------
    labels : sequence
        The label of each photo, in gallery order.
    pairs : int
        How many pairs (all of them when there are fewer), >= 1.
    seed : int
    max_photos : int, optional
        First draw this many photos (seeded), then pairs among them: fewer photos to extract.

    Returns
    -------
    int64 [p, 2]
        Indices into ``labels``, each row ``(i, j)`` with ``i < j``, rows sorted; the same for the same input.
    """
    if not (_is_int(pairs) and pairs >= 1):
        raise ValueError(f"pairs must be a positive integer, got {pairs!r}")
    rng = np.random.default_rng(seed)
    codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1].astype(np.int64)
    photos = np.arange(len(codes))
    if max_photos is not None and max_photos < len(photos):
        photos = np.sort(rng.choice(len(photos), max_photos, replace=False))
    order = photos[np.argsort(codes[photos], kind="stable")]  # grouped by label
    label_of = np.unique(codes[order], return_inverse=True)[1]  # 0 .. labels - 1, in block order
    sizes = np.bincount(label_of).astype(np.int64)
    ends = np.cumsum(sizes)
    s = len(order)
    total = different_label_pairs(codes[photos])
    if total == 0:
        return np.zeros((0, 2), np.int64)
    if total <= max(4 * pairs, 10_000):
        # Every pair (p, q) of positions with q beyond p's label block, then a seeded choice among them.
        partners = s - ends[label_of]
        first = np.repeat(np.arange(s), partners)
        second = ends[label_of][first] + np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
        if pairs < total:
            chosen = np.sort(rng.choice(total, pairs, replace=False))
            first, second = first[chosen], second[chosen]
        found = np.stack([order[first], order[second]], axis=1)
    else:
        # Draw a photo by its number of partners, then a partner uniformly: every pair equally likely.
        weights = (s - sizes[label_of]).astype(np.float64)
        seen: dict[tuple[int, int], None] = {}
        while len(seen) < pairs:
            batch = 2 * (pairs - len(seen)) + 16
            first = rng.choice(s, batch, p=weights / weights.sum())
            own = label_of[first]
            offset = rng.integers(0, s - sizes[own])
            block = ends[own] - sizes[own]
            second = np.where(offset < block, offset, offset + sizes[own])
            for a, b in zip(order[first].tolist(), order[second].tolist()):
                seen.setdefault((min(a, b), max(a, b)), None)
                if len(seen) == pairs:
                    break
        found = np.array(list(seen), np.int64).reshape(-1, 2)
    found = np.sort(found, axis=1)
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def different_label_pairs(labels) -> int:
    """How many unordered pairs of photos have different labels."""
    sizes = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)[1].astype(np.int64)
    n = int(sizes.sum())
    return (n * n - int((sizes ** 2).sum())) // 2


#: The most photos ``max_photos`` may name (more than any gallery holds: every photo is then used).
MAX_PHOTOS = 10**9


def check_sampling(pairs: int, seed: int, max_photos: int | None) -> None:
    """Check ``measure_null_table``'s sampling parameters (their ranges are documented there), before any work.

    Raises
    ------
    SettingsError
        Naming the parameter (``pairs``, ``seed`` or ``max_photos``), its range and the value.
    """
    check(_is_int(pairs) and MIN_PAIRS <= pairs <= MAX_SAMPLE_PAIRS, "pairs", count_range(MIN_PAIRS, MAX_SAMPLE_PAIRS),
          pairs)
    check(_is_int(seed) and 0 <= seed <= MAX_SEED, "seed", count_range(0, MAX_SEED), seed)
    check(max_photos is None or (_is_int(max_photos) and 2 <= max_photos <= MAX_PHOTOS), "max_photos",
          f"{count_range(2, MAX_PHOTOS)} or None", max_photos)


def measure_null_table(
    verifier: PairVerifier,
    gallery: Gallery | str | os.PathLike,
    gallery_images: ImageDirectory | str | os.PathLike,
    *,
    pairs: int = DEFAULT_PAIRS,
    seed: int = 0,
    max_photos: int | None = None,
    source: str | None = None,
    progress: bool = False,
) -> NullMeasurement:
    """Measure a null table on a gallery: verify seeded pairs of photos of different labels and fit the table.

    Pairs are drawn uniformly among all unordered pairs of photos of different labels (``sample_pairs``), verified
    with the verifier's settings (features reused through its store), and fitted with ``fit_null_table``. A pair
    with an unreadable photo is ``failed``, one with a photo of too few keypoints ``unverifiable`` (no evidence
    either way); both are left out of the table and counted in it.

    Parameters
    ----------
    verifier : Verifier
        Its extractor, matching and RANSAC settings are those the table is for.
    gallery : Gallery or path
        The gallery (``read_gallery``) or its CSV file: ``id,landmark_id[,path]``.
    gallery_images : ImageDirectory or path
        The folder of the gallery photos.
    pairs : int
        Pairs to verify, in ``[MIN_PAIRS, MAX_SAMPLE_PAIRS]`` (default 2,000; all pairs when the gallery has
        fewer). Cost: each pair is a match and a RANSAC fit (tens of milliseconds), each distinct photo one
        extraction.
    seed : int
        Sampling seed, >= 0: the same gallery and seed give the same pairs.
    max_photos : int, optional
        Sample pairs among this many photos drawn first (seeded), 2 to ``MAX_PHOTOS``: fewer extractions for a
        large gallery.
    source : str, optional
        Recorded in the table (default: the gallery file's name and the sampling).
    progress : bool
        Show a progress bar.

    Returns
    -------
    NullMeasurement
        The table and every sampled pair with its count and status.

    Raises
    ------
    SettingsError
        If a parameter is out of range (a ``ValueError``; the message names it, ``check_sampling``).
    CalibrationError
        If the gallery has fewer than ``MIN_PAIRS`` pairs of photos of different labels, or fewer than
        ``MIN_PAIRS`` pairs could be verified.
    TableError, ImageLookupError
        If the gallery file or the image folder cannot be read.
    """
    import pandas as pd
    from tqdm import tqdm

    from ..images import ImageError, ImageLookupError, as_directory
    from ..tables import Gallery, read_gallery

    check_sampling(pairs, seed, max_photos)
    if source is not None and not (isinstance(source, str) and len(source) <= _MAX_SOURCE):
        raise ValueError(f"source must be a string of at most {_MAX_SOURCE} characters or None")
    gallery = check_path(gallery, "gallery", (Gallery,))
    images = as_directory(gallery_images, "gallery_images")
    name, recorded = "gallery", "gallery"  # in messages the path as the user gave it; in the table its file name
    if not isinstance(gallery, Gallery):
        name, recorded = str(gallery), Path(gallery).name
        gallery = read_gallery(gallery)
    ids = gallery.table["id"].tolist()
    labels = gallery.table["landmark_id"].tolist()
    paths = gallery.table["path"].tolist()
    photos = len(ids) if max_photos is None else min(max_photos, len(ids))
    chosen = sample_pairs(labels, pairs, seed, max_photos)
    if len(chosen) < MIN_PAIRS:
        raise CalibrationError(f"{name}: {photos} photos give {len(chosen)} pairs of photos of different labels; a "
                               f"null table needs at least {MIN_PAIRS}: use the built-in table or a larger gallery")
    sampled = photos < len(ids) or len(chosen) < different_label_pairs(labels)
    logger.info("verifying %d pairs of gallery photos of different labels", len(chosen))
    keys: dict[int, str] = {}
    broken: dict[int, str] = {}

    def features_of(i: int):
        """The photo's features (from the verifier's memory or store after the first time), or None."""
        if i in broken:
            return None
        try:
            path = images.find(ids[i], paths[i])
            if i not in keys:
                keys[i] = verifier.key(path)
            return verifier.features_of(path, keys[i], source=str(path))
        except (ImageError, ImageLookupError) as exc:
            broken[i] = str(exc)
            logger.warning("%s", exc)
            return None

    counts = np.full(len(chosen), np.nan)
    status = np.full(len(chosen), "used", dtype=object)
    reasons = [""] * len(chosen)
    for row, (i, j) in enumerate(tqdm(chosen.tolist(), disable=not progress, unit="pair", desc="calibrating")):
        a, b = features_of(i), features_of(j)
        if a is None or b is None:
            status[row], reasons[row] = "failed", broken.get(i) or broken.get(j)
            continue
        result = verifier.verify_features(a, b)
        if result.unverifiable:
            status[row], reasons[row] = "unverifiable", result.unverifiable
        else:
            counts[row] = result.num_inliers
    used = status == "used"
    failed, unverifiable = int((status == "failed").sum()), int((status == "unverifiable").sum())
    if used.sum() < MIN_PAIRS:
        raise CalibrationError(f"{name}: only {int(used.sum())} of {len(chosen)} pairs could be verified ({failed} "
                               f"with an unreadable photo, {unverifiable} with too few keypoints); a null table "
                               f"needs at least {MIN_PAIRS}")
    how = (f"{len(chosen)} pairs of gallery photos of different labels drawn uniformly (seed {seed}"
           f"{f', among {photos} photos drawn first' if photos < len(ids) else ''})" if sampled
           else f"all {len(chosen)} pairs of gallery photos of different labels")
    try:
        fitted = fit_null_table(counts[used].astype(np.int64), extractor=_extractor_name(verifier.extractor),
                                geometry=verifier.ransac.geometry,
                                source=source if source is not None else f"{recorded}: {how}",
                                seed=seed if sampled else None, pair_fingerprint=verifier.settings_fingerprint,
                                unverifiable=unverifiable, failed=failed)
    except NullTableError:
        raise
    except ValueError as exc:  # too few pairs left once those sharing geometry are set aside
        raise CalibrationError(f"{name}: {exc}") from None
    if fitted.set_aside:
        status[used & (counts >= fitted.set_aside[0])] = "set_aside"
    frame = pd.DataFrame({"id_a": [ids[i] for i in chosen[:, 0]], "id_b": [ids[j] for j in chosen[:, 1]],
                          "label_a": [labels[i] for i in chosen[:, 0]], "label_b": [labels[j] for j in chosen[:, 1]],
                          "inliers": counts, "status": status, "reason": reasons})
    return NullMeasurement(fitted, frame)
