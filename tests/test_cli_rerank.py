"""``delfverify rerank`` and ``delfverify gap`` end to end on the sample data: outputs, the summary line, the same
defaults as the library, one-line errors with exit status 2, and a run killed with SIGKILL that resumes from its
journal to exactly the output of an uninterrupted run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import delfverify
from delfverify import cli
from delfverify.metrics import global_average_precision
from delfverify.tables import read_predictions, read_solution

DATA = Path(__file__).resolve().parents[1] / "data"
NUM_PAIRS = 26 * 3  # the default policy verifies every sample prediction against 3 gallery photos
SUMMARY = re.compile(r"pairs verified (\d+), reused (\d+); features extracted (\d+)")


def _rerank_args(data: Path, *extra) -> list[str]:
    return ["rerank", str(data / "predictions.csv"), "--gallery", str(data / "gallery.csv"),
            "--gallery-images", str(data / "gallery"), "--query-images", str(data / "queries"), *map(str, extra)]


def _main(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def reference(sample_run):
    """The uninterrupted run with the CLI's defaults from an empty cache: (status, stdout, folder)."""
    return 0, sample_run.stdout, sample_run.folder


@pytest.fixture
def warm_cache(sample_run, tmp_path):
    return sample_run.warm_cache(tmp_path / "cache")


# --- rerank end to end ------------------------------------------------------------------------------------------

def test_rerank_writes_output_details_and_summary(reference):
    status, out, folder = reference
    lines = out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"wrote {folder / 'out.csv'} (26 predictions, policy default): ")
    assert SUMMARY.search(lines[0]).groups() == (str(NUM_PAIRS), "0", str(26 + 15))

    original = read_predictions(DATA / "predictions.csv")
    result = read_predictions(folder / "out.csv")
    assert result.format == "kaggle"
    assert (folder / "out.csv").read_text().splitlines()[0] == "id,landmarks"
    assert list(result.table["id"]) == list(original.table["id"])
    assert list(result.table["label"]) == list(original.table["label"])

    details = pd.read_csv(folder / "details.csv", dtype={"id": str, "inliers": str}, keep_default_na=False)
    assert list(details.columns) == ["id", "label", "band", "old_confidence", "new_confidence", "gallery_ids",
                                     "inliers", "false_match_rate", "status", "reason"]
    assert list(details["id"]) == list(original.table["id"])
    pd.testing.assert_series_equal(details["new_confidence"].round(6), result.table["confidence"],
                                   check_names=False)
    statuses = lines[0].split("): ", 1)[1].split("; ", 1)[0]  # "verified 2, suppressed 12, boosted 12"
    reported = {name: int(count) for name, count in (part.split() for part in statuses.split(", "))}
    assert reported == details["status"].value_counts().to_dict()

    truth = read_solution(DATA / "truth.csv").table
    assert (global_average_precision(result.table, truth).gap
            > global_average_precision(original.table, truth).gap)


def test_rerank_default_output_name_in_working_folder(warm_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", warm_cache, "--workers", 1))
    assert status == 0, err
    assert (tmp_path / "predictions.reranked.csv").is_file()
    assert "wrote predictions.reranked.csv" in out


def test_library_rerank_with_its_defaults_is_the_cli_run(reference, warm_cache, tmp_path):
    """``delfverify.rerank`` with only the data given finds every pair the CLI journaled (same settings) and
    writes byte-identical files."""
    result = delfverify.rerank(DATA / "predictions.csv", gallery=DATA / "gallery.csv",
                               gallery_images=DATA / "gallery", query_images=DATA / "queries",
                               output=tmp_path / "library.csv", details=tmp_path / "details.csv",
                               cache_dir=warm_cache)
    assert result.summary["pairs_computed"] == 0 and result.summary["features_extracted"] == 0
    assert (tmp_path / "library.csv").read_bytes() == (reference[2] / "out.csv").read_bytes()
    assert (tmp_path / "details.csv").read_bytes() == (reference[2] / "details.csv").read_bytes()


def test_quiet_after_the_subcommand(warm_cache, tmp_path):
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", warm_cache, "-o", tmp_path / "o.csv", "-q",
                                           "--workers", 1))
    assert status == 0 and err == ""
    assert SUMMARY.search(out).groups() == ("0", str(NUM_PAIRS), "0")
    status, out, err = _main("gap", DATA / "predictions.csv", "--truth", DATA / "truth.csv", "-q")
    assert status == 0 and out.startswith("GAP ")


