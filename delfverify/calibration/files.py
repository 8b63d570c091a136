"""Null table files: a strict reader of the versioned JSON format, the writer, and the tables shipped with the
package (``builtin_table``)."""

from __future__ import annotations

import functools
import json
import logging
import os
from importlib import resources
from typing import Any

from ..fileio import read_document
from ..numbers import load_json_document
from ..outputs import Output, write_output
from ..verification import GEOMETRIES

from .table import (_FIELDS, _NAME, FORMAT, FORMAT_VERSION, MAX_COUNT, MAX_FILE_BYTES, NullTable, NullTableError,
                    _extractor_name, _is_int, _is_number, _short)

logger = logging.getLogger(__name__)


def null_table_from_dict(doc: Any, source: str = "null table") -> NullTable:
    """A table from its JSON document (``NullTable.to_dict``), every field checked.

    Raises
    ------
    NullTableError
        Naming ``source`` and the field: a missing or unknown field, a wrong type, a value out of range, counts
        that rise, a format or version this delfverify does not read.
    """
    try:
        return _from_dict(doc)
    except NullTableError as exc:
        raise NullTableError(f"{source}: {exc}") from None


def _from_dict(doc: Any) -> NullTable:
    if not isinstance(doc, dict):
        raise NullTableError(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise NullTableError(f"format: expected {FORMAT!r}, got {_short(doc.get('format'))} (not a null table)")
    version = doc.get("version")
    if not _is_int(version):
        raise NullTableError(f"version: expected an integer, got {_short(version)}")
    if version != FORMAT_VERSION:
        raise NullTableError(f"version: this delfverify reads version {FORMAT_VERSION}, the file is version "
                             f"{version}")
    missing = [name for name in _FIELDS if name not in doc]
    if missing:
        raise NullTableError(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(str(name) for name in doc if name not in _FIELDS)
    if unknown:
        raise NullTableError(f"unknown field(s) {', '.join(_short(u) for u in unknown)}; expected "
                             f"{', '.join(_FIELDS)}")
    for name in ("extractor", "geometry", "pair_fingerprint", "source"):
        if not isinstance(doc[name], str):
            raise NullTableError(f"{name}: expected a string, got {_short(doc[name])}")
    for name in ("pairs", "unverifiable", "failed"):
        if not _is_int(doc[name]):
            raise NullTableError(f"{name}: expected an integer, got {_short(doc[name])}")
    if doc["seed"] is not None and not _is_int(doc["seed"]):
        raise NullTableError(f"seed: expected null or an integer, got {_short(doc['seed'])}")
    reaching = _int_list(doc["reaching"], "reaching")
    aside = _int_list(doc["set_aside"], "set_aside")
    tail = doc["tail"]
    if not isinstance(tail, dict):
        raise NullTableError(f"tail: expected an object, got {_short(tail)}")
    if set(tail) != {"anchor", "continuation"}:
        raise NullTableError(f"tail: expected exactly the fields anchor and continuation, got "
                             f"{', '.join(_short(str(k)) for k in tail) or 'none'}")
    if not _is_int(tail["anchor"]):
        raise NullTableError(f"tail.anchor: expected an integer, got {_short(tail['anchor'])}")
    if not _is_number(tail["continuation"]):
        raise NullTableError(f"tail.continuation: expected a number, got {_short(tail['continuation'])}")
    if reaching and doc["pairs"] != reaching[0]:
        raise NullTableError(f"pairs: {doc['pairs']} differs from reaching[0], {reaching[0]} (the pairs reaching "
                             f"0 inliers: all of them)")
    return NullTable(doc["extractor"], doc["geometry"], tuple(reaching), tail["anchor"],
                     float(tail["continuation"]), doc["source"], doc["seed"], doc["pair_fingerprint"],
                     tuple(aside), doc["unverifiable"], doc["failed"])


def _int_list(value: Any, name: str) -> list[int]:
    if not isinstance(value, list):
        raise NullTableError(f"{name}: expected a list of integers, got {_short(value)}")
    if len(value) > MAX_COUNT + 1:
        raise NullTableError(f"{name}: expected at most {MAX_COUNT + 1} entries, got {len(value)}")
    for i, item in enumerate(value):
        if not _is_int(item):
            raise NullTableError(f"{name}[{i}]: expected an integer, got {_short(item)}")
    return value


def null_table_from_json(data: bytes | str, source: str = "<null table>") -> NullTable:
    """Parse and check a null table's JSON text (UTF-8 bytes or a string).

    Raises
    ------
    NullTableError
        For anything but a valid table: not UTF-8, not JSON (line and column given), NaN or infinite numbers,
        huge integers, a repeated field, nesting too deep, or an invalid document; the message names ``source``.
    """
    if not isinstance(data, (bytes, str)):
        raise NullTableError(f"{source}: expected bytes or a string, got {type(data).__name__}")
    doc = load_json_document(data, source, "null table", NullTableError)
    return null_table_from_dict(doc, source)


def read_null_table(path: str | os.PathLike) -> NullTable:
    """Read a null table file (``write_null_table``, ``delfverify calibrate``).

    Raises
    ------
    NullTableError
        If the file is missing, unreadable, a directory, larger than ``MAX_FILE_BYTES`` (a FIFO or a device is read
        up to that), or not a valid table; the message names the file and the field.
    """
    data = read_document(path, "null table", NullTableError, MAX_FILE_BYTES)
    return null_table_from_json(data, str(path))


def write_null_table(table: NullTable, path: str | os.PathLike | Output) -> None:
    """Write a table as JSON through the output layer (``delfverify.outputs``: atomically, or into a stream);
    ``read_null_table`` reads it back equal."""
    doc = table.to_dict()
    text = json.dumps({k: v for k, v in doc.items() if k != "reaching"}, indent=2)
    # One line for the long list, so the file stays readable.
    text = text[:-2] + ',\n  "reaching": ' + json.dumps(doc["reaching"]) + "\n}\n"
    write_output(path, text, name="the null table")


# ---------------------------------------------------------------------------------------------------------------
# Built-in tables


@functools.cache
def _builtin(name: str, geometry: str) -> NullTable | None:
    resource = resources.files("delfverify").joinpath("data", f"null_{name}_{geometry}.json")
    if not resource.is_file():
        return None
    return null_table_from_json(resource.read_bytes(), f"built-in null table {resource.name}")


def builtin_table(extractor: Any, geometry: str) -> NullTable | None:
    """The null table shipped for an extractor and geometric model, or ``None`` where none was measured.

    RootSIFT's tables were measured for every model (``benchmarks/measure_null_tables.py``); DELF has none: its
    weights cannot be downloaded where the tables are measured. Measure one with ``measure_null_table``.

    Parameters
    ----------
    extractor : str or Extractor
        A name (``"rootsift"``) or an object with a ``name``.
    geometry : {"affine", "homography", "fundamental"}

    Raises
    ------
    ValueError
        If ``geometry`` is unknown.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    name = _extractor_name(extractor)
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        return None
    return _builtin(name, geometry)
