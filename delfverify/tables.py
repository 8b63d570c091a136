"""CSV files in and out: predictions (three formats), gallery and solution, each a small typed table.

Every check happens here, at the boundary, and every error names the file, the row (1-based line number in the
file, the header being line 1) and what to do. Reading uses UTF-8 with an optional BOM, any line ending, and
standard CSV quoting, so labels may contain commas or spaces. Ids are data: they are kept exactly as given,
spaces included (photos are looked up by the exact id, and outputs repeat it); ids that differ only by spaces
around them are refused as duplicates.

Predictions formats (detected from the header):

- ``kaggle``: ``id,landmarks`` with ``landmarks`` = ``"<label> <score>"``, an empty cell meaning no prediction;
- ``landmarks_confidence``: ``id,landmarks,confidence``;
- ``label_confidence``: ``id,label,confidence``.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DelfverifyError
from .fileio import atomic_write

FORMATS = {
    "kaggle": ("id", "landmarks"),
    "landmarks_confidence": ("id", "landmarks", "confidence"),
    "label_confidence": ("id", "label", "confidence"),
}
_ACCEPTED = "; ".join(f"{name}: {','.join(cols)}" for name, cols in FORMATS.items())


class TableError(DelfverifyError, ValueError):
    """A CSV file is malformed; the message names the file, the row and the remedy."""


@dataclass(frozen=True)
class Predictions:
    """A predictions file, normalised.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``id`` (str), ``label`` (str, ``""`` = no prediction), ``confidence`` (float, NaN when no
        prediction), in file order.
    format : str
        One of ``FORMATS``; ``write_predictions`` writes this format back.
    """

    table: pd.DataFrame
    format: str = "kaggle"

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> np.ndarray:
        """The query ids (object array of str)."""
        return self.table["id"].to_numpy(object)

    @property
    def labels(self) -> np.ndarray:
        """The predicted labels (object array of str, ``""`` = no prediction)."""
        return self.table["label"].to_numpy(object)

    @property
    def confidence(self) -> np.ndarray:
        """The confidences (float64, NaN where there is no prediction)."""
        return self.table["confidence"].to_numpy(float)

    @property
    def has_label(self) -> np.ndarray:
        """Which rows hold a prediction (bool)."""
        return (self.table["label"] != "").to_numpy()

    def with_confidence(self, confidence: np.ndarray) -> "Predictions":
        """The same predictions with new confidences (format and row order kept)."""
        return replace(self, table=self.table.assign(confidence=confidence))


@dataclass(frozen=True)
class Gallery:
    """A gallery file: reference photos and their landmark labels.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``id``, ``landmark_id`` and ``path`` (relative image path, ``""`` when not given), in file order.
    """

    table: pd.DataFrame

    def __len__(self) -> int:
        return len(self.table)

    def ids_by_label(self) -> dict[str, list[str]]:
        """The gallery ids of each label, in file order."""
        return {label: list(group) for label, group in self.table.groupby("landmark_id", sort=False)["id"]}

    def paths(self) -> dict[str, str]:
        """The relative image path of each gallery id (``""``: look it up by id)."""
        return dict(zip(self.table["id"], self.table["path"]))


@dataclass(frozen=True)
class Solution:
    """A Kaggle solution file: the true landmarks of each query.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``id`` and ``landmarks`` (space-separated labels; ``""`` for a query without a landmark).
    """

    table: pd.DataFrame


def _read_csv(path: str | os.PathLike, what: str) -> pd.DataFrame:
    path = Path(path)
    try:
        # index_col=False: a row with one field more than the header must not turn the first column into an
        # index and shift every value one column left; pandas then warns that it would drop data: an error here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                skipinitialspace=False, index_col=False)
    except pd.errors.ParserWarning:
        raise TableError(f"{path}: row {_first_long_row(path)}: more fields than the header has columns; "
                         f"quote fields that contain commas") from None
    except FileNotFoundError:
        raise TableError(f"{path}: {what} file not found") from None
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: {what} file is empty; expected a header line") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: cannot parse {what} CSV ({str(exc).strip()})") from None
    except IsADirectoryError:
        raise TableError(f"{path}: is a directory, expected a {what} CSV file") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _first_long_row(path: Path) -> int:
    """The row number (header = 1) of the first CSV record with more fields than the header."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        records = (record for record in csv.reader(handle) if record)  # blank lines are skipped, as pandas does
        width = len(next(records))
        return next((row for row, record in enumerate(records, start=2) if len(record) > width), 2)


def _check_ids(frame: pd.DataFrame, path: Path, what: str) -> None:
    """Ids are data, kept exactly as given; but an empty id, a repeated id, or two ids that differ only by spaces
    around them (which read alike, and which tools that strip fields would merge) are errors."""
    ids = frame["id"]
    stripped = ids.str.strip()
    empty = np.flatnonzero(stripped.to_numpy() == "")
    if len(empty):
        raise TableError(f"{path}: row {empty[0] + 2}: empty id in {what}")
    duplicated = stripped.duplicated(keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero((stripped == stripped.iloc[row]).to_numpy())[0])
        if ids.iloc[row] == ids.iloc[first]:
            raise TableError(
                f"{path}: row {row + 2}: duplicate id {ids.iloc[row]!r} (first at row {first + 2}); "
                f"each id may appear once in {what}"
            )
        raise TableError(
            f"{path}: row {row + 2}: id {ids.iloc[row]!r} differs from id {ids.iloc[first]!r} (row {first + 2}) "
            f"only by spaces around it; ids are kept exactly as given, so remove the spaces or one of the rows"
        )


