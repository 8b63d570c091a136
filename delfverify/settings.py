"""Settings, each declared once, with its default, its check and its doc.

- ``VerifySettings``: what decides a pair's inlier count (the extractor and its model, the photo size, matching,
  the geometric model and RANSAC). Equal settings give equal inliers; they name the feature store's and the pair
  journal's entries.
- ``RunSettings``: how a run goes (worker processes or a Dask cluster, the cache, candidates per query, what to do
  with missing photos, progress); they never change a pair's inlier count.

The command line builds both once from its options (``VerifySettings.from_options`` for the flags that adjust an
extractor's own matching and RANSAC settings); the pipeline's inner layers (``Verifier``,
``delfverify.measuring.open_session``, ``rerank``'s steps) take the objects, never loose values. The public one-call
functions (``verify_pair``, ``rerank``, ``tune``) also take any field as a keyword and build the objects with
``split_options``.

Example
-------
>>> from delfverify.settings import RunSettings, VerifySettings
>>> VerifySettings(max_side=800).max_side
800
>>> RunSettings(workers=0)
Traceback (most recent call last):
...
delfverify.settings.SettingsError: workers must be an integer in [1, 4096], got 0
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import DelfverifyError, shorten
from .extractors import DEFAULT_EXTRACTOR, EXTRACTORS, Extractor, extractor_class
from .fileio import check_path, names_a_folder
from .images import DEFAULT_MAX_SIDE, MAX_PIXELS
from .matching import METHODS, MatchConfig
from .verification import ENGINES, GEOMETRIES, GEOMETRY_SETTINGS, RansacConfig

#: What a run does with a prediction whose photos are missing or unreadable, or whose label has no gallery photo.
ON_MISSING = ("keep", "suppress")
#: The first this many candidate labels of each query are verified, unless told otherwise.
DEFAULT_CANDIDATES = 5
#: The schemes of a Dask scheduler's address: Dask's TCP, TLS and WebSocket comms (an address without one is TCP).
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")
#: The most local worker processes (more than any machine's cores; more than its cores are capped at the cores).
MAX_WORKERS = 4096
#: The most candidate labels of a query that are verified.
MAX_CANDIDATES = 1000
#: The largest seed: seeds are written to JSON files and journals as 64-bit integers.
MAX_SEED = 2**63 - 1
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")  # a host name, or an IPv4 address


class SettingsError(DelfverifyError, ValueError):
    """A setting out of its range. ``setting`` names it, so that the command line can name its option instead.

    Parameters
    ----------
    setting : str
        The field (``max_side``).
    requirement : str
        What it must be (``"a positive integer or None"``).
    value
        What it was.
    """

    def __init__(self, setting: str, requirement: str, value: Any):
        super().__init__(f"{setting} must be {requirement}, got {shorten(repr(value))}")
        self.setting, self.requirement, self.value = setting, requirement, value


def check(ok: bool, setting: str, requirement: str, value: Any) -> None:
    """Raise ``SettingsError(setting, requirement, value)`` unless ``ok``."""
    if not ok:
        raise SettingsError(setting, requirement, value)


def scheduler_address_problem(address: str) -> str | None:
    """What is wrong with a Dask scheduler address, or ``None`` when it is ``[scheme://]host:port`` with a scheme of
    ``SCHEDULER_SCHEMES`` (TCP when left out), a host name or IP address (IPv6 in brackets) and a port from 1 to
    65535, and nothing else (no path, user or spaces). Checked before anything connects."""
    if address != address.strip() or any(c.isspace() for c in address):
        return "it holds spaces"
    scheme, separator, rest = address.partition("://")
    if not separator:
        scheme, rest = "tcp", address
    if scheme not in SCHEDULER_SCHEMES:
        hint = ": an in-process scheduler is given by its distributed.Client" if scheme == "inproc" else ""
        return f"scheme {scheme!r} is not one of {', '.join(SCHEDULER_SCHEMES)}{hint}"
    if any(c in rest for c in "/?#@"):
        return "it has more than host:port after the scheme"
    if rest.startswith("["):
        host, bracket, port = rest[1:].partition("]")
        if not bracket or not port.startswith(":"):
            return "no port" if bracket and not port else "an IPv6 host goes in brackets, [::1]:8786"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"host [{host}] is not an IPv6 address"
        port = port[1:]
    else:
        host, colon, port = rest.rpartition(":")
        if not colon:
            host, port = rest, ""
        if not host:
            return "no host"
        if not _HOST.fullmatch(host):
            return f"host {host!r} is not a host name or IP address" + (" (IPv6 goes in brackets)" if ":" in host
                                                                       else "")
    if not port:
        return "no port"
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        return f"port {port!r} is not a number from 1 to 65535"
    return None


def is_dask_client(value: Any) -> bool:
    """Whether ``value`` is a ``distributed.Client`` (without importing Dask: a client exists only once it is)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(value, distributed.Client)


def is_count(value: Any, least: int = 1, most: int | None = None) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``least`` and, where given, at most ``most``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least and (most is None
                                                                                           or value <= most)


def count_range(least: int, most: int) -> str:
    """What ``is_count(value, least, most)`` asks, for a ``SettingsError``: ``"an integer in [1, 4096]"``."""
    return f"an integer in [{least}, {most}]"


@dataclass(frozen=True)
class VerifySettings:
    """What decides a pair's inlier count.

    Attributes
    ----------
    features : str or Extractor
        ``"rootsift"`` (default; OpenCV, no download), ``"delf"`` (TF-Hub ``google/delf/1``), or an extractor object
        (``from delfverify.extractors import RootSIFT, DELF``).
    model : str or path, optional
        DELF by name only: a TF-Hub handle or a local model directory (default: the hub handle).
    max_side : int or None
        Photos are shrunk to this longest side before extraction (1024), at most ``images.MAX_PIXELS``; ``None``
        keeps them whole.
    match : MatchConfig, optional
        How descriptors are matched; default: the extractor's own (``Extractor.match``).
    ransac : RansacConfig, optional
        The geometric model and RANSAC settings; default: the extractor's own (``Extractor.ransac``: RootSIFT a
        fundamental matrix, DELF the research's affine fit).
    """

    features: str | Extractor = DEFAULT_EXTRACTOR
    model: str | os.PathLike | None = None
    max_side: int | None = DEFAULT_MAX_SIDE
    match: MatchConfig | None = None
    ransac: RansacConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.features, str):
            check(self.features in EXTRACTORS, "features", f"one of {', '.join(EXTRACTORS)} or an extractor object",
                  self.features)
        else:
            check(isinstance(self.features, Extractor), "features",
                  f"one of {', '.join(EXTRACTORS)} or an extractor object", self.features)
        check(self.model is None or self.features == "delf", "model", "given only with features 'delf'", self.model)
        check(self.max_side is None or is_count(self.max_side, 1, MAX_PIXELS), "max_side",
              f"{count_range(1, MAX_PIXELS)} (no photo has a longer side) or None", self.max_side)
        check(self.match is None or isinstance(self.match, MatchConfig), "match", "a MatchConfig or None", self.match)
        check(self.ransac is None or isinstance(self.ransac, RansacConfig), "ransac", "a RansacConfig or None",
              self.ransac)

    @classmethod
    def from_options(cls, features: str = DEFAULT_EXTRACTOR, model: str | None = None,
                     max_side: int | None = DEFAULT_MAX_SIDE, *, matcher: str | None = None,
                     geometry: str | None = None, engine: str | None = None,
                     seed: int | None = None) -> "VerifySettings":
        """Settings from the command line's flags: the extractor's own matching and RANSAC settings, with the
        nearest-neighbour ``matcher``, the ``geometry`` (its measured settings, ``GEOMETRY_SETTINGS``), the RANSAC
        ``engine`` and ``seed`` replaced where given. The extractor is not created (DELF's model is not loaded).

        Raises
        ------
        SettingsError
            A value out of range; ``setting`` names the flag's field (``matcher``, ``geometry``, ``engine``,
            ``seed``, ``max_side``, ...).
        """
        settings = cls(features, model, max_side)
        check(matcher is None or matcher in METHODS, "matcher", f"one of {', '.join(METHODS)}", matcher)
        check(geometry is None or geometry in GEOMETRIES, "geometry", f"one of {', '.join(GEOMETRIES)}", geometry)
        check(engine is None or engine in ENGINES, "engine", f"one of {', '.join(ENGINES)}", engine)
        check(seed is None or is_count(seed, 0, MAX_SEED), "seed", count_range(0, MAX_SEED), seed)
        own = extractor_class(features)
        match = own.match if matcher is None else dataclasses.replace(own.match, method=matcher)
        ransac = GEOMETRY_SETTINGS[geometry] if geometry is not None else own.ransac
        engine = ransac.engine if engine is None else engine
        check(engine != "skimage" or ransac.geometry == "affine", "engine",
              f"opencv with the {ransac.geometry} model (skimage fits the affine model only: --geometry affine)",
              engine)
        ransac = dataclasses.replace(ransac, engine=engine, seed=ransac.seed if seed is None else seed)
        return dataclasses.replace(settings, match=match, ransac=ransac)


