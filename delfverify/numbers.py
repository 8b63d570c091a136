"""Numbers read from text: one strict rule for every CSV cell, JSON number and numeric command line option.

A number is written in ASCII decimal: an optional sign, digits with an optional decimal point, and an optional
exponent (``0.75``, ``.5``, ``1e-05``, ``-3``). ASCII white space around it is ignored (CSV files often have a space
after the comma). Nothing else reads as a number, though Python's ``float`` and ``int`` accept much of it: digits of
other scripts (``٣``, ``３``), underscores (``0.7_5``), ``nan``, ``inf``, hexadecimal, other text around it. A
number must be finite once converted (``1e400`` is refused) and lie in the range the caller gives. An integer is
digits only (no point, no exponent), at most ``MAX_DIGITS`` of them: longer ones are out of every range delfverify
has, and converting them takes quadratic time. Other numbers may have at most ``MAX_CHARS`` characters.

``parse_number`` reads one number; ``load_json`` reads a JSON document whose numbers all pass the same rule
(``NaN`` and ``Infinity`` are refused with them) and whose objects name each field once, at any depth: every JSON
file the tool reads is read by it. A ``NumberError`` quotes the text, shortened, and says what is wrong; the caller
adds where it was: the file and the row and column, or the JSON field.
"""

from __future__ import annotations

import json
import math
import re
import string
from typing import Any, Callable

from .errors import DelfverifyError, shorten

#: The most digits an integer may have.
MAX_DIGITS = 20
#: The most characters of a number that is not an integer (white space around it left out).
MAX_CHARS = 100

_REAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class NumberError(DelfverifyError, ValueError):
    """Text that is not a number of the kind asked for, or one out of range; the message quotes the text and says
    what it must be, for the caller to place (file, row and column, or JSON field)."""


