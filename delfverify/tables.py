"""CSV files in and out: predictions (three formats), gallery and solution, each a small typed table.

Every check happens here, at the boundary, and every error names the file, the row (1-based line number in the
file, the header being line 1) and what to do. Reading uses UTF-8 with an optional BOM, any line ending, and
standard CSV quoting, so labels may contain commas or spaces. Ids are data: they are kept exactly as given,
spaces included (photos are looked up by the exact id, and outputs repeat it); ids that differ only by spaces
around them are refused as duplicates.

Predictions formats (detected from the header):

- ``kaggle``: ``id,landmarks`` with ``landmarks`` = ``"<label> <score>"``, an empty cell meaning no prediction;
  a cell of several pairs ``"<label1> <score1> <label2> <score2> ..."`` gives several candidates;
- ``landmarks_confidence``: ``id,landmarks,confidence``;
- ``label_confidence``: ``id,label,confidence``.

Several rows (or pairs) for one id are that query's candidate labels, ranked by confidence (best first; equal
confidences keep the file's order). A label may appear once per id, and an empty prediction only alone.

How a Kaggle cell is split. Its words are separated by ASCII white space (``csv_input.words``: the one rule for
every cell that lists labels, truth cells included). A score is a word that reads as a number in [0, 1]; a bare
score is one written in digits only (``0``, ``1``).

1. When every second word is a score and no other word is a score but a bare one (``12345 1 678 0.5``, ``castle 1
   fountain 0``, ``1 0.5 0 0.25``: Google Landmarks' ids 1 and 0), the cell is one-word labels each followed by its
   score.
2. Otherwise labels may have several words, none of them a score: every score ends the label before it (``Tower
   Bridge 0.5 Pier 0.25``). A score with no label before it (``Gate 0 0.6 1 Hotel 0.3``, ``Pier 1 0.5``) is an error
   naming the row and column: a label of several words may not hold a score word in this format.

So one cell reads one way only, and every table of the Kaggle format writes cells that read back as written,
whatever the order of their candidates: ``Predictions`` refuses, on construction, a label of the Kaggle format
with a score for a word, a one-word label that is a score other than a bare one, a label with spaces around it,
and a bare-score label in a cell with a label of several words (the long formats take any label). A cell that
does not split into ``<label> <score>`` pairs is an error naming the row: a cell is never read as one long label.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .csv_input import SPACE, SPACE_CHAR, WORD, adopt, check_ids, column_list, read_csv, word_spans, words
from .errors import shorten
from .numbers import NumberError, parse_number
from .outputs import Output, write_output
from .table_checks import TableError, check_gallery, check_predictions, check_solution

FORMATS = {
    "kaggle": ("id", "landmarks"),
    "landmarks_confidence": ("id", "landmarks", "confidence"),
    "label_confidence": ("id", "label", "confidence"),
}
_FORMAT_COLUMNS = frozenset(column for columns in FORMATS.values() for column in columns)
_ACCEPTED = "; ".join(f"{name}: {','.join(cols)}" for name, cols in FORMATS.items())


@dataclass(frozen=True)
class Predictions:
    """A predictions file, normalised: one row per candidate label of each query.

    Attributes
    ----------
    table : pandas.DataFrame
        Exactly the columns ``id`` (non-empty str), ``label`` (str, ``""`` = no prediction), ``confidence`` (float
        in [0, 1]; NaN exactly where there is no prediction). The rows of a query are consecutive and in the
        classifier's order, best first (its rank, ``rank``); queries are in file order. A file with one row per id
        keeps its rows exactly as they are. Rows are numbered 0..n-1 (a table filtered before is renumbered).
    format : str
        One of ``FORMATS``; ``write_predictions`` writes this format back.

    Raises
    ------
    TableError, InputTypeError
        On construction, naming the column and the row (its position): ``delfverify.table_checks``.
    """

    table: pd.DataFrame
    format: str = "kaggle"

    def __post_init__(self) -> None:
        table, starts = check_predictions(self.table, self.format, tuple(FORMATS))
        if self.format == "kaggle":
            check_kaggle_labels(table)
        object.__setattr__(self, "table", table)
        self.__dict__["query_starts"] = starts  # the cached property, found by the check

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

    @cached_property  # derived from the table, which is not changed in place; the pipeline asks for it often
    def query_starts(self) -> np.ndarray:
        """The first row of each query (int array, one per query, increasing).

        Raises
        ------
        ValueError
            If the rows of an id are not consecutive (``read_predictions`` always groups them).
        """
        ids = self.ids
        first = np.ones(len(ids), bool)
        first[1:] = ids[1:] != ids[:-1]
        starts = np.flatnonzero(first)
        if len(pd.unique(ids[starts])) != len(starts):
            raise ValueError("the rows of each id must be consecutive (its candidates, best first)")
        return starts

    @property
    def query(self) -> np.ndarray:
        """Each row's query: its index in ``query_starts`` (int array)."""
        starts = self.query_starts
        return np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(self))))

    @property
    def rank(self) -> np.ndarray:
        """Each row's rank among its query's candidates: 1 for the classifier's first choice (int array)."""
        return np.arange(len(self)) - self.query_starts[self.query] + 1

    def to_frame(self) -> pd.DataFrame:
        """The table as its file holds it: the columns of its format (``FORMATS``) and text cells, confidences
        written by ``format_confidence``; in the Kaggle format the candidates of an id (consecutive rows) share one
        cell, ``label1 score1 label2 ...``, which reads back as written (``check_kaggle_labels``)."""
        table = self.table
        scores = ["" if not label else format_confidence(c) for label, c in zip(table["label"], table["confidence"])]
        if self.format != "kaggle":
            return pd.DataFrame(dict(zip(FORMATS[self.format], (table["id"].tolist(), table["label"].tolist(),
                                                                 scores))))
        cells: dict[str, list[tuple[str, str]]] = {}
        for pid, label, score in zip(table["id"].tolist(), table["label"], scores):
            cells.setdefault(pid, [])
            if label:
                cells[pid].append((label, score))
        return pd.DataFrame({"id": list(cells), "landmarks": [" ".join(f"{label} {score}" for label, score in c)
                                                               for c in cells.values()]})

    def with_confidence(self, confidence: np.ndarray) -> "Predictions":
        """The same predictions with new confidences (format and row order kept)."""
        return replace(self, table=self.table.assign(confidence=confidence))


