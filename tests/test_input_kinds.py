"""Kinds of silent wrong result a hostile review found in the readers (issue #19, round 3), each ruled out by one
mechanism and tested by kind, over every reader it concerns: a column named twice, a JSON field named twice, the
words of a cell, Kaggle cells of several candidates, details a run cannot write, a predictions file given as the
truth, and a DataFrame with an unknown column."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delfverify import cli
from delfverify.calibration import NullTableError, read_null_table
from delfverify.csv_input import SPACE, words, words_by_row
from delfverify.details import CANDIDATE_DETAILS_COLUMNS, DETAILS_COLUMNS, DetailsError, check_details, read_details
from delfverify.errors import DelfverifyError
from delfverify.metrics import load_truth, match_predictions, outcomes
from delfverify.numbers import RepeatedFieldError, load_json
from delfverify.policy import PolicyError, load_policy
from delfverify.rescaling import STATUSES
from delfverify.tables import (FORMATS, Predictions, TableError, as_gallery, as_ids, as_predictions, as_solution,
                               read_gallery, read_ids, read_predictions, read_solution, write_predictions)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
KINDS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Every CSV reader, with a header it reads.
CSV_READERS = {
    "predictions kaggle": (read_predictions, list(FORMATS["kaggle"])),
    "predictions landmarks_confidence": (read_predictions, list(FORMATS["landmarks_confidence"])),
    "predictions label_confidence": (read_predictions, list(FORMATS["label_confidence"])),
    "gallery": (read_gallery, ["id", "landmark_id", "path"]),
    "truth": (read_solution, ["id", "landmarks", "Usage"]),
    "ids": (read_ids, ["id", "path"]),
    "details": (read_details, list(DETAILS_COLUMNS)),
    "candidate details": (read_details, list(CANDIDATE_DETAILS_COLUMNS)),
}
#: Every reader of a DataFrame, with the columns it reads.
FRAME_READERS = {
    "predictions": (as_predictions, ["id", "label", "confidence"]),
    "gallery": (as_gallery, ["id", "landmark_id", "path"]),
    "truth": (as_solution, ["id", "landmarks"]),
    "ids": (as_ids, ["id", "path"]),
}


def _one_line_naming(exc: BaseException, *names: str) -> str:
    message = str(exc)
    assert isinstance(exc, DelfverifyError) and isinstance(exc, ValueError)
    assert "\n" not in message and all(name in message for name in names), message
    return message


def _csv(rows) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


def _main(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


# --- a column named twice ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", list(CSV_READERS))
@KINDS
@given(data=st.data())
def test_every_csv_reader_refuses_a_column_named_twice_naming_it(tmp_path, reader, data):
    read, header = CSV_READERS[reader]
    column = data.draw(st.sampled_from(header), label="column")
    spaces = data.draw(st.sampled_from(["", " ", "  ", "\t"]), label="spaces")
    where = data.draw(st.integers(0, len(header)), label="where")
    repeated = header[:where] + [spaces + column + spaces[::-1]] + header[where:]
    path = tmp_path / "file.csv"
    path.write_bytes(_csv([repeated, ["x"] * len(repeated)]))
    with pytest.raises(TableError) as caught:
        read(path)
    message = _one_line_naming(caught.value, f"{path}: ", f"column {column} appears twice")
    assert ".1" not in message  # never a name pandas made up


@pytest.mark.parametrize("reader", list(FRAME_READERS))
def test_every_frame_reader_refuses_a_column_named_twice(reader):
    read, columns = FRAME_READERS[reader]
    frame = pd.DataFrame([["q1"] * (len(columns) + 1)], columns=[*columns, columns[-1]])
    with pytest.raises(TableError) as caught:
        read(frame)
    _one_line_naming(caught.value, f"column {columns[-1]} appears twice")


def test_the_reported_headers_are_refused_by_the_command(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("id,landmarks,landmarks\nda07d5ba65959f62,astronaut,x\n")
    status, out, err = _main("gap", DATA / "predictions.csv", "--truth", truth)
    assert status == 2 and not out
    assert err == f"delfverify: error: {truth}: column landmarks appears twice in the header; give each column once\n"


# --- a JSON field named twice -----------------------------------------------------------------------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text("abk", min_size=1, max_size=2), inner, max_size=3), max_leaves=8)


def _with_a_field_twice(doc, path: list[int], key: str) -> tuple[str, str]:
    """``doc`` as JSON text with its object at ``path`` (indices into the objects met, depth first) naming ``key``
    twice; and that object's field path."""
    objects = []

    def walk(value, where):
        if isinstance(value, dict):
            objects.append((value, where))
            for k, item in value.items():
                walk(item, f"{where}.{k}" if where else k)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    walk(doc, "")
    target, where = objects[path[0] % len(objects)]
    target[key] = 1
    marker = "\x00twice\x00"
    target[marker] = 2
    text = json.dumps(doc).replace(json.dumps(marker), json.dumps(key))
    return text, where


