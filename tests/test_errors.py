"""delfverify.errors and the CLI's error rule: every ``DelfverifyError`` (and file system errors, tests/test_exits.py)
is one line with exit status 2; any other exception is a bug, shown with its traceback and a line saying so."""

from __future__ import annotations

import pytest

from delfverify import cli
from delfverify.errors import DelfverifyError, InputTypeError
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
