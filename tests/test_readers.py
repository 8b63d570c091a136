"""Every reader of delfverify on untrusted input, by kind (issue #19): arbitrary bytes and arbitrary rows give a
parsed result that keeps its invariants, or a ``DelfverifyError`` naming the file; nothing else. Readers: predictions,
gallery, truth (solution), ids, details, policy, null table, feature store entry, pair journal."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import socket
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from test_numbers import LOOKALIKES

from delfverify.calibration import NullTableError, read_null_table
from delfverify.details import CANDIDATE_DETAILS_COLUMNS, DETAILS_COLUMNS, read_details
from delfverify.errors import DelfverifyError
from delfverify.features import Features
from delfverify.journal import JournalError, PairJournal, PairRecord
from delfverify.policy import PolicyError, load_policy
from delfverify.policy.schema import MAX_INLIERS
from delfverify.report import write_report
from delfverify.store import FeatureStore, content_hash
from delfverify.tables import FORMATS, TableError, read_gallery, read_ids, read_predictions, read_solution

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
#: Cells a hostile user writes: numbers of other scripts, underscores, words Python reads as numbers, overflow,
#: negative numbers, quotes, commas, line breaks, NUL, a BOM, very long text, and some plain values.
NASTY = ["0", "1", "0.5", "0.25", "1e-05", "3", "-", "0.7_5", "٣", "٠٫٥", "０.５", "nan", "inf", "-inf", "1e400",
         "-1", "-0.5", "2", "99999999999999999999999", "", " ", '"', "'", ",", "\n", "\r", "\x00", "\ufeff", "é",
         "a b", "x" * 300, "True", "False", "error", "astronaut", "q1", "g1", "id"]
NASTY_CELLS = st.lists(st.sampled_from(NASTY), min_size=1, max_size=3).map(" ".join) | st.text(max_size=12)
#: Cells of files that read: ids, labels, scores.
PLAIN = st.sampled_from(["q1", "q2", "g1", "g2", "g 3", " q4", "astronaut", "Pier 1", "camera 0.5", "0.5", "1", "0",
                         "astronaut 0.5", "a 0.5 b 0.25", "0.75", ""]) | st.from_regex(r"[a-f0-9]{4}", fullmatch=True)


def mostly(plain, nasty=NASTY_CELLS):
    """Draws of ``plain``, and one in four of ``nasty``: files that often read, so that their invariants are
    checked, and often fail, one value at a time."""
    return st.one_of(plain, plain, plain, nasty)


CELLS = mostly(PLAIN)
HEADERS = [list(cols) for cols in FORMATS.values()] + [["id", "landmark_id"], ["id", "landmark_id", "path"],
                                                       ["id", "landmarks", "Usage"], ["id"], list(DETAILS_COLUMNS),
                                                       list(CANDIDATE_DETAILS_COLUMNS), ["id", "id"], ["x", " id"],
                                                       ["id", " id", "landmark_id"], ["id", "landmarks", "id "]]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def csv_files(draw, headers: list[list[str]]) -> bytes:
    """A CSV file: mostly one of ``headers`` (else another or a bad one) and rows of cells, some short or long,
    written by Python's CSV writer (quoted where needed); or arbitrary bytes after a header; or arbitrary bytes."""
    kind = draw(st.sampled_from(["rows", "rows", "rows", "bytes after header", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    header = draw(mostly(st.sampled_from(headers), st.sampled_from(HEADERS) | st.lists(CELLS, min_size=1, max_size=4)))
    if kind == "bytes after header":
        return ",".join(header).encode() + b"\n" + draw(st.binary(max_size=300))
    width = len(header)
    sizes = mostly(st.just(width), st.sampled_from([max(1, width - 1), width + 1]))  # rows short or long
    rows = [draw(st.lists(CELLS, min_size=size, max_size=size)) for size in draw(st.lists(sizes, max_size=4))]
    text = io.StringIO()
    csv.writer(text, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([header, *rows])
    return text.getvalue().encode("utf-8")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readers")


def _read(reader, path: Path, data: bytes, errors: tuple[type, ...]):
    """``reader(path)`` of a file holding ``data``: its result, or None after an error of ``errors`` naming the
    file on one line."""
    path.write_bytes(data)
    try:
        result = reader(path)
    except errors as exc:
        event(f"refused: {type(exc).__name__}")
        message = str(exc)
        assert isinstance(exc, DelfverifyError) and message.startswith(f"{path}: ")
        assert "\n" not in message and len(message) < 1000, message
        return None
    event("read")
    return result


@FUZZ
@given(data=csv_files([list(cols) for cols in FORMATS.values()]))
def test_predictions_reader_gives_predictions_or_a_table_error(folder, data):
    predictions = _read(read_predictions, folder / "p.csv", data, (TableError,))
    if predictions is None:
        return
    table = predictions.table
    labelled = predictions.has_label
    assert np.all(np.isfinite(predictions.confidence[labelled]))
    assert np.all((predictions.confidence[labelled] >= 0) & (predictions.confidence[labelled] <= 1))
    assert np.all(np.isnan(predictions.confidence[~labelled]))
    assert all(isinstance(i, str) and i.strip() for i in table["id"])
    assert predictions.query_starts is not None  # the rows of each id are consecutive


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(CELLS.filter(lambda s: s.strip() and s == s.strip()), min_size=1, max_size=5, unique=True),
       scores=st.lists(st.sampled_from(["0.5", "1", "0", "1e-05", ".25", " 0.75"]), min_size=5, max_size=5))
def test_ids_and_labels_are_kept_exactly(folder, ids, scores):
    rows = [["id", "label", "confidence"]] + [[pid, f"label {pid}", score] for pid, score in zip(ids, scores)]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)  # a bare "\r" ends a line
    predictions = _read(read_predictions, folder / "exact.csv", text.getvalue().encode(), (TableError,))
    assert predictions is not None
    assert predictions.table["id"].tolist() == ids
    assert predictions.table["label"].tolist() == [f"label {pid}".strip() for pid in ids]
    assert predictions.confidence.tolist() == [float(s) for s in scores[: len(ids)]]


@FUZZ
@given(data=csv_files([["id", "landmark_id"], ["id", "landmark_id", "path"], ["id", " id", "landmark_id"]]))
def test_gallery_reader_gives_a_gallery_or_a_table_error(folder, data):
    gallery = _read(read_gallery, folder / "g.csv", data, (TableError,))
    if gallery is not None:
        assert gallery.table["id"].is_unique and (gallery.table["landmark_id"] != "").all()
        assert all(isinstance(v, str) for v in gallery.table.to_numpy().ravel())


@FUZZ
@given(data=csv_files([["id", "landmarks"], ["id", "landmarks", "Usage"]]))
def test_truth_reader_gives_a_solution_or_a_table_error(folder, data):
    solution = _read(read_solution, folder / "t.csv", data, (TableError,))
    if solution is not None:
        assert solution.table["id"].is_unique
        assert all(isinstance(v, str) for v in solution.table.to_numpy().ravel())


@FUZZ
@given(data=csv_files([["id"], ["id", "path"], ["id", "landmark_id", "path"]]))
def test_ids_reader_gives_ids_or_a_table_error(folder, data):
    ids = _read(read_ids, folder / "i.csv", data, (TableError,))
    if ids is not None:
        assert ids["id"].is_unique and all(isinstance(v, str) and v.strip() for v in ids["id"])


@st.composite
def details_files(draw) -> bytes:
    """A details file as ``rerank`` writes it, with nasty values in its number and list columns."""
    columns = draw(st.sampled_from([DETAILS_COLUMNS, CANDIDATE_DETAILS_COLUMNS]))
    numbers = mostly(st.sampled_from(["0.5", "0.1", "1", "0", "1e-05", ""]), st.sampled_from(NASTY))
    counts = st.lists(mostly(st.sampled_from(["-", "0", "12", "3"]),
                             st.sampled_from(["-1", "1e400", "inf", "٣", "1000001", "", "1.5", "x"])), max_size=3)
    rows = []
    for _ in range(draw(st.integers(0, 3))):
        inliers = draw(counts)
        gallery = draw(mostly(st.lists(st.sampled_from(["g1", "g2", "g3"]), min_size=len(inliers),
                                       max_size=len(inliers) + 1), st.lists(st.sampled_from(["g1", "g 2"]))))
        row = {"id": draw(st.sampled_from(["q1", "q2", "q3"])), "label": draw(CELLS), "band": "0-1",
               "old_confidence": draw(numbers), "new_confidence": draw(numbers), "false_match_rate": draw(numbers),
               "gallery_ids": " ".join(gallery), "inliers": " ".join(inliers),
               "status": draw(st.sampled_from(["verified", "boosted", "error", "no_gallery", "stopped", "odd"])),
               "reason": draw(CELLS),
               "rank": draw(mostly(st.sampled_from(["1", "2"]), st.sampled_from(["0", "inf", "1.5", "-1", "٣", "9"]))),
               "chosen": draw(mostly(st.sampled_from(["True", "False"]), st.sampled_from(["true", "1", "yes", ""])))}
        rows.append([row[c] for c in columns])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([columns, *rows])
    return text.getvalue().encode()


@FUZZ
@given(data=details_files() | csv_files([list(DETAILS_COLUMNS)]))
def test_details_reader_gives_checked_details_that_make_a_report_or_an_error(folder, data):
    details = _read(read_details, folder / "d.csv", data, (TableError, DelfverifyError))
    if details is None:
        return
    for column in ("old_confidence", "new_confidence"):
        values = details[column].to_numpy(float)
        assert np.all(np.isnan(values) | ((values >= 0) & (values <= 1)))
    if "rank" in details.columns:
        assert (details["rank"] >= 1).all()
    for cell, gallery in zip(details["inliers"], details["gallery_ids"]):
        counts = [w for w in cell.split(" ") if cell]
        assert all(w == "-" or 0 <= int(w) <= MAX_INLIERS for w in counts) and len(counts) <= len(gallery.split())
    write_report(details, folder / "report.html")  # the checked details always make a report


def _json_text(doc) -> str:
    return json.dumps(doc).replace('"@NaN"', "NaN").replace('"@big"', "1e400").replace('"@huge"', "9" * 30)


policy_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2000) | st.floats(-1, 2) | st.sampled_from(["@NaN", "@big", "@huge"])
    | st.sampled_from(["bands", "additive", "multiplicative", "max", "spread", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["mode", "bands", "lower", "upper", "k", "min_inliers", "boost", "suppress", "set",
                         "multiply", "range", "fusion", "weight", "cap", "seed", "info", "name", "skip"]),
        inner, max_size=5), max_leaves=12)


