"""Tabular input read as text, the one way every table is: a CSV file (``read_csv``) or a user's DataFrame
(``text_frame``) becomes a frame of text cells as a CSV file holds them, and ``adopt`` takes a path, a table or a
DataFrame alike; ``check_ids`` checks the id column of any table (ids are data: kept exactly, never empty, never two
that differ only by spaces around them); ``check_columns`` refuses a header that names a column twice. ``words`` (and
``words_by_row``, its vectorised form) splits a cell into its words, the one rule for every list of labels or ids in a
cell. ``delfverify.tables`` parses each kind of table from these cells."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import string
import warnings
from pathlib import Path
from typing import BinaryIO, Collection

import numpy as np
import pandas as pd

from .errors import shorten
from .fileio import check_path, open_input, reading
from .table_checks import TableError


def read_csv(path: str | os.PathLike, what: str) -> pd.DataFrame:
    """A CSV file's cells as text (``""`` where a row is short of fields), its column names stripped of spaces.

    A FIFO, ``/dev/stdin`` or a device is read up to ``fileio.MAX_STREAM_BYTES`` (``fileio.open_input``).

    Raises
    ------
    TableError
        The file is missing, unreadable, not a file, empty, not UTF-8, not CSV, has a row with more fields than the
        header or two columns of one name; the message names it and ``what`` it should be.
    """
    path = Path(check_path(path, "path"))
    with reading(path, f"{what} CSV", TableError):
        try:
            with open_input(path) as handle:
                try:
                    # index_col=False: a row with one field more than the header must not turn the first column
                    # into an index and shift every value one column left; pandas then warns that it would drop
                    # data: an error here.
                    with warnings.catch_warnings():
                        warnings.simplefilter("error", pd.errors.ParserWarning)
                        frame = pd.read_csv(handle, **_CSV)
                    handle.seek(0)  # the header as written: pandas renames a repeated column (id, id.1)
                    header = pd.read_csv(handle, header=None, nrows=1, **_CSV).iloc[0].tolist()
                except pd.errors.ParserWarning:
                    handle.seek(0)
                    row = _first_long_row(handle)
                    raise TableError(f"{path}: {f'row {row}: ' if row else ''}more fields than the header has "
                                     f"columns; quote fields that contain commas") from None
        except pd.errors.EmptyDataError:
            raise TableError(f"{path}: {what} file is empty; expected a header line") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise TableError(f"{path}: cannot parse {what} CSV ({shorten(str(exc).strip(), 200)})") from None
    # A column without a name keeps pandas' name for it (Unnamed: 2), so two of them are not one name twice.
    frame.columns = check_columns([str(name).strip() or column for name, column in zip(header, frame.columns)],
                                  path)
    return frame


#: How ``read_csv`` reads a CSV file: every cell as text, exactly as written.
_CSV = dict(dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=False, index_col=False)


def check_columns(names: list[str], source: str | os.PathLike) -> list[str]:
    """``names``, the column names of a CSV header or a DataFrame, if each appears once.

    Raises
    ------
    TableError
        A name appears twice (spaces around it left out); the message names ``source`` and the column.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TableError(f"{source}: column {column_list([name])} appears twice in the header; give each "
                             f"column once")
        seen.add(name)
    return names


