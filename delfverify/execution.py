"""Where the work runs: in this process, in local worker processes, or on a Dask cluster.

The work comes in batches of two kinds, each a function of a ``Verifier`` and its items, so every backend gives
the same results:

- ``extract_batch``: features of images missing from the store, written to the store;
- ``verify_batch``: inlier counts of (query, gallery) pairs.

In this process the batches run on the caller's verifier itself. Work that leaves the process is described by a
``WorkerSpec`` (the verifier's settings, extractor object included, which must therefore be picklable); each
worker process rebuilds the verifier once per spec, with its share of the cores, so a DELF model is loaded once
per process. With local processes or Dask, the feature store must be on a path every worker can reach.

When things go wrong:

- Local workers end when the process that started them ends, whatever ended it (SIGTERM, SIGKILL): on Linux
  the kernel kills them (``PR_SET_PDEATHSIG``), elsewhere a thread in each worker checks its parent every second.
  The pool must therefore be used from the thread that lives as long as it (``Runner`` is a context manager).
- A local worker that dies (the kernel's out-of-memory killer, a ``kill -9``) breaks the pool: a new pool is
  started and the batches that were lost are redone; results already received are kept (the caller journals
  them). After ``MAX_WORKER_RESTARTS`` such deaths in one run, ``WorkerError`` stops it with a message.
- A Dask scheduler that does not complete the connection within ``DASK_CONNECT_TIMEOUT`` (30 s), even one that
  accepts the connection and never answers, and a cluster without any worker for ``DASK_NO_WORKERS_TIMEOUT``
  (120 s) while work is waiting, raise ``WorkerError`` naming the scheduler. A batch that killed the workers
  that ran it (Dask's ``KilledWorker``) does too.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator, Sequence

from .console import configure_worker
from .errors import DelfverifyError
from .images import ImageError, read_bytes
from .journal import PairRecord
from .matching import limit_blas_threads
from .settings import RunSettings, VerifySettings, scheduler_address_problem
from .store import content_hash
from .verifier import Verifier

logger = logging.getLogger(__name__)

#: Local worker processes that may die (and be replaced, their batches redone) in one run before it stops.
MAX_WORKER_RESTARTS = 3
#: Seconds a Dask scheduler has to complete the connection (TCP connection and handshake).
DASK_CONNECT_TIMEOUT = 30.0
#: Seconds a Dask cluster may have no worker at all while work waits, before the run stops.
DASK_NO_WORKERS_TIMEOUT = 120.0
_DASK_POLL = 1.0  # seconds between checks for workers while waiting for a Dask result
_PR_SET_PDEATHSIG = 1  # Linux prctl option: the signal this process gets when its parent ends


class WorkerError(DelfverifyError):
    """Workers could not do the work: they keep dying, or the Dask cluster cannot be reached or has no worker."""


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
    """One verified pair (``record``), or why it failed (``error`` names the image; ``record`` is then None)."""

    query_key: str
    gallery_key: str
    record: PairRecord | None
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


@dataclass(frozen=True)
class StoredFile:
    """A photo file ``extract_files`` made sure of: its content hash, whether its features were extracted now (else
    they were in the store), the bytes of the store entry written, or why it failed (``error``)."""

    path: str
    key: str = ""
    extracted: bool = False
    bytes_written: int = 0
    error: str = ""


def extract_files(verifier: Verifier, paths: Sequence[str]) -> list[StoredFile]:
    """Make sure the features of every photo file are in the store: each is read and hashed here (in the worker,
    so that the process that hands out the work never reads the photos) and extracted unless already stored."""
    out = []
    for path in paths:
        try:
            data = read_bytes(path)
            key = content_hash(data)
            if verifier.has_features(key):
                out.append(StoredFile(path, key))
                continue
            verifier.features_of(data, key=key, source=path)
        except ImageError as exc:
            out.append(StoredFile(path, error=str(exc)))
            continue
        size = verifier.store.path(key).stat().st_size if verifier.store is not None else 0
        out.append(StoredFile(path, key, True, size))
    return out


def verify_batch(verifier: Verifier, items: Sequence[PairItem]) -> VerifiedBatch:
    """Verify each query against its gallery photos with the verifier's matching and RANSAC settings."""
    extracted_before = verifier.extracted
    results = []
    for item in items:
        try:
            query = verifier.features_of(item.query.path, key=item.query.key)
        except ImageError as exc:
            results += [PairResult(item.query.key, g.key, None, f"query image: {exc}") for g in item.gallery]
            continue
        for gallery in item.gallery:
            try:
                features = verifier.features_of(gallery.path, key=gallery.key)
            except ImageError as exc:
                results.append(PairResult(item.query.key, gallery.key, None, f"gallery image: {exc}"))
                continue
            result = verifier.verify_features(query, features)
            record = PairRecord(result.num_inliers, result.num_putative, result.num_features_a, result.num_features_b)
            results.append(PairResult(item.query.key, gallery.key, record))
    return VerifiedBatch(results, verifier.extracted - extracted_before)


