"""The pair journal: results survive reopening, a corrupt file is moved aside, impossible rows are ignored,
several processes can write to one journal at once; a full disk, an I/O error or a file that cannot be opened
stops the run with an error naming the journal and leaves it as it is; a lock held by another process is waited
for with a message, then named in an error."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import delfverify.journal as journal_module
from delfverify.journal import JournalError, PairJournal, PairRecord
from delfverify.store import MAX_KEYPOINTS

FP = "fingerprint-a"



def _r(inliers: int, putative: int) -> PairRecord:
    """A pair's record with plenty of keypoints in both photos."""
    return PairRecord(inliers, putative, 100, 100)


def _keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04x}" * 4 for i in range(n)]


def test_put_get_round_trip(tmp_path):
    with PairJournal(tmp_path / "journal.sqlite") as journal:
        journal.put(FP, "q1", "g1", _r(12, 40))
        journal.put(FP, "q1", "g2", _r(0, 0))
        journal.put(FP, "q2", "g1", _r(np.int64(3), np.int64(7)))  # numpy integers are stored as plain ints
        found = journal.get(FP, [("q1", "g1"), ("q1", "g2"), ("q2", "g1"), ("q2", "g2")])
        assert found == {("q1", "g1"): _r(12, 40), ("q1", "g2"): _r(0, 0), ("q2", "g1"): _r(3, 7)}
        assert all(type(v) is int for record in found.values() for v in record)
        assert all(type(v) is int for pair in found.values() for v in pair)
        assert journal.corrupt == 0


def test_fingerprints_are_kept_apart(tmp_path):
    with PairJournal(tmp_path / "journal.sqlite") as journal:
        journal.put(FP, "q", "g", _r(12, 40))
        assert journal.get("other-settings", [("q", "g")]) == {}
        assert journal.get(FP, [("g", "q")]) == {}  # pairs are ordered (query, gallery)


def test_put_replaces_existing_result(tmp_path):
    with PairJournal(tmp_path / "journal.sqlite") as journal:
        journal.put(FP, "q", "g", _r(12, 40))
        journal.put(FP, "q", "g", _r(5, 9))
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): _r(5, 9)}


def test_reopen_keeps_data(tmp_path):
    path = tmp_path / "deep" / "folder" / "journal.sqlite"  # folders are created
    journal = PairJournal(path)
    for i, (q, g) in enumerate(zip(_keys("a", 20), _keys("b", 20))):
        journal.put(FP, q, g, _r(i, 2 * i))
    journal.close()
    with PairJournal(path) as again:
        found = again.get(FP, list(zip(_keys("a", 20), _keys("b", 20))))
    assert found == {(q, g): _r(i, 2 * i) for i, (q, g) in enumerate(zip(_keys("a", 20), _keys("b", 20)))}


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
        journal.put(FP, "q", "g", _r(4, 5))
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): _r(4, 5)}
    finally:
        journal.close()
    with PairJournal(path) as again:  # the fresh journal is a valid one
        assert again.corrupt == 0
        assert again.get(FP, [("q", "g")]) == {("q", "g"): _r(4, 5)}


def test_journal_of_another_schema_version_is_moved_aside(tmp_path):
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with PairJournal(path) as journal:
        assert journal.corrupt == 1
        assert len(list(tmp_path.glob("journal.sqlite.corrupt-*"))) == 1
        journal.put(FP, "q", "g", _r(1, 1))
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): _r(1, 1)}


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
        journal.put(FP, "q", "g", _r(4, 5))
    connect = sqlite3.connect
    failures = [1, 2, 3]
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: _BusyAtFirst(connect(*a, **kw), failures))
    with PairJournal(path) as journal:
        assert failures == []
        assert journal.corrupt == 0
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): _r(4, 5)}
    assert list(tmp_path.glob("*.corrupt-*")) == []


@pytest.mark.parametrize("inliers, putative", [(10, 5), (-1, 5), (-3, -1), ("many", 5), (2.5, 5), (None, 3)])
def test_impossible_rows_are_ignored_and_counted(tmp_path, caplog, inliers, putative):
    path = tmp_path / "journal.sqlite"
    with PairJournal(path) as journal:
        journal.put(FP, "q", "good", _r(3, 8))
    db = sqlite3.connect(path)
    db.execute("INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?)", (FP, "q", "bad", inliers, putative, 100, 100))
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING, logger="delfverify.journal"), PairJournal(path) as journal:
        found = journal.get(FP, [("q", "good"), ("q", "bad")])
        assert found == {("q", "good"): _r(3, 8)}
        assert journal.corrupt == 1
        assert any("impossible" in r.getMessage() for r in caplog.records)
        journal.put(FP, "q", "bad", _r(2, 6))  # recomputed and written over
        assert journal.get(FP, [("q", "bad")]) == {("q", "bad"): _r(2, 6)}
        assert journal.corrupt == 1