def parse_number(text: str, *, integer: bool = False, low: float | None = None,
                 high: float | None = None) -> int | float:
    """The number ``text`` writes, by the module's rule.

    Parameters
    ----------
    text : str
        A CSV cell, a JSON number's text or an option's value.
    integer : bool
        Read an integer (digits only) and return an ``int``; else a ``float``.
    low, high : number, optional
        The inclusive range the number must lie in.

    Returns
    -------
    int or float

    Raises
    ------
    NumberError
        ``text`` is not written so, is not finite, has more than ``MAX_DIGITS`` digits (integers) or lies outside
        ``[low, high]``.

    Examples
    --------
    >>> parse_number(" 0.75", low=0, high=1)
    0.75
    >>> parse_number("0.7_5")
    Traceback (most recent call last):
    ...
    delfverify.numbers.NumberError: '0.7_5' is not a number written in ASCII decimal (such as 0.75)
    """
    written = text.strip(string.whitespace) if isinstance(text, str) else ""
    if not (_INTEGER if integer else _REAL).fullmatch(written):  # linear in the text's length
        example = "3" if integer else "0.75"
        kind = "an integer written in ASCII digits" if integer else "a number written in ASCII decimal"
        raise NumberError(f"{_quote(text)} is not {kind} (such as {example})")
    if integer:
        digits = len(written.lstrip("+-"))
        if digits > MAX_DIGITS:
            limit = f"it must be {_kind(integer, low, high)}" if low is not None or high is not None \
                else f"at most {MAX_DIGITS} digits"
            raise NumberError(f"{_quote(text)} is an integer of {digits} digits, out of range ({limit})")
        value: int | float = int(written)
    else:
        if len(written) > MAX_CHARS:
            raise NumberError(f"{_quote(text)} is a number of {len(written)} characters, too long to read (at most "
                              f"{MAX_CHARS})")
        value = float(written)
        if math.isinf(value):
            raise NumberError(f"{_quote(text)} is out of range: it must be {_kind(integer, low, high)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise NumberError(f"{_quote(text)} must be {_kind(integer, low, high)}")
    return value


def _quote(text: Any) -> str:
    return repr(shorten(text)) if isinstance(text, str) else shorten(repr(text))


def _kind(integer: bool, low: float | None, high: float | None) -> str:
    """What a number must be: ``"a number in [0, 1]"``, ``"an integer >= 1"``, ``"a finite number"``."""
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        return f"{kind} in [{low}, {high}]"
    if low is not None:
        return f"{kind} >= {low}"
    if high is not None:
        return f"{kind} <= {high}"
    return kind if integer else "a finite number"


class RepeatedFieldError(DelfverifyError, ValueError):
    """A JSON object names a field twice (``json.loads`` keeps the last silently); the message names the object's
    path and the field."""


class _Repeated:
    """Stands, in a parsed JSON document, for an object that names ``key`` twice, until its path is known;
    ``before`` holds its fields before the second ``key``, read first (document order)."""

    def __init__(self, key: str, before: dict):
        self.key = key
        self.before = before


def _object(pairs: list[tuple[str, Any]]) -> Any:
    """A JSON object's fields as a dict, or a ``_Repeated`` where one is named twice."""
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            return _Repeated(key, doc)
        doc[key] = value
    return doc


class _Refused:
    """Stands, in a parsed JSON document, for a number ``parse_number`` refused, until its field is known."""

    def __init__(self, error: NumberError):
        self.error = error


def _json_number(integer: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return parse_number(text, integer=integer)
        except NumberError as exc:
            return _Refused(exc)
    return parse


def load_json(text: str, root: str = "") -> Any:
    """``json.loads(text)``, every number read by ``parse_number``: finite, integers of at most ``MAX_DIGITS``
    digits; ``NaN``, ``Infinity`` and ``-Infinity`` refused; an object that names a field twice refused.

    Parameters
    ----------
    text : str
        The JSON document.
    root : str
        The document's name in field paths (``"policy"`` gives ``policy.bands[0].k``; ``""`` gives ``bands[0].k``).

    Raises
    ------
    NumberError, RepeatedFieldError
        The first refused number, or the first object naming a field twice, in document order, the field named.
    json.JSONDecodeError, RecursionError
        As ``json.loads``: not JSON (line and column given), or nested too deeply.
    """
    doc = json.loads(text, parse_int=_json_number(True), parse_float=_json_number(False),
                     parse_constant=_json_number(False), object_pairs_hook=_object)
    stack: list[tuple[str, Any]] = [(root, doc)]
    while stack:  # iterative: a document may be nested up to Python's recursion limit
        where, value = stack.pop()
        if isinstance(value, _Refused):
            raise NumberError(f"{where or 'the document'}: {value.error}")
        if isinstance(value, _Repeated):  # its fields before the second key first, then the key itself
            stack.append((where, RepeatedFieldError(f"{where + ': ' if where else ''}field {shorten(value.key)!r} "
                                                    f"appears twice")))
            value = value.before
        if isinstance(value, RepeatedFieldError):
            raise value
        if isinstance(value, dict):
            stack.extend((f"{where}.{shorten(key)}" if where else shorten(key), item)
                         for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return doc


def load_json_document(data: bytes | str, source: str, what: str, error: type[Exception], root: str = "") -> Any:
    """``load_json`` of a file's bytes (UTF-8) or text, every failure an ``error`` naming ``source`` (the file) and
    saying what was wrong and where: a policy's or a null table's reading.

    Parameters
    ----------
    data : bytes or str
    source : str
        The file, as messages name it.
    what : str
        The kind of document (``"policy"``, ``"null table"``).
    error : type
        The exception raised.
    root : str
        As ``load_json``.
    """
    try:
        return load_json(data.decode("utf-8") if isinstance(data, bytes) else data, root)
    except UnicodeDecodeError as exc:
        raise error(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (NumberError, RepeatedFieldError) as exc:  # the field's path starts with root where there is one
        raise error(f"{source}: {exc}" if root else f"{source}: invalid {what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise error(f"{source}: invalid {what}: JSON nested too deeply (a {what} is a few levels deep)") from None
