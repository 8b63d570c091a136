"""One rule for ``~`` in every path a user gives (``fileio.expand_home``): a leading ``~`` or ``~user`` is the home
folder, in the command's path options (``options.path``; ``--cache-dir=~/c``, which the shell leaves as written) and
in every path parameter of the API (``fileio.check_path``), inputs and outputs alike. Before, ``--cache-dir=~/c``,
``-o '~/x.csv'`` or ``rerank(output="~/x.csv")`` made a folder named ``~`` in the current folder, which ``rm -rf ~``
then takes for the home. A ``~user`` naming no user is refused in one line naming the parameter."""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import pytest
from conftest import SAMPLE

import delfverify
from delfverify import cli
from delfverify.errors import InputValueError
from delfverify.fileio import check_path
from delfverify.options import path, subcommands

#: Every path option of every subcommand: the kind is generated from the parser, so a new option is covered.
_PATH_OPTIONS = [(command, action.dest, action.option_strings[-1] if action.option_strings else action.dest)
                 for command, sub in subcommands(cli.build_parser()).items() for action in sub._actions
                 if action.type is path]
_IDS = [f"{command} {option}" for command, _, option in _PATH_OPTIONS]


def _argv(command: str, dest: str, value: str) -> list[str]:
    """``command`` with ``value`` for its option ``dest`` and a path for each of its other required ones."""
    argv = [command]
    for action in subcommands(cli.build_parser())[command]._actions:
        if action.required or action.dest == dest:
            argv += [*action.option_strings[-1:], value if action.dest == dest else f"/elsewhere/{action.dest}"]
    return argv


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder (``HOME``) and an empty current folder beside it; after the test, no ``~`` in the latter."""
    folder, cwd = tmp_path / "home", tmp_path / "cwd"
    folder.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.chdir(cwd)
    yield folder
    assert "~" not in os.listdir(cwd)


@pytest.mark.parametrize("command, dest, option", _PATH_OPTIONS, ids=_IDS)
def test_every_path_option_expands_a_leading_tilde(home, command, dest, option):
    given = getattr(cli.build_parser().parse_args(_argv(command, dest, "~/given/x")), dest)
    assert (given if isinstance(given, list) else [given]) == [str(home / "given" / "x")]


@pytest.mark.parametrize("text, expanded", [("~", "{home}"), ("~/", "{home}/"), ("~/a/b/", "{home}/a/b/"),
                                            ("a/~/b", "a/~/b"), ("./~", "./~"), ("~root/x", "{root}/x")])
def test_the_option_type_and_the_api_check_agree(home, text, expanded):
    want = expanded.format(home=home, root=os.path.expanduser("~root"))
    assert path(text) == check_path(text, "p") == check_path(text.encode(), "p") == want


@pytest.mark.parametrize("command, dest, option", _PATH_OPTIONS, ids=_IDS)
def test_a_tilde_user_that_names_no_user_is_one_line_naming_the_option(home, capsys, command, dest, option):
    assert cli.main(_argv(command, dest, "~no-such-user-dv/x")) == 2
    err = capsys.readouterr().err
    assert err.startswith("delfverify: error: ") and err.count("\n") == 1, err
    assert option in err.split(": ")[2].split("/"), err  # -o/--output, as argparse names it
    assert "'~no-such-user-dv' names no user's home folder" in err
    with pytest.raises(InputValueError, match=r"^output '~no-such-user-dv/x': '~no-such-user-dv' names no user"):
        check_path("~no-such-user-dv/x", "output")


@pytest.fixture(scope="module")
def inputs(sample_run, tmp_path_factory):
    """A tiny predictions file, its query photos and a warm cache."""
    root = tmp_path_factory.mktemp("home-inputs")
    rows = (SAMPLE / "predictions.csv").read_text().splitlines()[:3]
    (root / "p.csv").write_text("\n".join(rows) + "\n")
    (root / "queries").mkdir()
    for row in rows[1:]:
        shutil.copy(SAMPLE / "queries" / f"{row.split(',')[0]}.jpg", root / "queries")
    return root, sample_run.warm_cache(root / "cache")


#: The rerank outputs given as ``~/...`` (option, API parameter, the file it lands as under HOME).
_OUTPUTS = [("--output", "output", "x.csv"), ("--details", "details", "d.csv"), ("--report", "report", "r.html"),
            ("--cache-dir", "cache_dir", "dvcache/journal.sqlite"), ("--journal", "journal", "j.sqlite")]


@pytest.mark.parametrize("via", ["command", "api"])
@pytest.mark.parametrize("option, parameter, lands", _OUTPUTS, ids=[o for o, _, _ in _OUTPUTS])
def test_an_output_given_under_tilde_lands_in_the_home_folder(home, inputs, via, option, parameter, lands):
    root, cache = inputs
    given = {"output": home / "o.csv", "cache_dir": root / "c", "journal": None}
    given.update({parameter: "~/" + lands.split("/")[0]})
    shutil.copytree(cache, home / "dvcache" if parameter == "cache_dir" else root / "c", dirs_exist_ok=True)
    photos = {"gallery": SAMPLE / "gallery.csv", "gallery_images": SAMPLE / "gallery", "query_images": root / "queries"}
    if via == "api":
        run = delfverify.RunSettings(cache_dir=given.pop("cache_dir"), journal=given.pop("journal"))
        delfverify.rerank(root / "p.csv", **photos, **given, run=run)
    else:
        argv = ["rerank", str(root / "p.csv"), "--workers", "1", "-q"]
        argv += [f"--{k.replace('_', '-')}={v}" for k, v in {**photos, **given}.items() if v is not None]
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(argv) == 0
    assert (home / lands).is_file()