def _write_pairs(path: str, prefix: str, n: int, start) -> None:
    start.wait(timeout=60)  # all processes create/open the journal at the same moment
    with PairJournal(path) as journal:
        for i, q in enumerate(_keys(prefix, n)):
            journal.put(FP, q, "g" * 16, _r(i % 50, 50))


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
            assert found == {pair: _r(i % 50, 50) for i, pair in enumerate(pairs)}
        assert journal.corrupt == 0
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM pairs").fetchone()[0] == 450
    db.close()


# --- only real damage moves a journal aside; the surroundings stop the run ----------------------------------------

def _journal_with_rows(path, n=5):
    with PairJournal(path) as journal:
        for i in range(n):
            journal.put(FP, f"q{i}", "g", _r(i, 10))


def _all_rows(path, n=5):
    with PairJournal(path) as journal:
        assert journal.corrupt == 0
        return journal.get(FP, [(f"q{i}", "g") for i in range(n)])


def test_disk_full_stops_with_an_error_naming_the_journal_and_keeps_it(tmp_path):
    path = tmp_path / "journal.sqlite"
    journal = PairJournal(path)
    journal.put(FP, "q-before", "g", _r(4, 5))
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite now answers SQLITE_FULL, as on a full disk
    with pytest.raises(JournalError) as info:
        for i in range(10_000):
            journal.put(FP, f"q{i:060d}", "g" * 64, _r(1, 2))
    journal.close()
    assert str(info.value) == (f"{path}: cannot use the journal (database or disk is full): free space on its disk, "
                               f"or choose another cache folder (--cache-dir). The journal is left as it is: the "
                               f"next run reuses the pairs it holds")
    assert list(tmp_path.glob("*.corrupt-*")) == []
    with PairJournal(path) as again:  # intact, and everything committed before the disk filled is there
        assert again.corrupt == 0
        assert again.get(FP, [("q-before", "g")]) == {("q-before", "g"): _r(4, 5)}
        assert len(again.get(FP, [(f"q{j:060d}", "g" * 64) for j in range(i)])) == i > 0


class _FailingConnection:
    """A connection whose statements starting with ``prefix`` fail with SQLite's ``code``, as they would on a full
    disk, a failing disk or a read-only folder."""

    def __init__(self, db, prefix, code, message):
        self._db, self._prefix, self._code, self._message = db, prefix, code, message

    def execute(self, sql, *args):
        if sql.startswith(self._prefix):
            error = sqlite3.OperationalError(self._message)
            error.sqlite_errorcode = self._code
            raise error
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


ENVIRONMENT_ERRORS = {
    "disk-full": (sqlite3.SQLITE_FULL, "database or disk is full", "free space on its disk"),
    "io-error-write": (sqlite3.SQLITE_IOERR_WRITE, "disk I/O error", "check its disk"),
    "io-error-shm": (sqlite3.SQLITE_IOERR_SHMOPEN, "disk I/O error", "check its disk"),
    "cannot-open": (sqlite3.SQLITE_CANTOPEN, "unable to open database file", "make its folder writable"),
    "read-only": (sqlite3.SQLITE_READONLY, "attempt to write a readonly database", "make it and its folder writable"),
}


@pytest.mark.parametrize("case", list(ENVIRONMENT_ERRORS))
@pytest.mark.parametrize("statement", ["PRAGMA journal_mode", "SELECT", "INSERT"])
def test_environment_errors_stop_the_run_and_leave_the_journal_as_it_is(tmp_path, monkeypatch, case, statement):
    code, message, remedy = ENVIRONMENT_ERRORS[case]
    path = tmp_path / "journal.sqlite"
    _journal_with_rows(path)
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect",
                        lambda *a, **kw: _FailingConnection(connect(*a, **kw), statement, code, message))
    with pytest.raises(JournalError) as info:
        with PairJournal(path) as journal:  # opening reads (SELECT); then a lookup and a write
            journal.get(FP, [("q0", "g")])
            journal.put(FP, "q-new", "g", _r(1, 1))
    assert str(info.value).startswith(f"{path}: cannot use the journal ({message}): {remedy}, or choose another")
    monkeypatch.undo()
    assert list(tmp_path.glob("*.corrupt-*")) == []
    assert _all_rows(path) == {(f"q{i}", "g"): _r(i, 10) for i in range(5)}


