"""Pair journal: inlier counts of verified (query, gallery) pairs, written as they are computed.

A SQLite database in WAL mode: each result is committed at once, so a run killed at any moment keeps every pair
it finished, a re-run with the same settings reuses them, and several runs may share one journal (SQLite
serialises writers; ``busy_timeout`` waits instead of failing). Rows are keyed by the pair fingerprint (features,
matching and RANSAC settings) and the two images' content hashes. A journal that is not a valid database is
moved aside (``<name>.corrupt-<time>``), reported, and started afresh; a row with impossible values is ignored
and recomputed.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_TIMEOUT = 60.0  # seconds to wait for other processes writing to the same journal


def _busy(exc: sqlite3.Error) -> bool:
    """Whether an error only means that another connection holds a lock (retry), not a broken file."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class PairJournal:
    """Persistent ``(fingerprint, query_key, gallery_key) -> (num_inliers, num_putative)``.

    Parameters
    ----------
    path : path
        The SQLite file (created with its folder).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.corrupt = 0
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if _busy(exc):  # another process holds the journal for longer than the timeout: not corruption
                raise
            self._move_aside(exc)

    def _move_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Move a damaged journal (and its WAL files) to ``<name>.corrupt-<time>``, report it, start afresh."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        logger.warning("journal %s is damaged or not a valid database (%s); moved to %s, starting afresh",
                       self.path, exc, aside)
        self.corrupt += 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.replace(Path(f"{aside}{suffix}"))
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=_TIMEOUT, isolation_level=None)
        try:
            # Switching to WAL answers SQLITE_BUSY at once, without the busy timeout, while another process
            # opens the same new journal: wait and retry instead (it is not corruption).
            deadline = time.monotonic() + _TIMEOUT
            while True:
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if not _busy(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"journal schema version {version}, expected {SCHEMA_VERSION}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS pairs (fingerprint TEXT, query TEXT, gallery TEXT, "
                "num_inliers INTEGER, num_putative INTEGER, PRIMARY KEY (fingerprint, query, gallery))"
            )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM pairs LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _recover(self, exc: sqlite3.DatabaseError) -> bool:
        """After opening, a damaged page (found only when read) or any other database error must not stop a run.

        A damaged file is moved aside and started afresh (returns True); any other error (e.g. disk full, or
        locked past the timeout) is reported and the journal is skipped for this call (returns False).
        """
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.warning("journal %s is damaged or not a valid database (%s); moved to %s, starting afresh",
                       self.path, exc, aside)
            self.corrupt += 1
            self._db.close()
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(Path(f"{aside}{suffix}"))
            self._db = self._open()
            return True
        logger.warning("journal %s: %s; going on without it for this call", self.path, exc)
        return False

    def get(self, fingerprint: str, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
        """Stored results for the given (query_key, gallery_key) pairs; absent pairs are left out (also when the
        journal turns out to be damaged: it is then moved aside and the pairs are recomputed)."""
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for query, gallery in pairs:
            try:
                row = self._db.execute(
                    "SELECT num_inliers, num_putative FROM pairs WHERE fingerprint=? AND query=? AND gallery=?",
                    (fingerprint, query, gallery),
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return {}
            if row is None:
                continue
            inliers, putative = row
            if not (isinstance(inliers, int) and isinstance(putative, int) and 0 <= inliers <= putative):
                logger.warning("journal %s: ignoring impossible entry %r for pair %s/%s; recomputing",
                               self.path, row, query[:12], gallery[:12])
                self.corrupt += 1
                continue
            found[(query, gallery)] = (inliers, putative)
        return found

    def put(self, fingerprint: str, query: str, gallery: str, num_inliers: int, num_putative: int) -> None:
        """Record one pair's result (committed immediately). A database error is reported, never raised: the run
        keeps the result, only the next run does not find it."""
        row = (fingerprint, query, gallery, int(num_inliers), int(num_putative))
        try:
            self._db.execute("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?)", row)
        except sqlite3.DatabaseError as exc:
            if self._recover(exc):
                self._db.execute("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?)", row)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "PairJournal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
