"""Pair journal: inlier counts of verified (query, gallery) pairs, written as they are computed.

A SQLite database in WAL mode: each result is committed at once, so a run killed at any moment keeps every pair
it finished, a re-run with the same settings reuses them, and several runs may share one journal (SQLite
serialises writers). Rows are keyed by the pair fingerprint (features, matching and RANSAC settings) and the two
images' content hashes.

What goes wrong, and what happens:

- The file is damaged (SQLite says it is corrupt or not a database, or it holds another schema version): it is
  moved aside (``<name>.corrupt-<time>``), reported, and started afresh. Only real damage does this.
- Another process holds the journal's lock: a warning says so and the run waits, up to ``LOCK_TIMEOUT`` (60 s)
  in all for one statement; then ``JournalError`` names the journal file.
- The disk is full, an I/O error, or the file or its folder cannot be opened or written: ``JournalError`` names
  the file and the remedy, and stops the run. The journal is left as it is, and the next run reuses it.
- A row with impossible values is ignored and recomputed.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from .errors import DelfverifyError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: Seconds to wait for another process that holds the journal's lock, for one statement, before giving up.
LOCK_TIMEOUT = 60.0
_BUSY_STEP = 1.0  # SQLite's own wait per attempt: the first attempt that times out logs that the run waits

_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_REMEDIES = {
    sqlite3.SQLITE_FULL: "free space on its disk",
    sqlite3.SQLITE_IOERR: "check its disk",
    sqlite3.SQLITE_READONLY: "make it and its folder writable",
    sqlite3.SQLITE_PERM: "make it and its folder writable",
    sqlite3.SQLITE_CANTOPEN: "make its folder writable",
}


class JournalError(DelfverifyError):
    """The journal cannot be used (disk full, I/O error, no permission, locked by another process for too long);
    the message names the file and the remedy. The journal itself is left as it is."""


class _WrongSchema(sqlite3.DatabaseError):
    """A valid database of another schema version: treated as damage."""


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of an error (0 when it has none)."""
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _run(db: sqlite3.Connection, path: Path, sql: str, params: tuple = ()) -> sqlite3.Cursor:
    """Execute one statement; while another process holds the lock, say so and wait, up to ``LOCK_TIMEOUT``.

    Raises
    ------
    JournalError
        If the lock is still held after ``LOCK_TIMEOUT`` seconds.
    """
    deadline = None
    while True:
        try:
            return db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if _code(exc) not in _LOCKED:
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + LOCK_TIMEOUT
                logger.warning("journal %s is locked by another process (another delfverify run sharing this "
                               "cache?); waiting up to %g s", path, LOCK_TIMEOUT)
            elif now >= deadline:
                raise JournalError(f"{path}: journal locked by another process for more than {LOCK_TIMEOUT:g} s "
                                   f"(another delfverify run sharing this cache?); let it finish, or choose another "
                                   f"cache folder (--cache-dir)") from None
            time.sleep(0.01)  # switching to WAL answers at once, without SQLite's own wait


class PairJournal:
    """Persistent ``(fingerprint, query_key, gallery_key) -> (num_inliers, num_putative)``.

    Parameters
    ----------
    path : path
        The SQLite file (created with its folder).

    Raises
    ------
    JournalError
        If the journal cannot be created, opened or written, or stays locked by another process.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.corrupt = 0
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot create the journal's folder ({exc.strerror or exc}); choose "
                               f"another cache folder (--cache-dir)") from None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            self._handle(exc)

    def _handle(self, exc: sqlite3.DatabaseError) -> None:
        """Move a damaged journal aside and start afresh; any other error stops the run with ``JournalError``."""
        if not (isinstance(exc, _WrongSchema) or _code(exc) in _CORRUPT):
            raise self._unusable(exc) from None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        logger.warning("journal %s is damaged or not a valid database (%s); moved to %s, starting afresh",
                       self.path, exc, aside)
        self.corrupt += 1
        if self._db is not None:
            self._db.close()
            self._db = None
        try:
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(Path(f"{aside}{suffix}"))
        except OSError as error:
            raise JournalError(f"{self.path}: journal damaged ({exc}) and cannot be moved aside "
                               f"({error.strerror or error}); remove it, or choose another cache folder "
                               f"(--cache-dir)") from None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as error:  # even a fresh journal fails: not damage, the surroundings
            raise self._unusable(error) from None

    def _unusable(self, exc: sqlite3.DatabaseError) -> JournalError:
        """The error that stops a run whose journal cannot be used, with the remedy for SQLite's reason."""
        remedy = _REMEDIES.get(_code(exc), "check it and its folder")
        return JournalError(f"{self.path}: cannot use the journal ({exc}): {remedy}, or choose another cache folder "
                            f"(--cache-dir). The journal is left as it is: the next run reuses the pairs it holds")

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=_BUSY_STEP, isolation_level=None)
        try:
            _run(db, self.path, "PRAGMA journal_mode=WAL")
            _run(db, self.path, "PRAGMA synchronous=NORMAL")
            version = _run(db, self.path, "PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise _WrongSchema(f"journal schema version {version}, expected {SCHEMA_VERSION}")
            if version == 0:
                _run(db, self.path,
                     "CREATE TABLE IF NOT EXISTS pairs (fingerprint TEXT, query TEXT, gallery TEXT, "
                     "num_inliers INTEGER, num_putative INTEGER, PRIMARY KEY (fingerprint, query, gallery))")
                _run(db, self.path, f"PRAGMA user_version={SCHEMA_VERSION}")
            _run(db, self.path, "SELECT count(*) FROM pairs LIMIT 1").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def get(self, fingerprint: str, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
        """Stored results for the given (query_key, gallery_key) pairs; absent pairs are left out (also when the
        journal turns out to be damaged: it is then moved aside and the pairs are recomputed).

        Raises
        ------
        JournalError
            If the journal cannot be read (I/O error, locked by another process for too long).
        """
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for query, gallery in pairs:
            try:
                row = _run(self._db, self.path,
                           "SELECT num_inliers, num_putative FROM pairs WHERE fingerprint=? AND query=? AND gallery=?",
                           (fingerprint, query, gallery)).fetchone()
            except sqlite3.DatabaseError as exc:
                self._handle(exc)
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
        """Record one pair's result (committed immediately; into a fresh journal if this one turns out damaged).

        Raises
        ------
        JournalError
            If it cannot be written (disk full, I/O error, no permission, locked by another process for too long).
        """
        row = (fingerprint, query, gallery, int(num_inliers), int(num_putative))
        statement = "INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?)"
        try:
            _run(self._db, self.path, statement, row)
        except sqlite3.DatabaseError as exc:
            self._handle(exc)
            try:
                _run(self._db, self.path, statement, row)
            except sqlite3.DatabaseError as error:
                raise self._unusable(error) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "PairJournal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
