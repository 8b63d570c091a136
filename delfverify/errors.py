"""The base of the errors delfverify reports to its users.

A ``DelfverifyError`` describes a problem with the user's input or surroundings (a file, an image, a model, an
option), never a bug: the CLI prints it as one line and exits with status 2. Any other exception is a bug and
the CLI shows its traceback. Each subclass also derives from the built-in type that fits it (``ValueError`` for
bad input), so ``except ValueError`` keeps working for library callers.
"""


class DelfverifyError(Exception):
    """A problem with the input or the environment, described for the user (file, row or option, and remedy)."""


class InputTypeError(DelfverifyError, TypeError):
    """An argument of a type the function does not take (``None`` or a list where an image goes, an object where a
    table goes); the message names the argument and the types it takes."""


def shorten(text: str, limit: int = 80) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis where longer: values quoted in messages stay short,
    however long the input holding them."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
