"""Re-rank a classifier's predictions: verify each against gallery photos of its label, rescale by policy.

Stages: choose the gallery photos of each prediction (``gallery_order``), compute the inlier count of every
(query, gallery) pair that is needed, reusing the feature store and the pair journal (``inlier_table``), then
let the policy rescale the confidences (``rerank``). One unreadable image never stops a run: it is recorded in
the prediction's status and reason.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .images import ImageError
from .journal import PairJournal
from .policy import Policy
from .tables import ImageDirectory, Predictions, TableError
from .verification import verify_features
from .verifier import Verifier

logger = logging.getLogger(__name__)

ON_MISSING = ("keep", "suppress")
#: Every status a prediction can end with.
STATUSES = ("verified", "suppressed", "boosted", "skipped", "no_gallery", "error", "no_prediction")


@dataclass(frozen=True)
class InlierTable:
    """Inlier counts per prediction against its selected gallery photos.

    Attributes
    ----------
    inliers : float [n, K]
        Column j: the j-th selected gallery photo; NaN where not verified (fewer photos, skipped, failed).
    gallery_ids : list of list of str
        The selected gallery ids per prediction (up to its k).
    errors : list of str
        Per prediction, why images failed ("" when none did).
    pairs_computed, pairs_reused : int
        Pairs verified now, and pairs taken from the journal.
    """

    inliers: np.ndarray
    gallery_ids: list[list[str]]
    errors: list[str]
    pairs_computed: int = 0
    pairs_reused: int = 0


@dataclass(frozen=True)
class RerankResult:
    """The re-ranked predictions (same format and row order), the per-prediction details and the summary."""

    predictions: Predictions
    details: pd.DataFrame
    summary: dict[str, int] = field(default_factory=dict)


def gallery_order(ids: list[str], how: str, seed: int, label: str) -> list[str]:
    """The order in which a label's gallery photos are used; the first k are verified.

    ``first``: gallery order. ``random``: a permutation seeded by ``seed`` and the label. ``spread``: positions
    0, n/2, n/4, 3n/4, ... so that every prefix is spread across the class (gallery files are often sorted by
    time or viewpoint). Every prefix of the order is the selection for that k, for every method.
    """
    n = len(ids)
    if how == "first" or n <= 1:
        return list(ids)
    if how == "random":
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        return [ids[i] for i in rng.permutation(n)]
    if how == "spread":
        order: list[int] = []
        for t in range(4 * n):
            index = int(_van_der_corput(t) * n)
            if index not in order:
                order.append(index)
        order += [i for i in range(n) if i not in order]
        return [ids[i] for i in order]
    raise ValueError(f"selection must be first, random or spread, got {how!r}")


def _van_der_corput(t: int) -> float:
    """0, 1/2, 1/4, 3/4, 1/8, 5/8, ...: the bits of t mirrored behind the binary point."""
    value, denominator = 0.0, 1.0
    while t:
        denominator *= 2
        value += (t & 1) / denominator
        t >>= 1
    return value


def inlier_table(
    predictions: pd.DataFrame,
    k: np.ndarray,
    gallery: pd.DataFrame,
    verifier: Verifier,
    policy: Policy,
    query_images: ImageDirectory,
    gallery_images: ImageDirectory,
    journal: PairJournal | None = None,
    progress: bool = False,
) -> InlierTable:
    """Verify each prediction against the first ``k[i]`` gallery photos of its label.

    Each pair's result is journaled as soon as it is computed; pairs already in the journal are not verified
    again, and images already in the verifier's store are not extracted again.
    """
    from tqdm import tqdm

    by_label = {label: list(group["id"]) for label, group in gallery.groupby("landmark_id", sort=False)}
    paths = dict(zip(gallery["id"], gallery["path"]))
    orders: dict[str, list[str]] = {}
    keys: dict[tuple[str, str], str | Exception] = {}
    fingerprint = verifier.pair_fingerprint
    n = len(predictions)
    table = np.full((n, max(int(k.max(initial=0)), 1)), np.nan)
    chosen: list[list[str]] = [[] for _ in range(n)]
    errors = [""] * n
    computed = reused = 0

    def image_key(kind: str, image_id: str, directory: ImageDirectory, path: str = "") -> str | Exception:
        if (kind, image_id) not in keys:
            try:
                keys[kind, image_id] = verifier.key(directory.find(image_id, path))
            except (ImageError, TableError) as exc:
                keys[kind, image_id] = exc
        return keys[kind, image_id]

    rows = tqdm(range(n), total=n, unit="prediction", disable=not progress, desc="verifying")
    for i in rows:
        label = predictions["label"].iat[i]
        if k[i] == 0 or label not in by_label:
            continue
        if label not in orders:
            orders[label] = gallery_order(by_label[label], policy.selection, policy.seed, label)
        chosen[i] = orders[label][: k[i]]
        query_id = predictions["id"].iat[i]
        query_key = image_key("query", query_id, query_images)
        if isinstance(query_key, Exception):
            errors[i] = f"query image: {query_key}"
            continue
        gallery_keys = [image_key("gallery", g, gallery_images, paths[g]) for g in chosen[i]]
        known = journal.get(fingerprint, [(query_key, g) for g in gallery_keys if isinstance(g, str)]) if journal else {}
        failures = []
        query_features = None
        for j, (gallery_id, gallery_key) in enumerate(zip(chosen[i], gallery_keys)):
            if isinstance(gallery_key, Exception):
                failures.append(f"gallery image: {gallery_key}")
                continue
            if (query_key, gallery_key) in known:
                table[i, j] = known[query_key, gallery_key][0]
                reused += 1
                continue
            try:
                if query_features is None:
                    query_features = verifier.features(query_images.find(query_id), key=query_key)
            except ImageError as exc:
                keys["query", query_id] = exc
                failures = [f"query image: {exc}"]
                break
            try:
                gallery_features = verifier.features(gallery_images.find(gallery_id, paths[gallery_id]),
                                                     key=gallery_key)
            except ImageError as exc:
                keys["gallery", gallery_id] = exc
                failures.append(f"gallery image: {exc}")
                continue
            result = verify_features(query_features, gallery_features, verifier.match, verifier.ransac)
            table[i, j] = result.num_inliers
            computed += 1
            if journal is not None:
                journal.put(fingerprint, query_key, gallery_key, result.num_inliers, result.num_putative)
        errors[i] = "; ".join(failures)
    return InlierTable(table, chosen, errors, computed, reused)


def rerank(
    predictions: Predictions,
    gallery: pd.DataFrame,
    verifier: Verifier,
    policy: Policy,
    *,
    query_images: ImageDirectory,
    gallery_images: ImageDirectory,
    journal: PairJournal | None = None,
    on_missing: str = "keep",
    progress: bool = False,
) -> RerankResult:
    """Rescale each prediction's confidence by geometric verification against gallery photos of its label.

    Parameters
    ----------
    predictions : Predictions
        From ``delfverify.tables.read_predictions``.
    gallery : pandas.DataFrame
        From ``delfverify.tables.read_gallery`` (``id``, ``landmark_id``, ``path``).
    verifier : Verifier
        Extractor, store and RANSAC settings.
    policy : Policy
        How inlier counts rescale confidences.
    query_images, gallery_images : ImageDirectory
        Where the photos are.
    journal : PairJournal, optional
        Pair results to reuse and extend (resumable runs).
    on_missing : {"keep", "suppress"}
        A prediction whose images are missing or unreadable, or whose label has no gallery photo, keeps its
        confidence (``keep``) or is treated as verified with 0 inliers (``suppress``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    RerankResult
        ``predictions`` in the input's format and order; ``details`` with one row per prediction (``id``,
        ``label``, ``band``, ``old_confidence``, ``new_confidence``, ``gallery_ids``, ``inliers``, ``status``,
        ``reason``); ``summary`` counting statuses, pairs computed and reused, features extracted.
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
    table = predictions.table
    confidence = table["confidence"].to_numpy(float)
    has_prediction = (table["label"] != "").to_numpy()
    k = np.where(has_prediction, policy.k_for(np.nan_to_num(confidence)), 0)
    extracted_before = verifier.extracted
    pairs = inlier_table(table, k, gallery, verifier, policy, query_images, gallery_images, journal, progress)
    labels_in_gallery = set(gallery["landmark_id"])
    no_gallery = has_prediction & (k > 0) & ~table["label"].isin(labels_in_gallery).to_numpy()
    failed = np.array([bool(e) for e in pairs.errors]) & np.all(np.isnan(pairs.inliers), axis=1)
    inliers = pairs.inliers.copy()
    if on_missing == "suppress":
        inliers[no_gallery | failed, 0] = 0.0
    counts = Counter(table.loc[has_prediction, "label"])
    share = table["label"].map(counts).fillna(0).to_numpy(float) / max(int(has_prediction.sum()), 1)
    new, status = policy.apply(np.nan_to_num(confidence), inliers, share)
    new = np.where(has_prediction, new, np.nan)
    status[no_gallery] = "no_gallery"
    status[failed] = "error"
    status[~has_prediction] = "no_prediction"
    reasons = np.array(pairs.errors, object)
    reasons[no_gallery] = "label has no gallery photo"
    band = np.where(has_prediction, policy.band_names(np.nan_to_num(confidence)), "")
    details = pd.DataFrame({
        "id": table["id"],
        "label": table["label"],
        "band": band,
        "old_confidence": confidence,
        "new_confidence": new,
        "gallery_ids": [" ".join(ids) for ids in pairs.gallery_ids],
        "inliers": [" ".join("-" if np.isnan(v) else str(int(v)) for v in row[: len(ids)])
                    for row, ids in zip(pairs.inliers, pairs.gallery_ids)],
        "status": status,
        "reason": reasons,
    })
    summary = {s: int((status == s).sum()) for s in STATUSES}
    summary.update(
        pairs_computed=pairs.pairs_computed,
        pairs_reused=pairs.pairs_reused,
        features_extracted=verifier.extracted - extracted_before,
    )
    out = replace(predictions, table=table.assign(confidence=new))
    return RerankResult(out, details, summary)
