"""The typed tables check themselves on construction (issue #19): ``Predictions``, ``Gallery`` and ``Solution`` built
from a DataFrame by hand get the exact columns, ``str`` ids and labels, confidences in [0, 1] (NaN exactly where there
is no label), a known format and the rows of an id together, or a ``TableError`` naming the column and the row; the
readers' tables pass the same checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delfverify.errors import DelfverifyError, InputTypeError
from delfverify.tables import FORMATS, Gallery, Predictions, Solution, TableError, as_predictions, read_predictions

PREDICTIONS = ("id", "label", "confidence")
GALLERY = ("id", "landmark_id", "path")
SOLUTION = ("id", "landmarks")


def _predictions(**columns) -> pd.DataFrame:
    base = {"id": ["q1", "q2", "q2"], "label": ["a", "b", "c"], "confidence": [0.5, 1.0, 0.25]}
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize("table, fmt, message", [
    (_predictions().drop(columns="confidence"), "kaggle",
     "Predictions: missing column(s) 'confidence'; its columns are exactly id,label,confidence (found id,label)"),
    (_predictions(url=["u", "v", "w"]), "kaggle", "Predictions: unexpected column(s) 'url'"),
    (_predictions(id=[1, 2, 2]), "kaggle", "Predictions: column 'id', row 0: int 1; ids must be strings"),
    (_predictions(id=["q1", None, "q3"]), "kaggle", "Predictions: column 'id', row 1: "),
    (_predictions(id=["q1", "", "q3"]), "kaggle", "Predictions: column 'id', row 1: empty; ids must not be empty"),
    (_predictions(label=["a", 7, "c"]), "kaggle", "Predictions: column 'label', row 1: int 7; labels"),
    (_predictions(confidence=[0.5, 2.5, 0.25]), "kaggle",
     "Predictions: column 'confidence', row 1: 2.5 for label 'b' must be a number in [0, 1]"),
    (_predictions(confidence=[0.5, -0.0001, 0.25]), "kaggle", "row 1: -0.0001 for label 'b' must be"),
    (_predictions(confidence=[0.5, math.inf, 0.25]), "kaggle", "row 1: inf for label 'b' must be"),
    (_predictions(confidence=[0.5, math.nan, 0.25]), "kaggle", "row 1: nan for label 'b' must be"),
    (_predictions(label=["a", "", "c"]), "kaggle",
     "Predictions: column 'confidence', row 1: 1.0 without a label; a row without a label has NaN"),
    (_predictions(confidence=["0.5", "1", "0.25"]), "kaggle", "Predictions: column 'confidence' holds"),
    (_predictions(confidence=[True, False, True]), "kaggle", "Predictions: column 'confidence' holds bool"),
    (_predictions(id=["q1", "q2", "q1"]), "kaggle",
     ("Predictions: column 'id', row 2: the rows of id 'q1' are not consecutive (another id's rows come after its "
      "row 0)")),
    (_predictions(), "csv",
     "Predictions: format must be one of kaggle, landmarks_confidence, label_confidence, got 'csv'"),
    (_predictions(), ["kaggle"], "Predictions: format must be one of"),
])
def test_a_predictions_table_built_by_hand_is_checked_naming_the_column(table, fmt, message):
    with pytest.raises(TableError) as info:
        Predictions(table, fmt)
    assert str(info.value).startswith(message if message.startswith("Predictions") else "Predictions: column")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, DelfverifyError) and isinstance(info.value, ValueError)


def test_the_issue_tables_missing_columns_integer_ids_and_a_confidence_of_2_5():
    """They gave KeyError or TypeError when used, and 2.5 was written out."""
    with pytest.raises(TableError, match="missing column"):
        Predictions(pd.DataFrame({"id": ["a"], "label": ["x"]}))
    with pytest.raises(TableError, match="column 'id', row 0: int 1"):
        Predictions(pd.DataFrame({"id": [1], "label": ["x"], "confidence": [0.5]}))
    with pytest.raises(TableError, match="column 'confidence', row 0: 2.5"):
        Predictions(pd.DataFrame({"id": ["a"], "label": ["x"], "confidence": [2.5]}))
    with pytest.raises(TableError, match="column 'confidence', row 0: 2.5"):
        Predictions(pd.DataFrame({"id": ["a"], "label": ["x"], "confidence": [0.5]})).with_confidence(np.array([2.5]))
    with pytest.raises(TableError, match="Gallery: missing column.s. 'landmark_id'"):
        Gallery(pd.DataFrame({"id": ["g1"], "path": [""]}))
    with pytest.raises(TableError, match="Gallery: column 'id', row 0: int 5"):
        Gallery(pd.DataFrame({"id": [5], "landmark_id": ["x"], "path": [""]}))
    with pytest.raises(TableError, match="Solution: column 'landmarks', row 1: float nan"):
        Solution(pd.DataFrame({"id": ["a", "b"], "landmarks": ["x", math.nan]}))
    with pytest.raises(InputTypeError, match="Solution: table must be a pandas DataFrame with the columns "
                                             "id,landmarks, got dict"):
        Solution({"id": ["a"], "landmarks": ["x"]})


def test_a_valid_table_is_kept_and_a_filtered_one_renumbered():
    table = _predictions(id=["q1", "q2", "q2"], label=["a", "b", "c"], confidence=np.array([0.5, 1, 0], np.float32))
    predictions = Predictions(table, "label_confidence")
    assert predictions.table is table and predictions.query_starts.tolist() == [0, 1]
    filtered = pd.concat([table, table.assign(id=["q3", "q4", "q4"])])[lambda t: t["label"] != "a"]
    renumbered = Predictions(filtered)
    assert renumbered.table.index.tolist() == [0, 1, 2, 3] and renumbered.rank.tolist() == [1, 2, 1, 2]
    empty = Predictions(pd.DataFrame({"id": ["q"], "label": [""], "confidence": [math.nan]}))
    assert empty.has_label.tolist() == [False]
    assert len(Predictions(pd.DataFrame({"id": [], "label": [], "confidence": []}))) == 0
    assert len(Gallery(pd.DataFrame({"id": pd.Series([], dtype=object), "landmark_id": [], "path": []}))) == 0
    gallery = Gallery(pd.DataFrame({"path": ["", "sub/x.jpg"], "id": ["g1", "g2"], "landmark_id": ["x", "y"]}))
    assert gallery.paths() == {"g1": "", "g2": "sub/x.jpg"}


def test_tables_read_from_files_and_frames_pass_the_checks(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,landmarks\nq1,a 0.5 b 0.25\nq2,\nq3,c 1\n")
    predictions = read_predictions(path)
    again = Predictions(predictions.table.copy(), predictions.format)
    pd.testing.assert_frame_equal(again.table, predictions.table)
    frame = pd.DataFrame({"id": ["q1", "q2"], "label": ["a", None], "confidence": [0.5, None]})
    assert as_predictions(frame).has_label.tolist() == [True, False]


# --- property tests: frames with missing and extra columns, values of every type, out-of-range confidences --------

_VALUES = st.one_of(st.text(max_size=3), st.just(""), st.integers(-2, 2),
                    st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1), st.none(), st.booleans(),
                    st.binary(max_size=2))


@st.composite
def _frames(draw, columns: tuple[str, ...]):
    names = list(columns)
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from([*columns, "url", "extra", "landmarks", "label"]), max_size=5))
    rows = draw(st.integers(0, 4))
    data = {}
    for name in dict.fromkeys(names):
        kind = draw(st.sampled_from(["ids", "texts", "floats", "any"]))
        element = {"ids": st.sampled_from(["q1", "q2", "q3"]), "texts": st.sampled_from(["", "a", "b c"]),
                   "floats": st.one_of(st.floats(0, 1), st.floats(allow_nan=True, allow_infinity=True)),
                   "any": _VALUES}[kind]
        data[name] = pd.Series(draw(st.lists(element, min_size=rows, max_size=rows)), dtype=object)
        if kind == "floats":
            data[name] = data[name].astype(float)
    return pd.DataFrame(data, index=pd.RangeIndex(rows)) if data else pd.DataFrame(index=pd.RangeIndex(rows))


def _problems(frame: pd.DataFrame, columns: tuple[str, ...], fmt: str = "kaggle") -> set[str]:
    """What the documented checks find wrong, by column (in plain Python, row by row)."""
    if list(frame.columns) and sorted(frame.columns) != sorted(columns) or not list(frame.columns):
        return {"columns"}
    bad = set()
    texts = [c for c in columns if c != "confidence"]
    for column in texts:
        values = frame[column].tolist()
        if not all(isinstance(v, str) for v in values) or (column in ("id", "landmark_id") and "" in values):
            bad.add(column)
    if columns == PREDICTIONS and not bad:
        column = frame["confidence"]
        if len(column) and not (pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column)):
            bad.add("confidence")
        else:
            for label, value in zip(frame["label"], column.astype(float)):
                if (label and not 0 <= value <= 1) or (not label and not math.isnan(value)):
                    bad.add("confidence")
        ids = frame["id"].tolist()
        runs = [i for i, x in enumerate(ids) if i == 0 or ids[i - 1] != x]
        if len({ids[i] for i in runs}) != len(runs):
            bad.add("id")
    return bad


def _check(kind, frame: pd.DataFrame, columns: tuple[str, ...], *args) -> None:
    problems = _problems(frame, columns)
    if not problems:
        table = kind(frame, *args).table
        assert list(table.columns) == list(frame.columns) and len(table) == len(frame)
        return
    with pytest.raises(TableError) as info:
        kind(frame, *args)
    message = str(info.value)
    assert message.startswith(f"{kind.__name__}: ") and "\n" not in message
    named = ({"columns"} if "column(s)" in message else set()) | {c for c in columns if f"column {c!r}" in message}
    assert named & problems, (message, problems)


@settings(max_examples=150, deadline=None)
@given(_frames(PREDICTIONS), st.sampled_from(list(FORMATS)))
def test_predictions_frames_of_every_shape_are_accepted_exactly_when_valid(frame, fmt):
    _check(Predictions, frame, PREDICTIONS, fmt)


@settings(max_examples=100, deadline=None)
@given(_frames(GALLERY))
def test_gallery_frames_of_every_shape_are_accepted_exactly_when_valid(frame):
    _check(Gallery, frame, GALLERY)


@settings(max_examples=100, deadline=None)
@given(_frames(SOLUTION))
def test_solution_frames_of_every_shape_are_accepted_exactly_when_valid(frame):
    _check(Solution, frame, SOLUTION)
