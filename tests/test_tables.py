"""The CSV boundary: predictions in three formats read and written back, gallery and solution files as typed
tables, every malformed input reported with the file and row, and atomic output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from delfverify import tables
from delfverify.tables import (
    FORMATS,
    Gallery,
    Predictions,
    TableError,
    read_gallery,
    read_predictions,
    read_solution,
    write_predictions,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"

#: The same three predictions (one of them empty) in each accepted format, as written by ``write_predictions``.
CANONICAL = {
    "kaggle": "id,landmarks\nq1,eiffel 0.75\nq2,\nq3,\"Paris, France 1.0\"\nq4,big ben 0.000123\n",
    "landmarks_confidence": "id,landmarks,confidence\nq1,eiffel,0.75\nq2,,\nq3,\"Paris, France\",1.0\n"
                            "q4,big ben,0.000123\n",
    "label_confidence": "id,label,confidence\nq1,eiffel,0.75\nq2,,\nq3,\"Paris, France\",1.0\n"
                        "q4,big ben,0.000123\n",
}


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _error(path: Path, reader=read_predictions) -> str:
    with pytest.raises(TableError) as info:
        reader(path)
    return str(info.value)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_read_predictions_detects_each_format(tmp_path, fmt):
    predictions = read_predictions(_write(tmp_path / "p.csv", CANONICAL[fmt]))
    assert predictions.format == fmt
    table = predictions.table
    assert list(table.columns) == ["id", "label", "confidence"]
    assert list(table["id"]) == ["q1", "q2", "q3", "q4"]
    assert list(table["label"]) == ["eiffel", "", "Paris, France", "big ben"]
    assert table["confidence"].iloc[0] == 0.75
    assert math.isnan(table["confidence"].iloc[1])
    assert table["confidence"].iloc[2] == 1.0
    assert table["confidence"].iloc[3] == 0.000123


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_write_predictions_round_trips_same_format_and_bytes(tmp_path, fmt):
    source = _write(tmp_path / "in.csv", CANONICAL[fmt])
    predictions = read_predictions(source)
    write_predictions(predictions, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == CANONICAL[fmt]
    again = read_predictions(tmp_path / "out.csv")
    assert again.format == fmt
    pd.testing.assert_frame_equal(again.table, predictions.table)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_write_predictions_round_trips_confidences_in_row_order(tmp_path, fmt):
    rng = np.random.default_rng(7)
    n = 50
    confidence = np.round(rng.random(n), 6)
    confidence[:3] = [0.0, 1.0, 1e-6]
    ids = [f"id{i:03d}" for i in rng.permutation(n)]  # not sorted: order must be kept
    labels = [f"landmark {'abcdefg'[i % 7]}" if i % 9 else "" for i in range(n)]
    confidence = np.where([bool(lab) for lab in labels], confidence, np.nan)
    table = pd.DataFrame({"id": ids, "label": labels, "confidence": confidence})
    write_predictions(Predictions(table, fmt), tmp_path / "out.csv")
    back = read_predictions(tmp_path / "out.csv")
    assert back.format == fmt
    assert list(back.table["id"]) == ids
    assert list(back.table["label"]) == labels
    np.testing.assert_array_equal(back.table["confidence"].to_numpy(), confidence)


def test_write_predictions_rounds_to_six_decimals(tmp_path):
    table = pd.DataFrame({"id": ["a", "b"], "label": ["x", "y"], "confidence": [1 / 3, 0.1 + 0.2]})
    write_predictions(Predictions(table, "kaggle"), tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == "id,landmarks\na,x 0.333333\nb,y 0.3\n"


def test_read_sample_predictions_kaggle_with_crlf():
    predictions = read_predictions(SAMPLE / "predictions.csv")
    assert b"\r\n" in (SAMPLE / "predictions.csv").read_bytes()
    assert predictions.format == "kaggle"
    assert len(predictions.table) == 26
    assert predictions.table["id"].iloc[0] == "da07d5ba65959f62"
    assert predictions.table["label"].iloc[0] == "astronaut"
    assert predictions.table["confidence"].iloc[0] == 0.7594


def test_empty_kaggle_cell_is_no_prediction(tmp_path):
    path = _write(tmp_path / "p.csv", "id,landmarks\na,\nb,   \nc,x 0.5\n")
    table = read_predictions(path).table
    assert list(table["label"]) == ["", "", "x"]
    assert np.isnan(table["confidence"].iloc[:2]).all()


def test_read_predictions_accepts_bom_crlf_and_quoted_labels(tmp_path):
    text = 'id,label,confidence\r\nq1,"Notre-Dame, Paris",0.5\r\nq2,"  Big Ben ",0.25\r\n"q,3",St Paul\'s,1\r\n'
    path = _write(tmp_path / "p.csv", "\ufeff" + text)
    predictions = read_predictions(path)
    assert predictions.format == "label_confidence"
    assert list(predictions.table["id"]) == ["q1", "q2", "q,3"]
    assert list(predictions.table["label"]) == ["Notre-Dame, Paris", "Big Ben", "St Paul's"]
    assert list(predictions.table["confidence"]) == [0.5, 0.25, 1.0]
    write_predictions(predictions, tmp_path / "out.csv")
    assert read_predictions(tmp_path / "out.csv").table.equals(predictions.table)


def test_kaggle_label_with_spaces_and_commas(tmp_path):
    path = _write(tmp_path / "p.csv", '\ufeffid,landmarks\r\nq1,"Tower of London, UK 0.9"\r\nq2,Big Ben 0.1\r\n')
    table = read_predictions(path).table
    assert list(table["label"]) == ["Tower of London, UK", "Big Ben"]
    assert list(table["confidence"]) == [0.9, 0.1]


def test_unknown_columns_list_accepted_formats(tmp_path):
    message = _error(_write(tmp_path / "p.csv", "id,prediction\na,x 0.5\n"))
    assert str(tmp_path / "p.csv") in message
    assert "id,prediction" in message
    for name, columns in FORMATS.items():
        assert name in message and ",".join(columns) in message


def test_empty_predictions_file_is_an_error(tmp_path):
    message = _error(_write(tmp_path / "p.csv", ""))
    assert str(tmp_path / "p.csv") in message and "empty" in message


def test_missing_predictions_file_is_an_error(tmp_path):
    message = _error(tmp_path / "absent.csv")
    assert str(tmp_path / "absent.csv") in message and "not found" in message


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_header_only_is_zero_predictions(tmp_path, fmt):
    header = ",".join(FORMATS[fmt])
    predictions = read_predictions(_write(tmp_path / "p.csv", header + "\r\n"))
    assert predictions.format == fmt
    assert len(predictions.table) == 0
    write_predictions(predictions, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == header + "\n"


def test_same_label_twice_for_an_id_names_both_rows(tmp_path):
    """Several rows of an id are its candidates; the same label twice cannot be."""
    path = _write(tmp_path / "p.csv", "id,landmarks\na,x 0.5\nb,y 0.5\nc,z 0.1\nb,y 0.2\n")
    message = _error(path)
    assert str(path) in message
    assert "row 5" in message and "row 3" in message and "'b'" in message and "'y' twice" in message


def test_duplicate_id_differing_only_in_spaces_is_an_error(tmp_path):
    path = _write(tmp_path / "p.csv", "id,landmarks\na,x 0.5\n a ,y 0.5\n")
    assert _error(path) == (f"{path}: row 3: id ' a ' differs from id 'a' (row 2) only by spaces around it; ids are "
                            f"kept exactly as given, so remove the spaces or one of the rows")


def test_ids_are_kept_exactly_as_given(tmp_path):
    predictions = read_predictions(_write(tmp_path / "p.csv", "id,landmarks\n q1,x 0.5\nq2 ,y 0.4\nq 3,z 0.3\n"))
    assert list(predictions.table["id"]) == [" q1", "q2 ", "q 3"]
    write_predictions(predictions, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == "id,landmarks\n q1,x 0.5\nq2 ,y 0.4\nq 3,z 0.3\n"
    gallery = read_gallery(_write(tmp_path / "g.csv", "id,landmark_id\n g1 ,x\ng2, y\n"))
    assert list(gallery.table["id"]) == [" g1 ", "g2"] and list(gallery.table["landmark_id"]) == ["x", "y"]
    solution = read_solution(_write(tmp_path / "s.csv", "id,landmarks\n q1,x\nq2 , y z \n"))
    assert list(solution.table["id"]) == [" q1", "q2 "] and list(solution.table["landmarks"]) == ["x", "y z"]


def test_empty_id_is_an_error(tmp_path):
    message = _error(_write(tmp_path / "p.csv", "id,landmarks\na,x 0.5\n  ,y 0.5\n"))
    assert "row 3" in message and "empty id" in message


@pytest.mark.parametrize("fmt, value", [(fmt, value) for fmt in ("kaggle", "label_confidence")
                                        for value in ("nan", "NaN", "inf", "-inf", "-0.1", "1.5", "abc", "0.5x")]
                         + [("label_confidence", "")])
def test_bad_confidence_names_file_and_row(tmp_path, fmt, value):
    if fmt == "kaggle":
        text = f"id,landmarks\na,x 0.5\nb,y 0.25\nc,z {value}\n"
    else:
        text = f"id,label,confidence\na,x,0.5\nb,y,0.25\nc,z,{value}\n"
    path = _write(tmp_path / "p.csv", text)
    message = _error(path)
    assert str(path) in message
    assert "row 4" in message
    assert "confidence" in message


def test_kaggle_cell_without_score_is_an_error(tmp_path):
    path = _write(tmp_path / "p.csv", "id,landmarks\na,x 0.5\nb,onlylabel\n")
    message = _error(path)
    assert str(path) in message and "row 3" in message and "onlylabel" in message


def test_confidence_without_label_is_an_error(tmp_path):
    path = _write(tmp_path / "p.csv", "id,landmarks,confidence\na,,0.5\n")
    message = _error(path)
    assert "row 2" in message and "without a label" in message


def test_unparseable_csv_is_a_table_error(tmp_path):
    path = _write(tmp_path / "p.csv", "id,landmarks\na,x 0.5,extra,fields\n")
    assert str(path) in _error(path)


def test_non_utf8_file_is_a_table_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b"id,landmarks\na,\xff\xfe 0.5\n")
    assert str(path) in _error(path)


# --- candidates: several predictions per id ---------------------------------------------------------------------

def test_long_format_rows_of_an_id_are_its_candidates_best_first(tmp_path):
    """Rows of an id need not be consecutive nor sorted: they are grouped at the id's first row and ranked by
    confidence, equal confidences in file order."""
    text = ("id,label,confidence\nq1,eiffel,0.25\nq2,big ben,0.5\nq1,louvre,0.625\nq3,,\nq1,notre dame,0.25\n"
            "q2,tower bridge,0.125\n")
    predictions = read_predictions(_write(tmp_path / "p.csv", text))
    assert predictions.format == "label_confidence"
    table = predictions.table
    assert list(table["id"]) == ["q1", "q1", "q1", "q2", "q2", "q3"]
    assert list(table["label"]) == ["louvre", "eiffel", "notre dame", "big ben", "tower bridge", ""]
    assert list(table["confidence"][:5]) == [0.625, 0.25, 0.25, 0.5, 0.125]
    assert list(predictions.rank) == [1, 2, 3, 1, 2, 1]
    assert list(predictions.query_starts) == [0, 3, 5] and list(predictions.query) == [0, 0, 0, 1, 1, 2]
    write_predictions(predictions, tmp_path / "out.csv")  # long in, long out: one row per candidate, best first
    assert (tmp_path / "out.csv").read_text() == (
        "id,label,confidence\nq1,louvre,0.625\nq1,eiffel,0.25\nq1,notre dame,0.25\nq2,big ben,0.5\n"
        "q2,tower bridge,0.125\nq3,,\n")
    pd.testing.assert_frame_equal(read_predictions(tmp_path / "out.csv").table, table)


def test_one_row_per_id_is_kept_exactly_as_read():
    predictions = read_predictions(SAMPLE / "predictions.csv")
    assert list(predictions.rank) == [1] * 26 and list(predictions.query_starts) == list(range(26))


@pytest.mark.parametrize("cell, pairs", [
    ("astronaut 0.9 camera 0.2", [("astronaut", 0.9), ("camera", 0.2)]),  # never "astronaut 0.9 camera" 0.2
    ("camera 0.2 astronaut 0.9", [("astronaut", 0.9), ("camera", 0.2)]),  # ranked by score
    ("big ben 0.3 eiffel tower 0.6 x 1", [("x", 1.0), ("eiffel tower", 0.6), ("big ben", 0.3)]),
    ("12 0.5 7 0.25 1 0.125", [("12", 0.5), ("7", 0.25), ("1", 0.125)]),  # Kaggle's integer labels
    ("1 0.5 0 1e-06", [("1", 0.5), ("0", 1e-06)]),  # Google Landmarks' ids 1 and 0
    ("Pier 1 Tower Bridge 0.5", [("Pier", 1.0), ("Tower Bridge", 0.5)]),  # a score ends every label
    ("Paris,  France 1.0", [("Paris,  France", 1.0)]),  # one pair: the label as written
])
def test_kaggle_cell_with_several_pairs_gives_candidates(tmp_path, cell, pairs):
    path = _write(tmp_path / "p.csv", f'id,landmarks\nq0,x 0.5\nq1,"{cell}"\n')
    table = read_predictions(path).table
    assert list(zip(table["label"], table["confidence"]))[1:] == pairs
    assert list(table["id"]) == ["q0"] + ["q1"] * len(pairs)


@pytest.mark.parametrize("cell, detail", [
    ("astronaut 0.9 camera", "ends with 'camera'"),
    ("astronaut 0.9 0.2", "the score '0.2' has no label before it"),
    ("0.5", "the score '0.5' has no label before it"),
    ("astronaut 0.9 camera 1.5", "confidence '1.5' must be a number in [0, 1]"),
    ("astronaut 0.9 camera zero", "confidence 'zero' is not a number"),
])
def test_kaggle_cell_that_is_not_label_score_pairs_is_an_error(tmp_path, cell, detail):
    path = _write(tmp_path / "p.csv", f"id,landmarks\nq0,x 0.5\nq1,{cell}\n")
    message = _error(path)
    assert str(path) in message and "row 3" in message and detail in message


def test_kaggle_candidates_are_written_in_one_cell_and_read_back(tmp_path):
    text = 'id,landmarks\nq1,eiffel 0.5 louvre 0.25\nq2,\nq3,big ben 0.75\nq4,"Paris, France 1.0 12 0.5"\n'
    predictions = read_predictions(_write(tmp_path / "p.csv", text))
    assert list(predictions.rank) == [1, 2, 1, 1, 1, 2]
    write_predictions(predictions, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == text
    pd.testing.assert_frame_equal(read_predictions(tmp_path / "out.csv").table, predictions.table)


def test_a_kaggle_table_refuses_on_construction_a_label_that_would_read_back_as_a_score(tmp_path):
    table = pd.DataFrame({"id": ["a", "a"], "label": ["Pier 0.5", "x"], "confidence": [0.9, 0.1]})
    with pytest.raises(TableError, match="row 0: label 'Pier 0.5'.*id,label,confidence"):
        Predictions(table, "kaggle")
    write_predictions(Predictions(table, "label_confidence"), tmp_path / "out.csv")  # the long format takes it
    assert read_predictions(tmp_path / "out.csv").table["label"].tolist() == ["Pier 0.5", "x"]


@pytest.mark.parametrize("text, rows", [
    ("id,label,confidence\na,x,0.5\nb,,\na,,\n", ("row 4", "row 2")),
    ("id,landmarks\nb,y 0.5\nb,\n", ("row 3", "row 2")),
    ("id,landmarks\nb,\nb,\n", ("row 3", "row 2")),
])
def test_empty_prediction_beside_candidates_is_an_error(tmp_path, text, rows):
    message = _error(_write(tmp_path / "p.csv", text))
    assert all(row in message for row in rows) and ("no prediction" in message or "empty" in message)


def test_same_label_twice_in_one_kaggle_cell_is_an_error(tmp_path):
    message = _error(_write(tmp_path / "p.csv", "id,landmarks\na,x 0.5 y 0.25 x 0.125\n"))
    assert "row 2" in message and "'x' twice" in message


def test_rows_of_an_id_must_be_consecutive_in_a_table_built_by_hand():
    table = pd.DataFrame({"id": ["a", "b", "a"], "label": ["x", "y", "z"], "confidence": [0.5, 0.5, 0.25]})
    with pytest.raises(ValueError, match="consecutive"):
        Predictions(table).rank


# --- gallery -------------------------------------------------------------------------------------------------

def test_read_sample_gallery():
    gallery = read_gallery(SAMPLE / "gallery.csv")
    assert isinstance(gallery, Gallery)
    assert list(gallery.table.columns) == ["id", "landmark_id", "path"]
    assert len(gallery) == 15
    assert {label: len(ids) for label, ids in gallery.ids_by_label().items()} == {
        "astronaut": 3, "camera": 3, "chelsea": 3, "coffee": 3, "rocket": 3}
    assert set(gallery.paths().values()) == {""}


def test_gallery_extra_columns_ignored_and_path_kept(tmp_path):
    path = _write(tmp_path / "g.csv", "\ufeffurl,id,landmark_id,path\r\nhttp://x/1,g1,7, sub/g1.jpg\r\n"
                                      "http://x/2,g2,8,\r\n")
    gallery = read_gallery(path)
    assert list(gallery.table.columns) == ["id", "landmark_id", "path"]
    assert gallery.table.to_dict("list") == {"id": ["g1", "g2"], "landmark_id": ["7", "8"],
                                             "path": ["sub/g1.jpg", ""]}
    assert gallery.paths() == {"g1": "sub/g1.jpg", "g2": ""}
    assert gallery.ids_by_label() == {"7": ["g1"], "8": ["g2"]}


@pytest.mark.parametrize("header, missing", [("id,label", "landmark_id"), ("landmark_id,path", "id"),
                                             ("name,class", "id, landmark_id")])
def test_gallery_missing_columns(tmp_path, header, missing):
    path = _write(tmp_path / "g.csv", header + "\na,b\n")
    message = _error(path, read_gallery)
    assert str(path) in message and missing in message and "id,landmark_id" in message


def test_gallery_empty_landmark_and_duplicate_id(tmp_path):
    path = _write(tmp_path / "g.csv", "id,landmark_id\ng1,7\ng2,\n")
    assert "row 3" in _error(path, read_gallery)
    path = _write(tmp_path / "g2.csv", "id,landmark_id\ng1,7\ng1,8\n")
    message = _error(path, read_gallery)
    assert "row 3" in message and "row 2" in message


def test_gallery_header_only_and_empty_file(tmp_path):
    assert len(read_gallery(_write(tmp_path / "g.csv", "id,landmark_id\n"))) == 0
    assert "empty" in _error(_write(tmp_path / "e.csv", ""), read_gallery)


# --- solution ------------------------------------------------------------------------------------------------

def test_read_solution_ignores_usage_and_keeps_empty(tmp_path):
    path = _write(tmp_path / "s.csv", "\ufeffid,landmarks,Usage\r\na,1 2,Private\r\nb,,Public\r\nc, 3 ,Private\r\n")
    solution = read_solution(path)
    assert solution.table.to_dict("list") == {"id": ["a", "b", "c"], "landmarks": ["1 2", "", "3"]}


def test_read_sample_solution():
    solution = read_solution(SAMPLE / "truth.csv").table
    assert len(solution) == 26
    assert (solution["landmarks"] == "").sum() == 11


def test_solution_missing_column_and_duplicates(tmp_path):
    message = _error(_write(tmp_path / "s.csv", "id,label\na,1\n"), read_solution)
    assert "landmarks" in message and str(tmp_path / "s.csv") in message
    message = _error(_write(tmp_path / "d.csv", "id,landmarks\na,1\na,2\n"), read_solution)
    assert "row 3" in message and "row 2" in message


# --- typed predictions ----------------------------------------------------------------------------------------

def test_predictions_queries_and_new_confidences():
    predictions = read_predictions(SAMPLE / "predictions.csv")
    assert len(predictions) == 26
    assert predictions.has_label.all() and predictions.ids[0] == predictions.table["id"].iloc[0]
    changed = predictions.with_confidence(np.full(26, 0.5))
    assert changed.format == predictions.format and (changed.confidence == 0.5).all()
    assert (predictions.confidence != 0.5).any()  # the original is untouched
    empty = Predictions(pd.DataFrame({"id": ["a", "b"], "label": ["", "x"], "confidence": [np.nan, 0.1]}))
    assert empty.has_label.tolist() == [False, True]


# --- atomic output ---------------------------------------------------------------------------------------------

def test_write_predictions_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "out" / "predictions.csv"
    table = pd.DataFrame({"id": [f"q{i}" for i in range(10)], "label": ["x"] * 10, "confidence": [0.5] * 10})
    write_predictions(Predictions(table, "kaggle"), out)
    before = out.read_bytes()

    calls = []
    original = tables.format_confidence

    def failing(value):
        calls.append(value)
        if len(calls) == 4:
            raise RuntimeError("disk on fire")
        return original(value)

    monkeypatch.setattr(tables, "format_confidence", failing)
    changed = Predictions(table.assign(confidence=0.25), "kaggle")
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_predictions(changed, out)
    assert len(calls) == 4  # it failed half-way through the rows
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["predictions.csv"]

    monkeypatch.setattr(tables, "format_confidence", original)
    write_predictions(changed, out)
    assert read_predictions(out).table["confidence"].tolist() == [0.25] * 10
    assert sorted(p.name for p in out.parent.iterdir()) == ["predictions.csv"]


def test_write_predictions_creates_folder(tmp_path):
    table = pd.DataFrame({"id": ["a"], "label": ["x"], "confidence": [0.5]})
    write_predictions(Predictions(table, "label_confidence"), tmp_path / "new" / "deeper" / "p.csv")
    assert (tmp_path / "new" / "deeper" / "p.csv").read_text() == "id,label,confidence\na,x,0.5\n"
