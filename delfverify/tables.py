"""CSV files in and out: predictions (three formats), gallery, solution; and finding images by id.

Every check happens here, at the boundary, and every error names the file, the row (1-based line number in the
file, the header being line 1) and what to do. Reading uses UTF-8 with an optional BOM, any line ending, and
standard CSV quoting, so labels may contain commas or spaces.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .fileio import atomic_write

FORMATS = {
    "kaggle": ("id", "landmarks"),
    "landmarks_confidence": ("id", "landmarks", "confidence"),
    "label_confidence": ("id", "label", "confidence"),
}
_ACCEPTED = "; ".join(f"{name}: {','.join(cols)}" for name, cols in FORMATS.items())


class TableError(ValueError):
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
    ids = frame["id"]
    empty = np.flatnonzero(ids.str.strip().to_numpy() == "")
    if len(empty):
        raise TableError(f"{path}: row {empty[0] + 2}: empty id in {what}")
    duplicated = ids.duplicated(keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        raise TableError(
            f"{path}: row {row + 2}: duplicate id {ids.iloc[row]!r} (first at row {first + 2}); "
            f"each id may appear once in {what}"
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
    frame = frame.assign(id=frame["id"].str.strip())  # the ids as stored, so " a" and "a" are duplicates
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


def read_gallery(path: str | os.PathLike) -> pd.DataFrame:
    """Read a gallery CSV: ``id,landmark_id`` and optionally ``path``; other columns (e.g. ``url``) are ignored.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``landmark_id`` and ``path`` (``""`` when not given), in file order.
    """
    path = Path(path)
    frame = _read_csv(path, "gallery")
    missing = [c for c in ("id", "landmark_id") if c not in frame.columns]
    if missing:
        raise TableError(
            f"{path}: gallery is missing column(s) {', '.join(missing)}; expected id,landmark_id[,path] "
            f"(found {','.join(frame.columns)})"
        )
    frame = frame.assign(id=frame["id"].str.strip(), landmark_id=frame["landmark_id"].str.strip())
    _check_ids(frame, path, "the gallery")
    empty = np.flatnonzero(frame["landmark_id"].to_numpy() == "")
    if len(empty):
        raise TableError(f"{path}: row {empty[0] + 2}: empty landmark_id in the gallery")
    paths = frame["path"].str.strip() if "path" in frame.columns else pd.Series([""] * len(frame), dtype=str)
    return pd.DataFrame({"id": frame["id"], "landmark_id": frame["landmark_id"], "path": paths.to_numpy()})


def read_solution(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Kaggle solution CSV ``id,landmarks`` (space-separated labels; empty = no landmark).

    Extra columns (e.g. Kaggle's ``Usage``) are ignored.
    """
    path = Path(path)
    frame = _read_csv(path, "solution")
    missing = [c for c in ("id", "landmarks") if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: solution is missing column(s) {', '.join(missing)}; expected id,landmarks")
    frame = pd.DataFrame({"id": frame["id"].str.strip(), "landmarks": frame["landmarks"].str.strip()})
    _check_ids(frame, path, "the solution")
    return frame


class ImageDirectory:
    """Find images by id under a root folder, never outside it.

    Layouts: flat ``<root>/<id>.jpg`` or Kaggle nested ``<root>/<id[0]>/<id[1]>/<id[2]>/<id>.jpg`` (detected per
    image); or an explicit relative ``path`` (from a gallery's ``path`` column), resolved under the root.

    Parameters
    ----------
    root : path
        The image folder.
    extension : str
        File extension for id lookups.
    """

    def __init__(self, root: str | os.PathLike, extension: str = ".jpg"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise TableError(f"{self.root}: image directory not found")
        self._resolved_root = self.root.resolve()
        self.extension = extension

    def find(self, image_id: str, path: str = "") -> Path:
        """The file of an image (it may not exist; reading it then fails with an error naming it).

        Raises
        ------
        TableError
            If the id or path would escape the root (absolute paths, ``..``, separators in ids, NUL bytes).
        """
        if path:
            candidate = self.root / path
            if Path(path).is_absolute() or "\x00" in path or not self._inside(candidate):
                raise TableError(f"image path {path!r} for id {image_id!r} escapes the image directory {self.root}")
            return candidate
        if (
            not image_id
            or "\x00" in image_id
            or "/" in image_id
            or "\\" in image_id
            or image_id in (".", "..")
            or len(os.fsencode(f"{image_id}{self.extension}")) > 255  # longer file names fail with an OSError
        ):
            raise TableError(f"image id {image_id[:80]!r} cannot name a file in {self.root}")
        flat = self.root / f"{image_id}{self.extension}"
        found = flat
        try:
            if not flat.is_file() and len(image_id) >= 3:
                nested = self.root / image_id[0] / image_id[1] / image_id[2] / f"{image_id}{self.extension}"
                found = nested if nested.is_file() else flat
        except OSError as exc:  # e.g. a folder that cannot be searched
            raise TableError(f"image id {image_id[:80]!r}: cannot look it up in {self.root} "
                             f"({exc.strerror or exc})") from None
        if found.exists() and not self._inside(found):
            raise TableError(f"image for id {image_id!r} links outside the image directory {self.root}")
        return found

    def _inside(self, candidate: Path) -> bool:
        try:
            return candidate.resolve().is_relative_to(self._resolved_root)
        except (OSError, RuntimeError):
            return False
