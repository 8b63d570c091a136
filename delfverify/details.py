"""The details file: a row per prediction (per candidate, when queries have several) of what a run did, and why.

``rerank`` makes the table (``RerankResult.details``); ``write_details`` writes it as CSV (``encode_details``);
``read_details`` reads such a CSV back (for ``delfverify report``), and ``check_details`` checks and types the
columns of a table either way. ``first_and_chosen`` tells the classifier's predictions (each query's first
candidate) from the re-ranked ones (each query's chosen candidate).
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pandas as pd

from .errors import DelfverifyError, shorten
from .numbers import NumberError, parse_number
from .outputs import Output, write_output
from .policy.schema import MAX_INLIERS
from .rescaling import STATUSES
from .csv_input import read_csv, words

#: Columns of the details, one row per prediction.
DETAILS_COLUMNS = ("id", "label", "band", "old_confidence", "new_confidence", "gallery_ids", "inliers",
                   "false_match_rate", "status", "reason")
#: Columns that details written by earlier versions lack; they read as empty.
OPTIONAL_COLUMNS = ("false_match_rate",)
#: Columns of the details when queries have several candidates: a row per candidate, its rank, and whether it is
#: the query's chosen label.
CANDIDATE_DETAILS_COLUMNS = ("id", "rank", *DETAILS_COLUMNS[1:], "chosen")


class DetailsError(DelfverifyError, ValueError):
    """A details table or file lacks a column or holds a value of the wrong kind; the message names the row."""


def write_details(details: pd.DataFrame, path: str | os.PathLike | Output) -> None:
    """Write the details as CSV (UTF-8, ``\\n`` line ends) through the output layer (``delfverify.outputs``): a
    regular file atomically, a device, a FIFO or ``-`` written into."""
    write_output(path, encode_details(details), name="the details file")


def encode_details(details: pd.DataFrame) -> bytes:
    """The bytes of a details file, as ``write_details`` writes them.

    A character UTF-8 cannot encode is written as its escape (``\\udcff``): a byte of a file name that is not
    UTF-8, which Python holds as a lone surrogate (``os.fsdecode``), in a ``reason``. The write never fails on
    it, and the file stays UTF-8, readable by ``read_details``.
    """
    text = io.StringIO(newline="")
    details.to_csv(text, index=False, lineterminator="\n")
    return text.getvalue().encode("utf-8", errors="backslashreplace")


def read_details(path: str | os.PathLike) -> pd.DataFrame:
    """Read a details CSV written by ``rerank`` (``DETAILS_COLUMNS``, and ``rank`` and ``chosen`` with candidates).

    Raises
    ------
    TableError
        The file is missing or malformed.
    DetailsError
        A column is missing, or a value is not what ``rerank`` writes (``check_details``).
    """
    return check_details(read_csv(path, "details"), str(path))


def check_details(details: pd.DataFrame, name: str = "details") -> pd.DataFrame:
    """The details, checked like any input and typed: confidences float (NaN where none), ``rank`` int, ``chosen``
    bool, the other columns text.

    Checked, as ``rerank`` writes them: each confidence empty or a number in [0, 1] and each ``rank`` an integer
    from 1 to the number of rows (``delfverify.numbers``); each ``inliers`` cell empty or counts separated by single
    spaces, each ``-`` or an integer in [0, ``MAX_INLIERS``], no more of them than the row has ``gallery_ids``;
    each ``status`` one of ``rescaling.STATUSES``, ``no_prediction`` exactly where the label is empty; each
    ``chosen`` true or false, and, with candidates (``rank`` and ``chosen``), exactly one chosen row per id.

    Raises
    ------
    DetailsError
        A column is missing, or a value is not as above; the row (as in the file: the header is row 1) and the
        column are named.
    """
    missing = [c for c in DETAILS_COLUMNS if c not in details.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise DetailsError(f"{name}: details lack column(s) {', '.join(missing)}; expected "
                           f"{','.join(DETAILS_COLUMNS)} as written by 'delfverify rerank --details'")
    details = details.reset_index(drop=True).copy()
    for column in OPTIONAL_COLUMNS:
        if column not in details.columns:
            details[column] = np.nan
    for column in ("id", "label", "band", "gallery_ids", "inliers", "status", "reason"):
        details[column] = details[column].fillna("").astype(str)
    for column in ("old_confidence", "new_confidence", "false_match_rate"):
        details[column] = _numbers(details[column], name, low=0, high=1).astype(float)
    if "rank" in details.columns:
        details["rank"] = _numbers(details["rank"], name, integer=True, low=1, high=max(len(details), 1)).astype(int)
    _check_inliers(details, name)
    _check_statuses(details, name)
    if "chosen" in details.columns:
        details["chosen"] = _flags(details["chosen"], name)
        if "rank" in details.columns:
            _check_one_chosen(details, name)
    return details


def _cell(value: object) -> str:
    """A details value as the text a CSV file holds (``""`` for a missing one)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


