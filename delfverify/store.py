"""Feature store: a directory cache of ``Features`` keyed by image content and extractor fingerprint.

Layout: ``<root>/<fingerprint>/<hash[:2]>/<hash>.npz``, one ``.npz`` per image, holding the four arrays, the
extraction scale, the photo's size and a ``format_version``. Version 2 keeps locations in the photo's own pixels (version 1 kept
them in the pixels of the shrunk image); entries of another version are recomputed, never misread. Entries are written to a temporary file in the same folder and renamed into place, so a
reader sees a whole entry or none, and concurrent writers of the same key cannot corrupt it (the last rename
wins; both wrote the same features). Entries are read with ``allow_pickle=False``. A corrupt entry (truncated,
random bytes, wrong shapes or dtypes, another version) or one that cannot be read (a directory or a FIFO in its
place, no permission) is logged, counted in ``stats.corrupt``, removed and recomputed by the caller. An entry
that cannot be written (a full disk, a read-only folder) raises ``StoreError`` naming the entry and the remedy:
the cache is a problem of the whole run, not of one image.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DelfverifyError
from .features import ARRAY_FIELDS, Features
from .fileio import atomic_write, open_regular_file

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2


class StoreError(DelfverifyError):
    """The feature store cannot be written (disk full, no permission); the message names the entry and the remedy."""


def default_cache_dir() -> Path:
    """``$DELFVERIFY_CACHE_DIR``, else ``$XDG_CACHE_HOME/delfverify``, else ``~/.cache/delfverify``."""
    if os.environ.get("DELFVERIFY_CACHE_DIR"):
        return Path(os.environ["DELFVERIFY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "delfverify"


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
        The fingerprint of the extractor and its input size (``Verifier.features_fingerprint``); entries of other extractors or
        settings live in other sub-folders and are never mixed up.
    """

    def __init__(self, root: str | os.PathLike, fingerprint: str):
        if not fingerprint or any(c in fingerprint for c in "/\\."):
            raise ValueError(f"fingerprint must be a plain non-empty name, got {fingerprint!r}")
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.stats = StoreStats()

    def path(self, key: str) -> Path:
        """Where the entry for content hash ``key`` lives."""
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"key must be a lowercase hex content hash, got {key!r}")
        return self.root / self.fingerprint / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Features | None:
        """The stored features, or ``None`` when absent, corrupt or unreadable (such an entry is reported and
        removed).

        Raises
        ------
        StoreError
            If an unusable entry cannot be removed.
        """
        path = self.path(key)
        try:
            with open_regular_file(path) as file, np.load(file, allow_pickle=False) as npz:
                version = int(npz["format_version"])
                if version != FORMAT_VERSION:
                    raise ValueError(f"format_version {version}, expected {FORMAT_VERSION}")
                scale, shape = npz["extraction_scale"], npz["image_shape"]
                if scale.shape != (2,) or scale.dtype != np.float64 or shape.shape != (2,) or shape.dtype != np.int64:
                    raise ValueError(f"extraction_scale {scale.shape} {scale.dtype}, image_shape {shape.shape} "
                                     f"{shape.dtype}")
                features = Features(**{name: npz[name] for name in ARRAY_FIELDS},
                                    extraction_scale=(float(scale[0]), float(scale[1])),
                                    image_shape=(int(shape[0]), int(shape[1])))
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # NotAFileError is a ValueError
            self.stats.corrupt += 1
            self.stats.misses += 1
            logger.warning("corrupt feature store entry %s (%s); recomputing", path, exc)
            self._remove(path)
            return None
        self.stats.hits += 1
        return features

    @staticmethod
    def _remove(path: Path) -> None:
        """Remove an unusable entry, whatever took its place (a file, a FIFO, a directory), so it can be rewritten."""
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot remove this unusable feature store entry ({exc.strerror or exc}); "
                             f"remove it, or choose another cache folder (--cache-dir)") from None

    def put(self, key: str, features: Features) -> None:
        """Write an entry atomically (temporary file in the same folder, then rename), without ``fsync``: after a
        power cut an entry may be empty or damaged, and is then recomputed like any corrupt entry.

        Raises
        ------
        StoreError
            If it cannot be written (disk full, no permission); the message names the entry and the remedy.
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
            raise StoreError(f"{path}: cannot write to the feature store ({exc.strerror or exc}); free space or "
                             f"fix permissions in {self.root}, or choose another cache folder (--cache-dir) or "
                             f"none (--no-cache)") from None
        self.stats.writes += 1
