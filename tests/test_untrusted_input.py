"""The hostile user's cases of issue #19, end to end through the command: details files with impossible values,
numbers in other scripts, endless inputs, huge ids in warnings, and folders whose names are not UTF-8."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from test_report import synthetic_details

from delfverify import cli
from delfverify.details import read_details

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def _main(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def _one_line_error(status: int, err: str, *needles: str) -> str:
    assert status == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("delfverify: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


#: case -> (row (0 the first data row), column, value, what the error says). The details have candidates.
BAD_DETAILS = {
    "confidence-inf": (1, "old_confidence", "inf", "old_confidence 'inf' is not a number"),
    "confidence-1e400": (2, "new_confidence", "1e400", "new_confidence '1e400' is out of range"),
    "confidence-negative": (0, "new_confidence", "-0.25", "new_confidence '-0.25' must be a number in [0, 1]"),
    "confidence-arabic-indic": (3, "old_confidence", "٠٫٥", "old_confidence '٠٫٥' is not a number"),
    "rank-inf": (4, "rank", "inf", "rank 'inf' is not an integer"),
    "rank-zero": (1, "rank", "0", "rank '0' must be an integer in [1, 8]"),
    "inliers-negative": (2, "inliers", "12 -3 4", "inliers cell '12 -3 4': '-3' must be an integer in [0, 1000000]"),
    "fewer-gallery-ids-than-counts": (0, "gallery_ids", "g1", "3 inlier counts but 1 gallery ids"),
    "chosen-not-a-flag": (5, "chosen", "maybe", "chosen 'maybe' must be True or False"),
}


@pytest.mark.parametrize("case", list(BAD_DETAILS))
def test_report_on_details_with_impossible_values_is_one_line_naming_row_and_column(tmp_path, case):
    row, column, value, message = BAD_DETAILS[case]
    details = synthetic_details(8, seed=1, candidates=2).astype(object)
    details["inliers"] = "12 0 4"
    details["gallery_ids"] = "g1 g2 g3"
    details.loc[row, column] = value
    details.to_csv(tmp_path / "d.csv", index=False)
    status, _, err = _main("report", tmp_path / "d.csv", "-o", tmp_path / "r.html")
    line = _one_line_error(status, err, f"{tmp_path / 'd.csv'}: row {row + 2}: ", message)
    assert not (tmp_path / "r.html").exists(), line


def test_dev_zero_as_predictions_ends_quickly_with_one_line(tmp_path):
    started = time.perf_counter()
    status, out, err = _main("gap", "/dev/zero", "--truth", DATA / "truth.csv")
    _one_line_error(status, err, "/dev/zero: is a character device that gives more than 268435456 bytes",
                    "save it to a regular file")
    assert out == "" and time.perf_counter() - started < 30


def test_predictions_from_a_pipe_give_what_the_file_gives(tmp_path):
    fifo = tmp_path / "predictions.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=((DATA / "predictions.csv").read_bytes(),), daemon=True)
    writer.start()
    status, out, err = _main("gap", fifo, "--truth", DATA / "truth.csv")
    writer.join(timeout=60)
    expected = _main("gap", DATA / "predictions.csv", "--truth", DATA / "truth.csv")
    assert status == 0 and out.replace(str(fifo), "P") == expected[1].replace(str(DATA / "predictions.csv"), "P")


def _predictions_with(path: Path, *ids: str) -> Path:
    text = (DATA / "predictions.csv").read_text(encoding="utf-8")
    quoted = ['"' + pid.replace('"', '""') + '"' for pid in ids]
    path.write_text(text.rstrip("\n") + "\n" + "".join(f"{pid},astronaut 0.75\n" for pid in quoted), encoding="utf-8")
    return path


@pytest.mark.parametrize("huge", ["x" * 1_000_000, "q\nWARNING forged line\r\x1b[2J\u2028" + "y" * 200],
                         ids=["a million characters", "line breaks and an escape sequence"])
def test_a_million_character_id_is_shortened_in_every_warning_and_reason(sample_run, tmp_path, caplog, huge):
    """The kind: a value quoted in a warning or a summary (an id, a policy's name) is one visible line of at most
    80 characters (``errors.shorten``), whatever its length and whatever control characters it holds."""
    from delfverify.errors import shorten
    from delfverify.policy import load_policy, save_policy

    predictions = _predictions_with(tmp_path / "p.csv", huge)
    policy = load_policy("seed", "rootsift")
    save_policy(dataclasses.replace(policy, name=huge), tmp_path / "policy.json")
    cache = sample_run.warm_cache(tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        status, out, err = _main("rerank", predictions, "--gallery", DATA / "gallery.csv", "--gallery-images",
                                 DATA / "gallery", "--query-images", DATA / "queries", "--cache-dir", cache,
                                 "-o", tmp_path / "out.csv", "--details", tmp_path / "details.csv", "--workers", 1,
                                 "--policy", tmp_path / "policy.json")
        assert status == 0, err
        assert len(out.splitlines()) == 1 and len(out) < 400 and f"policy {shorten(huge)})" in out  # the summary
        ids = pd.DataFrame({"id": [huge, "da07d5ba65959f62"]})
        ids.to_csv(tmp_path / "ids.csv", index=False)
        status, out, err = _main("extract", tmp_path / "ids.csv", "--images", DATA / "queries", "--cache-dir", cache,
                                 "--workers", 1)
        assert status == 0, err
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) >= 2 and all(w.startswith(f"{shorten(huge)}: ") for w in warnings[-2:]), warnings
    assert all(len(w) < 600 and len(w.splitlines()) == 1 and "\x1b" not in w for w in warnings), warnings
    assert len(out) < 600 and huge[:81] not in out and len(out.splitlines()) == 1  # extract's summary, shortened
    reason = read_details(tmp_path / "details.csv").set_index("id").loc[huge, "reason"]
    assert len(reason) < 400


def test_a_query_folder_whose_name_is_not_utf8_gives_readable_outputs_in_a_real_process(sample_run, tmp_path):
    """The missing photo's reason names the folder: written as its escape (\\udcff) in the details and the report,
    printed so on standard error; before, ``UnicodeEncodeError`` ended the run with a traceback."""
    root = os.fsencode(tmp_path)
    queries = Path(os.fsdecode(root + b"/queries-\xff"))
    shutil.copytree(DATA / "queries", queries)
    (queries / "da07d5ba65959f62.jpg").unlink()
    out = Path(os.fsdecode(root + b"/out-\xfe"))
    cache = sample_run.warm_cache(tmp_path / "cache")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8", "PYTHONUTF8": "0"}
    env["PYTHONIOENCODING"] = "utf-8:strict"  # as a UTF-8 locale gives (C.UTF-8 would escape surrogates itself)
    run = subprocess.run([sys.executable, "-m", "delfverify.cli", "rerank", str(DATA / "predictions.csv"),
                          "--gallery", str(DATA / "gallery.csv"), "--gallery-images", str(DATA / "gallery"),
                          "--query-images", str(queries), "--cache-dir", str(cache), "-o", str(out / "out.csv"),
                          "--details", str(out / "details.csv"), "--report", str(out / "report.html"),
                          "--workers", "1"], env=env, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert b"Traceback" not in run.stderr and b"queries-\\udcff" in run.stderr
    assert b"out-\\udcfe" in run.stdout  # "wrote <output>"
    details = read_details(out / "details.csv")  # UTF-8, read back
    row = details.set_index("id").loc["da07d5ba65959f62"]
    assert row["status"] == "error" and "queries-\\udcff" in row["reason"]
    assert "queries-\\udcff" in (out / "report.html").read_text(encoding="utf-8")
    assert len(pd.read_csv(out / "out.csv")) == 26