def test_a_journal_that_cannot_be_opened_is_not_moved_aside(tmp_path):
    path = tmp_path / "journal.sqlite"
    path.mkdir()  # a directory where the journal should be: SQLite cannot open it
    with pytest.raises(JournalError, match=r"cannot use the journal \(unable to open database file\): make its"):
        PairJournal(path)
    assert path.is_dir() and list(tmp_path.iterdir()) == [path]


def test_a_locked_journal_is_waited_for_with_a_message(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(journal_module, "_BUSY_STEP", 0.05)
    path = tmp_path / "journal.sqlite"
    _journal_with_rows(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock

    class ReleaseWhenWaiting(logging.Handler):  # the holder finishes as soon as the run says it waits
        def emit(self, record):
            if "is locked by another process" in record.getMessage():
                holder.execute("COMMIT")

    handler = ReleaseWhenWaiting()
    logging.getLogger("delfverify.journal").addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING, logger="delfverify.journal"), PairJournal(path) as journal:
            journal.put(FP, "q-new", "g", _r(1, 2))
            assert journal.get(FP, [("q-new", "g")]) == {("q-new", "g"): _r(1, 2)}
    finally:
        logging.getLogger("delfverify.journal").removeHandler(handler)
        holder.close()
    waits = [r.getMessage() for r in caplog.records if "locked" in r.getMessage()]
    assert waits == [f"journal {path} is locked by another process (another delfverify run sharing this cache?); "
                     f"waiting up to 60 s"]


_HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # holds the lock until the test closes stdin
"""


@contextlib.contextmanager
def locked_by_another_process(path):
    """A real process holding the journal's write lock while the block runs."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_journal_locked_past_the_timeout_is_an_error_naming_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(journal_module, "LOCK_TIMEOUT", 0.5)
    monkeypatch.setattr(journal_module, "_BUSY_STEP", 0.05)
    path = tmp_path / "journal.sqlite"
    _journal_with_rows(path)
    with locked_by_another_process(path), caplog.at_level(logging.WARNING, logger="delfverify.journal"):
        with PairJournal(path) as journal:
            assert journal.get(FP, [("q1", "g")]) == {("q1", "g"): _r(1, 10)}  # reading is not blocked (WAL)
            with pytest.raises(JournalError) as info:
                journal.put(FP, "q-new", "g", _r(1, 2))
    assert str(info.value) == (f"{path}: journal locked by another process for more than 0.5 s (another delfverify "
                               f"run sharing this cache?); let it finish, or choose another cache folder "
                               f"(--cache-dir)")
    assert any("waiting up to" in r.getMessage() for r in caplog.records)
    assert _all_rows(path) == {(f"q{i}", "g"): _r(i, 10) for i in range(5)}  # nothing lost, nothing moved aside
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_a_journal_of_version_1_is_upgraded_and_its_rows_recomputed(tmp_path):
    """Rows written before keypoint counts were kept are left out (recomputed); the journal is not moved aside."""
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE pairs (fingerprint TEXT, query TEXT, gallery TEXT, num_inliers INTEGER, "
               "num_putative INTEGER, PRIMARY KEY (fingerprint, query, gallery))")
    db.execute("INSERT INTO pairs VALUES (?, ?, ?, ?, ?)", (FP, "q", "old", 4, 5))
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with PairJournal(path) as journal:
        assert journal.get(FP, [("q", "old")]) == {} and journal.corrupt == 0
        journal.put(FP, "q", "old", _r(4, 5))
        assert journal.get(FP, [("q", "old")]) == {("q", "old"): _r(4, 5)}
    assert not list(tmp_path.glob("*.corrupt-*"))


# --- the journal is input: a schema it cannot use is damage, rows with impossible values are recomputed (#19) ------

_V1 = ("CREATE TABLE pairs (fingerprint TEXT, query TEXT, gallery TEXT, num_inliers INTEGER, num_putative INTEGER, "
       "PRIMARY KEY (fingerprint, query, gallery))")
_V2 = ("CREATE TABLE pairs (fingerprint TEXT, query TEXT, gallery TEXT, num_inliers INTEGER, num_putative INTEGER, "
       "num_features_query INTEGER, num_features_gallery INTEGER, PRIMARY KEY (fingerprint, query, gallery))")
_COLUMNS = ["fingerprint TEXT", "query TEXT", "gallery TEXT", "num_inliers INTEGER", "num_putative INTEGER",
            "num_features_query INTEGER", "num_features_gallery INTEGER"]


@pytest.mark.parametrize("script", [
    "PRAGMA user_version=2;",  # the case: the current version without its table
    "CREATE TABLE pairs (a, b); PRAGMA user_version=2;",
    f"{_V2.replace('num_putative', 'putative')}; PRAGMA user_version=2;",
    f"{_V2.replace('num_inliers INTEGER', 'num_inliers INTEGER CHECK (num_inliers < 0)')}; PRAGMA user_version=2;",
    f"{_V2.replace('query TEXT', 'query TEXT COLLATE NOCASE')}; PRAGMA user_version=2;",
    f"{_V2}; CREATE TRIGGER forget AFTER INSERT ON pairs BEGIN DELETE FROM pairs; END; PRAGMA user_version=2;",
    f"{_V2}; CREATE VIEW everything AS SELECT * FROM pairs; PRAGMA user_version=2;",
    f"{_V2}; CREATE TABLE notes (text); PRAGMA user_version=2;",
    "CREATE TABLE notes (text);",  # version 0, but another program's database
    "CREATE VIEW pairs AS SELECT 1 AS fingerprint; PRAGMA user_version=2;",
    f"{_V2}; PRAGMA user_version=1;",  # version 1 holding version 2's table: adding the columns would fail
    "PRAGMA user_version=1;",
    "PRAGMA user_version=-1;",
], ids=["current-version-without-table", "other-columns", "renamed-column", "check-constraint", "collation",
        "trigger", "view", "foreign-table", "version-0-foreign-table", "view-named-pairs", "version-1-of-version-2",
        "version-1-without-table", "negative-version"])
def test_a_database_the_journal_cannot_use_is_moved_aside_and_the_run_goes_on(tmp_path, caplog, script):
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript(script)
    db.close()
    with caplog.at_level(logging.WARNING, logger="delfverify.journal"), PairJournal(path) as journal:
        assert journal.corrupt == 1
        journal.put(FP, "q", "g", _r(3, 8))
        assert journal.get(FP, [("q", "g")]) == {("q", "g"): _r(3, 8)}
    assert len(list(tmp_path.glob("journal.sqlite.corrupt-*"))) == 1
    damaged = f"journal {path} is damaged or not a valid database"
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [damaged]
    with PairJournal(path) as again:  # the next run uses the fresh journal
        assert again.corrupt == 0 and again.get(FP, [("q", "g")]) == {("q", "g"): _r(3, 8)}


#: Where the property tests write their many small journals: memory when the system has it (no disk syncs).
_SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@st.composite
def _schemas(draw):
    """A database SQLite opens: a schema version, maybe a table named pairs of some of the journal's columns (in
    any order, maybe retyped, maybe keyed), maybe other objects beside it."""
    version = draw(st.sampled_from([0, 0, 1, 1, 2, 2, 2, 3, 99]))
    statements = []
    shape = draw(st.sampled_from(["v2", "v2", "v1", "none", "none", "drawn"]))
    if shape in ("v1", "v2"):
        statements.append(_V1 if shape == "v1" else _V2)
    elif shape == "drawn":
        columns = draw(st.lists(st.sampled_from(_COLUMNS), min_size=1, max_size=8, unique=True))
        columns = [c if draw(st.booleans()) else f"{c.split()[0]} {draw(st.sampled_from(['', 'REAL', 'BLOB']))}"
                   for c in columns]
        key = ", PRIMARY KEY (fingerprint, query, gallery)" if draw(st.booleans()) and all(
            any(c.startswith(k + " ") for c in columns) for k in ("fingerprint", "query", "gallery")) else ""
        statements.append(f"CREATE TABLE pairs ({', '.join(columns)}{key})")
    first = statements[0].split("(")[1].split()[0] if statements else ""
    extra = draw(st.sampled_from(["", "", "", "CREATE TABLE notes (text)", f"CREATE INDEX by_first ON pairs ({first})",
                                  "CREATE VIEW seen AS SELECT 1",
                                  "CREATE TRIGGER t AFTER INSERT ON pairs BEGIN SELECT 1; END"]))
    if extra and (statements or "ON pairs" not in extra):
        statements.append(extra)
    statements.append(f"PRAGMA user_version={version}")
    usable = ((version == 0 and statements[:-1] in ([], [_V2])) or (version == 1 and statements[:-1] == [_V1])
              or (version == 2 and statements[:-1] == [_V2]))
    return statements, usable


@settings(max_examples=60, deadline=None)
@given(_schemas())
def test_databases_of_every_schema_are_used_exactly_when_they_are_the_journals(drawn):
    statements, usable = drawn
    with tempfile.TemporaryDirectory(dir=_SCRATCH) as folder:
        path = Path(folder) / "journal.sqlite"
        db = sqlite3.connect(path)
        for statement in statements:
            db.execute(statement)
        db.commit()
        db.close()
        with PairJournal(path) as journal:  # never an exception
            assert journal.corrupt == (0 if usable else 1)
            journal.put(FP, "q", "g", _r(3, 8))
            assert journal.get(FP, [("q", "g")]) == {("q", "g"): _r(3, 8)}
        assert len(list(Path(folder).glob("journal.sqlite.corrupt-*"))) == (0 if usable else 1)
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA user_version").fetchone()[0] == journal_module.SCHEMA_VERSION
        assert {row[0] for row in check.execute("SELECT sql FROM sqlite_master WHERE type = 'table'")} == {_V2}
        check.close()


_COUNT = st.one_of(st.integers(0, 200), st.integers(-2**63, 2**63 - 1), st.just(MAX_KEYPOINTS),
                   st.just(MAX_KEYPOINTS + 1), st.floats(allow_nan=False), st.text(max_size=3), st.binary(max_size=3),
                   st.none(), st.just("9" * 5000))


@st.composite
def _possible_rows(draw):
    """Counts a verification can give: inliers <= putative <= the larger keypoint count <= MAX_KEYPOINTS."""
    inliers, putative, keypoints = sorted(draw(st.lists(st.integers(0, MAX_KEYPOINTS), min_size=3, max_size=3)))
    other = draw(st.integers(0, MAX_KEYPOINTS))
    return (inliers, putative, keypoints, other) if draw(st.booleans()) else (inliers, putative, other, keypoints)


_ROWS = st.one_of(_possible_rows(), st.tuples(_COUNT, _COUNT, _COUNT, _COUNT))


def _possible(values) -> bool:
    """The documented rule, in plain Python."""
    if not all(type(v) is int and 0 <= v <= MAX_KEYPOINTS for v in values):
        return False
    inliers, putative, query, gallery = values
    return inliers <= putative <= max(query, gallery)


_SHARED: dict = {}


def _shared_journal() -> Path:
    """One journal for every example of the next test (each example writes under its own fingerprint)."""
    if "path" not in _SHARED:
        _SHARED["folder"] = tempfile.TemporaryDirectory(dir=_SCRATCH)
        _SHARED["path"] = Path(_SHARED["folder"].name) / "journal.sqlite"
        PairJournal(_SHARED["path"]).close()
    _SHARED["examples"] = _SHARED.get("examples", 0) + 1
    return _SHARED["path"]


@settings(max_examples=100, deadline=None)
@given(st.lists(_ROWS, min_size=1, max_size=6))
def test_rows_of_every_value_are_used_exactly_when_possible_else_recomputed_with_a_short_warning(rows):
    path = _shared_journal()
    fingerprint = f"example-{_SHARED['examples']}"
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(fingerprint, f"q{i}", "g", *values) for i, values in enumerate(rows)])
    db.commit()
    stored = db.execute("SELECT query, num_inliers, num_putative, num_features_query, num_features_gallery FROM pairs "
                        "WHERE fingerprint = ?", (fingerprint,)).fetchall()  # as kept (column types convert some)
    db.close()
    logger = logging.getLogger("delfverify.journal")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        with PairJournal(path) as journal:
            found = journal.get(fingerprint, [(f"q{i}", "g") for i in range(len(rows))])
            corrupt = journal.corrupt
    finally:
        logger.removeHandler(handler)
    old = {q for q, a, b, c, d in stored if c is None and d is None and type(a) is int and type(b) is int}
    expected = {(q, "g"): PairRecord(*values) for q, *values in stored if _possible(values)}
    assert found == expected
    assert corrupt == len(stored) - len(expected) - len(old) == len(records)  # rows of version 1: recomputed quietly
    assert all("ignoring impossible entry" in r.getMessage() and len(r.getMessage()) < 400 for r in records)