def _first_long_row(handle: BinaryIO) -> int | None:
    """The row number (header = 1) of the first CSV record with more fields than the header (None where Python's
    CSV reader cannot tell: a field over its size limit)."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        records = (record for record in csv.reader(text) if record)  # blank lines are skipped, as pandas does
        width = len(next(records))
        return next((row for row, record in enumerate(records, start=2) if len(record) > width), None)
    except csv.Error:
        return None
    finally:
        text.detach()  # the caller closes the file


#: The white space that separates the words of a cell (the labels of a Kaggle or truth cell, the gallery ids of a
#: details row) and that is stripped around a label: ASCII white space, as around a number (``delfverify.numbers``).
#: Any other character, a no-break space included, is part of a word.
SPACE = string.whitespace
#: Regular expressions of a character of ``SPACE`` and of a word.
SPACE_CHAR = f"[{re.escape(SPACE)}]"
WORD = re.compile(f"[^{re.escape(SPACE)}]+")


def words(text: str) -> list[str]:
    """The words of a cell: its text split at runs of ``SPACE`` (none for a cell of only spaces).

    Examples
    --------
    >>> words(" eiffel\tastronaut  louvre\xa0museum ")
    ['eiffel', 'astronaut', 'louvre\xa0museum']
    """
    return WORD.findall(text)


def word_spans(text: str) -> list[re.Match]:
    """The words of a cell (``words``) as matches, which give where each lies in the text."""
    return list(WORD.finditer(text))


def words_by_row(texts: pd.Series) -> pd.Series:
    """``words`` of each text, vectorised: a word per row, indexed by its text's index, in order; a text without
    words gives none. Most texts hold one word, so only those with ``SPACE`` in them are split."""
    texts = texts.astype(object)
    spaced = texts.str.contains(SPACE_CHAR, regex=True).to_numpy(bool)
    split = texts[spaced].str.findall(WORD).explode().dropna()
    whole = texts[~spaced]
    return pd.concat([whole[whole != ""], split]).sort_index(kind="stable")


def column_list(names) -> str:
    """Column names as a message lists them: ``id,landmarks``; a name with a line break or another unprintable
    character quoted, so that the message stays one line; shortened."""
    return shorten(",".join(name if name.isprintable() else repr(name) for name in map(str, names)))


def check_ids(frame: pd.DataFrame, path: str | Path, what: str, unique: bool = True, first_row: int = 2) -> None:
    """Ids are data, kept exactly as given; but an empty id, a repeated id where each may appear once
    (``unique``), or two ids that differ only by spaces around them (which read alike, and which tools that strip
    fields would merge) are errors."""
    ids = frame["id"]
    stripped = ids.str.strip()
    empty = np.flatnonzero(stripped.to_numpy() == "")
    if len(empty):
        raise TableError(f"{path}: row {empty[0] + first_row}: empty id in {what}")
    variants = pd.DataFrame({"exact": ids, "key": stripped}).drop_duplicates()
    spaced = variants["key"].duplicated(keep=False).to_numpy()
    if spaced.any():
        key = variants["key"].to_numpy()[spaced][0]
        first, row = np.flatnonzero((stripped == key).to_numpy() & ~ids.duplicated().to_numpy())[:2]
        raise TableError(
            f"{path}: row {row + first_row}: id {shorten(ids.iloc[row])!r} differs from id "
            f"{shorten(ids.iloc[first])!r} (row {first + first_row}) "
            f"only by spaces around it; ids are kept exactly as given, so remove the spaces or one of the rows"
        )
    if not unique:
        return
    duplicated = ids.duplicated(keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        raise TableError(
            f"{path}: row {row + first_row}: duplicate id {shorten(ids.iloc[row])!r} (first at row "
            f"{first + first_row}); each id may appear once in {what}"
        )


def adopt(value, kind: type | None, read, parse, name: str, columns: Collection[str],
          numbers: tuple[str, ...] = ()):
    """``value`` if it is already a ``kind``; a DataFrame parsed as its file would be (``text_frame`` of the
    ``columns`` the parser reads, rows named by position); else a path, read."""
    if kind is not None and isinstance(value, kind):
        return value
    if isinstance(value, pd.DataFrame):
        return parse(text_frame(value, name, columns, numbers), name, 0)
    return read(value)


def text_frame(frame: pd.DataFrame, name: str, columns: Collection[str], numbers: tuple[str, ...] = ()) -> pd.DataFrame:
    """A user's DataFrame as the text cells a CSV file would hold: strings kept, a missing value (NaN, None) as
    ``""`` except in the ``id`` column, and in the ``numbers`` columns finite numbers as their shortest text.

    Only the cells of ``columns``, those the parser reads, are converted, after the column names are checked
    (``check_columns``): another column keeps its name for the parser to ignore or refuse by name, and its cells
    are left empty.

    Raises
    ------
    TableError
        A column named twice; a value of another type, naming the column and the row (its position).
    """
    names = check_columns([str(column).strip() for column in frame.columns], name)
    out = {}
    for position, column in enumerate(names):
        if column not in columns:
            out[column] = np.full(len(frame), "", object)
            continue
        values = frame.iloc[:, position].to_numpy(object)
        text = np.empty(len(values), object)
        for row, value in enumerate(values):
            if isinstance(value, str):
                text[row] = value
            elif column != "id" and (value is None or (isinstance(value, float) and math.isnan(value))):
                text[row] = ""
            elif column in numbers and isinstance(value, (int, float, np.integer, np.floating)) \
                    and not isinstance(value, (bool, np.bool_)):
                text[row] = repr(float(value))
            else:
                kinds = "strings or numbers" if column in numbers else "strings"
                raise TableError(f"{name}: row {row}: column {column!r} holds {type(value).__name__} "
                                 f"{shorten(repr(value))}; it takes {kinds} (ids and labels are text: read CSV "
                                 f"files with dtype=str)")
        out[column] = text
    return pd.DataFrame(out, columns=list(out))