def test_rerank_seed_policy_and_on_missing(warm_cache, tmp_path):
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", warm_cache, "-o", tmp_path / "o.csv",
                                           "--policy", "seed", "--on-missing", "suppress", "--workers", 1))
    assert status == 0, err
    assert "policy seed" in out and "skipped" in out


# --- several candidates per query ---------------------------------------------------------------------------------

CANDIDATES_SUMMARY = re.compile(r"\((\d+) queries, (\d+) candidates, policy default\): (.*); relabelled (\d+); "
                                r"pairs verified (\d+), reused (\d+); features extracted (\d+)$")


def _candidates_csv(path: Path) -> Path:
    """The sample predictions as Kaggle cells of five candidates: the classifier's label first, then the four other
    sample labels at lower scores."""
    labels = ("astronaut", "camera", "chelsea", "coffee", "rocket")
    lines = ["id,landmarks"]
    for pid, label, confidence in read_predictions(DATA / "predictions.csv").table.itertuples(index=False):
        others = [other for other in labels if other != label]
        pairs = [f"{label} {confidence}"] + [f"{other} {round(confidence * (0.8 - 0.15 * i), 4)}"
                                             for i, other in enumerate(others)]
        lines.append(f"{pid},{' '.join(pairs)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rerank_candidates_summary_output_and_details(warm_cache, tmp_path):
    path = _candidates_csv(tmp_path / "candidates.csv")
    status, out, err = _main("rerank", path, "--gallery", DATA / "gallery.csv", "--gallery-images", DATA / "gallery",
                             "--query-images", DATA / "queries", "--cache-dir", warm_cache, "-o", tmp_path / "out.csv",
                             "--details", tmp_path / "details.csv", "--workers", 1, "-q")
    assert status == 0, err
    match = CANDIDATES_SUMMARY.search(out.strip())
    assert match, out
    queries, candidates, statuses, relabelled, computed, reused, extracted = match.groups()
    assert (queries, candidates, extracted) == ("26", "130", "0") and int(reused) == NUM_PAIRS
    details = pd.read_csv(tmp_path / "details.csv", dtype={"id": str, "inliers": str}, keep_default_na=False)
    assert list(details.columns) == ["id", "rank", "label", "band", "old_confidence", "new_confidence", "gallery_ids",
                                     "inliers", "false_match_rate", "status", "reason", "chosen"]
    chosen = details[details["chosen"]]
    assert int(relabelled) == (chosen["rank"] > 1).sum() > 0
    reported = {name: int(count) for name, count in (part.split() for part in statuses.split(", "))}
    assert reported == details["status"].value_counts().to_dict() and reported["stopped"] > 0
    lines = (tmp_path / "out.csv").read_text().splitlines()  # Kaggle in, Kaggle out: the chosen label per query
    assert lines[0] == "id,landmarks" and [line.split(",")[0] for line in lines[1:]] == list(chosen["id"])
    assert [line.split(",")[1].split()[0] for line in lines[1:]] == list(chosen["label"])

    library = delfverify.rerank(path, gallery=DATA / "gallery.csv", gallery_images=DATA / "gallery",
                                query_images=DATA / "queries", cache_dir=warm_cache, candidates=5,
                                output=tmp_path / "library.csv", details=tmp_path / "library-details.csv")
    assert (tmp_path / "library.csv").read_bytes() == (tmp_path / "out.csv").read_bytes()
    assert (tmp_path / "library-details.csv").read_bytes() == (tmp_path / "details.csv").read_bytes()
    assert library.summary["relabelled"] == int(relabelled)

    status, out, err = _main("rerank", path, "--gallery", DATA / "gallery.csv", "--gallery-images", DATA / "gallery",
                             "--query-images", DATA / "queries", "--cache-dir", warm_cache, "-o", tmp_path / "all.csv",
                             "--keep-candidates", "--candidates", 3, "--workers", 1, "-q")
    assert status == 0, err
    assert "26 queries, 78 candidates" in out and "stopped" not in out
    cells = [line.split(",")[1].split() for line in (tmp_path / "all.csv").read_text().splitlines()[1:]]
    assert all(len(cell) == 6 for cell in cells)  # three label-score pairs per query
    assert all(float(c[1]) >= float(c[3]) >= float(c[5]) for c in cells)  # best first


def test_rerank_candidates_must_be_positive(tmp_path):
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", tmp_path / "c", "--candidates", 0))
    _assert_one_line_error(status, err, "--candidates")


def test_gap_refuses_several_candidates_per_query(tmp_path):
    path = _candidates_csv(tmp_path / "candidates.csv")
    status, out, err = _main("gap", path, "--truth", DATA / "truth.csv")
    _assert_one_line_error(status, err, path, "'da07d5ba65959f62'", "one prediction per query", "rerank")


# --- gap -----------------------------------------------------------------------------------------------------------

def test_gap_prints_the_library_value():
    expected = global_average_precision(read_predictions(DATA / "predictions.csv").table,
                                        read_solution(DATA / "truth.csv").table)
    status, out, err = _main("gap", DATA / "predictions.csv", "--truth", DATA / "truth.csv")
    assert status == 0, err
    match = re.match(r"GAP (\d\.\d{4})  predictions (\d+)  M (\d+)  correct (\d+)  accuracy (\d\.\d{4})", out)
    assert match, out
    assert float(match[1]) == round(expected.gap, 4)
    assert (int(match[2]), int(match[3]), int(match[4])) == (26, 15, 12) == (
        expected.num_predictions, expected.num_landmark_queries, expected.num_correct)
    assert str(DATA / "predictions.csv") in out


def test_gap_json(reference):
    path = reference[2] / "out.csv"
    expected = global_average_precision(read_predictions(path).table, read_solution(DATA / "truth.csv").table)
    status, out, err = _main("gap", path, "--truth", DATA / "truth.csv", "--json")
    assert status == 0, err
    doc = json.loads(out)
    assert doc["file"] == str(path)
    assert doc["gap"] == expected.gap
    assert (doc["num_predictions"], doc["num_landmark_queries"], doc["num_correct"], doc["accuracy"]) == (
        expected.num_predictions, expected.num_landmark_queries, expected.num_correct, expected.accuracy)


# --- errors --------------------------------------------------------------------------------------------------------

def _assert_one_line_error(status, err, *names):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("delfverify: error: ")
    for name in names:
        assert str(name) in lines[0]
    assert "Traceback" not in err


def _data_with(tmp_path, **files) -> Path:
    data = Path(shutil.copytree(DATA, tmp_path / "data"))
    for name, text in files.items():
        (data / name.replace("__", ".")).write_text(text)
    return data


def test_error_missing_predictions_file(tmp_path):
    args = _rerank_args(DATA, "--cache-dir", tmp_path / "c", "-o", tmp_path / "o.csv")
    args[1] = str(tmp_path / "absent.csv")
    status, out, err = _main(*args)
    _assert_one_line_error(status, err, tmp_path / "absent.csv")
    assert not (tmp_path / "o.csv").exists()


def test_error_bad_predictions_columns(tmp_path):
    data = _data_with(tmp_path, predictions__csv="image,guess\na,b 0.5\n")
    status, out, err = _main(*_rerank_args(data, "--cache-dir", tmp_path / "c", "-o", tmp_path / "o.csv"))
    _assert_one_line_error(status, err, data / "predictions.csv", "id,landmarks")


def test_error_bad_gallery_file(tmp_path):
    data = _data_with(tmp_path, gallery__csv="id,class\na,b\n")
    status, out, err = _main(*_rerank_args(data, "--cache-dir", tmp_path / "c", "-o", tmp_path / "o.csv"))
    _assert_one_line_error(status, err, data / "gallery.csv", "landmark_id")


def test_error_missing_gallery_folder(tmp_path):
    args = _rerank_args(DATA, "--cache-dir", tmp_path / "c", "-o", tmp_path / "o.csv")
    args[args.index("--gallery-images") + 1] = str(tmp_path / "no-such-folder")
    status, out, err = _main(*args)
    _assert_one_line_error(status, err, tmp_path / "no-such-folder")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("text, detail", [('{"name": "x",\n "bands": [}', "line 2"),
                                          ('{"bands": [{"lower": 0, "upper": 1, "k": 0}]}', "policy.bands[0].k"),
                                          ('{"bands": [{"lower": 0, "upper": 1}], "colour": 1}', "colour")])
def test_error_invalid_policy_file(tmp_path, text, detail):
    policy = tmp_path / "policy.json"
    policy.write_text(text)
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", tmp_path / "c", "-o", tmp_path / "o.csv",
                                           "--policy", policy))
    _assert_one_line_error(status, err, policy, detail)


