"""The details file: a row per prediction (per candidate, when queries have several) of what a run did, and why.

``rerank`` makes the table (``RerankResult.details``); ``write_details`` writes it as CSV (``encode_details``);
``read_details`` reads such a CSV back (for ``delfverify report``), and ``check_details`` checks and types the
columns of a table either way. ``first_and_chosen`` tells the classifier's predictions (each query's first
candidate) from the re-ranked ones (each query's chosen candidate).
"""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd

from .errors import DelfverifyError
from .outputs import Output, write_output
from .tables import read_csv

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
    """The bytes of a details file, as ``write_details`` writes them."""
    text = io.StringIO(newline="")
    details.to_csv(text, index=False, lineterminator="\n")
    return text.getvalue().encode("utf-8")


def read_details(path: str | os.PathLike) -> pd.DataFrame:
    """Read a details CSV written by ``rerank`` (``DETAILS_COLUMNS``, and ``rank`` and ``chosen`` with candidates).

    Raises
    ------
    TableError
        The file is missing or malformed.
    DetailsError
        A column is missing, or a confidence or rank is not a number.
    """
    return check_details(read_csv(path, "details"), str(path))


def check_details(details: pd.DataFrame, name: str = "details") -> pd.DataFrame:
    """The details with typed columns: confidences float (NaN where none), ``rank`` int, ``chosen`` bool.

    Raises
    ------
    DetailsError
        A column is missing, or a confidence or rank is not a number; the row is named.
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
        values = pd.to_numeric(details[column].replace("", np.nan), errors="coerce")
        bad = values.isna() & details[column].notna() & (details[column].astype(str) != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DetailsError(f"{name}: row {row + 2}: {column} {details[column].iloc[row]!r} is not a number")
        details[column] = values.astype(float)
    if "rank" in details.columns:
        rank = pd.to_numeric(details["rank"], errors="coerce")
        if rank.isna().any():
            row = int(np.flatnonzero(rank.isna().to_numpy())[0])
            raise DetailsError(f"{name}: row {row + 2}: rank {details['rank'].iloc[row]!r} is not a number")
        details["rank"] = rank.astype(int)
    if "chosen" in details.columns:
        details["chosen"] = details["chosen"].astype(str).str.lower().isin(("true", "1"))
    return details


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