@dataclass(frozen=True)
class Gallery:
    """A gallery file: reference photos and their landmark labels.

    Attributes
    ----------
    table : pandas.DataFrame
        Exactly the columns ``id`` and ``landmark_id`` (non-empty str) and ``path`` (str: relative image path, ``""``
        when not given), in file order.

    Raises
    ------
    TableError, InputTypeError
        On construction (``delfverify.table_checks``); ``as_gallery`` reads a frame without ``path`` or with others.
    """

    table: pd.DataFrame

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", check_gallery(self.table))

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
        Exactly the columns ``id`` (non-empty str) and ``landmarks`` (str: space-separated labels; ``""`` for a
        query without a landmark).

    Raises
    ------
    TableError, InputTypeError
        On construction (``delfverify.table_checks``); ``as_solution`` reads a frame with other columns or NaN.
    """

    table: pd.DataFrame

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", check_solution(self.table))


def _parse_confidence(text: str, path: Path, row: int) -> float:
    """A confidence cell: a number in [0, 1] (``delfverify.numbers``)."""
    try:
        return parse_number(text, low=0, high=1)
    except NumberError as exc:
        raise TableError(f"{path}: row {row}: confidence {exc}") from None


def _score(word: str) -> float | None:
    """The value of a word that reads as a number in [0, 1] (``delfverify.numbers``), else None."""
    try:
        return parse_number(word, low=0, high=1)
    except NumberError:
        return None


def _kaggle_pairs(cell: str, path: str, row: int) -> list[tuple[str, float]]:
    """Split a Kaggle ``landmarks`` cell into its ``(label, score)`` pairs (see the module docstring).

    Raises
    ------
    TableError
        The cell does not split into pairs; naming ``path``, the row and the column.
    """
    spans = word_spans(cell)
    if len(spans) == 2:  # the usual "<label> <score>", quickly
        score = _score(spans[1][0])
        if score is not None and (_score(spans[0][0]) is None or spans[0][0].isdigit()):
            return [(spans[0][0], score)]
    scores = [_score(word[0]) for word in spans]
    if (len(spans) % 2 == 0 and all(score is not None for score in scores[1::2])
            and all(score is None or word[0].isdigit() for word, score in zip(spans[::2], scores[::2]))):
        return [(label[0], score) for label, score in zip(spans[::2], scores[1::2])]  # one-word labels
    pairs: list[tuple[str, float]] = []
    label: list[re.Match] = []  # the words of the label being read; its text is kept as written
    for word, score in zip(spans, scores):
        if score is None:
            label.append(word)
        elif label:
            pairs.append((cell[label[0].start():label[-1].end()], score))
            label = []
        else:
            raise _not_pairs(cell, path, row, f"the score {shorten(word[0])!r} has no label before it (a label of "
                                              f"several words may not hold a score word in this format: write "
                                              f"id,label,confidence for such labels)")
    if label:
        if len(label) > 1:  # "<label> <bad score>": say what is wrong with the score
            _parse_confidence(label[-1][0], path, row)
        raise _not_pairs(cell, path, row, f"it ends with {shorten(cell[label[0].start():label[-1].end()])!r}")
    return pairs


def check_kaggle_labels(table: pd.DataFrame) -> None:
    """Refuse labels that a Kaggle cell cannot hold so that it reads back as written, in any order of the
    candidates (the module docstring): a score as a word of a label of several words, a one-word label that is a
    score other than a bare one, spaces around a label, and a bare-score label beside a label of several words.

    Raises
    ------
    TableError
        Naming the row (its position), the label and the remedy.
    """
    if not len(table):
        return
    labels = table["label"]
    spaced = labels.str.contains(SPACE_CHAR).to_numpy(bool)
    numeric = labels.str.match(r"[+.0-9]").to_numpy(bool)  # may read as a score
    if not (spaced.any() or numeric.any()):
        return
    several = set(table["id"][spaced])
    for row in np.flatnonzero(spaced | numeric):
        label, pid = labels.iat[row], table["id"].iat[row]
        words_of = words(label)
        scores = [_score(word) is not None for word in words_of]
        if words_of != [label] and label != label.strip(SPACE):
            why = "it has spaces around it, which the cell would lose"
        elif len(words_of) > 1 and any(scores):
            why = f"its word {shorten(words_of[scores.index(True)])!r} would read as a score"
        elif len(words_of) == 1 and scores[0] and not label.isdigit():
            why = "it would read as a score"
        elif len(words_of) == 1 and scores[0] and pid in several:
            why = "it would read as a score beside the id's label of several words"
        else:
            continue
        raise TableError(f"Predictions: column 'label', row {row}: label {shorten(label)!r} cannot be held by a "
                         f"Kaggle cell: {why}; use the id,label,confidence format for such labels")


def _not_pairs(cell: str, path: str, row: int, detail: str) -> TableError:
    return TableError(f"{path}: row {row}: landmarks cell {shorten(cell.strip(SPACE))!r} must be '<label> <score>' "
                      f"pairs ('<label1> <score1> <label2> <score2> ...', scores in [0, 1]) or empty; {detail}")


def _group_candidates(ids: list[str], labels: list[str], confidences: list[float], rows: list[int],
                      path: Path) -> np.ndarray:
    """The order that groups each id's candidates (in order of the id's first row), best first; checks that an
    id holds each label once and an empty prediction only alone."""
    frame = pd.DataFrame({"id": ids, "label": labels, "row": rows})
    repeated = frame.duplicated(["id", "label"], keep="first").to_numpy()
    if repeated.any():
        i = int(np.flatnonzero(repeated)[0])
        first = frame["row"][(frame["id"] == ids[i]) & (frame["label"] == labels[i])].iloc[0]
        what = f"label {shorten(labels[i])!r} twice" if labels[i] else "two empty predictions"
        raise TableError(f"{path}: row {rows[i]}: {what} for id {shorten(ids[i])!r} (first at row {first}); each "
                         f"candidate label may appear once per id")
    query, _ = pd.factorize(frame["id"])
    counts = np.bincount(query)
    empty = (frame["label"] == "").to_numpy() & (counts[query] > 1)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        other = frame["row"][(query == query[i]) & ~empty].iloc[0]
        raise TableError(f"{path}: row {rows[i]}: id {shorten(ids[i])!r} has no prediction here but a candidate at "
                         f"row {other}; give its candidates, or one empty row")
    return np.lexsort((np.arange(len(ids)), -np.asarray(confidences), query))


def read_predictions(path: str | os.PathLike) -> Predictions:
    """Read a predictions CSV in any of ``FORMATS``; several rows (or Kaggle pairs) per id are its candidates.

    Raises
    ------
    TableError
        Unknown columns (the message lists the accepted formats), empty file, empty ids, a label given twice for
        one id, an empty prediction beside candidates, a Kaggle cell that is not ``label score`` pairs, or a
        confidence that is not a number in [0, 1]; the row is named.
    """
    return _parse_predictions(read_csv(path, "predictions"), str(path), 2)


def as_predictions(value: str | os.PathLike | Predictions | pd.DataFrame) -> Predictions:
    """Predictions from a file (``read_predictions``), a ``Predictions`` table, or a DataFrame with the columns of
    one of ``FORMATS`` (ids and labels as strings, a missing label as ``""``, NaN or None; confidences as numbers
    or their text), checked as a file is: its rows are named by position (0 is the first).

    Raises
    ------
    TableError
        As ``read_predictions``, naming the column of a value of the wrong type.
    """
    return adopt(value, Predictions, read_predictions, _parse_predictions, "the predictions table", _FORMAT_COLUMNS,
                 ("confidence",))


def _parse_predictions(frame: pd.DataFrame, path: str, first_row: int) -> Predictions:
    """Predictions from a frame of text cells as a CSV file holds them (rows numbered from ``first_row``)."""
    columns = tuple(frame.columns)
    fmt = next((name for name, cols in FORMATS.items() if columns == cols), None)
    if fmt is None:
        unknown = [column for column in columns if column not in _FORMAT_COLUMNS]
        what = f": unknown column {column_list(unknown[:1])}" if unknown else ""
        raise TableError(f"{path}: unrecognised predictions columns {column_list(columns)}{what}; accepted formats "
                         f"are {_ACCEPTED}")
    check_ids(frame, path, "predictions", unique=False, first_row=first_row)
    ids, labels, confidences, rows = [], [], [], []
    if fmt == "kaggle":
        for row, (pid, cell) in enumerate(zip(frame["id"], frame["landmarks"]), start=first_row):
            pairs = _kaggle_pairs(cell, path, row) or [("", math.nan)]
            ids += [pid] * len(pairs)
            rows += [row] * len(pairs)
            for label, confidence in pairs:
                labels.append(label)
                confidences.append(confidence)
    else:
        label_column = "landmarks" if fmt == "landmarks_confidence" else "label"
        for row, (label, conf) in enumerate(zip(frame[label_column], frame["confidence"]), start=first_row):
            label = label.strip(SPACE)
            labels.append(label)
            if not label and not conf.strip():
                confidences.append(math.nan)
            elif not label:
                raise TableError(f"{path}: row {row}: confidence given without a label")
            else:
                confidences.append(_parse_confidence(conf, path, row))
        ids = frame["id"].tolist()
        rows = list(range(first_row, len(ids) + first_row))
    # The id column as read, unless Kaggle cells of several pairs made more rows than the file has.
    table = pd.DataFrame({"id": frame["id"] if len(ids) == len(frame) else ids, "label": labels,
                          "confidence": confidences})
    if len(set(ids)) < len(ids):
        order = _group_candidates(ids, labels, confidences, rows, path)
        table = table.iloc[order].reset_index(drop=True)
    return Predictions(table=table, format=fmt)


#: Decimals of every confidence written (``format_confidence``); tuning ranks confidences rounded to as many.
CONFIDENCE_DECIMALS = 6


def format_confidence(value: float) -> str:
    """The confidence rounded to ``CONFIDENCE_DECIMALS`` decimals, in the shortest text that reads back as it."""
    return repr(round(float(value), CONFIDENCE_DECIMALS) + 0.0)  # + 0.0: never "-0.0"


def write_predictions(predictions: Predictions, path: str | os.PathLike | Output) -> None:
    """Write predictions in their own format and row order (``Predictions.to_frame``) through the output layer
    (``delfverify.outputs``): a regular file is replaced atomically (never a half-written file), a device, a FIFO
    or ``-`` (standard output) is written into.

    Raises
    ------
    OutputError
        The path cannot be written; the message names it and the remedy, and an earlier file there is intact.
    """
    write_output(path, encode_predictions(predictions), name="the output")


def encode_predictions(predictions: Predictions) -> bytes:
    """The bytes of a predictions file (UTF-8 CSV, ``\\n`` line ends) as ``write_predictions`` writes them."""
    frame = predictions.to_frame()
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(frame.columns)
    writer.writerows(frame.itertuples(index=False, name=None))
    return text.getvalue().encode("utf-8")


def read_gallery(path: str | os.PathLike) -> Gallery:
    """Read a gallery CSV: ``id,landmark_id`` and optionally ``path``; other columns (e.g. ``url``) are ignored.

    Raises
    ------
    TableError
        Missing columns, empty or duplicate ids, empty labels; the row is named.
    """
    return _parse_gallery(read_csv(path, "gallery"), str(path), 2)


def as_gallery(value: str | os.PathLike | Gallery | pd.DataFrame) -> Gallery:
    """A gallery from a file (``read_gallery``), a ``Gallery`` or a DataFrame with ``id``, ``landmark_id`` and an
    optional ``path`` column of strings, checked as a file is (rows named by position, 0 the first).

    Raises
    ------
    TableError
        As ``read_gallery``, naming the column of a value of the wrong type.
    """
    return adopt(value, Gallery, read_gallery, _parse_gallery, "the gallery table", ("id", "landmark_id", "path"))


def _parse_gallery(frame: pd.DataFrame, path: str, first_row: int) -> Gallery:
    missing = [c for c in ("id", "landmark_id") if c not in frame.columns]
    if missing:
        raise TableError(
            f"{path}: gallery is missing column(s) {', '.join(missing)}; expected id,landmark_id[,path] "
            f"(found {column_list(frame.columns)})"
        )
    frame = frame.assign(landmark_id=frame["landmark_id"].str.strip(SPACE))
    check_ids(frame, path, "the gallery", first_row=first_row)
    empty = np.flatnonzero(frame["landmark_id"].to_numpy() == "")
    if len(empty):
        raise TableError(f"{path}: row {empty[0] + first_row}: empty landmark_id in the gallery")
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
    return _parse_solution(read_csv(path, "solution"), str(path), 2)


def as_solution(value: str | os.PathLike | Solution | pd.DataFrame) -> Solution:
    """A solution from a file (``read_solution``), a ``Solution`` or a DataFrame with ``id`` and ``landmarks``
    columns of strings (a query without a landmark: ``""``, NaN or None), checked as a file is.

    Raises
    ------
    TableError
        As ``read_solution``, naming the column of a value of the wrong type.
    """
    return adopt(value, Solution, read_solution, _parse_solution, "the truth table", ("id", "landmarks"))


def _parse_solution(frame: pd.DataFrame, path: str, first_row: int) -> Solution:
    missing = [c for c in ("id", "landmarks") if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: solution is missing column(s) {', '.join(missing)}; expected id,landmarks")
    columns = list(frame.columns)
    frame = pd.DataFrame({"id": frame["id"], "landmarks": frame["landmarks"].str.strip(SPACE)})
    check_ids(frame, path, "the solution", first_row=first_row)
    _check_not_predictions(frame, columns, path, first_row)
    return Solution(frame)


#: A cell of ``<label> <score>`` pairs, each score a number in [0, 1] written with a point (``eiffel 0.7594``,
#: ``x 1.0``, ``y 5.0e-05``): not ``12.5 340.25``, two true labels.
_PAIRS = re.compile(rf"(?:{WORD.pattern}{SPACE_CHAR}+(?:0*\.[0-9]+|0+\.[0-9]*|1\.0*|[0-9]\.[0-9]*[eE]-[0-9]+)"
                    rf"(?:{SPACE_CHAR}+|$))+")


def _check_not_predictions(frame: pd.DataFrame, columns: list[str], path: str, first_row: int) -> None:
    """Refuse a truth that is a predictions file: one with a ``confidence`` column, or whose every landmark cell is
    ``<label> <score>`` pairs with scores such as ``0.7594``; read as truth, its scores would be true labels, and
    GAP silently wrong.

    Raises
    ------
    TableError
        Naming ``path`` and the remedy.
    """
    cells = frame["landmarks"][frame["landmarks"] != ""]
    if "confidence" in columns:
        why = "it has a confidence column"
    elif len(cells) and cells.str.fullmatch(_PAIRS).all():
        why = f"every row holds label/confidence pairs (row {cells.index[0] + first_row}: {shorten(cells.iloc[0])!r})"
    else:
        return
    raise TableError(f"{path}: this looks like a predictions file, not the truth: {why}; give the solution file "
                     f"(id,landmarks: each query's true labels separated by spaces)")


def read_ids(path: str | os.PathLike) -> pd.DataFrame:
    """The photo ids of any CSV with an ``id`` column (a gallery, a predictions file, a plain list), each once in
    file order, with the gallery's optional relative ``path`` (``""`` where not given); other columns are ignored.

    Raises
    ------
    TableError
        No ``id`` column, empty ids, or ids that differ only by spaces around them; the row is named.
    """
    return _parse_ids(read_csv(path, "ids"), str(path), 2)


def as_ids(value: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """``read_ids`` of a CSV file, or of a DataFrame with an ``id`` column (and optionally ``path``) of strings,
    checked as a file is (rows named by position, 0 the first)."""
    return adopt(value, None, read_ids, _parse_ids, "the ids table", ("id", "path"))


def _parse_ids(frame: pd.DataFrame, path: str, first_row: int) -> pd.DataFrame:
    if "id" not in frame.columns:
        raise TableError(f"{path}: no id column (found {column_list(frame.columns)}); give a CSV "
                         f"with a column id, such as a gallery or predictions file")
    check_ids(frame, path, "the ids", unique=False, first_row=first_row)
    paths = frame["path"].str.strip() if "path" in frame.columns else pd.Series([""] * len(frame), dtype=object)
    table = pd.DataFrame({"id": frame["id"], "path": paths.to_numpy()})
    return table.drop_duplicates("id").reset_index(drop=True)