@FUZZ
@given(data=st.binary(max_size=200) | policy_values.map(lambda doc: _json_text(doc).encode())
       | st.builds(lambda lower, k: _json_text({"bands": [{"lower": lower, "upper": 1, "k": k, "min_inliers": 5}]})
                   .encode(), st.sampled_from([0, "@NaN", "@big", -0.0]), st.sampled_from([1, "@huge", 1000, "@NaN"])))
def test_policy_reader_gives_a_policy_or_a_policy_error(folder, data):
    policy = _read(lambda path: load_policy(path, "rootsift"), folder / "policy.json", data, (PolicyError,))
    if policy is not None:
        for band in policy.bands:
            assert all(math.isfinite(v) for v in (band.lower, band.upper)) and 1 <= band.k <= 1000


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_null_table_reader_gives_a_table_or_a_null_table_error(folder, data):
    _read(read_null_table, folder / "null.json", data, (NullTableError,))


def _valid_entry(root: Path) -> bytes:
    rng = np.random.default_rng(0)
    features = Features(locations=rng.uniform(0, 100, (6, 2)).astype(np.float32),
                        descriptors=rng.integers(0, 256, (6, 128)).astype(np.uint8),
                        scales=np.ones(6, np.float32), scores=np.ones(6, np.float32), image_shape=(100, 120))
    store = FeatureStore(root, "fingerprint", 128)
    store.put(content_hash(b"valid"), features)
    return store.path(content_hash(b"valid")).read_bytes()