def test_error_unknown_policy_name(tmp_path):
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", tmp_path / "c", "--policy", "best"))
    _assert_one_line_error(status, err, "best")


def test_error_gap_missing_truth(tmp_path):
    status, out, err = _main("gap", DATA / "predictions.csv", "--truth", tmp_path / "absent.csv")
    _assert_one_line_error(status, err, tmp_path / "absent.csv")


def test_error_in_a_real_process_has_no_traceback(tmp_path):
    args = _rerank_args(DATA, "--cache-dir", tmp_path / "c")
    args[1] = str(tmp_path / "absent.csv")
    proc = subprocess.run([sys.executable, "-m", "delfverify.cli", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    _assert_one_line_error(proc.returncode, proc.stderr, tmp_path / "absent.csv")
    assert proc.stdout == ""


# --- resume after SIGKILL ----------------------------------------------------------------------------------------

#: The real command, with every journal write followed by a short pause, so that the test can kill it with a few
#: pairs journaled and many still to do, however fast the machine is.
THROTTLED_CLI = """
import sys, time
from delfverify import cli, journal

_put = journal.PairJournal.put

def put(self, *args):
    _put(self, *args)
    time.sleep(0.02)

journal.PairJournal.put = put
sys.exit(cli.main(sys.argv[1:]))
"""


def _journal_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1.0)) as db:
            return db.execute("SELECT count(*) FROM pairs").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("candidates", [False, True], ids=["top1", "candidates"])
