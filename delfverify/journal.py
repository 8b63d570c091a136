"""Pair journal: inlier counts of verified (query, gallery) pairs, written as they are computed.

A SQLite database in WAL mode: each result is committed at once, so a run killed at any moment keeps every pair
it finished, a re-run with the same settings reuses them, and several runs may share one journal (SQLite
serialises writers). Rows are keyed by the pair fingerprint (features, matching and RANSAC settings) and the two
images' content hashes.

What goes wrong, and what happens:

- The file is damaged: SQLite says it is corrupt or not a database, or it is a database this code cannot use (another
  schema version; or its tables, indexes, triggers or views are not exactly those this code creates for its
  version, a journal of the current version without its table included). It is moved aside
  (``<name>.corrupt-<time>``), reported, and started afresh: the run goes on. Only real damage does this.
- Another process holds the journal's lock: a warning says so and the run waits, up to ``LOCK_TIMEOUT`` (60 s)
  in all for one statement; then ``JournalError`` names the journal file.
- The disk is full, an I/O error, or the file or its folder cannot be opened or written: ``JournalError`` names
  the file and the remedy, and stops the run. The journal is left as it is, and the next run reuses it.
- A row with impossible values (not integers, negative, more inliers than putative matches, more putative matches
  than either photo has keypoints, or counts above ``delfverify.store.MAX_KEYPOINTS``) is ignored with a warning
  quoting it (values shortened), and recomputed.

The file is input like any other: its schema is checked when it is opened, before any row is read, and SQLite is
told not to trust it (``PRAGMA trusted_schema=OFF``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, NamedTuple

from .errors import DelfverifyError, shorten
from .store import MAX_KEYPOINTS

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: Seconds to wait for another process that holds the journal's lock, for one statement, before giving up.
LOCK_TIMEOUT = 60.0
_BUSY_STEP = 1.0  # SQLite's own wait per attempt: the first attempt that times out logs that the run waits

#: The table of each schema version, as SQLite keeps its statement (``sqlite_master.sql``); version 2 is also what
#: adding the keypoint counts to version 1's gives.
_TABLES = {
    1: "CREATE TABLE pairs (fingerprint TEXT, query TEXT, gallery TEXT, num_inliers INTEGER, num_putative INTEGER, "
       "PRIMARY KEY (fingerprint, query, gallery))",
    2: "CREATE TABLE pairs (fingerprint TEXT, query TEXT, gallery TEXT, num_inliers INTEGER, num_putative INTEGER, "
       "num_features_query INTEGER, num_features_gallery INTEGER, PRIMARY KEY (fingerprint, query, gallery))",
}
_INDEX = ("index", "sqlite_autoindex_pairs_1", "pairs", None)  # the primary key's
#: Everything a journal of each version may hold (``sqlite_master``'s rows: type, name, table, statement). Version 0
#: is a new file, empty, or whose table another process has just created.
_SCHEMAS = {
    0: (frozenset(), frozenset({("table", "pairs", "pairs", _TABLES[2]), _INDEX})),
    1: (frozenset({("table", "pairs", "pairs", _TABLES[1]), _INDEX}),),
    2: (frozenset({("table", "pairs", "pairs", _TABLES[2]), _INDEX}),),
}

_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_REMEDIES = {
    sqlite3.SQLITE_FULL: "free space on its disk",
    sqlite3.SQLITE_IOERR: "check its disk",
    sqlite3.SQLITE_READONLY: "make it and its folder writable",
    sqlite3.SQLITE_PERM: "make it and its folder writable",
    sqlite3.SQLITE_CANTOPEN: "make its folder writable",
}


class PairRecord(NamedTuple):
    """What the journal keeps of a verified pair: enough to rescale its prediction and to tell whether the pair
    could give evidence at all (``delfverify.verification.unverifiable_reason``)."""

    num_inliers: int
    num_putative: int
    num_features_query: int
    num_features_gallery: int

    def possible(self) -> bool:
        """Whether the values can come from a verification: integer counts of at most ``MAX_KEYPOINTS``, inliers
        among the putative matches, and no more putative matches than a photo has keypoints (each keypoint of the
        gallery photo has at most one match)."""
        return (all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_KEYPOINTS for v in self)
                and self.num_inliers <= self.num_putative
                <= max(self.num_features_query, self.num_features_gallery))


class JournalError(DelfverifyError):
    """The journal cannot be used (disk full, I/O error, no permission, locked by another process for too long);
    the message names the file and the remedy. The journal itself is left as it is."""


class _WrongSchema(sqlite3.DatabaseError):
    """A valid database this code cannot use (another schema version, other tables): treated as damage."""


def _schema(db: sqlite3.Connection, path: Path) -> tuple[int, frozenset]:
    """The journal's schema version and what it holds (``sqlite_master``'s rows)."""
    version = _run(db, path, "PRAGMA user_version").fetchone()[0]
    objects = frozenset(_run(db, path, "SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall())
    return version, objects


def _check_schema(version: int, objects: frozenset) -> None:
    """Raise ``_WrongSchema`` unless the journal holds exactly what this code creates for its version."""
    if version not in _SCHEMAS:
        raise _WrongSchema(f"journal schema version {version}, expected {SCHEMA_VERSION}")
    if objects not in _SCHEMAS[version]:
        held = {(kind, name) for kind, name, _, _ in objects}
        if ("table", "pairs") not in held:
            raise _WrongSchema(f"journal schema version {version} without its table pairs")
        if any(held == {(kind, name) for kind, name, _, _ in schema} for schema in _SCHEMAS[version]):
            raise _WrongSchema(f"its table pairs is not that of journal schema version {version} (other columns, "
                               f"types or constraints)")
        names = ", ".join(sorted(f"{kind} {name}" for kind, name in held))
        raise _WrongSchema(f"it holds {shorten(names, 120)}: not only the table pairs of journal schema version "
                           f"{version}")


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
    """Persistent ``(fingerprint, query_key, gallery_key) -> PairRecord`` (inliers, putative matches, keypoints).

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
            _run(db, self.path, "PRAGMA trusted_schema=OFF")  # the file is input: its schema runs no functions
            _run(db, self.path, "PRAGMA journal_mode=WAL")
            _run(db, self.path, "PRAGMA synchronous=NORMAL")
            version, objects = _schema(db, self.path)
            upgrade = version != SCHEMA_VERSION
            if upgrade:  # to create or upgrade: under the write lock, looking again (another run may have done it)
                _run(db, self.path, "BEGIN IMMEDIATE")
                version, objects = _schema(db, self.path)
            _check_schema(version, objects)
            if version == 0:
                _run(db, self.path, _TABLES[SCHEMA_VERSION].replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
            elif version == 1:  # rows of version 1 lack the keypoint counts: they are recomputed when needed
                for column in ("num_features_query", "num_features_gallery"):
                    _run(db, self.path, f"ALTER TABLE pairs ADD COLUMN {column} INTEGER")
            if version != SCHEMA_VERSION:
                _run(db, self.path, f"PRAGMA user_version={SCHEMA_VERSION}")
            if upgrade:
                _run(db, self.path, "COMMIT")
            _run(db, self.path, "SELECT count(*) FROM pairs LIMIT 1").fetchone()
        except BaseException:
            db.close()  # rolls back an upgrade begun
            raise
        return db

    def get(self, fingerprint: str, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], PairRecord]:
        """Stored results for the given (query_key, gallery_key) pairs; absent pairs are left out (also when the
        journal turns out to be damaged: it is then moved aside and the pairs are recomputed, and rows of an older
        version without keypoint counts).

        Raises
        ------
        JournalError
            If the journal cannot be read (I/O error, locked by another process for too long).
        """
        found: dict[tuple[str, str], PairRecord] = {}
        for query, gallery in pairs:
            try:
                row = _run(self._db, self.path,
                           "SELECT num_inliers, num_putative, num_features_query, num_features_gallery FROM pairs "
                           "WHERE fingerprint=? AND query=? AND gallery=?", (fingerprint, query, gallery)).fetchone()
            except sqlite3.DatabaseError as exc:
                self._handle(exc)
                return {}
            if row is None or (row[2] is None and row[3] is None and all(isinstance(v, int) for v in row[:2])):
                continue  # absent, or a row of version 1
            record = PairRecord(*row)
            if not record.possible():
                logger.warning("journal %s: ignoring impossible entry (%s) for pair %s/%s; recomputing", self.path,
                               ", ".join(f"{field} {shorten(repr(value), 40)}" for field, value in
                                         zip(PairRecord._fields, row)), query[:12], gallery[:12])
                self.corrupt += 1
                continue
            found[(query, gallery)] = record
        return found

    def put(self, fingerprint: str, query: str, gallery: str, record: PairRecord) -> None:
        """Record one pair's result (committed immediately; into a fresh journal if this one turns out damaged).

        Raises
        ------
        JournalError
            If it cannot be written (disk full, I/O error, no permission, locked by another process for too long).
        """
        row = (fingerprint, query, gallery, *(int(value) for value in record))
        statement = "INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?)"
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
