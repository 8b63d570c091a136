"""delfverify.errors and the CLI's error rule: every ``DelfverifyError`` (and file system errors, tests/test_exits.py)
is one line with exit status 2; any other exception is a bug, shown with its traceback and a line saying so."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delfverify import cli
from delfverify.errors import QUOTE_LIMIT, DelfverifyError, InputTypeError, shorten
from delfverify.extractors.delf import ModelLoadError
from delfverify.images import ImageError, ImageLookupError
from delfverify.policy import PolicyError
from delfverify.tables import TableError


@pytest.mark.parametrize("error", [ImageError("a.jpg", "not an image"), ImageLookupError("photos: not found"),
                                   TableError("p.csv: row 3: bad"), PolicyError("policy.bands: bad"),
                                   ModelLoadError("no model"), cli.CLIError("--workers: bad"),
                                   InputTypeError("image must be a path ..., got NoneType")])
def test_input_errors_are_one_line_with_status_2(monkeypatch, capsys, error):
    def fail(args, settings):
        raise error

    monkeypatch.setattr(cli, "_cmd_gap", fail)
    status = cli.main(["gap", "p.csv", "--truth", "t.csv"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.splitlines() == [f"delfverify: error: {error}"]


@pytest.mark.parametrize("message", ["cannot connect (first line\nsecond line)", "a\r\nb", "ends with a newline\n"])
def test_an_input_error_is_one_line_whatever_its_message_holds(monkeypatch, capsys, message):
    def fail(args, settings):
        raise DelfverifyError(message)

    monkeypatch.setattr(cli, "_cmd_gap", fail)
    assert cli.main(["gap", "p.csv", "--truth", "t.csv"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.endswith("\n") and "Traceback" not in err


def test_a_bug_shows_its_traceback_and_says_so(monkeypatch, capsys):
    def fail(args, settings):
        raise KeyError("something the code did not expect")

    monkeypatch.setattr(cli, "_cmd_gap", fail)
    status = cli.main(["gap", "p.csv", "--truth", "t.csv"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback (most recent call last)" in err and "KeyError" in err
    assert err.strip().splitlines()[-1].startswith("delfverify: internal error: this is a bug")


def test_a_plain_value_error_is_a_bug_not_an_input_error(monkeypatch, capsys):
    def fail(args, settings):
        raise ValueError("an unchecked programming mistake")

    monkeypatch.setattr(cli, "_cmd_gap", fail)
    assert cli.main(["gap", "p.csv", "--truth", "t.csv"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_project_errors_are_also_the_builtin_kind_that_fits():
    for kind in (ImageError, ImageLookupError, TableError, PolicyError):
        assert issubclass(kind, DelfverifyError) and issubclass(kind, ValueError)
    assert issubclass(ModelLoadError, RuntimeError)
    assert issubclass(InputTypeError, DelfverifyError) and issubclass(InputTypeError, TypeError)


#: What a quoted value must never hold: a character that breaks or rewrites a terminal's line or shows other text
#: (control and format characters, line and paragraph separators, unassigned code points and surrogates).
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Cn", "Cs"}
_HOSTILE = st.text(st.one_of(st.sampled_from("\n\r\t\x00\x1b\x7f\x85\u2028\u2029\\\u202e\u200b\u2066\u2067\u2068"
                                             "\u2069\ufeff\u00ad\U000e0001\ud800\udfff\U0010ffff"),
                             st.characters(categories=sorted(_INVISIBLE)), st.characters(codec=None)), max_size=300)


def _invisible(text: str) -> bool:
    return any(unicodedata.category(char) in _INVISIBLE for char in text)


def _escape(char: str) -> str:
    """The escape the test expects: ``\\xNN`` (or ``\\n``, ``\\t``, ``\\r``), ``\\uNNNN``, ``\\UNNNNNNNN``."""
    if unicodedata.category(char) not in _INVISIBLE:
        return char
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    code = ord(char)
    return named.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                                else f"\\U{code:08x}")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=_HOSTILE, limit=st.integers(2, 120))
def test_any_quoted_value_is_one_visible_line_within_the_limit(text, limit):
    """The kind: every value a message or warning quotes (ids, labels, cells, a policy's name) goes through
    ``shorten``; whatever it holds, it comes out on one line, control and format characters (a right-to-left
    override, zero-width spaces, isolates), separators, unassigned code points and surrogates as their escapes, cut
    to the limit, and text without them and within the limit comes out unchanged."""
    quoted = shorten(text, limit)
    assert not _invisible(quoted) and len(quoted.splitlines()) <= 1
    assert len(quoted) <= limit
    if not _invisible(text) and len(text) <= limit:
        assert quoted == text
    shown = "".join(map(_escape, text))
    assert quoted == shown or (quoted.endswith("…") and shown.startswith(quoted[:-1]))


@pytest.mark.parametrize("text, shown", [("q\nforged line", "q\\nforged line"), ("a\rb\tc", "a\\rb\\tc"),
                                         ("\x1b[2J", "\\x1b[2J"), ("x\u2028y", "x\\u2028y"),
                                         ("a\u202egpj.exe", "a\\u202egpj.exe"),
                                         ("a\u200bb\u2066c\u2069", "a\\u200bb\\u2066c\\u2069"),
                                         ("n" * 100_000, "n" * (QUOTE_LIMIT - 1) + "…")])
def test_shorten_shows_control_characters_as_escapes(text, shown):
    assert shorten(text) == shown
