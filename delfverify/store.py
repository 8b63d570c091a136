"""Feature store: a directory cache of ``Features`` keyed by image content and extractor fingerprint.

Layout: ``<root>/<fingerprint>/<hash[:2]>/<hash>.npz``, one uncompressed ``.npz`` per image, holding the four
arrays as the extractor gives them (RootSIFT's descriptors as SIFT's uint8 histograms, DELF's as float16), the extraction
scale, the photo's size and a ``format_version``: about 145 bytes a RootSIFT keypoint. Entries of another version
are recomputed, never misread (version 3 keeps compact descriptors, version 2 float32 ones, version 1 locations in
the pixels of the shrunk image).

Entries are written to a temporary file in the same folder and renamed into place, so a reader sees a whole entry
or none, and concurrent writers of the same key cannot corrupt it (the last rename wins; both wrote the same
features).

An entry is input like any other file: its zip members must be stored plain (neither compressed nor encrypted), and
before an array is allocated its header is checked (a known dtype, the
extractor's descriptor length, at most ``MAX_KEYPOINTS`` rows, the bytes it claims present), and after it is read,
its values (finite locations inside the photo, finite scales, scores and float descriptors, a positive photo size,
an extraction scale in (0, 1]). An entry that fails (truncated, random bytes, wrong shapes or dtypes, another
version, a pickle, a directory or a FIFO in its place) is logged, counted in ``stats.corrupt``, set aside as
``<entry>.bad`` and recomputed by the caller. An entry that cannot be written (a full disk, a read-only folder, a
file where a folder of the store should be) raises ``StoreError`` naming what blocks it and the remedy: the cache
is a problem of the whole run, not of one image.

A writer killed mid-write (``kill``, a scheduler's limit reaching the workers) leaves its temporary file behind.
The first time a process writes an entry into a shard folder (``<hash[:2]>``), it removes the temporary files of
the store's own naming there (``fileio.create_temporary``'s name of an entry) that are older than
``STALE_TEMPORARY_S``: a younger one may be a live writer's in another process. Nothing else is ever removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .errors import DelfverifyError, shorten
from .features import ARRAY_FIELDS, DESCRIPTOR_DTYPES, Features
from .fileio import atomic_write, blocking_path, open_regular_file, temporary_pattern

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3
#: The most keypoints an entry may hold: far more than any extractor keeps (RootSIFT 2,000, DELF 1,000).
MAX_KEYPOINTS = 100_000
#: Bytes of an entry beyond its arrays' data (zip and npy headers), at most.
_OVERHEAD = 64 * 2**10
#: Seconds after its last change that a temporary file of the store is a killed writer's, and is removed.
STALE_TEMPORARY_S = 3600
#: The names of the store's own temporary files: an entry's name (its content hash and ``.npz``) as
#: ``fileio.create_temporary`` cuts it; the only files the store removes.
_TEMPORARY = temporary_pattern(r"[0-9a-f]{8,40}(?:\.(?:npz|np|n)?)?")
#: The shard folders this process has swept (once each).
_swept: set[str] = set()


class StoreError(DelfverifyError):
    """The feature store cannot be written (disk full, no permission); the message names the entry and the remedy."""


def default_cache_dir(*, check: bool = True) -> Path:
    """The user cache folder: ``$DELFVERIFY_CACHE_DIR``, else ``$XDG_CACHE_HOME/delfverify`` (an absolute path, as
    the XDG specification asks: a relative one is ignored), else ``~/.cache/delfverify``; ``~`` is expanded in each,
    as a shell would (a folder literally named ``~`` is never made).

    Parameters
    ----------
    check : bool
        Refuse a folder in a home folder that does not exist (the command line's help shows the folder unchecked).

    Raises
    ------
    StoreError
        With ``check``: the folder lies in the home folder (``HOME``), which does not exist, or ``~`` names no
        user's home. The tool would otherwise create the home folder itself; the message names the variable and
        the remedy.
    """
    for variable, suffix in (("DELFVERIFY_CACHE_DIR", ""), ("XDG_CACHE_HOME", "delfverify")):
        given = os.environ.get(variable, "")
        if given and (variable == "DELFVERIFY_CACHE_DIR" or os.path.isabs(os.path.expanduser(given))):
            break
    else:
        variable, given, suffix = "HOME", "~/.cache", "delfverify"
    if given.startswith("~"):
        home = os.path.expanduser(given.split(os.sep, 1)[0])
        if check and (home.startswith("~") or not os.path.isdir(home)):
            problem = f"{shorten(home)!r} names no user's home folder" if home.startswith("~") else \
                f"the home folder {shorten(home, 400)} (HOME) does not exist, and delfverify makes no home folder"
            where = "the user cache folder" if variable == "HOME" else f"{variable}={shorten(given)!r}"
            raise StoreError(f"{where}: {problem}; name a cache folder with --cache-dir (cache_dir=) or "
                             f"DELFVERIFY_CACHE_DIR, or run without one (--no-cache)")
    path = Path(os.path.expanduser(given))
    return path / suffix if suffix else path


def content_hash(data: bytes | np.ndarray) -> str:
    """SHA-256 of encoded image bytes, or of a decoded array's shape, dtype and pixels."""
    digest = hashlib.sha256()
    if isinstance(data, np.ndarray):
        digest.update(f"array:{data.dtype.str}:{data.shape}:".encode())
        digest.update(np.ascontiguousarray(data).tobytes())
    else:
        digest.update(data)
    return digest.hexdigest()


@dataclass
class StoreStats:
    """Counters of what a store did: entries found, written and found corrupt."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0


class FeatureStore:
    """Directory cache of features for one extractor fingerprint.

    Parameters
    ----------
    root : path
        Cache directory (created when first written).
    fingerprint : str
        The fingerprint of the extractor and its input size (``Verifier.features_fingerprint``); entries of other
        extractors or settings live in other sub-folders and are never mixed up.
    dim : int
        The extractor's descriptor length: an entry with other descriptors is corrupt.
    """

    def __init__(self, root: str | os.PathLike, fingerprint: str, dim: int):
        if not fingerprint or any(c in fingerprint for c in "/\\."):
            raise ValueError(f"fingerprint must be a plain non-empty name, got {fingerprint!r}")
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.dim = dim
        self.stats = StoreStats()
        # Each array of an entry: its shape (None: the keypoint count) and the dtypes it may have.
        self._arrays = {"format_version": ((), (np.int64,)), "extraction_scale": ((2,), (np.float64,)),
                        "image_shape": ((2,), (np.int64,)), "locations": ((None, 2), (np.float32,)),
                        "descriptors": ((None, dim), DESCRIPTOR_DTYPES), "scales": ((None,), (np.float32,)),
                        "scores": ((None,), (np.float32,))}

    def path(self, key: str) -> Path:
        """Where the entry for content hash ``key`` lives."""
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"key must be a lowercase hex content hash, got {key!r}")
        return self.root / self.fingerprint / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Features | None:
        """The stored features, or ``None`` when absent, corrupt or unreadable (such an entry is reported and set
        aside).

        Raises
        ------
        StoreError
            If an unusable entry cannot be set aside.
        """
        path = self.path(key)
        try:
            with open_regular_file(path) as file:
                size = os.fstat(file.fileno()).st_size
                limit = _OVERHEAD + MAX_KEYPOINTS * (4 * self.dim + 16)
                if size > limit:
                    raise ValueError(f"{size} bytes, more than an entry of {MAX_KEYPOINTS} keypoints takes")
                features = self._read(file)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        # What zipfile and numpy raise on damaged bytes (NotImplementedError: a zip version zipfile does not read;
        # NotAFileError is a ValueError). Compressed and encrypted members are refused before they are opened.
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
            self.stats.corrupt += 1
            self.stats.misses += 1
            aside = self._set_aside(path)
            logger.warning("corrupt feature store entry %s (%s); set aside as %s, recomputing", path, exc, aside.name)
            return None
        self.stats.hits += 1
        return features

    def _read(self, file: IO[bytes]) -> Features:
        """An entry's features, every header checked before its array is allocated and every value after.

        Raises
        ------
        ValueError, KeyError, EOFError, zipfile.BadZipFile
            What is wrong with the entry.
        """
        with zipfile.ZipFile(file) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if set(members) != {f"{name}.npy" for name in self._arrays}:
                raise ValueError(f"holds {', '.join(sorted(members))[:200]}, not the arrays of an entry")
            if any(info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 for info in members.values()):
                # np.savez stores its arrays plain: anything else would reach a decompressor (NotImplementedError
                # for an unknown method, RuntimeError for an encrypted member) for no entry this store wrote
                raise ValueError("holds compressed or encrypted members; an entry holds its arrays stored plain")
            arrays = {}
            for name in self._arrays:  # the version first: an entry of another version is recomputed unread
                arrays[name] = self._array(archive, members[f"{name}.npy"], name)
                if name == "format_version" and int(arrays[name]) != FORMAT_VERSION:
                    raise ValueError(f"format_version {int(arrays[name])}, expected {FORMAT_VERSION}")
        del arrays["format_version"]
        scale, shape = arrays.pop("extraction_scale"), arrays.pop("image_shape")
        if not (np.all(np.isfinite(scale)) and np.all(shape >= 1)):
            raise ValueError(f"extraction_scale {scale.tolist()}, image_shape {shape.tolist()}")
        for name in ("locations", "scales", "scores", "descriptors"):
            if arrays[name].dtype.kind == "f" and not np.isfinite(arrays[name]).all():
                raise ValueError(f"{name} not finite")
        locations = arrays["locations"]
        if len(locations) and not (np.all(locations >= -1) and np.all(locations <= shape + 1)):
            raise ValueError(f"locations outside the photo of {shape[0]}x{shape[1]} pixels")
        return Features(**{name: arrays[name] for name in ARRAY_FIELDS},
                        extraction_scale=(float(scale[0]), float(scale[1])),
                        image_shape=(int(shape[0]), int(shape[1])))

    def _array(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
        """One array of an entry, its npy header checked against what the entry may hold before reading it."""
        expected, dtypes = self._arrays[name]
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"{name}: npy format version {version}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(member)
            if fortran or dtype not in [np.dtype(d) for d in dtypes] or len(shape) != len(expected) or any(
                    want is not None and got != want for got, want in zip(shape, expected)) or (
                    shape and shape[0] > MAX_KEYPOINTS):
                raise ValueError(f"{name}: {dtype} {shape}, expected {' or '.join(np.dtype(d).name for d in dtypes)} "
                                 f"{tuple('N' if d is None else d for d in expected)} with N <= {MAX_KEYPOINTS}")
            count = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            data = member.read(count + 1)
        if len(data) != count:
            raise ValueError(f"{name}: {len(data)} bytes of data, its header says {count}")
        return np.frombuffer(data, dtype).reshape(shape).copy()

    def _set_aside(self, path: Path) -> Path:
        """Move an unusable entry, whatever took its place (a file, a FIFO, a directory), to ``<entry>.bad``, so
        it can be rewritten; an earlier one there is replaced."""
        aside = path.with_name(f"{path.name}.bad")
        try:
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside)
            os.replace(path, aside)
        except OSError as exc:
            raise StoreError(f"{path}: cannot set aside this unusable feature store entry ({exc.strerror or exc}); "
                             f"remove it, or choose another cache folder (--cache-dir)") from None
        return aside

    def put(self, key: str, features: Features) -> None:
        """Write an entry atomically (temporary file in the same folder, then rename), without ``fsync``: after a
        power cut an entry may be empty or damaged, and is then recomputed like any corrupt entry.

        Raises
        ------
        StoreError
            If it cannot be written (disk full, no permission, a file where a folder of the store should be); the
            message names the entry (or what blocks it) and the remedy.
        """
        path = self.path(key)
        try:
            with atomic_write(path, "wb", durable=False) as handle:  # a lost entry is recomputed
                np.savez(
                    handle,
                    format_version=np.int64(FORMAT_VERSION),
                    extraction_scale=np.array(features.extraction_scale, np.float64),
                    image_shape=np.array(features.image_shape, np.int64),
                    **{name: getattr(features, name) for name in ARRAY_FIELDS},
                )
        except OSError as exc:
            blocker = blocking_path(path.parent)
            if blocker is not None:
                raise StoreError(f"{blocker}: is not a folder, where the feature store keeps {path.name}; remove "
                                 f"it, or choose another cache folder (--cache-dir)") from None
            raise StoreError(f"{path}: cannot write to the feature store ({exc.strerror or exc}); free space or "
                             f"fix permissions in {self.root}, or choose another cache folder (--cache-dir) or "
                             f"none (--no-cache)") from None
        self.stats.writes += 1
        sweep_stale_temporaries(path.parent)


def sweep_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files a killed writer of the store left in the shard folder ``folder``, the first time
    this process calls it for that folder.

    Only regular files whose names are of the store's own temporary files (``_TEMPORARY``) and that are older than
    ``STALE_TEMPORARY_S`` go; a file that cannot be examined or removed is left (a leftover is not worth failing a
    run for).

    Parameters
    ----------
    folder : Path
        A shard folder of the store, which the store has just written an entry into.
    """
    key = os.path.abspath(folder)
    if key in _swept:
        return
    _swept.add(key)
    cutoff = time.time() - STALE_TEMPORARY_S
    try:
        with os.scandir(folder) as entries:
            found = [entry for entry in entries if _TEMPORARY.fullmatch(entry.name)]
    except OSError:
        return
    for entry in found:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                logger.debug("removed %s, a temporary file a stopped writer left in the feature store", entry.path)
        except OSError:
            continue
