"""The checks a typed table (``delfverify.tables``: ``Predictions``, ``Gallery``, ``Solution``) runs when it is built,
whether a reader built it or a user did by hand:

- a pandas DataFrame (else ``InputTypeError``) of exactly its columns, in any order; its rows are renumbered 0..n-1
  if they were not (a filtered frame);
- ids non-empty ``str``; labels, landmarks and paths ``str`` (no NaN, None or numbers: read CSV files with
  ``dtype=str``, or use ``as_predictions``, ``as_gallery``, ``as_solution``, which read such frames as files are
  read); gallery labels non-empty;
- ``Predictions``: confidences floats (or integers) in [0, 1] where there is a label and NaN exactly where there is
  none; the rows of an id consecutive; a format among ``tables.FORMATS``.

Each failure is a ``TableError`` (a ``ValueError`` and ``DelfverifyError``) naming the table, the column, the first
bad row (its position, 0 the first) and its value. The checks are vectorised: 1,000,000 predictions are checked in
about half a second (reading their file takes twenty times as long). Uniqueness of gallery and solution ids is the
readers' check, not the constructors'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DelfverifyError, InputTypeError, shorten


class TableError(DelfverifyError, ValueError):
    """A CSV file or a table is malformed; the message names the file (or the table), the row or the column, and the
    remedy. (Also ``delfverify.tables.TableError``: the readers raise it too.)"""


def checked_frame(table: object, name: str, columns: tuple[str, ...], remedy: str) -> pd.DataFrame:
    """``table`` if it is a DataFrame of exactly ``columns`` (in any order), its rows numbered 0..n-1 (reset if they
    were not, e.g. after a filter).

    Raises
    ------
    InputTypeError
        Not a DataFrame.
    TableError
        Missing, unexpected or repeated columns, naming them.
    """
    if not isinstance(table, pd.DataFrame):
        raise InputTypeError(f"{name}: table must be a pandas DataFrame with the columns {','.join(columns)}, got "
                             f"{type(table).__name__}")
    found = [str(c) for c in table.columns]
    missing = [c for c in columns if c not in found]
    extra = [c for c in found if c not in columns]
    repeated = sorted({c for c in found if found.count(c) > 1})
    if missing or extra or repeated:
        problems = [f"{label} column(s) {', '.join(map(repr, cols))}" for label, cols in
                    (("missing", missing), ("unexpected", extra), ("repeated", repeated)) if cols]
        raise TableError(f"{name}: {'; '.join(problems)}; its columns are exactly {','.join(columns)} (found "
                         f"{shorten(','.join(found)) or 'none'}){remedy}")
    if not (isinstance(table.index, pd.RangeIndex) and table.index.start == 0 and table.index.step == 1):
        table = table.reset_index(drop=True)
    return table


def check_text(table: pd.DataFrame, column: str, name: str, what: str, blank: bool = True) -> np.ndarray:
    """The column as an object array of str, checked: every value a ``str`` (no NaN or None), and not empty unless
    ``blank``. Vectorised: a million rows take a few tens of milliseconds.

    Raises
    ------
    TableError
        Naming the column, the first bad row (its position) and its value.
    """
    values = table[column]
    if len(values) and (pd.api.types.infer_dtype(values, skipna=False) != "string" or values.isna().any()):
        array = values.to_numpy(object)
        row = next(i for i, value in enumerate(array) if not isinstance(value, str))
        raise TableError(f"{name}: column {column!r}, row {row}: {type(array[row]).__name__} "
                         f"{shorten(repr(array[row]))}; {what} must be strings")
    array = values.to_numpy(object)
    if not blank:
        empty = np.flatnonzero(array == "")
        if len(empty):
            raise TableError(f"{name}: column {column!r}, row {empty[0]}: empty; {what} must not be empty")
    return array


def check_predictions(table: object, fmt: object, formats: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    """A ``Predictions`` table checked (the module docstring lists the checks) and its queries' first rows.

    Raises
    ------
    InputTypeError, TableError
        Naming the column (or ``format``), the first bad row and its value.
    """
    name = "Predictions"
    if not (isinstance(fmt, str) and fmt in formats):
        raise TableError(f"{name}: format must be one of {', '.join(formats)}, got {shorten(repr(fmt))}")
    table = checked_frame(table, name, ("id", "label", "confidence"),
                           "; as_predictions reads a frame with the columns of any of the file formats")
    ids = check_text(table, "id", name, "ids", blank=False)
    labels = check_text(table, "label", name, "labels (\"\" for no prediction)")
    column = table["confidence"]
    if len(column) and not (pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column)) \
            or pd.api.types.is_bool_dtype(column):
        raise TableError(f"{name}: column 'confidence' holds {column.dtype} values; confidences must be floats in "
                         f"[0, 1], NaN where there is no label (as_predictions reads numbers given as text)")
    confidence = column.to_numpy(float, na_value=np.nan)
    labelled = labels != ""
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(np.where(labelled, ~((confidence >= 0.0) & (confidence <= 1.0)), ~np.isnan(confidence)))
    if len(bad):
        row = bad[0]
        what = (f"{float(confidence[row])!r} for label {shorten(repr(labels[row]))} must be a number in [0, 1]"
                if labelled[row] else f"{float(confidence[row])!r} without a label; a row without a label has NaN")
        raise TableError(f"{name}: column 'confidence', row {row}: {what}")
    first = np.ones(len(ids), bool)
    first[1:] = ids[1:] != ids[:-1]
    starts = np.flatnonzero(first)
    if len(pd.unique(ids[starts])) != len(starts):
        again = int(starts[np.flatnonzero(pd.Series(ids[starts]).duplicated().to_numpy())[0]])
        before = int(np.flatnonzero(ids[:again] == ids[again])[-1])
        raise TableError(f"{name}: column 'id', row {again}: the rows of id {shorten(repr(ids[again]))} are not "
                         f"consecutive (another id's rows come after its row {before}); a query's candidates are "
                         f"consecutive rows, best first")
    return table, starts


def check_gallery(table: object) -> pd.DataFrame:
    """A ``Gallery`` table checked: ``id`` and ``landmark_id`` non-empty ``str``, ``path`` ``str``."""
    table = checked_frame(table, "Gallery", ("id", "landmark_id", "path"),
                          "; as_gallery adds path and drops other columns")
    check_text(table, "id", "Gallery", "ids", blank=False)
    check_text(table, "landmark_id", "Gallery", "labels", blank=False)
    check_text(table, "path", "Gallery", "paths (\"\" to look a photo up by its id)")
    return table


def check_solution(table: object) -> pd.DataFrame:
    """A ``Solution`` table checked: ``id`` non-empty ``str``, ``landmarks`` ``str``."""
    table = checked_frame(table, "Solution", ("id", "landmarks"), "; as_solution drops other columns")
    check_text(table, "id", "Solution", "ids", blank=False)
    check_text(table, "landmarks", "Solution", "landmarks (\"\" for a query without a landmark)")
    return table
