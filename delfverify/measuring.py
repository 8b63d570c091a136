"""Step 2 of the pipeline: verify the planned pairs.

``measure`` looks the planned pairs up in the journal, extracts every image missing from the feature store once
and verifies the pairs still missing (in this process, local workers or a Dask cluster, see
``delfverify.execution``), journaling each result as it arrives; it gathers the ``InlierTable``. ``open_session``
sets up what a run verifies with: the verifier, the pair journal and the runner. ``measure_all`` plans and measures
every candidate of labelled predictions at once, for ``delfverify.tune``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

import numpy as np

from .execution import ImageItem, PairItem, Runner, batched, extract_batch, verify_batch
from .images import ImageDirectory, ImageError, ImageLookupError, Photos, read_bytes
from .journal import PairJournal, PairRecord
from .planning import PairPlan, plan_pairs
from .settings import RunSettings, VerifySettings
from .store import content_hash
from .tables import Gallery, Predictions
from .verification import unverifiable_reason
from .verifier import Verifier

logger = logging.getLogger(__name__)

#: Predictions handled per chunk; memory for pairs and tasks stays bounded by this.
CHUNK_SIZE = 10_000
#: Bytes of image files read to hash them that are kept, per chunk, to extract them without reading them again.
READ_ONCE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Session:
    """What one run verifies with: the verifier, where the work runs, and the pair journal (optional)."""

    verifier: Verifier
    runner: Runner
    journal: PairJournal | None = None


@contextlib.contextmanager
def open_session(settings: VerifySettings = VerifySettings(), run: RunSettings = RunSettings(), *,
                 journal: bool = True) -> Iterator[Session]:
    """Build the verifier, open the pair journal (unless ``journal`` is false: work that verifies no pair) and start
    the runner for one run.

    The feature store is ``run.store_folder()`` and the journal ``run.journal_file()``. Without a cache
    (``run.cache`` false) features stay in memory and nothing is journaled; parallel workers then share features
    through a temporary store, removed afterwards.
    """
    with contextlib.ExitStack() as stack:
        store = run.store_folder()
        if store is None and run.parallel:
            store = stack.enter_context(tempfile.TemporaryDirectory())
        verifier = Verifier(settings, cache_dir=store, null_table=run.null_table)
        pairs = stack.enter_context(PairJournal(run.journal_file())) if run.cache and journal else None
        runner = stack.enter_context(Runner(verifier, run))
        yield Session(verifier, runner, pairs)


@dataclass(frozen=True)
class InlierTable:
    """Inlier counts per prediction against its planned gallery photos.

    Attributes
    ----------
    inliers : float [n, K]
        Column j: the j-th planned gallery photo; NaN where not verified (fewer photos, failed).
    gallery_ids : list of list of str
        The planned gallery ids per prediction (``PairPlan.gallery_ids``).
    errors : list of str
        Per prediction, why images failed ("" when none did).
    unverifiable : list of str
        Per prediction, why none of its verified pairs could give evidence either way ("" when one could):
        ``delfverify.verification.unverifiable_reason``.
    pairs_computed, pairs_reused : int
        Pairs verified now, and pairs taken from the journal.
    features_extracted : int
        Images whose features were extracted now (not found in memory or the store).
    """

    inliers: np.ndarray
    gallery_ids: list[list[str]]
    errors: list[str]
    unverifiable: list[str]
    pairs_computed: int = 0
    pairs_reused: int = 0
    features_extracted: int = 0


@dataclass
class ImageCache:
    """The images looked up so far, by id: each one's ``ImageItem`` (content hash and file), or why it cannot be
    read. One passed to every ``measure`` call of a run reads and hashes each file at most once in the run; it
    holds an entry per gallery photo and per query verified."""

    gallery: dict[str, ImageItem | str] = field(default_factory=dict)
    queries: dict[str, ImageItem | str] = field(default_factory=dict)


class _Gather:
    """The state of one ``measure`` call: the table being filled, errors and counters, and the images looked up
    so far (``images`` when given; else gallery images for the whole call, bounded by the gallery, and query
    images per chunk)."""

    def __init__(self, n: int, width: int, session: Session, photos: Photos, images: ImageCache | None):
        self.table = np.full((n, width), np.nan)
        self.doubts = np.full((n, width), "", object)  # why a verified pair gives no evidence
        self.errors: list[list[str]] = [[] for _ in range(n)]
        self.counts: Counter = Counter()
        self.session = session
        self.photos = photos
        self.fingerprint = session.verifier.pair_fingerprint
        self.images = images
        self.gallery_images = images.gallery if images is not None else {}
        self.kept: dict[str, bytes] = {}  # bytes of images to extract, read to hash them (this chunk)
        self.kept_size = 0

    def _image(self, cache: dict, kind: str, image_id: str, directory: ImageDirectory,
               path: str = "") -> ImageItem | str:
        """The image of an id (content hash and file), or why it cannot be read. The file is read once: an image
        whose features must be extracted keeps its bytes for that (within ``READ_ONCE_BYTES``)."""
        if image_id not in cache:
            try:
                file = directory.find(image_id, path)
                data = read_bytes(file)
            except (ImageError, ImageLookupError) as exc:
                cache[image_id] = f"{kind} image: {exc}"
                return cache[image_id]
            key = content_hash(data)
            if self.kept_size + len(data) <= READ_ONCE_BYTES and not self.session.verifier.has_features(key):
                self.kept[key] = data
                self.kept_size += len(data)
            cache[image_id] = ImageItem(key, str(file))
        return cache[image_id]

    def look_up(self, ids: Sequence[str], plan: PairPlan, rows: range) -> "_Pending":
        """Fill in the journaled pairs of these rows; the pairs still to verify, with their cells."""
        query_images = self.images.queries if self.images is not None else {}
        pending = _Pending()
        journal = self.session.journal
        for i in rows:
            chosen = plan.gallery_ids[i]
            if not chosen:
                continue
            query = self._image(query_images, "query", ids[i], self.photos.queries)
            if isinstance(query, str):
                self.errors[i].append(query)
                continue
            photos = [self._image(self.gallery_images, "gallery", g, self.photos.gallery,
                                  self.photos.gallery_paths.get(g, "")) for g in chosen]
            self.errors[i] += [p for p in photos if isinstance(p, str)]
            photos = [(j, p) for j, p in enumerate(photos) if not isinstance(p, str)]
            known = journal.get(self.fingerprint, [(query.key, p.key) for _, p in photos]) if journal else {}
            for j, photo in photos:
                if (query.key, photo.key) in known:
                    self._fill([(i, j)], known[query.key, photo.key])
                    self.counts["reused"] += 1
                else:
                    if not pending.cells:
                        self.session.runner.warm_up()  # the workers start while the photos are hashed
                    pending.cells.setdefault((query.key, photo.key), []).append((i, j))
                    pending.photos.setdefault(query.key, (query, {}))[1][photo.key] = photo
        return pending

    def run(self, pending: "_Pending") -> None:
        """Extract every image the pending pairs lack exactly once, verify the pairs, journal each result."""
        runner, verifier, journal = self.session.runner, self.session.verifier, self.session.journal
        images = {query.key: query for query, _ in pending.photos.values()}
        images.update({p.key: p for _, photos in pending.photos.values() for p in photos.values()})
        to_extract = [replace(item, data=self.kept.get(key)) for key, item in images.items()
                      if not verifier.has_features(key)]
        failed: dict[str, str] = {}
        size = max(1, min(64, len(to_extract) // (4 * runner.parallelism) + 1))
        for results in runner.map(extract_batch, list(batched(to_extract, size))):
            for key, error, extracted in results:
                self.counts["extracted"] += extracted
                if error:
                    failed[key] = error
        self.kept.clear()
        self.kept_size = 0
        if failed:
            for (query_key, gallery_key), cells in pending.cells.items():
                error = (f"query image: {failed[query_key]}" if query_key in failed
                         else f"gallery image: {failed[gallery_key]}" if gallery_key in failed else "")
                if error:
                    for i, _ in cells:
                        self.errors[i].append(error)
        items = [PairItem(query, tuple(p for p in photos.values() if p.key not in failed))
                 for query, photos in pending.photos.values() if query.key not in failed]
        size = max(1, min(16, len(items) // (8 * runner.parallelism) + 1))
        for verified in runner.map(verify_batch, list(batched(items, size))):
            self.counts["extracted"] += verified.features_extracted
            for result in verified.results:
                cells = pending.cells[result.query_key, result.gallery_key]
                if result.error:
                    for i, _ in cells:
                        self.errors[i].append(result.error)
                    continue
                self._fill(cells, result.record)
                self.counts["computed"] += 1
                if journal is not None:
                    journal.put(self.fingerprint, result.query_key, result.gallery_key, result.record)

    def _fill(self, cells: list[tuple[int, int]], record: PairRecord) -> None:
        doubt = unverifiable_reason(record.num_features_query, record.num_features_gallery)
        for i, j in cells:
            self.table[i, j] = record.num_inliers
            self.doubts[i, j] = doubt

    def unverifiable(self) -> list[str]:
        """Per prediction, the first reason when none of its verified pairs gives evidence, else ``""``."""
        verified = ~np.isnan(self.table)
        doubtful = verified.any(axis=1) & np.all((self.doubts != "") | ~verified, axis=1)
        return [next(d for d in row if d) if flag else "" for row, flag in zip(self.doubts, doubtful)]


@dataclass
class _Pending:
    """Pairs of a chunk still to verify: the table cells of each (query key, gallery key), and per query key its
    image and the gallery images (by key) it is verified against."""

    cells: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    photos: dict[str, tuple[ImageItem, dict[str, ImageItem]]] = field(default_factory=dict)


def measure(predictions: Predictions, plan: PairPlan, session: Session, photos: Photos, *,
            progress: bool = False, chunk_size: int = CHUNK_SIZE,
            images: ImageCache | None = None) -> InlierTable:
    """Verify each prediction against its planned gallery photos.

    Predictions are processed in chunks of ``chunk_size`` so that memory stays bounded. Within a chunk, pairs
    already in the journal are reused; every image missing from the store is extracted once; the remaining
    pairs are verified by the session's runner and each result is journaled as soon as it arrives. Pass the
    same ``images`` to several calls (rounds of one run) so that no image file is read and hashed again.
    """
    from tqdm import tqdm

    n = len(predictions)
    if len(plan.gallery_ids) != n:
        raise ValueError(f"plan has {len(plan.gallery_ids)} rows for {n} predictions")
    gather = _Gather(n, plan.width, session, photos, images)
    ids = predictions.ids
    with tqdm(total=n, unit="prediction", disable=not progress, desc="verifying") as bar:
        for start in range(0, n, chunk_size):
            rows = range(start, min(start + chunk_size, n))
            gather.run(gather.look_up(ids, plan, rows))
            bar.update(len(rows))
    counts = gather.counts
    return InlierTable(gather.table, plan.gallery_ids, ["; ".join(dict.fromkeys(e)) for e in gather.errors],
                       gather.unverifiable(), counts["computed"], counts["reused"], counts["extracted"])


def measure_all(predictions: Predictions, gallery: Gallery, k: np.ndarray, width: int, selection: str, seed: int,
                session: Session, photos: Photos, *, progress: bool = False) -> np.ndarray:
    """Inlier counts of every labelled row, every candidate of a query (no early stop, as a tuner needs them),
    against its first ``k[i]`` gallery photos in ``selection`` order (``plan_pairs``).

    Returns
    -------
    float array (n, width)
        NaN where not verified (no label, fewer photos, unreadable images: a warning counts them).
    """
    k = np.where(predictions.has_label, k, 0)
    table = measure(predictions, plan_pairs(predictions, gallery, k, selection, seed), session, photos,
                    progress=progress)
    counts = np.full((len(predictions), width), np.nan)
    counts[:, : min(width, table.inliers.shape[1])] = table.inliers[:, :width]
    failed = sum(bool(e) for e in table.errors)
    if failed:
        logger.warning("%d prediction(s) had unreadable images; they keep their confidence", failed)
    logger.info("inliers: %d pairs verified, %d reused", table.pairs_computed, table.pairs_reused)
    return counts
