"""Running extraction and pair verification serially, in local worker processes, or on a Dask cluster.

The work comes in batches, and each batch is a pure function of a ``VerifierSpec`` and its items, so every
backend gives the same results:

- ``extract_batch``: features of images missing from the store, written to the shared store;
- ``verify_batch``: inlier counts of (query, gallery) pairs.

Each worker process builds its ``Verifier`` once per spec, so a DELF model is loaded once per process. With
local processes or Dask, the feature store must be on a path that every worker can reach.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator, Sequence

from .images import ImageError
from .verification import verify_features
from .verifier import Verifier, VerifierSpec

logger = logging.getLogger(__name__)

_VERIFIERS: dict[VerifierSpec, Verifier] = {}


def _verifier(spec: VerifierSpec) -> Verifier:
    """The worker's verifier for a spec, built once per process (the main process registers its own)."""
    if spec not in _VERIFIERS:
        _one_thread_per_worker(spec)
        _VERIFIERS[spec] = spec.build()
    return _VERIFIERS[spec]


def _one_thread_per_worker(spec: VerifierSpec) -> None:
    """Worker processes already use every core between them: keep OpenCV (and TensorFlow) to one thread each,
    or they oversubscribe the machine (OpenCV's SIFT alone uses about 1.5 cores)."""
    import cv2

    cv2.setNumThreads(1)
    if spec.extractor == "delf":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialised in this process
            logger.debug("TensorFlow threads already set in this worker")


@dataclass(frozen=True)
class ImageItem:
    """An image to extract: its content hash and file."""

    key: str
    path: str


@dataclass(frozen=True)
class PairItem:
    """A query and the gallery photos to verify it against."""

    query: ImageItem
    gallery: tuple[ImageItem, ...]


@dataclass(frozen=True)
class PairResult:
    """One verified pair, or why it failed (``error`` names the image; counts are then 0)."""

    query_key: str
    gallery_key: str
    num_inliers: int
    num_putative: int
    error: str = ""


def extract_batch(spec: VerifierSpec, items: Sequence[ImageItem]) -> list[tuple[str, str, bool]]:
    """Make sure every image's features are stored; returns ``(key, error, extracted_now)`` per image."""
    verifier = _verifier(spec)
    out = []
    for item in items:
        before = verifier.extracted
        try:
            verifier.features(item.path, key=item.key)
            out.append((item.key, "", verifier.extracted > before))
        except ImageError as exc:
            out.append((item.key, str(exc), False))
    return out


@dataclass(frozen=True)
class VerifiedBatch:
    """The pairs of a batch, and how many images had to be extracted for them (their store entry was corrupt
    or had gone)."""

    results: list[PairResult]
    features_extracted: int


def verify_batch(spec: VerifierSpec, items: Sequence[PairItem]) -> VerifiedBatch:
    """Verify each query against its gallery photos with the spec's matching and RANSAC settings."""
    verifier = _verifier(spec)
    extracted_before = verifier.extracted
    results = []
    for item in items:
        try:
            query = verifier.features(item.query.path, key=item.query.key)
        except ImageError as exc:
            results += [PairResult(item.query.key, g.key, 0, 0, f"query image: {exc}") for g in item.gallery]
            continue
        for gallery in item.gallery:
            try:
                features = verifier.features(gallery.path, key=gallery.key)
            except ImageError as exc:
                results.append(PairResult(item.query.key, gallery.key, 0, 0, f"gallery image: {exc}"))
                continue
            result = verify_features(query, features, verifier.match, verifier.ransac)
            results.append(PairResult(item.query.key, gallery.key, result.num_inliers, result.num_putative))
    return VerifiedBatch(results, verifier.extracted - extracted_before)


class Runner:
    """Runs batches where the options say: in this process, in local processes or on a Dask cluster.

    Parameters
    ----------
    verifier : Verifier
        Used directly in this process (``workers == 1``), or rebuilt from its spec by each worker.
    workers : int
        Local worker processes; 1 runs in this process.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``) or a ``distributed.Client``; then
        ``workers`` is ignored and the cluster's workers run the batches.
    in_process : bool, optional
        Run in this process; default: when ``workers == 1`` and there is no scheduler. ``False`` with one
        worker runs one single-threaded worker process (benchmarks compare it with N processes).
    """

    def __init__(self, verifier: Verifier, workers: int = 1, scheduler=None, in_process: bool | None = None):
        if not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.scheduler = scheduler
        self.distributed = not in_process if in_process is not None else (workers > 1 or scheduler is not None)
        if self.distributed and verifier.store is None:
            raise ValueError("parallel or distributed runs need a feature store shared by the workers (cache_dir)")
        self.spec = verifier.spec()
        if not self.distributed:
            _VERIFIERS[self.spec] = verifier  # the serial path keeps this verifier's memory cache
        self._pool = None
        self._client = None

    def __enter__(self) -> "Runner":
        if self.scheduler is not None:
            try:
                from distributed import Client
            except ImportError:
                raise ValueError("scheduler needs Dask distributed: pip install 'delfverify[dask]'") from None
            self._client = self.scheduler if isinstance(self.scheduler, Client) else Client(self.scheduler)
        elif self.distributed:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._client is not None and self._client is not self.scheduler:
            self._client.close()
        _VERIFIERS.pop(self.spec, None)

    @property
    def parallelism(self) -> int:
        if self._client is not None:
            return max(1, sum(self._client.nthreads().values()))
        return self.workers

    def map(self, function: Callable, batches: Iterable[Sequence]) -> Iterator[list]:
        """Results of ``function(spec, batch)`` for every batch, in completion order."""
        if self._client is not None:
            from distributed import as_completed

            futures = [self._client.submit(function, self.spec, batch, pure=False) for batch in batches]
            for future in as_completed(futures):
                yield future.result()
        elif self._pool is not None:
            pending = set()
            for batch in batches:
                pending.add(self._pool.submit(function, self.spec, batch))
                if len(pending) >= 2 * self.workers:  # bounded: a few batches in flight per worker
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        else:
            for batch in batches:
                yield function(self.spec, batch)


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def default_workers() -> int:
    """The machine's cores available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