@st.composite
def damaged(draw, valid: bytes) -> bytes:
    """``valid`` damaged: bytes overwritten, cut or inserted (or not at all), anywhere or in a zip header (its
    compression method, flags, sizes); or arbitrary bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    data = bytearray(valid)
    headers = [m.start() for m in re.finditer(b"PK", bytes(data))] or [0]  # zip headers and their fields
    for _ in range(draw(st.integers(0, 4))):  # 0: the valid entry
        at = draw(st.integers(0, len(data)) | st.sampled_from(headers).flatmap(
            lambda start: st.integers(start, start + 46)))
        how = draw(st.sampled_from(["overwrite", "cut", "insert"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if how == "overwrite":
            data[at:at + len(chunk)] = chunk
        elif how == "cut":
            del data[at:]
        else:
            data[at:at] = chunk
    return bytes(data)


VALID_ENTRY = _valid_entry(Path(__import__("tempfile").mkdtemp()))


@FUZZ
@given(data=damaged(VALID_ENTRY))
def test_a_store_entry_of_any_bytes_is_features_or_set_aside(folder, data):
    store = FeatureStore(folder / "store", "fingerprint", 128)
    key = content_hash(data)
    path = store.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    features = store.get(key)  # never raises: a bad entry is a miss, set aside
    event("set aside" if features is None else "read")
    if features is None:
        assert store.stats.corrupt == 1 and not path.exists() and path.with_name(f"{path.name}.bad").is_file()
    else:
        assert np.isfinite(features.locations).all() and len(features.descriptors) == len(features.locations)


def _valid_journal(path: Path) -> bytes:
    with PairJournal(path) as journal:
        for i in range(20):
            journal.put("fp", f"q{i}", f"g{i}", PairRecord(i, 2 * i, 100, 100))
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    return path.read_bytes()


VALID_JOURNAL = _valid_journal(Path(__import__("tempfile").mkdtemp()) / "journal.sqlite")
_journals = itertools.count()


@settings(max_examples=50, deadline=None)  # a journal each: the slowest reader to fuzz
@given(data=damaged(VALID_JOURNAL))
def test_a_journal_of_any_bytes_opens_fresh_or_is_a_journal_error(folder, data):
    path = folder / f"journal-{next(_journals)}" / "journal.sqlite"
    path.parent.mkdir()
    path.write_bytes(data)
    try:
        with PairJournal(path) as journal:
            event(f"opened, {journal.corrupt} moved aside")
            found = journal.get("fp", [(f"q{i}", f"g{i}") for i in range(20)])
            assert all(record.possible() for record in found.values())
            journal.put("fp", "q", "g", PairRecord(1, 2, 3, 4))
            assert journal.get("fp", [("q", "g")]) == {("q", "g"): PairRecord(1, 2, 3, 4)}
    except JournalError as exc:
        assert str(path) in str(exc)


# --- numbers by the one rule, in every format -------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(confidence=st.sampled_from(LOOKALIKES) | st.builds("".join, st.lists(
           st.sampled_from(list("0.5") + ["_", "٣", "٠", "٫", "３", "０", "৫", "e400", "nan", "inf"]), min_size=2,
           max_size=5)).filter(lambda t: not re.fullmatch(r"[0-9.]*(e400)?", t)),
       fmt=st.sampled_from(list(FORMATS)))
def test_a_confidence_python_would_read_but_not_ascii_decimal_names_its_row(folder, confidence, fmt):
    if fmt == "kaggle":  # a Kaggle cell splits into words at any white space: "\u20070.5" is the word "0.5"
        assume(confidence and confidence == confidence.strip())
    rows = [list(FORMATS[fmt]), ["q1", "astronaut", "0.5"], ["q2", "camera", confidence]]
    if fmt == "kaggle":
        rows = [row[:1] + [" ".join(row[1:])] for row in rows[1:]]
        rows.insert(0, ["id", "landmarks"])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)
    path = folder / "lookalike.csv"
    path.write_text(text.getvalue(), encoding="utf-8")
    with pytest.raises(TableError) as caught:
        read_predictions(path)
    assert str(caught.value).startswith(f"{path}: row 3: confidence ")


# --- inputs that are not regular files: read up to a limit ------------------------------------------------------

READERS = {
    "predictions": (read_predictions, (DATA / "predictions.csv").read_bytes(), "268435456"),
    "gallery": (read_gallery, (DATA / "gallery.csv").read_bytes(), "268435456"),
    "truth": (read_solution, (DATA / "truth.csv").read_bytes(), "268435456"),
    "ids": (read_ids, (DATA / "gallery.csv").read_bytes(), "268435456"),
    "details": (read_details, b"id,label,band,old_confidence,new_confidence,gallery_ids,inliers,status,reason\n"
                              b"q1,astronaut,0-1,0.5,0.9,g1 g2,12 -,boosted,\n", "268435456"),
    "policy": (lambda path: load_policy(path, "rootsift"),
               b'{"bands": [{"lower": 0, "upper": 0.5, "min_inliers": 9}, {"lower": 0.5, "upper": 1}]}', "1048576"),
    "null table": (read_null_table, b"", "8388608"),
}


@pytest.mark.parametrize("name", list(READERS))
def test_dev_zero_given_to_any_reader_ends_quickly_in_an_error_naming_it_and_the_limit(name):
    reader, _, limit = READERS[name]
    started = time.perf_counter()
    with pytest.raises(DelfverifyError) as caught:
        reader("/dev/zero")
    assert str(caught.value).startswith(f"/dev/zero: is a character device that gives more than {limit} bytes")
    assert time.perf_counter() - started < 20


@pytest.mark.parametrize("name", [name for name in READERS if name != "null table"])
def test_any_reader_reads_a_fifo_as_the_file_it_carries(tmp_path, name):
    reader, data, _ = READERS[name]
    (tmp_path / "file").write_bytes(data)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,), daemon=True)
    writer.start()
    from_fifo = reader(fifo)
    writer.join(timeout=60)
    expected = reader(tmp_path / "file")
    if hasattr(expected, "table"):
        from_fifo, expected = from_fifo.table, expected.table
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(from_fifo, expected)
    else:
        assert from_fifo == expected


@pytest.mark.parametrize("name", list(READERS))
def test_a_directory_or_a_socket_given_to_any_reader_is_named(tmp_path, name):
    reader = READERS[name][0]
    with pytest.raises(DelfverifyError, match=rf"^{re.escape(str(tmp_path))}: is a directory"):
        reader(tmp_path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket"))
    try:
        with pytest.raises(DelfverifyError, match=rf"^{re.escape(str(tmp_path / 'socket'))}: "):
            reader(tmp_path / "socket")
    finally:
        server.close()