@KINDS
@given(doc=st.dictionaries(st.text("abk", min_size=1, max_size=2), _JSON, max_size=3), at=st.lists(st.integers(0, 50),
       min_size=1, max_size=1), key=st.text("abkz", min_size=1, max_size=2))
def test_load_json_refuses_a_field_named_twice_at_any_depth_naming_its_object(doc, at, key):
    text, where = _with_a_field_twice(doc, at, key)
    with pytest.raises(RepeatedFieldError) as caught:
        load_json(text, "doc")
    assert str(caught.value) == f"doc{'.' + where if where else ''}: field {key!r} appears twice"


POLICY = {"mode": "bands", "bands": [{"lower": 0, "upper": 0.5, "min_inliers": 9}, {"lower": 0.5, "upper": 1}]}


@pytest.mark.parametrize("reader, text, where", [
    ("policy", json.dumps(POLICY).replace('"bands": [', '"bands": [], "bands": ['), "policy: field 'bands'"),
    ("policy", json.dumps(POLICY).replace('"min_inliers": 9', '"min_inliers": 9, "min_inliers": 3'),
     "policy.bands[0]: field 'min_inliers'"),
    ("null table", '{"format": "a", "pairs": [], "format": "b"}', "field 'format'"),
])
def test_every_json_reader_refuses_a_field_named_twice(tmp_path, reader, text, where):
    path = tmp_path / "file.json"
    path.write_text(text)
    read, error = {"policy": (lambda p: load_policy(p, "rootsift"), PolicyError),
                   "null table": (read_null_table, NullTableError)}[reader]
    with pytest.raises(error) as caught:
        read(path)
    _one_line_naming(caught.value, f"{path}: ", f"{where} appears twice")


# --- the words of a cell ----------------------------------------------------------------------------------------

_LETTERS = st.text("ab1\u00e9\u00a0\u2003\x1c", min_size=1, max_size=3).filter(lambda w: w.strip(SPACE) == w)
_SEPARATORS = st.text(SPACE, min_size=1, max_size=3)


@st.composite
def _cells(draw) -> str:
    labels = draw(st.lists(_LETTERS.filter(lambda w: words(w) == [w]), max_size=4))
    separators = draw(st.lists(_SEPARATORS, min_size=len(labels) + 1, max_size=len(labels) + 1))
    return separators[0] + "".join(label + sep for label, sep in zip(labels, separators[1:]))


@KINDS
@given(cells=st.lists(_cells(), max_size=6))
def test_words_by_row_splits_each_text_as_words_does(cells):
    split = words_by_row(pd.Series(cells, dtype=object))
    assert [(i, w) for i, cell in enumerate(cells) for w in words(cell)] == list(zip(split.index, split))