def _parse_confidence(text: str, path: Path, row: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TableError(f"{path}: row {row}: confidence {text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise TableError(f"{path}: row {row}: confidence {text!r} must be a number in [0, 1]")
    return value


def read_predictions(path: str | os.PathLike) -> Predictions:
    """Read a predictions CSV in any of ``FORMATS``.

    Raises
    ------
    TableError
        Unknown columns (the message lists the accepted formats), empty file, duplicate or empty ids, a
        malformed ``label score`` cell, or a confidence that is not a number in [0, 1]; the row is named.
    """
    path = Path(path)
    frame = _read_csv(path, "predictions")
    columns = tuple(frame.columns)
    fmt = next((name for name, cols in FORMATS.items() if columns == cols), None)
    if fmt is None:
        raise TableError(
            f"{path}: unrecognised predictions columns {','.join(columns)}; accepted formats are {_ACCEPTED}"
        )
    _check_ids(frame, path, "predictions")
    labels, confidences = [], []
    if fmt == "kaggle":
        for row, cell in enumerate(frame["landmarks"], start=2):
            cell = cell.strip()
            if not cell:
                labels.append("")
                confidences.append(math.nan)
                continue
            parts = cell.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise TableError(f"{path}: row {row}: landmarks cell {cell!r} must be '<label> <score>' or empty")
            labels.append(parts[0])
            confidences.append(_parse_confidence(parts[1], path, row))
    else:
        label_column = "landmarks" if fmt == "landmarks_confidence" else "label"
        for row, (label, conf) in enumerate(zip(frame[label_column], frame["confidence"]), start=2):
            label = label.strip()
            labels.append(label)
            if not label and not conf.strip():
                confidences.append(math.nan)
            elif not label:
                raise TableError(f"{path}: row {row}: confidence given without a label")
            else:
                confidences.append(_parse_confidence(conf, path, row))
    table = pd.DataFrame({"id": frame["id"], "label": labels, "confidence": confidences})
    return Predictions(table=table, format=fmt)


def format_confidence(value: float) -> str:
    """The confidence rounded to 6 decimals, in the shortest text that reads back as that number."""
    return repr(round(float(value), 6))


def write_predictions(predictions: Predictions, path: str | os.PathLike) -> None:
    """Write predictions in their own format and row order, atomically (never a half-written file)."""
    table = predictions.table
    header = FORMATS[predictions.format]
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for pid, label, conf in zip(table["id"], table["label"], table["confidence"]):
            score = "" if not label else format_confidence(conf)
            if predictions.format == "kaggle":
                writer.writerow([pid, f"{label} {score}" if label else ""])
            else:
                writer.writerow([pid, label, score])


def read_gallery(path: str | os.PathLike) -> Gallery:
    """Read a gallery CSV: ``id,landmark_id`` and optionally ``path``; other columns (e.g. ``url``) are ignored.

    Raises
    ------
    TableError
        Missing columns, empty or duplicate ids, empty labels; the row is named.
    """
    path = Path(path)
    frame = _read_csv(path, "gallery")
    missing = [c for c in ("id", "landmark_id") if c not in frame.columns]
    if missing:
        raise TableError(
            f"{path}: gallery is missing column(s) {', '.join(missing)}; expected id,landmark_id[,path] "
            f"(found {','.join(frame.columns)})"
        )
    frame = frame.assign(landmark_id=frame["landmark_id"].str.strip())
    _check_ids(frame, path, "the gallery")
    empty = np.flatnonzero(frame["landmark_id"].to_numpy() == "")
    if len(empty):
        raise TableError(f"{path}: row {empty[0] + 2}: empty landmark_id in the gallery")
    paths = frame["path"].str.strip() if "path" in frame.columns else pd.Series([""] * len(frame), dtype=str)
    return Gallery(pd.DataFrame({"id": frame["id"], "landmark_id": frame["landmark_id"], "path": paths.to_numpy()}))


def read_solution(path: str | os.PathLike) -> Solution:
    """Read a Kaggle solution CSV ``id,landmarks`` (space-separated labels; empty = no landmark).

    Extra columns (e.g. Kaggle's ``Usage``) are ignored.

    Raises
    ------
    TableError
        Missing columns, empty or duplicate ids; the row is named.
    """
    path = Path(path)
    frame = _read_csv(path, "solution")
    missing = [c for c in ("id", "landmarks") if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: solution is missing column(s) {', '.join(missing)}; expected id,landmarks")
    frame = pd.DataFrame({"id": frame["id"], "landmarks": frame["landmarks"].str.strip()})
    _check_ids(frame, path, "the solution")
    return Solution(frame)