@dataclass(frozen=True)
class RunSettings:
    """How a run goes; nothing here changes an inlier count.

    Attributes
    ----------
    workers : int
        Local worker processes for extraction and verification, 1 to ``MAX_WORKERS``; 1 runs in this process (the
        command line's default is the machine's cores).
    scheduler : str or distributed.Client, optional
        A Dask scheduler's address ``[scheme://]host:port`` (``tcp://host:8786``; scheme tcp, tls, ws or wss, TCP
        when left out; port 1 to 65535; checked here, ``scheduler_address_problem``) or a client (an in-process
        cluster's, whose address is ``inproc://``): the cluster's workers do the work, and the cache must be on a
        path every worker shares.
    cache_dir : path, optional
        The feature store and pair journal (default ``delfverify.store.default_cache_dir()``).
    cache : bool
        ``False`` keeps features in memory and journals nothing.
    null_table : path or NullTable, optional
        Where the false-match rates of inlier counts come from (``delfverify calibrate``); default: the table
        shipped for the extractor and geometric model.
    journal : path, optional
        The pair journal (an SQLite file; default ``journal.sqlite`` in the cache folder). Only the process that
        runs the command writes it, so on a cluster keep it on a local disk of that machine: SQLite's locks are not
        reliable on network file systems (``docs/SCALE.md``). Text ending in a path separator is refused: it names
        a folder.
    candidates : int
        Verify at most this many candidate labels of each query, the classifier's first (1 to ``MAX_CANDIDATES``).
    keep_candidates : bool
        Write every candidate with its rescaled confidence, best first, instead of each query's chosen one.
    on_missing : {"keep", "suppress"}
        A prediction whose photos are missing or unreadable, or whose label has no gallery photo, keeps its
        confidence or counts as verified with 0 inliers.
    progress : bool
        Show a progress bar.
    """

    workers: int = 1
    scheduler: Any = None
    cache_dir: str | os.PathLike | None = None
    cache: bool = True
    journal: str | os.PathLike | None = None
    null_table: Any = None
    candidates: int = DEFAULT_CANDIDATES
    keep_candidates: bool = False
    on_missing: str = "keep"
    progress: bool = False

    def __post_init__(self) -> None:
        check(is_count(self.workers, 1, MAX_WORKERS), "workers", count_range(1, MAX_WORKERS), self.workers)
        check(is_count(self.candidates, 1, MAX_CANDIDATES), "candidates", count_range(1, MAX_CANDIDATES),
              self.candidates)
        check(self.on_missing in ON_MISSING, "on_missing", f"one of {', '.join(ON_MISSING)}", self.on_missing)
        if self.scheduler is not None and not is_dask_client(self.scheduler):
            problem = (scheduler_address_problem(self.scheduler) if isinstance(self.scheduler, str)
                       else f"an object of type {type(self.scheduler).__name__}")
            check(problem is None, "scheduler", f"a Dask scheduler address such as tcp://host:8786 (scheme "
                  f"{', '.join(SCHEDULER_SCHEMES)}; port 1 to 65535) or a distributed.Client; here {problem}",
                  self.scheduler)
        check(not names_a_folder(self.journal), "journal",
              "a file name (one ending in a path separator names a folder)", self.journal)
        for name in ("cache", "keep_candidates", "progress"):
            check(isinstance(getattr(self, name), bool), name, "True or False", getattr(self, name))
        for name in ("cache_dir", "journal"):  # the text of a path, as every path argument (fileio.check_path)
            object.__setattr__(self, name, check_path(getattr(self, name), name, optional=True))

    @property
    def parallel(self) -> bool:
        """Whether work leaves this process (local workers or a Dask cluster)."""
        return self.workers > 1 or self.scheduler is not None

    def store_folder(self) -> Path | None:
        """The feature store's folder: ``cache_dir``, else the user cache; ``None`` without a cache."""
        from .store import default_cache_dir

        if not self.cache:
            return None
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()

    def journal_file(self) -> Path | None:
        """The pair journal's file: ``journal``, else ``journal.sqlite`` in the store's folder; ``None`` without a
        cache."""
        if not self.cache:
            return None
        return Path(self.journal) if self.journal is not None else self.store_folder() / "journal.sqlite"


def split_options(options: Mapping[str, Any], verify: VerifySettings | None = None,
                  run: RunSettings | None = None) -> tuple[VerifySettings, RunSettings]:
    """``VerifySettings`` and ``RunSettings`` from keywords naming their fields, laid over ``verify`` and ``run``
    (default: the defaults); the public one-call functions take settings this way.

    Raises
    ------
    TypeError
        A keyword that is no field of either.
    SettingsError
        A value out of range.
    """
    names = {kind: {f.name for f in fields(kind)} for kind in (VerifySettings, RunSettings)}
    unknown = sorted(set(options) - names[VerifySettings] - names[RunSettings])
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; settings are the fields of "
                        f"VerifySettings ({', '.join(sorted(names[VerifySettings]))}) and RunSettings "
                        f"({', '.join(sorted(names[RunSettings]))})")
    verify = dataclasses.replace(verify or VerifySettings(),
                                 **{k: v for k, v in options.items() if k in names[VerifySettings]})
    run = dataclasses.replace(run or RunSettings(), **{k: v for k, v in options.items() if k in names[RunSettings]})
    return verify, run