@KINDS
@given(cells=st.lists(_cells(), min_size=1, max_size=6), picks=st.lists(st.integers(0, 9), min_size=6, max_size=6))
def test_gap_and_the_report_read_the_same_true_labels(cells, picks):
    """Other spaces (a no-break space, an em space, \\x1c) are part of a label for both; ASCII white space
    separates labels for both."""
    cells = [cell if words(cell) else "astronaut" for cell in cells]
    ids = [f"q{i}" for i in range(len(cells))]
    truth = as_solution(pd.DataFrame({"id": ids, "landmarks": cells}))
    labels = [(words(cell) + ["other", cell.strip(SPACE)])[pick % (len(words(cell)) + 2)]
              for cell, pick in zip(cells, picks)]
    predictions = pd.DataFrame({"id": ids, "label": labels, "confidence": 0.5})
    gap = match_predictions(predictions, truth.table).correct
    report = outcomes(predictions, truth) == "correct"
    assert gap.tolist() == report.tolist()


# --- Kaggle cells of several candidates -------------------------------------------------------------------------

_LABEL_WORDS = st.sampled_from(["castle", "Pier", "fountain", "12345", "678", "1", "0", "2", "x0.5"])
_SCORES = st.sampled_from(["0", "1", "0.5", "0.25", "1e-05", "1.0"])


@KINDS
@given(labels=st.lists(_LABEL_WORDS, min_size=1, max_size=4, unique=True), scores=st.lists(_SCORES, min_size=4,
                                                                                          max_size=4))
def test_a_cell_of_one_word_labels_is_read_as_its_pairs(tmp_path, labels, scores):
    cell = " ".join(f"{label} {score}" for label, score in zip(labels, scores))
    path = tmp_path / "p.csv"
    path.write_text(f"id,landmarks\nq1,{cell}\n")
    table = read_predictions(path).table
    assert sorted(zip(table["label"], table["confidence"])) == sorted(zip(labels, map(float, scores)))


@KINDS
@given(labels=st.lists(st.lists(st.one_of(_LABEL_WORDS, st.just("0.5")), min_size=1, max_size=3).map(" ".join)
                       | st.sampled_from([" castle", "Pier ", "1", "0"]), min_size=1, max_size=3, unique=True),
       scores=st.lists(st.floats(0, 1), min_size=3, max_size=3), order=st.permutations(range(3)))
def test_a_kaggle_table_writes_cells_that_read_back_as_written_in_any_order(tmp_path, labels, scores, order):
    """What a Kaggle table holds, a cell reads back, whatever the order its candidates are in (a run re-ranks
    them): a label that would not is refused when the table is made, before any work."""
    scores = sorted((round(score, 6) for score in scores[: len(labels)]), reverse=True)  # as they are written
    frame = pd.DataFrame({"id": "q1", "label": labels, "confidence": scores})
    try:
        predictions = Predictions(frame, "kaggle")
    except TableError as exc:
        _one_line_naming(exc, "cannot be held by a Kaggle cell", "id,label,confidence")
        assert any(words(label) != [label] or label == "0.5" for label in labels)
        return
    for rows in (range(len(labels)), [i for i in order if i < len(labels)]):
        shuffled = Predictions(frame.iloc[list(rows)].reset_index(drop=True), "kaggle")
        write_predictions(shuffled, tmp_path / "p.csv")
        back = read_predictions(tmp_path / "p.csv").table
        assert sorted(zip(back["label"], back["confidence"])) == sorted(zip(labels, scores))


@pytest.mark.parametrize("cell, pairs", [
    ("12345 1 678 0.5", [("12345", 1.0), ("678", 0.5)]),  # was the label '12345 1 678'
    ("castle 1 fountain 0", [("castle", 1.0), ("fountain", 0.0)]),  # was the label 'castle 1 fountain'
    ("1 0.5 0 0.25", [("1", 0.5), ("0", 0.25)]),  # Google Landmarks' ids 1 and 0
    ("Pier 1 Tower Bridge 0.5", [("Pier", 1.0), ("Tower Bridge", 0.5)]),  # a score ends every label
    ("eiffel\xa0tower 0.5", [("eiffel\xa0tower", 0.5)]),  # a no-break space is part of the word
    ("eiffel\ttower 0.5", [("eiffel\ttower", 0.5)]),
])
def test_kaggle_cells_read_one_way(tmp_path, cell, pairs):
    path = tmp_path / "p.csv"
    path.write_text(f'id,landmarks\nq1,"{cell}"\n')
    table = read_predictions(path).table
    assert list(zip(table["label"], table["confidence"])) == pairs


