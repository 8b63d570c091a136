"""Every numeric option of every subcommand has a range, checked before any work (issue #19).

The matrix walks ``cli.build_parser()``: every option whose value is a number, against values out of any range and
values that are not numbers, on a command line whose input files do not exist. A refused value must be refused
first (the one error line names the option, not a missing file), in one line, with exit status 2, no traceback and
nothing written. A value that is valid for an option (0 for a seed) is listed below, and must get as far as the
missing file.
"""

from __future__ import annotations

import argparse
import os

import pytest

from delfverify import cli
from delfverify.options import integer, path, subcommands

#: The types an option's value may have; a new type (a number of another kind) must be added here, with its values.
KNOWN_TYPES = {None, path, integer}
NUMERIC_TYPES = {integer}
#: Values to try: out of one range or another, or no number at all (ASCII decimal digits only, numbers.py).
VALUES = ["0", "-1", "1", "99", "1000", "100000000", str(2**63), str(10**30), "1e308", "nan", "inf", "-inf", "1_0",
          "٣", "0x10", "3.0", ""]
#: The values above that are valid for each option: the command must then go on, to the missing input file.
SEEDS = {"0", "1", "99", "1000", "100000000"}
VALID = {"--seed": SEEDS, "--pair-seed": SEEDS, "--cv-seed": SEEDS, "--max-side": {"1", "99", "1000", "100000000"},
         "--workers": {"1", "99", "1000"}, "--candidates": {"1", "99", "1000"}, "--max-k": {"1", "99", "1000"},
         "--max-photos": {"99", "1000", "100000000"}, "--repeats": {"1", "99"}, "--folds": {"99"}, "--pairs": {"1000"}}
#: Each command with its required arguments; every file named does not exist.
COMMANDS = {
    "verify": ["verify", "a.jpg", "b.jpg"],
    "rerank": ["rerank", "p.csv", "--gallery", "g.csv", "--gallery-images", "g", "--query-images", "q"],
    "extract": ["extract", "ids.csv", "--images", "photos"],
    "calibrate": ["calibrate", "--gallery", "g.csv", "--gallery-images", "g", "-o", "t.json"],
    "gap": ["gap", "p.csv", "--truth", "t.csv"],
    "tune": ["tune", "p.csv", "--truth", "t.csv", "--gallery", "g.csv", "--gallery-images", "g", "--query-images",
             "q", "-o", "x.json"],
    "report": ["report", "d.csv", "-o", "r.html"],
}


def _numeric_options() -> list[tuple[str, str]]:
    found = []
    for command, parser in subcommands(cli.build_parser()).items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.type is None and action.nargs == 0:
                continue
            assert action.type in KNOWN_TYPES, (command, action.option_strings, action.type)
            if action.type in NUMERIC_TYPES:
                found.append((command, max(action.option_strings, key=len)))
    return found


NUMERIC = _numeric_options()


def test_the_matrix_covers_every_command_and_numeric_option():
    assert set(COMMANDS) == set(subcommands(cli.build_parser()))
    assert {option for _, option in NUMERIC} == {"--seed", "--max-side", "--workers", "--candidates", "--pairs",
                                                 "--pair-seed", "--max-photos", "--folds", "--repeats", "--max-k",
                                                 "--cv-seed"}
    assert set(VALID) == {option for _, option in NUMERIC}


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("command, option", NUMERIC)
def test_every_numeric_option_refuses_values_out_of_range_first_in_one_line(command, option, value, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = cli.main([*COMMANDS[command], f"{option}={value}", "-q"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert status == 2 and out == "" and len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)  # nothing written, not even the cache folder
    if value in VALID[option]:  # accepted: the command went on, to the first missing file
        assert option not in lines[0] and ("not found" in lines[0] or "No such file" in lines[0]), lines[0]
    else:
        assert lines[0].startswith(f"delfverify: error: {option}"), lines[0]
