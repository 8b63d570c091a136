"""Where the work runs: in this process, in local worker processes, or on a Dask cluster.

The work comes in batches of two kinds, each a function of a ``Verifier`` and its items, so every backend gives
the same results:

- ``extract_batch``: features of images missing from the store, written to the store;
- ``verify_batch``: inlier counts of (query, gallery) pairs.

In this process the batches run on the caller's verifier itself. Work that leaves the process is described by a
``WorkerSpec`` (the verifier's settings, extractor object included, which must therefore be picklable); each
worker process rebuilds the verifier once per spec, with its share of the cores, so a DELF model is loaded once
per process. With local processes or Dask, the feature store must be on a path every worker can reach.
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .errors import DelfverifyError
from .images import ImageError
from .matching import limit_blas_threads
from .verifier import Verifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageItem:
    """An image to extract: its content hash and file, and the file's bytes when they were already read (to hash
    it), so that it is not read twice."""

    key: str
    path: str
    data: bytes | None = field(default=None, compare=False, repr=False)


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


@dataclass(frozen=True)
class VerifiedBatch:
    """The pairs of a batch, and how many images had to be extracted for them (their store entry was corrupt
    or had gone)."""

    results: list[PairResult]
    features_extracted: int


def extract_batch(verifier: Verifier, items: Sequence[ImageItem]) -> list[tuple[str, str, bool]]:
    """Make sure every image's features are stored; returns ``(key, error, extracted_now)`` per image."""
    out = []
    for item in items:
        before = verifier.extracted
        try:
            verifier.features_of(item.path if item.data is None else item.data, key=item.key, source=item.path)
            out.append((item.key, "", verifier.extracted > before))
        except ImageError as exc:
            out.append((item.key, str(exc), False))
    return out


def verify_batch(verifier: Verifier, items: Sequence[PairItem]) -> VerifiedBatch:
    """Verify each query against its gallery photos with the verifier's matching and RANSAC settings."""
    extracted_before = verifier.extracted
    results = []
    for item in items:
        try:
            query = verifier.features_of(item.query.path, key=item.query.key)
        except ImageError as exc:
            results += [PairResult(item.query.key, g.key, 0, 0, f"query image: {exc}") for g in item.gallery]
            continue
        for gallery in item.gallery:
            try:
                features = verifier.features_of(gallery.path, key=gallery.key)
            except ImageError as exc:
                results.append(PairResult(item.query.key, gallery.key, 0, 0, f"gallery image: {exc}"))
                continue
            result = verifier.verify_features(query, features)
            results.append(PairResult(item.query.key, gallery.key, result.num_inliers, result.num_putative))
    return VerifiedBatch(results, verifier.extracted - extracted_before)


@dataclass(frozen=True, eq=False)
class WorkerSpec:
    """A verifier's settings sent to worker processes, and a key naming them (equal keys: equal verifiers).

    ``concurrent`` is how many workers run at once on one machine (local processes), or ``None`` when that is not
    known (a Dask cluster: then one per core is assumed). Each worker uses ``cores // concurrent`` threads.
    """

    key: str
    settings: Mapping[str, Any]
    concurrent: int | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkerSpec) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


@functools.lru_cache(maxsize=4)
def _worker_verifier(spec: WorkerSpec) -> Verifier:
    """The verifier of a spec, built once per worker process, with its share of the cores: the extractor's
    threads (OpenCV's SIFT alone would use about 1.5 cores) and BLAS's (the matcher's products) together stay
    within the cores, whatever the number of workers."""
    verifier = Verifier(**spec.settings)
    cores = default_workers()
    concurrent = spec.concurrent or cores
    verifier.extractor.limit_threads(max(1, cores // concurrent))
    limit_blas_threads(concurrent, cores)
    return verifier


def _in_worker(function: Callable, spec: WorkerSpec, batch: Sequence) -> Any:
    return function(_worker_verifier(spec), batch)


class Runner:
    """Runs batches where the options say: in this process, in local processes or on a Dask cluster.

    Parameters
    ----------
    verifier : Verifier
        Used directly in this process, or rebuilt from its settings by each worker.
    workers : int
        Local worker processes; 1 runs in this process. More than the machine's cores are capped at the cores,
        with a warning.
    scheduler : str or distributed.Client, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``) or a client; then ``workers`` is ignored
        and the cluster's workers run the batches.
    in_process : bool, optional
        Run in this process; default: when ``workers == 1`` and there is no scheduler. ``False`` with one
        worker runs one single-threaded worker process (benchmarks compare it with N processes).

    Raises
    ------
    ValueError
        If ``workers`` is not a positive integer, or work leaves the process without a feature store.
    """

    def __init__(self, verifier: Verifier, workers: int = 1, scheduler=None, in_process: bool | None = None):
        if not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        cores = default_workers()
        if workers > cores:
            logger.warning("%d worker processes asked for on %d cores; using %d (more only compete for the cores)",
                           workers, cores, cores)
            workers = cores
        self.verifier = verifier
        self.workers = workers
        self.scheduler = scheduler
        self.distributed = not in_process if in_process is not None else (workers > 1 or scheduler is not None)
        if self.distributed and verifier.store is None:
            raise ValueError("parallel or distributed runs need a feature store shared by the workers (cache_dir)")
        self._spec = None
        if self.distributed:
            settings = verifier.settings()
            self._spec = WorkerSpec(f"{verifier.pair_fingerprint}:{settings['cache_dir']}", settings,
                                    None if scheduler is not None else workers)
        self._pool = None
        self._client = None

    def __enter__(self) -> "Runner":
        if self.scheduler is not None:
            try:
                from distributed import Client
            except ImportError:
                raise DelfverifyError("--scheduler needs Dask distributed: pip install 'delfverify[dask]'") from None
            self._client = self.scheduler if isinstance(self.scheduler, Client) else Client(self.scheduler)
        elif self.distributed:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._client is not None and self._client is not self.scheduler:
            self._client.close()

    @property
    def parallelism(self) -> int:
        if self._client is not None:
            return max(1, sum(self._client.nthreads().values()))
        return self.workers

    def map(self, function: Callable, batches: Iterable[Sequence]) -> Iterator[Any]:
        """Results of ``function(verifier, batch)`` for every batch, in completion order."""
        if self._client is not None:
            from distributed import as_completed

            futures = [self._client.submit(_in_worker, function, self._spec, batch, pure=False) for batch in batches]
            for future in as_completed(futures):
                yield future.result()
        elif self._pool is not None:
            pending = set()
            for batch in batches:
                pending.add(self._pool.submit(_in_worker, function, self._spec, batch))
                if len(pending) >= 2 * self.workers:  # bounded: a few batches in flight per worker
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        else:
            for batch in batches:
                yield function(self.verifier, batch)


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def default_workers() -> int:
    """The machine's cores available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
