"""``delfverify tune`` end to end on the sample data: it writes a policy (with its decision) and a plot that
``rerank`` uses, searches small or wide, has the library's defaults, tunes a candidates file for the choice among
candidates, and its errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from delfverify import cli
from delfverify.metrics import global_average_precision
from delfverify.tables import read_predictions, read_solution
from delfverify.tuning import SPACES, TuneConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _sample_args(cache: Path) -> list:
    return ["--truth", SAMPLE / "truth.csv", "--gallery", SAMPLE / "gallery.csv", "--gallery-images",
            SAMPLE / "gallery", "--query-images", SAMPLE / "queries", "--cache-dir", cache]


@pytest.fixture(scope="module")
def sample_tuned(sample_run, tmp_path_factory):
    """``delfverify tune`` on the sample data once, on a copy of the sample run's cache: (status, stdout, stderr,
    policy path, plot path, cache)."""
    root = tmp_path_factory.mktemp("sample-tune")
    policy, plot, cache = root / "policy.json", root / "tuning.png", sample_run.warm_cache(root / "cache")
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main([str(a) for a in ["tune", SAMPLE / "predictions.csv", *_sample_args(cache), "-o", policy,
                                            "--plot", plot, "-q"]])
    return status, out.getvalue(), err.getvalue(), policy, plot, cache


def test_cli_tune_writes_a_policy_and_a_plot(sample_tuned):
    status, out, err, policy, plot, _ = sample_tuned
    assert status == 0, err
    assert "cross-validated held-out GAP" in out and "policy: " in out and "default" in out
    doc = json.loads(policy.read_text())
    assert doc["name"] == "tuned" and doc["info"]["tuned_on"]["files"] == [str(SAMPLE / "predictions.csv")]
    assert doc["info"]["tuned_on"]["search"] == "small"
    selection = doc["info"]["selection"]
    assert f"decision: {selection['decision']} ({selection['reason']})" in out
    assert f"{selection['best_margin']:+.4f} GAP, standard error {selection['best_se']:.4f}" in out
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_cli_tune_defaults_are_the_library_defaults():
    args = cli.build_parser().parse_args(["tune", "p.csv", "--truth", "t.csv", "--gallery", "g.csv",
                                          "--gallery-images", "g", "--query-images", "q", "-o", "p.json"])
    config = TuneConfig()
    assert (args.search, args.folds, args.repeats, args.cv_seed, args.max_k) == (
        config.search, config.folds, config.repeats, config.seed, config.space.max_k)
    assert config.search == "small" and isinstance(config.space, SPACES["small"])


def test_cli_tune_wide_search(sample_tuned, tmp_path, capsys):
    cache = sample_tuned[5]
    policy = tmp_path / "wide.json"
    status, out, err = _run(capsys, "tune", SAMPLE / "predictions.csv", *_sample_args(cache), "-o", policy,
                            "--search", "wide", "--repeats", "1", "--workers", "1", "-q")
    assert status == 0, err
    info = json.loads(policy.read_text())["info"]
    assert info["tuned_on"]["search"] == "wide" and info["tuned_on"]["repeats"] == 1
    assert info["tuned_on"]["candidates"] > 1000 and "wide search" in out


def test_cli_rerank_runs_with_the_tuned_policy(sample_tuned, tmp_path, capsys):
    _, _, _, policy, _, cache = sample_tuned
    output = tmp_path / "reranked.csv"
    status, out, err = _run(capsys, "rerank", SAMPLE / "predictions.csv", *_sample_args(cache)[2:], "--policy",
                            policy, "-o", output, "--workers", "1")
    assert status == 0, err
    assert "policy tuned" in out and "pairs verified 0" in out  # every pair came from the tuning run's journal
    status, out, _ = _run(capsys, "gap", output, "--truth", SAMPLE / "truth.csv", "--json")
    tuned = json.loads(policy.read_text())["info"]["gap"]["mean"]["tuned"]
    assert json.loads(out)["gap"] == pytest.approx(tuned, abs=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--folds", "1"], "--folds must be an integer in [2, 100]"),
    (["--repeats", "0"], "--repeats must be an integer in [1, 100]"),
    (["--folds", "40"], "40 folds need at least 40 landmark queries"),
    (["--max-k", "0"], "--max-k must be a positive integer"),
    (["--max-k", "1000000000000"], "--max-k must be at most 1000 (a policy's largest k), got 1000000000000"),
    (["--cv-seed", "-1"], "--cv-seed must be an integer in [0, 9223372036854775807], got -1"),
    (["--seed", "-3"], "--seed must be an integer in [0, 9223372036854775807], got -3"),
])
def test_cli_tune_errors_are_one_line(capsys, tmp_path, extra, message):
    status, out, err = _run(capsys, "tune", SAMPLE / "predictions.csv", *_sample_args(tmp_path / "c"), "-o",
                            tmp_path / "p.json", *extra)
    assert status == 2
    assert err.startswith("delfverify: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


def test_cli_tune_missing_truth_is_named(capsys, tmp_path):
    args = _sample_args(tmp_path / "c")
    args[1] = tmp_path / "missing.csv"
    status, _, err = _run(capsys, "tune", SAMPLE / "predictions.csv", *args, "-o", tmp_path / "p.json")
    assert status == 2 and "missing.csv" in err and "not found" in err


def _sample_candidates(path: Path) -> Path:
    """The sample predictions with a second candidate per query at half the confidence: the true label where the
    first is wrong, another gallery label elsewhere (``id,label,confidence``)."""
    first = read_predictions(SAMPLE / "predictions.csv").table
    truth = dict(zip(*read_solution(SAMPLE / "truth.csv").table[["id", "landmarks"]].to_numpy().T))
    labels = sorted(set(first["label"]))
    rows = []
    for pid, label, confidence in first.itertuples(index=False):
        true = truth[pid]
        second = true if true and true != label else labels[(labels.index(label) + 1) % len(labels)]
        rows += [(pid, label, confidence), (pid, second, round(confidence / 2, 4))]
    pd.DataFrame(rows, columns=["id", "label", "confidence"]).to_csv(path, index=False)
    return path


def test_cli_tune_on_a_candidates_file_scores_the_choice_rerank_makes(sample_tuned, tmp_path, capsys):
    cache = sample_tuned[5]
    predictions = _sample_candidates(tmp_path / "candidates.csv")
    policy = tmp_path / "policy.json"
    status, out, err = _run(capsys, "tune", predictions, *_sample_args(cache), "-o", policy, "--workers", "1",
                            "--repeats", "2", "-q")
    assert status == 0, err
    info = json.loads(policy.read_text())["info"]
    assert info["tuned_on"]["labels_per_query"] == 2 and info["tuned_on"]["predictions"] == 52
    (row,) = info["gap"]["per_file"]
    first = global_average_precision(read_predictions(SAMPLE / "predictions.csv").table,
                                     read_solution(SAMPLE / "truth.csv").table)
    assert row["before"] == first.gap and row["oracle"] == first.accuracy  # the classifier's first labels
    assert row["oracle_top_n"] == 1.0 and "oracle_top_n 1.0000" in out
    assert "52 predictions (up to 2 candidate labels per query, scored by the choice among them) of 26" in out
    # tune verified every candidate: rerank, which verifies all of them with --keep-candidates, verifies none
    for extra in (["--keep-candidates"], []):
        output = tmp_path / "reranked.csv"
        status, out, err = _run(capsys, "rerank", predictions, *_sample_args(cache)[2:], "--policy", policy,
                                "-o", output, "--workers", "1", *extra)
        assert status == 0, err
        assert "pairs verified 0" in out
    status, out, _ = _run(capsys, "gap", output, "--truth", SAMPLE / "truth.csv", "--json")
    assert json.loads(out)["gap"] == pytest.approx(row["tuned"], abs=1e-6) and row["tuned"] > row["oracle"]


def test_the_one_call_tune_writes_the_clis_policy_from_paths_or_tables(sample_tuned, tmp_path):
    import delfverify

    status, _, err, policy, _, cache = sample_tuned
    assert status == 0, err
    from_paths = tmp_path / "paths.json"
    delfverify.tune([SAMPLE / "predictions.csv"], truth=SAMPLE / "truth.csv", gallery=SAMPLE / "gallery.csv",
                    gallery_images=SAMPLE / "gallery", query_images=SAMPLE / "queries", output=from_paths,
                    cache_dir=cache)
    assert from_paths.read_bytes() == policy.read_bytes()
    frames = {name: pd.read_csv(SAMPLE / f"{name}.csv", dtype=str, keep_default_na=False)
              for name in ("predictions", "truth", "gallery")}
    result = delfverify.tune([frames["predictions"]], truth=frames["truth"], gallery=frames["gallery"],
                             gallery_images=SAMPLE / "gallery", query_images=SAMPLE / "queries", cache_dir=cache)
    written = json.loads(policy.read_text())
    tables = result.policy.to_dict()
    assert tables["info"]["tuned_on"]["files"] == ["predictions[0]"]
    for doc in (written, tables):  # the same policy and record, but for the name of the input
        doc["info"]["tuned_on"].pop("files")
        for row in doc["info"]["gap"]["per_file"]:
            row.pop("file")
    assert json.loads(json.dumps(tables)) == written