def _numbers(column: pd.Series, name: str, *, integer: bool = False, low: int, high: int) -> np.ndarray:
    """A column's numbers (NaN for an empty cell where ``integer`` is false), each read by ``parse_number``.

    Raises
    ------
    DetailsError
        Naming the row and the column.
    """
    if column.dtype.kind in "fiu":  # numbers already (a run's own table): the same checks at once, where all pass
        values = column.to_numpy(float)
        whole = np.isfinite(values) & (values >= low) & (values <= high) & (not integer or values == np.round(values))
        if np.all(whole | (np.isnan(values) & (not integer))):
            return values
    out = np.empty(len(column), object)
    for row, value in enumerate(column.to_numpy(object)):
        text = _cell(value)
        if not integer and not text.strip():
            out[row] = math.nan
            continue
        try:
            out[row] = parse_number(text, integer=integer, low=low, high=high)
        except NumberError as exc:
            raise DetailsError(f"{name}: row {row + 2}: {column.name} {exc}") from None
    return out


def _check_inliers(details: pd.DataFrame, name: str) -> None:
    """Each ``inliers`` cell empty, or ``-`` and counts in [0, ``MAX_INLIERS``] separated by single spaces, no
    more of them than the row has gallery ids.

    Raises
    ------
    DetailsError
        Naming the row.
    """
    valid: set[str] = {"-"}  # words already read: a run's cells repeat a few hundred counts
    for row, (cell, gallery) in enumerate(zip(details["inliers"], details["gallery_ids"])):
        if not cell:
            continue
        counts = cell.split(" ")  # single spaces, as rerank writes them
        for word in counts:
            if word in valid:
                continue
            try:
                parse_number(word, integer=True, low=0, high=MAX_INLIERS)
            except NumberError as exc:
                raise DetailsError(f"{name}: row {row + 2}: inliers cell {shorten(cell)!r}: {exc}; write '-' or a "
                                   f"count for each gallery id, separated by single spaces") from None
            valid.add(word)
        if len(counts) > len(words(gallery)):
            raise DetailsError(f"{name}: row {row + 2}: {len(counts)} inlier counts but {len(words(gallery))} "
                               f"gallery ids; each count is that of a gallery id")


def _check_statuses(details: pd.DataFrame, name: str) -> None:
    """Each status one of ``STATUSES``; ``no_prediction`` exactly where the label is empty.

    Raises
    ------
    DetailsError
        Naming the row and the column.
    """
    status, label = details["status"].to_numpy(object), details["label"].to_numpy(object)
    unknown = np.flatnonzero(~np.isin(status, STATUSES))
    if len(unknown):
        raise DetailsError(f"{name}: row {unknown[0] + 2}: status {shorten(status[unknown[0]])!r} is not one that "
                           f"rerank writes ({', '.join(STATUSES)})")
    wrong = np.flatnonzero((label == "") != (status == "no_prediction"))
    if len(wrong):
        row = wrong[0]
        why = "a row without a label" if label[row] == "" else f"label {shorten(label[row])!r}"
        raise DetailsError(f"{name}: row {row + 2}: status {status[row]!r} for {why}; status no_prediction is "
                           f"exactly that of a row whose label is empty")


def _check_one_chosen(details: pd.DataFrame, name: str) -> None:
    """Exactly one chosen row per id (details with candidates).

    Raises
    ------
    DetailsError
        Naming the first row of an id with no chosen row, or its second chosen row, and the column.
    """
    query, _ = pd.factorize(details["id"])
    chosen = details["chosen"].to_numpy(bool)
    count = np.bincount(query, weights=chosen, minlength=query.max() + 1 if len(query) else 0)
    none = np.flatnonzero(count[query] == 0)
    if len(none):
        raise DetailsError(f"{name}: row {none[0] + 2}: chosen: id {shorten(details['id'].iloc[none[0]])!r} has no "
                           f"chosen row; exactly one row of each id is chosen")
    again = np.flatnonzero(chosen & pd.Series(np.where(chosen, query, -1)).duplicated().to_numpy())
    if len(again):
        raise DetailsError(f"{name}: row {again[0] + 2}: chosen: id {shorten(details['id'].iloc[again[0]])!r} has a "
                           f"second chosen row; exactly one row of each id is chosen")


def _flags(column: pd.Series, name: str) -> np.ndarray:
    """``chosen``: ``True`` or ``False`` (any case; also ``1`` and ``0``)."""
    text = np.array([_cell(value).strip().lower() for value in column.to_numpy(object)], object)
    bad = np.flatnonzero(~np.isin(text, ["true", "false", "1", "0"]))
    if len(bad):
        raise DetailsError(f"{name}: row {bad[0] + 2}: chosen {shorten(_cell(column.iloc[bad[0]]))!r} must be True "
                           f"or False")
    return np.isin(text, ["true", "1"])


def first_and_chosen(details: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are the classifier's predictions (each query's first candidate) and which the re-ranked ones
    (each query's chosen candidate); every row both without candidates."""
    everything = np.ones(len(details), bool)
    first = (details["rank"] == 1).to_numpy() if "rank" in details.columns else everything
    chosen = details["chosen"].to_numpy(bool) if "chosen" in details.columns else everything
    return first, chosen


def relabelled(details: pd.DataFrame) -> np.ndarray:
    """Which rows are chosen candidates other than their query's first (bool per row)."""
    first, chosen = first_and_chosen(details)
    return chosen & ~first
