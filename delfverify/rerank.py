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
from .parallel import ImageItem, PairItem, Runner, batched, extract_batch, verify_batch
from .policy import Policy
from .tables import ImageDirectory, Predictions, TableError
from .verifier import Verifier

logger = logging.getLogger(__name__)

ON_MISSING = ("keep", "suppress")
#: Every status a prediction can end with.
STATUSES = ("verified", "suppressed", "boosted", "skipped", "no_gallery", "error", "no_prediction")
#: Predictions handled per chunk; memory for pairs and tasks stays bounded by this.
CHUNK_SIZE = 10_000


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
    features_extracted : int
        Images whose features were extracted now (not found in memory or the store).
    """

    inliers: np.ndarray
    gallery_ids: list[list[str]]
    errors: list[str]
    pairs_computed: int = 0
    pairs_reused: int = 0
    features_extracted: int = 0


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
    runner: Runner | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> InlierTable:
    """Verify each prediction against the first ``k[i]`` gallery photos of its label.

    Predictions are processed in chunks of ``chunk_size`` so that memory stays bounded. Within a chunk, pairs
    already in the journal are reused; every image missing from the store is extracted once; the remaining
    pairs are verified (by ``runner``: in this process, local workers or a Dask cluster) and each result is
    journaled as soon as it arrives.
    """
    from tqdm import tqdm

    runner = runner or Runner(verifier)
    by_label = {label: list(group["id"]) for label, group in gallery.groupby("landmark_id", sort=False)}
    paths = dict(zip(gallery["id"], gallery["path"]))
    orders: dict[str, list[str]] = {}
    # id -> image, or why it cannot be read. Gallery entries are kept for the whole run (bounded by the gallery),
    # query entries for the current chunk only, so memory does not grow with the number of predictions.
    gallery_keys: dict[str, ImageItem | str] = {}
    fingerprint = verifier.pair_fingerprint
    n = len(predictions)
    table = np.full((n, max(int(k.max(initial=0)), 1)), np.nan)
    chosen: list[list[str]] = [[] for _ in range(n)]
    errors: list[list[str]] = [[] for _ in range(n)]
    counts = Counter()

    def image(cache: dict, kind: str, image_id: str, directory: ImageDirectory, path: str = "") -> ImageItem | str:
        if image_id not in cache:
            try:
                file = directory.find(image_id, path)
                cache[image_id] = ImageItem(verifier.key(file), str(file))
            except (ImageError, TableError) as exc:
                cache[image_id] = f"{kind} image: {exc}"
        return cache[image_id]

    bar = tqdm(total=n, unit="prediction", disable=not progress, desc="verifying")
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        query_keys: dict[str, ImageItem | str] = {}
        needed: dict[tuple[str, str], list[tuple[int, int]]] = {}
        pair_items: dict[str, tuple[ImageItem, dict[str, ImageItem]]] = {}
        for i in range(start, stop):
            label = predictions["label"].iat[i]
            if k[i] == 0 or label not in by_label:
                continue
            if label not in orders:
                orders[label] = gallery_order(by_label[label], policy.selection, policy.seed, label)
            chosen[i] = orders[label][: k[i]]
            query = image(query_keys, "query", predictions["id"].iat[i], query_images)
            if isinstance(query, str):
                errors[i].append(query)
                continue
            photos = [image(gallery_keys, "gallery", g, gallery_images, paths[g]) for g in chosen[i]]
            errors[i] += [p for p in photos if isinstance(p, str)]
            photos = [(j, p) for j, p in enumerate(photos) if not isinstance(p, str)]
            known = journal.get(fingerprint, [(query.key, p.key) for _, p in photos]) if journal else {}
            for j, photo in photos:
                if (query.key, photo.key) in known:
                    table[i, j] = known[query.key, photo.key][0]
                    counts["reused"] += 1
                else:
                    needed.setdefault((query.key, photo.key), []).append((i, j))
                    pair_items.setdefault(query.key, (query, {}))[1][photo.key] = photo
        # Extract every image these pairs need exactly once, then verify the pairs.
        missing = {q.key: q for q, _ in pair_items.values()}
        missing.update({p.key: p for _, photos in pair_items.values() for p in photos.values()})
        to_extract = [item for key, item in missing.items() if not verifier.has_features(key)]
        failed: dict[str, str] = {}
        batch = max(1, min(64, len(to_extract) // (4 * runner.parallelism) + 1))
        for results in runner.map(extract_batch, list(batched(to_extract, batch))):
            for key, error, extracted in results:
                counts["extracted"] += extracted
                if error:
                    failed[key] = error
        work = [PairItem(query, tuple(p for p in photos.values() if p.key not in failed))
                for query, photos in pair_items.values() if query.key not in failed]
        if failed:
            for (query_key, gallery_key), cells in needed.items():
                if query_key in failed:
                    kind, error = "query", failed[query_key]
                else:
                    kind, error = "gallery", failed.get(gallery_key)
                if error:
                    for i, _ in cells:
                        errors[i].append(f"{kind} image: {error}")
        batch = max(1, min(16, len(work) // (4 * runner.parallelism) + 1))
        for verified in runner.map(verify_batch, list(batched(work, batch))):
            counts["extracted"] += verified.features_extracted
            for result in verified.results:
                cells = needed[result.query_key, result.gallery_key]
                if result.error:
                    for i, _ in cells:
                        errors[i].append(result.error)
                    continue
                for i, j in cells:
                    table[i, j] = result.num_inliers
                counts["computed"] += 1
                if journal is not None:
                    journal.put(fingerprint, result.query_key, result.gallery_key,
                                result.num_inliers, result.num_putative)
        bar.update(stop - start)
    bar.close()
    return InlierTable(table, chosen, ["; ".join(dict.fromkeys(e)) for e in errors],
                       counts["computed"], counts["reused"], counts["extracted"])


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
    workers: int = 1,
    scheduler=None,
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
    workers : int
        Local worker processes for extraction and verification (1: this process). Needs a store.
    scheduler : str or distributed.Client, optional
        Run on a Dask cluster instead; the store must be on a path all workers share.

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
    with Runner(verifier, workers, scheduler) as runner:
        pairs = inlier_table(table, k, gallery, verifier, policy, query_images, gallery_images, journal, progress,
                             runner)
    labels_in_gallery = set(gallery["landmark_id"])
    no_gallery = has_prediction & (k > 0) & ~table["label"].isin(labels_in_gallery).to_numpy()
    failed = np.array([bool(e) for e in pairs.errors], bool) & np.all(np.isnan(pairs.inliers), axis=1)
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
        features_extracted=pairs.features_extracted,
    )
    out = replace(predictions, table=table.assign(confidence=new))
    return RerankResult(out, details, summary)
