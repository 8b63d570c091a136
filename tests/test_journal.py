"""The pair journal: results survive reopening, a corrupt file is moved aside, impossible rows are ignored, and
several processes can write to one journal at once."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3

import numpy as np
import pytest

from delfverify.journal import PairJournal

FP = "fingerprint-a"


def _keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04x}" * 4 for i in range(n)]


def test_put_get_round_trip(tmp_path):
    with PairJournal(tmp_path / "journal.sqlite") as journal:
        journal.put(FP, "q1", "g1", 12, 40)
        journal.put(FP, "q1", "g2", 0, 0)
        journal.put(FP, "q2", "g1", np.int64(3), np.int64(7))  # numpy integers are stored as plain ints
        found = journal.get(FP, [("q1", "g1"), ("q1", "g2"), ("q2", "g1"), ("q2", "g2")])
        assert found == {("q1", "g1"): (12, 40), ("q1", "g2"): (0, 0), ("q2", "g1"): (3, 7)}
        assert all(type(v) is int for pair in found.values() for v in pair)
        assert journal.corrupt == 0


def test_fingerprints_are_kept_apart(tmp_path):
    with PairJournal(tmp_path / "journal.sqlite") as journal:
        journal.put(FP, "q", "g", 12, 40)
        assert journal.get("other-settings", [("q", "g")]) == {}
        assert journal.get(FP, [("g", "q")]) == {}  # pairs are ordered (query, gallery)


def test_put_replaces_existing_result(tmp_path):
    with PairJournal(tmp_path / "journal.sqlite") as journal:
        journal.put(FP, "q", "g", 12, 40)
        journal.put(FP, "q", "g", 5, 9)
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): (5, 9)}


def test_reopen_keeps_data(tmp_path):
    path = tmp_path / "deep" / "folder" / "journal.sqlite"  # folders are created
    journal = PairJournal(path)
    for i, (q, g) in enumerate(zip(_keys("a", 20), _keys("b", 20))):
        journal.put(FP, q, g, i, 2 * i)
    journal.close()
    with PairJournal(path) as again:
        found = again.get(FP, list(zip(_keys("a", 20), _keys("b", 20))))
    assert found == {(q, g): (i, 2 * i) for i, (q, g) in enumerate(zip(_keys("a", 20), _keys("b", 20)))}


def test_corrupt_journal_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    junk = np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes()
    path.write_bytes(junk)
    with caplog.at_level(logging.WARNING, logger="delfverify.journal"):
        journal = PairJournal(path)
    try:
        aside = list(tmp_path.glob("journal.sqlite.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == junk
        assert journal.corrupt == 1
        assert any("not a valid database" in r.getMessage() and str(path) in r.getMessage()
                   for r in caplog.records)
        journal.put(FP, "q", "g", 4, 5)
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): (4, 5)}
    finally:
        journal.close()
    with PairJournal(path) as again:  # the fresh journal is a valid one
        assert again.corrupt == 0
        assert again.get(FP, [("q", "g")]) == {("q", "g"): (4, 5)}


def test_journal_of_another_schema_version_is_moved_aside(tmp_path):
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with PairJournal(path) as journal:
        assert journal.corrupt == 1
        assert len(list(tmp_path.glob("journal.sqlite.corrupt-*"))) == 1
        journal.put(FP, "q", "g", 1, 1)
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): (1, 1)}


class _BusyAtFirst:
    """A connection whose switch to WAL answers 'database is locked' a few times, as SQLite does (without waiting)
    while another process opens the same new journal."""

    def __init__(self, db, failures):
        self._db, self._failures = db, failures

    def execute(self, sql, *args):
        if sql.startswith("PRAGMA journal_mode") and self._failures:
            self._failures.pop()
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_locked_journal_is_waited_for_not_moved_aside(tmp_path, monkeypatch):
    path = tmp_path / "journal.sqlite"
    with PairJournal(path) as journal:
        journal.put(FP, "q", "g", 4, 5)
    connect = sqlite3.connect
    failures = [1, 2, 3]
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: _BusyAtFirst(connect(*a, **kw), failures))
    with PairJournal(path) as journal:
        assert failures == []
        assert journal.corrupt == 0
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): (4, 5)}
    assert list(tmp_path.glob("*.corrupt-*")) == []


@pytest.mark.parametrize("inliers, putative", [(10, 5), (-1, 5), (-3, -1), ("many", 5), (2.5, 5), (None, 3)])
def test_impossible_rows_are_ignored_and_counted(tmp_path, caplog, inliers, putative):
    path = tmp_path / "journal.sqlite"
    with PairJournal(path) as journal:
        journal.put(FP, "q", "good", 3, 8)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO pairs VALUES (?, ?, ?, ?, ?)", (FP, "q", "bad", inliers, putative))
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING, logger="delfverify.journal"), PairJournal(path) as journal:
        found = journal.get(FP, [("q", "good"), ("q", "bad")])
        assert found == {("q", "good"): (3, 8)}
        assert journal.corrupt == 1
        assert any("impossible" in r.getMessage() for r in caplog.records)
        journal.put(FP, "q", "bad", 2, 6)  # recomputed and written over
        assert journal.get(FP, [("q", "bad")]) == {("q", "bad"): (2, 6)}
        assert journal.corrupt == 1


def _write_pairs(path: str, prefix: str, n: int, start) -> None:
    start.wait(timeout=60)  # all processes create/open the journal at the same moment
    with PairJournal(path) as journal:
        for i, q in enumerate(_keys(prefix, n)):
            journal.put(FP, q, "g" * 16, i % 50, 50)


def test_concurrent_processes_write_all_rows(tmp_path):
    path = str(tmp_path / "journal.sqlite")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [context.Process(target=_write_pairs, args=(path, prefix, 150, start)) for prefix in ("a", "b", "c")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with PairJournal(path) as journal:
        for prefix in ("a", "b", "c"):
            pairs = [(q, "g" * 16) for q in _keys(prefix, 150)]
            found = journal.get(FP, pairs)
            assert found == {pair: (i % 50, 50) for i, pair in enumerate(pairs)}
        assert journal.corrupt == 0
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM pairs").fetchone()[0] == 450
    db.close()
