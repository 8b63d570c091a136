"""The re-ranking pipeline, one step per function.

1. ``plan_pairs``: which gallery photos each prediction is checked against; a pure function of the predictions,
   the gallery, the number of photos per prediction and the selection settings.
2. ``measure``: look the planned pairs up in the journal, extract and verify what is missing (in this process,
   local workers or a Dask cluster, see ``delfverify.execution``), and gather the ``InlierTable``.
3. ``rescale``: apply a policy to the predictions and their inlier counts; the one implementation of the policy
   rules for a predictions table (``delfverify tune`` scores with it too).
4. ``choose_candidates``: where a query has several candidate labels, each is rescaled as a top-1 prediction
   would be, and the query's prediction is the one with the highest rescaled confidence (ties: the classifier's
   order); ``best_candidates`` is that choice on any confidences, vectorised.

``rerank`` runs them on files or tables with the CLI's defaults: feature store and pair journal in the user
cache, resumable, output written atomically. One unreadable image never stops a run: it is recorded in the
prediction's status and reason. Candidates are verified in rounds of rank (every query's first, then the second
of the queries still undecided, ...), each round through ``measure``; a query is decided, and its later candidates
never verified, once its best rescaled confidence is at least the most the policy could give any candidate left
(``Policy.max_confidence``): stopping changes no choice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Collection, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .execution import ImageItem, PairItem, Runner, batched, extract_batch, verify_batch
from .extractors import DEFAULT_EXTRACTOR
from .features import Extractor
from .fileio import atomic_write, check_outputs
from .images import DEFAULT_MAX_SIDE, ImageDirectory, ImageError, ImageLookupError, read_bytes
from .journal import PairJournal, PairRecord
from .matching import MatchConfig
from .policy import BUILTINS, SELECTIONS, Policy, load_policy
from .store import content_hash, default_cache_dir
from .tables import Gallery, Predictions, Solution, read_gallery, read_predictions, write_predictions
from .verification import RansacConfig, unverifiable_reason
from .verifier import Verifier

if TYPE_CHECKING:
    from .report import ReportResult, RunScores

logger = logging.getLogger(__name__)

ON_MISSING = ("keep", "suppress")
#: Every status a prediction can end with.
STATUSES = ("verified", "suppressed", "boosted", "skipped", "unverifiable", "no_gallery", "error", "no_prediction",
            "stopped")
#: Predictions handled per chunk; memory for pairs and tasks stays bounded by this.
CHUNK_SIZE = 10_000
#: Bytes of image files read to hash them that are kept, per chunk, to extract them without reading them again.
READ_ONCE_BYTES = 256 * 2**20
#: Columns of ``RerankResult.details``.
DETAILS_COLUMNS = ("id", "label", "band", "old_confidence", "new_confidence", "gallery_ids", "inliers", "status",
                   "reason")
#: Columns of ``RerankResult.details`` when queries have several candidates: a row per candidate, its rank, and
#: whether it is the query's chosen label.
CANDIDATE_DETAILS_COLUMNS = ("id", "rank", *DETAILS_COLUMNS[1:], "chosen")
#: The first this many candidates of each query are verified (``rerank(candidates=...)``, ``--candidates``).
DEFAULT_CANDIDATES = 5


# --- 1. plan -----------------------------------------------------------------------------------------------------


def gallery_order(ids: Sequence[str], how: str, seed: int, label: str) -> list[str]:
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
        # The first position each t in 0, 1, 2, ... reaches is the next photo; the rest follow in gallery order.
        reached = (_van_der_corput(np.arange(4 * n)) * n).astype(np.int64)
        first = np.unique(reached, return_index=True)
        order = first[0][np.argsort(first[1], kind="stable")]
        rest = np.setdiff1d(np.arange(n), order, assume_unique=True)
        return [ids[i] for i in np.concatenate([order, rest])]
    raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {how!r}")


def _van_der_corput(t: np.ndarray) -> np.ndarray:
    """0, 1/2, 1/4, 3/4, 1/8, 5/8, ...: the bits of each t mirrored behind the binary point."""
    value = np.zeros(t.shape)
    for bit in range(int(t.max(initial=0)).bit_length()):
        value += ((t >> bit) & 1) / 2.0 ** (bit + 1)
    return value


@dataclass(frozen=True)
class PairPlan:
    """The gallery photos each prediction is verified against.

    Attributes
    ----------
    gallery_ids : list of list of str
        Per prediction, the chosen gallery ids in selection order (empty: nothing to verify).
    """

    gallery_ids: list[list[str]]

    @property
    def width(self) -> int:
        """The most gallery photos of any prediction (at least 1, the width of the inlier table)."""
        return max((len(ids) for ids in self.gallery_ids), default=0) or 1


def plan_pairs(predictions: Predictions, gallery: Gallery, k: np.ndarray, selection: str = "spread",
               seed: int = 0) -> PairPlan:
    """Choose, for each prediction, the first ``k[i]`` gallery photos of its label in ``gallery_order``.

    Predictions without a label, with ``k[i] == 0``, or whose label has no gallery photo get none.
    """
    k = np.asarray(k)
    if k.shape != (len(predictions),):
        raise ValueError(f"k must hold one count per prediction ({len(predictions)}), got shape {k.shape}")
    by_label = gallery.ids_by_label()
    orders: dict[str, list[str]] = {}
    chosen: list[list[str]] = []
    for label, count in zip(predictions.labels, k.tolist()):
        if count <= 0 or label not in by_label:
            chosen.append([])
            continue
        if label not in orders:
            orders[label] = gallery_order(by_label[label], selection, seed, label)
        chosen.append(orders[label][:count])
    return PairPlan(chosen)


# --- 2. measure ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photos:
    """Where the photos are: the query and gallery folders, and the gallery's optional relative paths."""

    queries: ImageDirectory
    gallery: ImageDirectory
    gallery_paths: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Session:
    """What one run verifies with: the verifier, where the work runs, and the pair journal (optional)."""

    verifier: Verifier
    runner: Runner
    journal: PairJournal | None = None


