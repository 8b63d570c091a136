"""The base of the errors delfverify reports to its users.

A ``DelfverifyError`` describes a problem with the user's input or surroundings (a file, an image, a model, an
option), never a bug: the CLI prints it as one line and exits with status 2. Any other exception is a bug and
the CLI shows its traceback. Each subclass also derives from the built-in type that fits it (``ValueError`` for
bad input), so ``except ValueError`` keeps working for library callers.
"""

import unicodedata


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


#: The Unicode categories of the characters a quoted value shows as escapes: control characters (line breaks, tabs,
#: NUL, escape sequences: ``Cc``), format characters (the right-to-left override U+202E that shows ``a\u202egpj.exe``
#: as ``aexe.jpg``, zero-width spaces, the isolates U+2066..U+2069: ``Cf``), the line and paragraph separators
#: (``Zl``, ``Zp``), and code points that are no character (unassigned ``Cn``, surrogates ``Cs``): any of them would
#: break a message's one line, hide part of it or show it as other text.
ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Cs"})


def _visible(char: str) -> str:
    """``char``, or its escape (``\\n``, ``\\x1b``, ``\\u202e``, ``\\U000e0001``) where its category is one of
    ``ESCAPED_CATEGORIES``."""
    if unicodedata.category(char) in ESCAPED_CATEGORIES:
        return char.encode("unicode_escape").decode("ascii")
    return char


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` with its invisible characters made visible, cut to ``limit`` characters, the last an ellipsis, where
    it is longer.

    Every value from the input that a message or a warning quotes goes through it, so that a million-character id
    or cell cannot flood a terminal or a log, and an id with a line break, an escape sequence or a right-to-left
    override cannot make a message span two lines, rewrite the terminal or show other text: quote a string as
    ``f"{shorten(value)!r}"``, anything else as ``shorten(repr(value))``. The characters of
    ``ESCAPED_CATEGORIES`` show as their escapes (``\\n``, ``\\t``, ``\\x1b``, ``\\u2028``, ``\\u202e``).

    Parameters
    ----------
    text : str
        The value to quote (anything else is given by its ``str``).
    limit : int
        The most characters of the result.

    Returns
    -------
    str
        One visible line of at most ``limit`` characters.

    Examples
    --------
    >>> shorten("a" * 100, 10)
    'aaaaaaaaa…'
    >>> print(shorten("line\\none"))
    line\\none
    >>> print(shorten("a\\u202egpj.exe"))
    a\\u202egpj.exe
    """
    text = str(text)
    head = "".join(map(_visible, text[:limit]))
    return head if len(head) <= limit and len(text) <= limit else f"{head[: limit - 1]}…"
