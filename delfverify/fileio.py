"""Atomic file output: write to a temporary file beside the target, then rename it into place.

A reader (or a run killed half-way) therefore sees either the old file or the complete new one, never a
half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, durable: bool = True, **open_args) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path``, on error it is removed.

    Parameters
    ----------
    path : path
        The final file. Its folder is created if missing.
    mode : {"w", "wb"}
        Text or binary.
    durable : bool
        Flush the data to disk (``fsync``) before the rename, so that a power cut cannot leave an empty file.
        Cache entries that are recomputed when missing or damaged skip it: it costs a disk round trip each.
    **open_args
        Passed to ``open`` (e.g. ``newline=""``, ``encoding="utf-8"``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_args) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