@pytest.mark.parametrize("cell, detail", [
    ("Gate 0 0.6 1 Hotel 0.3", "the score '0.6' has no label before it"),  # was read as a label '0.6'
    ("0 Y 0.4 X 0 0.3", "the score '0' has no label before it"),  # its labels could not be written back
    ("Pier 1 0.5", "the score '0.5' has no label before it"),
    ("landmark 1 0.5 landmark 0 1e-06", "the score '0.5' has no label before it"),
    ("a 0 b c 0.25 d 0.5 e", "it ends with 'e'"),
])
def test_a_kaggle_cell_with_a_score_inside_a_label_names_its_row_and_column(tmp_path, cell, detail):
    path = tmp_path / "p.csv"
    path.write_text(f"id,landmarks\nq0,x 0.5\nq1,{cell}\n")
    with pytest.raises(TableError) as caught:
        read_predictions(path)
    _one_line_naming(caught.value, f"{path}: row 3: landmarks cell", detail)


# --- details a run cannot write ---------------------------------------------------------------------------------


def _candidate_details(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Candidate details of ``(id, label, status, chosen)`` rows, ranked in order within each id."""
    ranks = pd.Series([r[0] for r in rows]).groupby([r[0] for r in rows]).cumcount() + 1
    return pd.DataFrame({"id": [r[0] for r in rows], "rank": ranks.astype(str), "label": [r[1] for r in rows],
                         "band": "", "old_confidence": "0.5", "new_confidence": "0.5", "gallery_ids": "",
                         "inliers": "", "false_match_rate": "", "status": [r[2] for r in rows], "reason": "",
                         "chosen": [r[3] for r in rows]})[list(CANDIDATE_DETAILS_COLUMNS)]


@KINDS
@given(rows=st.lists(st.tuples(st.sampled_from(["q1", "q2"]), st.sampled_from(["", "astronaut", "camera"]),
                               st.sampled_from([*STATUSES, "exploded", ""]), st.sampled_from(["True", "False"])),
                     min_size=1, max_size=5))
def test_details_are_read_exactly_when_a_run_could_have_written_them(tmp_path, rows):
    rows = sorted(rows, key=lambda r: r[0])  # a run writes the rows of an id together
    frame = _candidate_details(rows)
    chosen = frame.groupby("id")["chosen"].apply(lambda c: (c == "True").sum())
    valid = (all(r[2] in STATUSES and (r[1] == "") == (r[2] == "no_prediction") for r in rows)
             and (chosen == 1).all())
    path = tmp_path / "details.csv"
    path.write_bytes(_csv([frame.columns, *frame.itertuples(index=False)]))
    for read, name in ((read_details, str(path)), (lambda f: check_details(f, "details"), "details")):
        try:
            read(path if name != "details" else frame)
        except DetailsError as exc:
            assert not valid
            _one_line_naming(exc, f"{name}: row ")
            assert any(f" {column}" in str(exc) for column in ("status", "chosen"))
        else:
            assert valid


def test_the_reported_details_are_refused_naming_row_and_column():
    cases = {"status 'exploded' is not one that rerank writes": [("q1", "astronaut", "exploded", "True")],
             "status 'boosted' for a row without a label": [("q1", "", "boosted", "True")],
             "chosen: id 'q1' has no chosen row": [("q1", "astronaut", "verified", "False")],
             "chosen: id 'q1' has a second chosen row": [("q1", "a", "verified", "True"),
                                                         ("q1", "b", "verified", "True")]}
    for message, rows in cases.items():
        with pytest.raises(DetailsError, match="^details: row [23]: " + message):
            check_details(_candidate_details(rows))


# --- a predictions file given as the truth ----------------------------------------------------------------------


def _as_truth_through(how: str, path: Path):
    if how == "gap":
        status, out, err = _main("gap", DATA / "predictions.csv", "--truth", path)
        assert status == 2 and not out and err.count("\n") == 1
        raise TableError(err.rstrip("\n"))
    return {"read_solution": read_solution, "load_truth": load_truth,
            "as_solution frame": lambda p: as_solution(pd.read_csv(p, dtype=str, keep_default_na=False))}[how](path)


@pytest.mark.parametrize("how", ["read_solution", "load_truth", "as_solution frame", "gap"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.lists(st.tuples(st.sampled_from(["astronaut", "12345", "1", "camera"]),
                                         st.floats(0, 1).map(lambda c: f"{c:.4f}")), max_size=3)
                      .map(lambda pairs: " ".join(f"{a} {b}" for a, b in pairs)), min_size=1, max_size=5)
       .filter(lambda cells: any(cells)))
def test_a_predictions_file_given_as_the_truth_is_refused_wherever_truth_is_read(tmp_path, how, cells):
    path = tmp_path / "truth.csv"
    path.write_bytes(_csv([["id", "landmarks"], *[[f"q{i}", cell] for i, cell in enumerate(cells)]]))
    with pytest.raises(TableError) as caught:
        _as_truth_through(how, path)
    _one_line_naming(caught.value, "looks like a predictions file, not the truth", "give the solution file")


@pytest.mark.parametrize("how", ["read_solution", "load_truth", "as_solution frame", "gap"])
def test_predictions_of_every_format_given_as_the_truth_are_refused(tmp_path, how):
    for fmt, text in {"kaggle": "id,landmarks\nq1,astronaut 0.7594\nq2,\n",
                      "landmarks_confidence": "id,landmarks,confidence\nq1,astronaut,0.7594\n"}.items():
        path = tmp_path / f"{fmt}.csv"
        path.write_text(text)
        with pytest.raises(TableError, match="looks like a predictions file"):
            _as_truth_through(how, path)


def test_real_truth_files_are_read():
    for path in [DATA / "truth.csv", *sorted(DATA.glob("**/truth*.csv"))]:
        assert len(read_solution(path).table)
    truth = as_solution(pd.DataFrame({"id": ["q1", "q2"], "landmarks": ["12345 678", "1 0.5 2"]}))
    assert len(truth.table) == 2  # integer labels, and a cell that is not all pairs
    truth = as_solution(pd.DataFrame({"id": ["q1", "q2"], "landmarks": ["12.5 340.25", "7.5 8.5"]}))
    assert len(truth.table) == 2  # decimal labels: their second is not a confidence


# --- a DataFrame with an unknown column -------------------------------------------------------------------------


@KINDS
@given(value=st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=2), st.binary()),
       name=st.sampled_from(["n", "url", "count", "Usage"]), fmt=st.sampled_from(list(FORMATS)))
def test_an_unknown_column_is_named_whatever_it_holds(value, name, fmt):
    columns = {"id": ["q1"], FORMATS[fmt][1]: ["astronaut 0.5" if fmt == "kaggle" else "astronaut"]}
    if fmt != "kaggle":
        columns["confidence"] = [0.5]
    frame = pd.DataFrame({**columns, name: pd.Series([value], dtype=object)})
    with pytest.raises(TableError) as caught:
        as_predictions(frame)
    _one_line_naming(caught.value, f"unknown column {name}")
    for read in (as_gallery, as_solution, as_ids):  # these ignore other columns, as in their files
        read(pd.DataFrame({"id": ["g1"], "landmark_id": ["a"], "landmarks": ["a"], name: pd.Series([value],
                                                                                                   dtype=object)}))


def test_calibrate_names_the_gallery_by_the_path_given(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "gallery.csv").write_text("id,landmark_id\ng1,a\ng2,b\n")  # one pair: too few for a null table
    given = f"{folder}/../sub/gallery.csv"
    status, out, err = _main("calibrate", "--gallery", given, "--gallery-images", folder, "-o",
                             tmp_path / "null.json", "--no-cache", "-q")
    assert status == 2 and err.startswith(f"delfverify: error: {given}: 2 photos give 1 pairs"), err