@contextlib.contextmanager
def open_session(
    features: str | Extractor = DEFAULT_EXTRACTOR,
    *,
    model: str | None = None,
    match: MatchConfig | None = None,
    ransac: RansacConfig | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    workers: int = 1,
    scheduler=None,
) -> Iterator[Session]:
    """Build the verifier, open the pair journal and start the runner for one run.

    ``cache_dir`` defaults to ``delfverify.store.default_cache_dir()``; the journal is ``journal.sqlite`` in it.
    With ``cache=False`` features stay in memory and nothing is journaled; parallel workers then share features
    through a temporary store, removed afterwards.
    """
    with contextlib.ExitStack() as stack:
        parallel = workers > 1 or scheduler is not None
        if cache:
            store = cache_dir if cache_dir is not None else default_cache_dir()
        else:
            store = stack.enter_context(tempfile.TemporaryDirectory()) if parallel else None
        verifier = Verifier(features, model=model, cache_dir=store, match=match, ransac=ransac, max_side=max_side)
        journal = None
        if cache:
            journal = stack.enter_context(PairJournal(verifier.store.root / "journal.sqlite"))
        runner = stack.enter_context(Runner(verifier, workers, scheduler))
        yield Session(verifier, runner, journal)


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


class _Gather:
    """The state of one ``measure`` call: the table being filled, errors and counters, and the images looked up
    so far (gallery images for the whole run, bounded by the gallery; query images per chunk)."""

    def __init__(self, n: int, width: int, session: Session, photos: Photos):
        self.table = np.full((n, width), np.nan)
        self.doubts = np.full((n, width), "", object)  # why a verified pair gives no evidence
        self.errors: list[list[str]] = [[] for _ in range(n)]
        self.counts: Counter = Counter()
        self.session = session
        self.photos = photos
        self.fingerprint = session.verifier.pair_fingerprint
        self.gallery_images: dict[str, ImageItem | str] = {}
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
        query_images: dict[str, ImageItem | str] = {}
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
        size = max(1, min(16, len(items) // (4 * runner.parallelism) + 1))
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
            progress: bool = False, chunk_size: int = CHUNK_SIZE) -> InlierTable:
    """Verify each prediction against its planned gallery photos.

    Predictions are processed in chunks of ``chunk_size`` so that memory stays bounded. Within a chunk, pairs
    already in the journal are reused; every image missing from the store is extracted once; the remaining
    pairs are verified by the session's runner and each result is journaled as soon as it arrives.
    """
    from tqdm import tqdm

    n = len(predictions)
    if len(plan.gallery_ids) != n:
        raise ValueError(f"plan has {len(plan.gallery_ids)} rows for {n} predictions")
    gather = _Gather(n, plan.width, session, photos)
    ids = predictions.ids
    with tqdm(total=n, unit="prediction", disable=not progress, desc="verifying") as bar:
        for start in range(0, n, chunk_size):
            rows = range(start, min(start + chunk_size, n))
            gather.run(gather.look_up(ids, plan, rows))
            bar.update(len(rows))
    counts = gather.counts
    return InlierTable(gather.table, plan.gallery_ids, ["; ".join(dict.fromkeys(e)) for e in gather.errors],
                       gather.unverifiable(), counts["computed"], counts["reused"], counts["extracted"])


# --- 3. rescale --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rescaled:
    """What a policy made of each prediction: ``confidence`` (NaN where none), ``status`` (one of ``STATUSES``),
    ``reason`` and ``band`` (object arrays of str)."""

    confidence: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    band: np.ndarray


def rescale(
    predictions: Predictions,
    inliers: np.ndarray,
    policy: Policy,
    *,
    errors: Sequence[str] | None = None,
    unverifiable: Sequence[str] | None = None,
    gallery_labels: Collection[str] | None = None,
    on_missing: str = "keep",
) -> Rescaled:
    """Rescale each prediction's confidence by its inlier counts under ``policy``.

    Every row is rescaled on its own, a query's candidates each as a top-1 prediction; a ``frequency_penalty``
    takes a label's share among the queries' first candidates (the classifier's predictions).

    Parameters
    ----------
    predictions : Predictions
    inliers : float [n, K]
        Counts against the planned gallery photos (``InlierTable.inliers``); NaN where not verified.
    policy : Policy
    errors : sequence of str, optional
        Per prediction, why its images failed (``InlierTable.errors``).
    unverifiable : sequence of str, optional
        Per prediction, why its pairs give no evidence either way (``InlierTable.unverifiable``): its status is
        then ``unverifiable`` with that reason, and its confidence is what its inlier count gives. Measured on
        the dev and hard sets: leaving such predictions unchanged instead cost 0.02 to 0.06 of the oracle GAP,
        because non-landmark photos also have few keypoints and matches.
    gallery_labels : collection of str, optional
        Labels that have gallery photos; a prediction of another label gets status ``no_gallery``.
    on_missing : {"keep", "suppress"}
        A prediction whose images failed, or whose label has no gallery photo, keeps its confidence or is treated
        as verified with 0 inliers.
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
    n = len(predictions)
    confidence = predictions.confidence
    has_prediction = predictions.has_label
    known_confidence = np.nan_to_num(confidence)
    k = np.where(has_prediction, policy.k_for(known_confidence), 0)
    labels = predictions.labels
    no_gallery = np.zeros(n, bool)
    if gallery_labels is not None:
        no_gallery = has_prediction & (k > 0) & ~pd.Series(labels).isin(gallery_labels).to_numpy()
    errors = list(errors) if errors is not None else [""] * n
    inliers = np.array(inliers, float).reshape(n, -1 if n else 1)
    failed = np.array([bool(e) for e in errors], bool) & np.all(np.isnan(inliers), axis=1)
    if on_missing == "suppress":
        inliers[no_gallery | failed, 0] = 0.0
    first = has_prediction & (predictions.rank == 1)  # the classifier's predictions, one per query
    counts = Counter(labels[first])
    share = pd.Series(labels).map(counts).fillna(0).to_numpy(float) / max(int(first.sum()), 1)
    new, status = policy.apply(known_confidence, inliers, share)
    reason = np.array(errors, object)
    if unverifiable is not None:
        doubtful = np.array([bool(d) for d in unverifiable], bool) & (status != "skipped")
        status[doubtful] = "unverifiable"
        reason[doubtful & (reason == "")] = np.array(unverifiable, object)[doubtful & (reason == "")]
    status[no_gallery] = "no_gallery"
    status[failed] = "error"
    status[~has_prediction] = "no_prediction"
    reason[no_gallery] = "label has no gallery photo"
    band = np.where(has_prediction, policy.band_names(known_confidence), "")
    return Rescaled(np.where(has_prediction, new, np.nan), status, reason, band.astype(object))


# --- 4. choose ---------------------------------------------------------------------------------------------------


def best_candidates(starts: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """The row of each query's best candidate: the highest confidence, ties to the earliest row.

    The choice rule of ``rerank`` on any confidences, vectorised (no Python loop) for callers that apply it many
    times, such as a tuner scoring policies on fixed inlier counts.

    Parameters
    ----------
    starts : int array (Q,)
        The first row of each query (``Predictions.query_starts``); a query's rows are consecutive and in the
        classifier's order, so a tie goes to the classifier's choice.
    confidence : float array (n,)
        Rescaled confidence of each row; NaN (no prediction, only ever a query's sole row) loses to any number.

    Returns
    -------
    int array (Q,)
    """
    confidence = np.nan_to_num(np.asarray(confidence, float), nan=-np.inf)
    n = confidence.size
    if not len(starts):
        return np.zeros(0, np.intp)
    best = np.maximum.reduceat(confidence, starts)
    rows = np.where(confidence == np.repeat(best, np.diff(np.append(starts, n))), np.arange(n), n)
    return np.minimum.reduceat(rows, starts)


@dataclass(frozen=True)
class Choice:
    """Each query's chosen candidate: ``rows`` (int, one per query, into the predictions table) and what the
    policy made of every candidate (``rescaled``, one entry per row)."""

    rows: np.ndarray
    rescaled: Rescaled


def choose_candidates(
    predictions: Predictions,
    inliers: np.ndarray,
    policy: Policy,
    *,
    errors: Sequence[str] | None = None,
    unverifiable: Sequence[str] | None = None,
    gallery_labels: Collection[str] | None = None,
    on_missing: str = "keep",
) -> Choice:
    """Rescale every candidate by its inlier counts as a top-1 prediction would be (``rescale``, same parameters),
    and choose per query the candidate with the highest rescaled confidence (ties: the classifier's order).

    With one row per query, every row is chosen. A candidate whose images failed, or that was not verified,
    keeps its confidence under ``on_missing="keep"``, as a top-1 prediction would.
    """
    rescaled = rescale(predictions, inliers, policy, errors=errors, unverifiable=unverifiable,
                       gallery_labels=gallery_labels, on_missing=on_missing)
    return Choice(best_candidates(predictions.query_starts, rescaled.confidence), rescaled)


def undecided(starts: np.ndarray, confidence: np.ndarray, verified: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """Which queries a candidate not yet verified could still change (bool, one per query).

    Candidates are verified in rank order, so those left come after the verified ones and lose ties to them. A
    query is decided once the best rescaled ``confidence`` of its ``verified`` candidates is at least the
    ``ceiling`` (``Policy.max_confidence``) of every candidate left: no count of inliers could change its choice.
    """
    if not len(starts):
        return np.zeros(0, bool)
    found = np.where(verified, np.nan_to_num(confidence, nan=-np.inf), -np.inf)
    left = np.where(verified, -np.inf, ceiling)
    return np.maximum.reduceat(left, starts) > np.maximum.reduceat(found, starts)


def _verify_in_rounds(predictions: Predictions, gallery: Gallery, policy: Policy, session: Session, photos: Photos,
                      *, early_stop: bool, on_missing: str, progress: bool) -> tuple[InlierTable, np.ndarray]:
    """Plan and measure the candidates of rank 1 of every query, then of rank 2 of the queries still ``undecided``
    (every query when not ``early_stop``), and so on. Returns the inlier table of all rows (none for rows never
    verified) and which rows were verified."""
    n = len(predictions)
    starts, query, rank = predictions.query_starts, predictions.query, predictions.rank
    confidence = np.nan_to_num(predictions.confidence)
    k = np.where(predictions.has_label, policy.k_for(confidence), 0)
    ceiling = np.where(predictions.has_label, policy.max_confidence(confidence), -np.inf)
    gallery_labels = set(gallery.table["landmark_id"])
    inliers = np.full((n, max(policy.max_k, 1)), np.nan)
    gallery_ids: list[list[str]] = [[] for _ in range(n)]
    errors, unverifiable = [""] * n, [""] * n
    counts: Counter = Counter()
    verified = np.zeros(n, bool)
    open_queries = np.ones(len(starts), bool)
    last = int(rank.max(initial=0))
    for r in range(1, last + 1):
        rows = np.flatnonzero((rank == r) & open_queries[query])
        if not len(rows):
            break
        if last > 1:
            logger.info("candidates of rank %d: verifying %d of %d queries", r, len(rows), len(starts))
        batch = predictions if len(rows) == n else Predictions(predictions.table.iloc[rows].reset_index(drop=True),
                                                              predictions.format)
        table = measure(batch, plan_pairs(batch, gallery, k[rows], policy.selection, policy.seed), session, photos,
                        progress=progress)
        inliers[rows, : table.inliers.shape[1]] = table.inliers
        for row, ids, error, doubt in zip(rows.tolist(), table.gallery_ids, table.errors, table.unverifiable):
            gallery_ids[row], errors[row], unverifiable[row] = ids, error, doubt
        counts.update(computed=table.pairs_computed, reused=table.pairs_reused, extracted=table.features_extracted)
        verified[rows] = True
        if early_stop and r < last:
            new = rescale(predictions, inliers, policy, errors=errors, gallery_labels=gallery_labels,
                          on_missing=on_missing).confidence
            open_queries = undecided(starts, new, verified, ceiling)
    return InlierTable(inliers, gallery_ids, errors, unverifiable, counts["computed"], counts["reused"],
                       counts["extracted"]), verified


def _mark_stopped(predictions: Predictions, choice: Choice, verified: np.ndarray, policy: Policy) -> Rescaled:
    """Status ``stopped`` and the reason for candidates left unverified because their query was decided."""
    stopped = np.flatnonzero(~verified & predictions.has_label)
    if not len(stopped):
        return choice.rescaled
    chosen = choice.rows[predictions.query[stopped]]
    status, reason = choice.rescaled.status.copy(), choice.rescaled.reason.copy()
    status[stopped] = "stopped"
    ceiling = policy.max_confidence(predictions.confidence[stopped])
    rank, found = predictions.rank[chosen], choice.rescaled.confidence[chosen]
    reason[stopped] = [f"not verified: candidate {r} reached {v:.4f}, this one could reach at most {c:.4f}"
                       for r, v, c in zip(rank, found, ceiling)]
    return replace(choice.rescaled, status=status, reason=reason)


# --- the whole pipeline --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RerankResult:
    """The re-ranked predictions (same format and query order; one row per query, its chosen candidate, or every
    candidate with ``keep_candidates``), one details row per prediction (``DETAILS_COLUMNS``; per candidate with
    ``CANDIDATE_DETAILS_COLUMNS`` when queries have several), the summary (a count per status of the details rows,
    ``relabelled``: queries whose chosen label is not the classifier's first, pairs computed and reused, features
    extracted) and the policy used."""

    predictions: Predictions
    details: pd.DataFrame
    summary: dict[str, int]
    policy: Policy
    #: With ``truth``: GAP before and after, the oracle and the accuracy.
    scores: "RunScores | None" = None
    #: With ``report``: the report's page, pictures and size.
    report: "ReportResult | None" = None


def _details(predictions: Predictions, table: InlierTable, rescaled: Rescaled,
             chosen: np.ndarray | None = None) -> pd.DataFrame:
    details = pd.DataFrame({
        "id": predictions.table["id"],
        "label": predictions.table["label"],
        "band": rescaled.band,
        "old_confidence": predictions.confidence,
        "new_confidence": rescaled.confidence,
        "gallery_ids": [" ".join(ids) for ids in table.gallery_ids],
        "inliers": [" ".join("-" if np.isnan(v) else str(int(v)) for v in row[: len(ids)])
                    for row, ids in zip(table.inliers, table.gallery_ids)],
        "status": rescaled.status,
        "reason": rescaled.reason,
    })
    if chosen is not None:
        details.insert(1, "rank", predictions.rank)
        details["chosen"] = chosen
    return details


def rerank(
    predictions: str | os.PathLike | Predictions,
    *,
    gallery: str | os.PathLike | Gallery,
    gallery_images: str | os.PathLike | ImageDirectory,
    query_images: str | os.PathLike | ImageDirectory,
    output: str | os.PathLike | None = None,
    details: str | os.PathLike | None = None,
    report: str | os.PathLike | None = None,
    truth: str | os.PathLike | Solution | None = None,
    policy: str | os.PathLike | Policy = "default",
    features: str | Extractor = DEFAULT_EXTRACTOR,
    model: str | None = None,
    match: MatchConfig | None = None,
    ransac: RansacConfig | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    on_missing: str = "keep",
    candidates: int = DEFAULT_CANDIDATES,
    keep_candidates: bool = False,
    workers: int = 1,
    scheduler=None,
    progress: bool = False,
) -> RerankResult:
    """Re-rank a classifier's predictions: verify each against gallery photos of its label, rescale by policy.

    Where a query has several candidate labels (several rows of its id), each of its first ``candidates`` is
    rescaled as a top-1 prediction would be, and the query's prediction is the one with the highest rescaled
    confidence (ties: the classifier's order); see ``choose_candidates``. Candidates are verified rank by rank,
    and a query's are no longer verified once none left could beat its best (``undecided``).

    The same run as ``delfverify rerank`` with the same arguments, down to the bytes of the files written.

    Parameters
    ----------
    predictions : path or Predictions
        A predictions CSV (``delfverify.tables.read_predictions`` formats) or a table.
    gallery : path or Gallery
        Gallery CSV ``id,landmark_id[,path]`` or a table.
    gallery_images, query_images : path or ImageDirectory
        Photo folders (``<id>.jpg`` flat or in the Kaggle nested layout).
    output, details : path, optional
        Where to write the re-ranked predictions (input format and row order) and the details CSV; atomically.
    report : path, optional
        Where to write the run's visual report (HTML, with match pictures in ``<name>_files/`` beside it); see
        ``delfverify.report.write_report``. Its pictures need the feature store (``cache=True``).
    truth : path or Solution, optional
        The true landmarks of the queries: the result's ``scores`` (GAP before and after, oracle, accuracy), also
        shown in the report. Every query must be in it.
    policy : str, path or Policy
        ``"default"``, ``"seed"``, a policy JSON file or a ``Policy``.
    features : str or Extractor
        ``"rootsift"``, ``"delf"`` or an extractor object; ``model`` is DELF's handle or folder.
    match, ransac, max_side
        Verification settings (default: the extractor's matching and geometric model, photos shrunk to 1024 px).
    cache_dir : path, optional
        Feature store and pair journal (default: ``delfverify.store.default_cache_dir()``); a killed run started
        again resumes from the journal. ``cache=False`` keeps everything in memory.
    on_missing : {"keep", "suppress"}
        A prediction whose images are missing or unreadable, or whose label has no gallery photo, keeps its
        confidence or is treated as verified with 0 inliers.
    candidates : int
        Verify at most this many candidates of each query, the classifier's first; later ones are left out.
    keep_candidates : bool
        Return (and write) every candidate with its rescaled confidence, best first within each query, instead
        of the chosen one; every candidate is then verified.
    workers : int
        Local worker processes (1: this process; the CLI defaults to the machine's cores).
    scheduler : str or distributed.Client, optional
        Run on a Dask cluster; the cache must then be on a path every worker shares.
    progress : bool
        Show a progress bar.

    Returns
    -------
    RerankResult

    Raises
    ------
    OutputError
        ``output``, ``details`` or ``report`` would overwrite an input file or each other (the same file through any
        path or link), or cannot be written; checked before any work.
    TableError, PolicyError, ImageLookupError, ModelLoadError
        Bad input files, policy, image folders or model; nothing is written then.
    ReportError
        A truth that lacks some of the queries or shows no landmark; nothing is written then.
    """
    started = time.perf_counter()
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
    check_outputs([("the output", output), ("the details file", details), ("the report", report)],
                  [("the predictions file", _path_or_none(predictions)), ("the gallery file", _path_or_none(gallery)),
                   ("the policy file", None if str(policy) in BUILTINS else _path_or_none(policy)),
                   ("the truth file", _path_or_none(truth))])
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
    if not isinstance(predictions, Predictions):
        predictions = read_predictions(predictions)
    if not isinstance(gallery, Gallery):
        gallery = read_gallery(gallery)
    rank = predictions.rank
    if rank.max(initial=0) > candidates:
        predictions = Predictions(predictions.table[rank <= candidates].reset_index(drop=True), predictions.format)
    photos = Photos(_directory(query_images), _directory(gallery_images), gallery.paths())
    if truth is not None:
        from .report import load_truth

        truth = load_truth(truth, predictions.ids)
    with open_session(features, model=model, match=match, ransac=ransac, max_side=max_side, cache_dir=cache_dir,
                      cache=cache, workers=workers, scheduler=scheduler) as session:
        extractor = session.verifier.extractor
        if not isinstance(policy, Policy):
            policy = load_policy(policy, extractor, session.verifier.ransac.geometry)
        if policy.extractor is not None and policy.extractor != extractor.name:
            logger.warning("policy %s was set for %s features, running with %s: its inlier thresholds may not fit",
                           policy.name, policy.extractor, extractor.name)
        table, verified = _verify_in_rounds(predictions, gallery, policy, session, photos,
                                            early_stop=not keep_candidates, on_missing=on_missing, progress=progress)
    choice = choose_candidates(predictions, table.inliers, policy, errors=table.errors,
                               unverifiable=table.unverifiable, gallery_labels=set(gallery.table["landmark_id"]),
                               on_missing=on_missing)
    rescaled = _mark_stopped(predictions, choice, verified, policy)
    several = len(choice.rows) < len(predictions)
    summary = {s: int((rescaled.status == s).sum()) for s in STATUSES}
    summary.update(relabelled=int((predictions.rank[choice.rows] > 1).sum()), pairs_computed=table.pairs_computed,
                   pairs_reused=table.pairs_reused, features_extracted=table.features_extracted)
    rows = choice.rows
    if keep_candidates:  # every candidate, each query's best first
        rows = np.lexsort((np.arange(len(predictions)), -np.nan_to_num(rescaled.confidence, nan=-np.inf),
                           predictions.query))
    chosen = predictions if np.array_equal(rows, np.arange(len(predictions))) else Predictions(
        predictions.table.iloc[rows].reset_index(drop=True), predictions.format)
    is_chosen = np.zeros(len(predictions), bool)
    is_chosen[choice.rows] = True
    result = RerankResult(chosen.with_confidence(rescaled.confidence[rows]),
                          _details(predictions, table, rescaled, is_chosen if several else None), summary, policy)
    if output is not None:
        write_predictions(result.predictions, output)
    if details is not None:
        with atomic_write(details, "w", newline="", encoding="utf-8") as handle:
            result.details.to_csv(handle, index=False, lineterminator="\n")
    if truth is not None:
        from .report import run_scores

        result = replace(result, scores=run_scores(result.details, truth))
    if report is not None:
        from .report import write_report

        result = replace(result, report=write_report(
            result.details, report, summary=summary, truth=truth, photos=photos, verifier=session.verifier,
            seconds=time.perf_counter() - started))
    return result


def _path_or_none(value) -> str | os.PathLike | None:
    """A file argument given as a path, or None when it was given as an object (a table, a policy)."""
    return value if isinstance(value, (str, os.PathLike)) else None


def _directory(folder: str | os.PathLike | ImageDirectory) -> ImageDirectory:
    return folder if isinstance(folder, ImageDirectory) else ImageDirectory(folder)
