"""The base of the errors delfverify reports to its users.

A ``DelfverifyError`` describes a problem with the user's input or surroundings (a file, an image, a model, an
option), never a bug: the CLI prints it as one line and exits with status 2. Any other exception is a bug and
the CLI shows its traceback. Each subclass also derives from the built-in type that fits it (``ValueError`` for
bad input), so ``except ValueError`` keeps working for library callers.
"""

import re


class DelfverifyError(Exception):
    """A problem with the input or the environment, described for the user (file, row or option, and remedy)."""


class InputValueError(DelfverifyError, ValueError):
    """An argument of an accepted type whose value no call can use (a path holding a NUL character, an empty path);
    the message names the argument."""


class InputTypeError(DelfverifyError, TypeError):
    """An argument of a type the function does not take (``None`` or a list where an image goes, an object where a
    table goes); the message names the argument and the types it takes."""


#: The most characters of a value from the input (an id, a label, a cell, a field) that a message quotes.
QUOTE_LIMIT = 80


#: Characters a quoted value shows as escapes: control characters (line breaks, tabs, NUL, escape sequences) and
#: the Unicode line and paragraph separators, any of which would break a message's one line or hide part of it.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` with its control characters made visible (``\\n``, ``\\t``, ``\\x1b``, ``\\u2028``), cut to ``limit``
    characters, the last an ellipsis, where it is longer.

    Every value from the input that a message or a warning quotes goes through it, so that a million-character id
    or cell cannot flood a terminal or a log, and an id with a line break or an escape sequence cannot make a
    message span two lines or rewrite the terminal: quote a string as ``f"{shorten(value)!r}"``, anything else as
    ``shorten(repr(value))``.

    >>> shorten("a" * 100, 10)
    'aaaaaaaaa…'
    >>> print(shorten("line\\none"))
    line\\none
    """
    text = str(text)
    head = _INVISIBLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text[:limit])
    return head if len(head) <= limit and len(text) <= limit else f"{head[: limit - 1]}…"
