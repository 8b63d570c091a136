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
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.warning("journal %s is not a valid database (%s); moved to %s, starting afresh",
                           self.path, exc, aside)
            self.corrupt += 1
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(Path(f"{aside}{suffix}"))
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
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

    def get(self, fingerprint: str, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
        """Stored results for the given (query_key, gallery_key) pairs; absent pairs are left out."""
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for query, gallery in pairs:
            row = self._db.execute(
                "SELECT num_inliers, num_putative FROM pairs WHERE fingerprint=? AND query=? AND gallery=?",
                (fingerprint, query, gallery),
            ).fetchone()
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
        """Record one pair's result (committed immediately)."""
        self._db.execute(
            "INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?)",
            (fingerprint, query, gallery, int(num_inliers), int(num_putative)),
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "PairJournal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