@dataclass(frozen=True)
class WorkerSpec:
    """A verifier's settings and feature store sent to worker processes, and a key naming them (equal keys: equal
    verifiers).

    ``concurrent`` is how many workers run at once on one machine (local processes), or ``None`` when that is not
    known (a Dask cluster: then one per core is assumed). Each worker uses ``cores // concurrent`` threads.
    """

    key: str
    settings: VerifySettings = field(compare=False)
    cache_dir: str = field(compare=False)
    concurrent: int | None = field(default=None, compare=False)


@functools.lru_cache(maxsize=4)
def _worker_verifier(spec: WorkerSpec) -> Verifier:
    """The verifier of a spec, built once per worker process, with its share of the cores: the extractor's
    threads (OpenCV's SIFT alone would use about 1.5 cores) and BLAS's (the matcher's products) together stay
    within the cores, whatever the number of workers."""
    verifier = Verifier(spec.settings, cache_dir=spec.cache_dir)
    cores = default_workers()
    concurrent = spec.concurrent or cores
    verifier.extractor.limit_threads(max(1, cores // concurrent))
    limit_blas_threads(concurrent, cores)
    return verifier


def _in_worker(function: Callable, spec: WorkerSpec, batch: Sequence) -> Any:
    return function(_worker_verifier(spec), batch)


def _warm_up(spec: WorkerSpec) -> None:
    """Build a worker's verifier (its imports, its threads, a DELF model) ahead of its first batch."""
    _worker_verifier(spec)


def _start_worker(parent: int) -> None:
    """Initializer of local worker processes: end with ``parent``, and route messages as the ``delfverify``
    command that started them does, if it was that command (``console.configure_worker``)."""
    _exit_with_parent(parent)
    configure_worker()


def _exit_with_parent(parent: int) -> None:
    """End this worker (a local worker process) when ``parent`` (the process that started it) ends,
    however it ends. On Linux the kernel sends SIGKILL at the parent's death; elsewhere, or if that request fails,
    a daemon thread checks every second whether the parent is still there."""
    if not _kill_on_parent_death():
        threading.Thread(target=_watch_parent, args=(parent, 1.0), daemon=True, name="delfverify-parent").start()
    if os.getppid() != parent:  # the parent ended before the request took effect
        os._exit(1)


def _kill_on_parent_death() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends (``prctl(PR_SET_PDEATHSIG)``); whether it did."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float) -> None:
    """End this process as soon as its parent is no longer ``parent`` (it ended, and this process was adopted)."""
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


class Runner:
    """Runs batches where the options say: in this process, in local processes or on a Dask cluster.

    Parameters
    ----------
    verifier : Verifier
        Used directly in this process, or rebuilt from its settings by each worker.
    run : RunSettings
        ``workers``: local worker processes, 1 runs in this process, more than the machine's cores are capped at
        the cores, with a warning; ``scheduler``: a Dask distributed scheduler's address (``tcp://host:8786``) or a
        client, whose workers then run the batches (``workers`` is ignored).
    in_process : bool, optional
        Run in this process; default: when ``run.parallel`` is false. ``False`` with one worker runs one
        single-threaded worker process (benchmarks compare it with N processes).

    Raises
    ------
    ValueError
        If work leaves the process without a feature store.
    """

    def __init__(self, verifier: Verifier, run: RunSettings = RunSettings(), in_process: bool | None = None):
        workers, scheduler = run.workers, run.scheduler
        cores = default_workers()
        if workers > cores:
            logger.warning("%d worker processes asked for on %d cores; using %d (more only compete for the cores)",
                           workers, cores, cores)
            workers = cores
        self.verifier = verifier
        self.workers = workers
        self.scheduler = scheduler
        self.distributed = not in_process if in_process is not None else run.parallel
        if self.distributed and verifier.store is None:
            raise ValueError("parallel or distributed runs need a feature store shared by the workers (cache_dir)")
        self._spec = None
        if self.distributed:
            self._spec = WorkerSpec(f"{verifier.pair_fingerprint}:{verifier.cache_dir}", verifier.settings,
                                    str(verifier.cache_dir), None if scheduler is not None else workers)
        self._pool = None
        self._client = None

    def __enter__(self) -> "Runner":
        if self.scheduler is not None:
            try:
                from distributed import Client
            except ImportError:
                raise DelfverifyError("--scheduler needs Dask distributed: pip install 'delfverify[dask]'") from None
            if isinstance(self.scheduler, Client):
                self._client = self.scheduler
            else:
                problem = scheduler_address_problem(self.scheduler) if isinstance(self.scheduler, str) else "no address"
                if problem is not None:  # RunSettings checks it; a Runner may be given settings built otherwise
                    raise WorkerError(f"Dask scheduler {self.scheduler!r}: {problem}")
                self._client = _connect(self.scheduler)
        elif self.distributed:
            self._pool = self._new_pool()
        self.restarts = 0
        self._warm = False
        return self

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_start_worker,
                                   initargs=(os.getpid(),))

    def warm_up(self) -> None:
        """Start the local workers now, each building its verifier (imports, threads, a DELF model), so that they
        are ready when the first batch comes: call it as soon as there is work, while this process still reads
        and hashes photos. Once per runner; nothing in this process or on a Dask cluster."""
        if self._pool is not None and not self._warm:
            self._warm = True
            for _ in range(self.workers):
                self._pool.submit(_warm_up, self._spec)

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
            yield from self._map_on_cluster(function, batches)
        elif self._pool is not None:
            yield from self._map_on_pool(function, batches)
        else:
            for batch in batches:
                yield function(self.verifier, batch)

    def _map_on_pool(self, function: Callable, batches: Iterable[Sequence]) -> Iterator[Any]:
        """Local workers, a few batches in flight per worker; the batches a dead worker took down are redone."""
        source = iter(batches)
        redo: list[Sequence] = []
        pending: dict[Future, Sequence] = {}
        while True:
            broken = False
            while not broken and len(pending) < 2 * self.workers and (redo or source is not None):
                batch = redo.pop() if redo else next(source, None)
                if batch is None:
                    source = None
                    continue
                try:
                    pending[self._pool.submit(_in_worker, function, self._spec, batch)] = batch
                except BrokenProcessPool:  # a worker died between two batches
                    redo.append(batch)
                    broken = True
            if not broken:
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        redo.append(batch)
                        broken = True
                        continue
                    yield result
            if broken:  # the batches still in flight went down with the pool, unless they had finished
                for future, batch in pending.items():
                    if future.done() and not future.cancelled() and future.exception() is None:
                        yield future.result()
                    else:
                        redo.append(batch)
                pending.clear()
                self._restart_pool(len(redo))

    def _restart_pool(self, batches: int) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        if self.restarts > MAX_WORKER_RESTARTS:
            raise WorkerError(f"worker processes died {self.restarts} times in this run (killed, e.g. by the "
                              f"out-of-memory killer?); the pairs verified so far are journaled: free memory, or "
                              f"run again with fewer --workers or a smaller --max-side")
        logger.warning("a worker process died (killed, e.g. by the out-of-memory killer?); starting new workers and "
                       "redoing its %d batch(es) (restart %d of at most %d)", batches, self.restarts,
                       MAX_WORKER_RESTARTS)
        self._pool = self._new_pool()

    def _map_on_cluster(self, function: Callable, batches: Iterable[Sequence]) -> Iterator[Any]:
        """Dask workers; results in completion order. Waiting ends with ``WorkerError`` when the cluster has had no
        worker for ``DASK_NO_WORKERS_TIMEOUT`` seconds, or when a batch killed its workers."""
        from distributed import wait as dask_wait
        from distributed.scheduler import KilledWorker

        pending = {self._client.submit(_in_worker, function, self._spec, batch, pure=False) for batch in batches}
        no_workers_since = None
        while pending:
            try:
                done, pending = dask_wait(pending, timeout=_DASK_POLL, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                try:
                    yield future.result()
                except KilledWorker as exc:
                    raise WorkerError(f"Dask scheduler {self._client.scheduler.address}: a batch killed the workers "
                                      f"that ran it ({exc}); check the workers' memory and logs") from None
            if done or self._client.nthreads():
                no_workers_since = None
            elif no_workers_since is None:
                no_workers_since = time.monotonic()
                logger.warning("the Dask cluster at %s has no worker; waiting up to %g s for one",
                               self._client.scheduler.address, DASK_NO_WORKERS_TIMEOUT)
            elif time.monotonic() - no_workers_since > DASK_NO_WORKERS_TIMEOUT:
                raise WorkerError(f"Dask scheduler {self._client.scheduler.address}: no worker for "
                                  f"{DASK_NO_WORKERS_TIMEOUT:g} s while work was waiting; start workers (or find why "
                                  f"they died) and run again: the pairs verified so far are journaled")


def _connect(address: str):
    """A Dask client of the scheduler at ``address``, within ``DASK_CONNECT_TIMEOUT`` seconds.

    Dask bounds the TCP connection but not the handshake that follows, so a port that accepts and never answers
    would hang ``Client`` for ever: the connection is tried first, in full, under a bound of our own, with the
    security settings (TLS certificates) of Dask's configuration, as ``Client`` uses them.

    Raises
    ------
    WorkerError
        Any failure to connect or to hand-shake (refused, timed out, a TLS address without certificates, an address
        Dask cannot parse), in one line naming the address.
    """
    import asyncio  # here, not at the top: worker processes import this module and never connect

    from distributed import Client
    from distributed.comm import connect
    from distributed.security import Security

    async def handshake() -> None:
        comm = await connect(address, timeout=DASK_CONNECT_TIMEOUT, **Security().get_connection_args("client"))
        await comm.close()

    with ThreadPoolExecutor(1) as thread:  # its own event loop, whatever loop the caller may be running
        try:
            thread.submit(asyncio.run, asyncio.wait_for(handshake(), DASK_CONNECT_TIMEOUT)).result()
            return Client(address, timeout=DASK_CONNECT_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - whatever Dask raises, the user's remedy is the same
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if len(reason) > 300:
                reason = f"{reason[:299]}…"
            secure = (" (a tls:// or wss:// address needs the client's certificates in Dask's configuration, "
                      "distributed.comm.tls)" if address.startswith(("tls://", "wss://")) else "")
            raise WorkerError(f"cannot connect to the Dask scheduler at {address} within {DASK_CONNECT_TIMEOUT:g} s "
                              f"({reason}); check the address and that the scheduler runs{secure}") from None


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def default_workers() -> int:
    """The machine's cores available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