def test_killed_run_resumes_to_the_uninterrupted_output(reference, warm_cache, tmp_path, candidates):
    """Killed after a few pairs (with candidates: in the second round, with every first candidate journaled), the
    run started again reuses what was journaled and writes the uninterrupted run's bytes."""
    data = Path(shutil.copytree(DATA, tmp_path / "data"))
    expected, total, kill_after = (reference[2] / "out.csv").read_bytes(), NUM_PAIRS, 5
    if candidates:
        _candidates_csv(data / "predictions.csv")
        status, out, err = _main(*_rerank_args(data, "--cache-dir", warm_cache, "-o", tmp_path / "expected.csv",
                                               "--workers", 1, "-q"))
        assert status == 0, err
        computed, reused, _ = map(int, SUMMARY.search(out).groups())
        expected, total, kill_after = (tmp_path / "expected.csv").read_bytes(), computed + reused, NUM_PAIRS + 5
        assert total > kill_after
    cache, folder = tmp_path / "killed-cache", tmp_path / "out"  # (tmp_path / "cache" is the warm cache)
    # Start from the reference run's features (not its journal), so that only pair verification is left to do.
    shutil.copytree(reference[2] / "cache", cache, ignore=shutil.ignore_patterns("journal.sqlite*"))
    assert not (cache / "journal.sqlite").exists()
    folder.mkdir()
    output = folder / "reranked.csv"
    args = _rerank_args(data, "--cache-dir", cache, "-o", output, "-q")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen([sys.executable, "-c", THROTTLED_CLI, *args], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    seen = 0
    try:
        deadline = time.monotonic() + 300
        while run.poll() is None and time.monotonic() < deadline:
            seen = _journal_rows(cache / "journal.sqlite")
            if seen >= kill_after:
                break
            time.sleep(0.005)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)  # the run and its worker processes
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
    journaled = _journal_rows(cache / "journal.sqlite")
    assert kill_after <= seen <= journaled < total
    assert not output.exists()  # no partial output
    assert list(folder.iterdir()) == []  # and no temporary file beside it

    proc = subprocess.run([sys.executable, "-m", "delfverify.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    computed, reused, extracted = map(int, SUMMARY.search(proc.stdout).groups())
    assert reused >= journaled > 0
    assert computed + reused == total
    assert extracted == 0
    assert output.read_bytes() == expected
    assert sorted(p.name for p in folder.iterdir()) == ["reranked.csv"]
    assert _journal_rows(cache / "journal.sqlite") == total
