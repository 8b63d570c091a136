"""delfverify.tuning and ``delfverify tune``: fast scoring equals Policy.apply + metrics, known thresholds are
found, cross-validation is seeded and split by query, the written policy loads, the CLI runs end to end on the
sample data, and on the dev set a policy tuned on files 00-04 re-ranks 05-09 at least as well as the built-ins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delfverify import cli
from delfverify.metrics import global_average_precision, oracle_gap, ranked_gap
from delfverify.policy import Action, builtin_policy, load_policy, policy_from_dict
from delfverify.tables import format_confidence
from delfverify.tuning import (
    PolicyScorer,
    SearchSpace,
    TuneConfig,
    assign_folds,
    compare_policies,
    describe_policy,
    plot_tuning,
    random_policies,
    tune,
    write_policy,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never write to the user's cache, even if a test forgets --cache-dir."""
    monkeypatch.setenv("DELFVERIFY_CACHE_DIR", str(tmp_path / "default-cache"))


def _frames(seed: int, n: int, decimals: int | None = None, ids: list[str] | None = None):
    """Random truth, predictions (all queries), correctness, inliers (K = 5, some missing)."""
    rng = np.random.default_rng(seed)
    ids = ids or [f"q{i:05d}" for i in rng.permutation(n)]
    landmark = rng.random(n) < 0.7
    landmark[:3] = True
    truth_label = np.where(landmark, rng.integers(0, 4, n).astype(str), "")
    correct = landmark & (rng.random(n) < 0.5)
    label = np.where(correct, truth_label, "x")
    confidence = rng.random(n)
    if decimals is not None:
        confidence = np.round(confidence, decimals)
    inliers = np.where(correct[:, None], rng.poisson(11, (n, 5)), rng.poisson(4, (n, 5))).astype(float)
    inliers[rng.random((n, 5)) < 0.15] = np.nan
    truth = pd.DataFrame({"id": ids, "landmarks": truth_label})
    predictions = pd.DataFrame({"id": ids, "label": label, "confidence": confidence})
    return truth, predictions, correct, inliers


def _query_rank(ids) -> np.ndarray:
    ids = np.asarray(ids, object)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    return rank


def _candidates(count: int = 120, seed: int = 3) -> list:
    return [builtin_policy("default", "rootsift"), builtin_policy("seed", "rootsift")] + random_policies(
        SearchSpace(), count, seed)


# --- metrics.ranked_gap (the core tuning scores with) -----------------------------------------------------------


def test_ranked_gap_matches_hand_computation():
    assert ranked_gap(np.array([False, True, True]), 3) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert ranked_gap(np.array([], bool), 2) == 0.0


def test_ranked_gap_of_several_rankings_equals_each_alone():
    rng = np.random.default_rng(0)
    parts = [rng.random(size) < 0.5 for size in (7, 0, 12, 1)]
    m = np.array([5, 2, 9, 1])
    starts = np.cumsum([0] + [p.size for p in parts[:-1]])
    together = ranked_gap(np.concatenate(parts), m, starts)
    assert together == pytest.approx([ranked_gap(p, mi) for p, mi in zip(parts, m)], abs=1e-15)


@pytest.mark.parametrize("m, starts, message", [
    (0, None, "at least 1"),
    (np.array([1, 0]), np.array([0, 1]), "at least 1"),
    (1, np.array([1]), "starts"),
    (np.array([1, 1]), np.array([0, 5]), "starts"),
])
def test_ranked_gap_rejects_bad_input(m, starts, message):
    with pytest.raises(ValueError, match=message):
        ranked_gap(np.array([True, False, True]), m, starts)


# --- PolicyScorer ------------------------------------------------------------------------------------------------


def test_scorer_confidences_equal_policy_apply():
    truth, predictions, correct, inliers = _frames(0, 400, decimals=2)
    confidence = predictions["confidence"].to_numpy()
    scorer = PolicyScorer(confidence, inliers, correct, _query_rank(truth["id"]), np.zeros(400, int), [300])
    policies = _candidates()
    assert {p.mode for p in policies} == {"bands", "additive", "multiplicative"}
    for policy in policies:
        expected, _ = policy.apply(confidence, inliers)
        np.testing.assert_array_equal(scorer.confidences(policy), expected, err_msg=policy.to_dict())


@pytest.mark.parametrize("decimals", [None, 6])
def test_scorer_gaps_equal_global_average_precision_per_ranking(decimals):
    truth, predictions, correct, inliers = _frames(1, 500, decimals=None if decimals is None else 2)
    confidence = predictions["confidence"].to_numpy()
    fold = np.random.default_rng(2).integers(0, 3, 500)
    m = np.bincount(fold[truth["landmarks"].to_numpy() != ""], minlength=3)
    scorer = PolicyScorer(confidence, inliers, correct, _query_rank(truth["id"]), fold, m, decimals=decimals)
    for policy in _candidates(60):
        new, _ = policy.apply(confidence, inliers)
        if decimals is not None:  # as rerank writes them
            new = np.array([float(format_confidence(c)) for c in new])
        expected = [global_average_precision(predictions[fold == f].assign(confidence=new[fold == f]),
                                             truth[fold == f]).gap for f in range(3)]
        assert scorer.gaps(policy) == pytest.approx(expected, abs=1e-12), policy.to_dict()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3, 40), policy_seed=st.integers(0, 1000))
def test_scorer_gaps_equal_metrics_with_ties_and_unicode_ids(seed, n, policy_seed):
    alphabet = ["a", "B", "z", "\u00e9", "0", "\u4e2d"]
    rng = np.random.default_rng(seed)
    ids = sorted({"".join(rng.choice(alphabet, 3)) + str(i % 3) + "".join(rng.choice(alphabet, 2)) for i in range(n)})
    ids = list(rng.permutation(np.array(ids, object)))
    truth, predictions, correct, inliers = _frames(seed, len(ids), decimals=1, ids=ids)
    confidence = predictions["confidence"].to_numpy()
    m = int((truth["landmarks"] != "").sum())
    scorer = PolicyScorer(confidence, inliers, correct, _query_rank(ids), np.zeros(len(ids), int), [m])
    for policy in random_policies(SearchSpace(), 5, policy_seed):
        new, _ = policy.apply(confidence, inliers)
        new = np.array([float(format_confidence(c)) for c in new])
        expected = global_average_precision(predictions.assign(confidence=new), truth).gap
        assert scorer.gaps(policy)[0] == pytest.approx(expected, abs=1e-12)


def test_scorer_threads_give_the_same_scores():
    truth, predictions, correct, inliers = _frames(4, 300)
    scorer = PolicyScorer(predictions["confidence"], inliers, correct, _query_rank(truth["id"]),
                          np.arange(300) % 2, [100, 100])
    policies = _candidates(50)
    np.testing.assert_array_equal(scorer.gaps_many(policies, workers=1), scorer.gaps_many(policies, workers=2))


def test_scorer_rejects_bad_input():
    truth, predictions, correct, inliers = _frames(5, 20)
    rank = _query_rank(truth["id"])
    confidence = predictions["confidence"].to_numpy()
    with pytest.raises(ValueError, match="confidence must lie in"):
        PolicyScorer(confidence + 1, inliers, correct, rank, np.zeros(20, int), [5])
    with pytest.raises(ValueError, match="unique within each ranking"):
        PolicyScorer(confidence, inliers, correct, np.zeros(20, int), np.zeros(20, int), [5])
    with pytest.raises(ValueError, match="num_landmark_queries"):
        PolicyScorer(confidence, inliers, correct, rank, np.zeros(20, int), [0])
    with pytest.raises(ValueError, match="decimals"):
        PolicyScorer(confidence, inliers, correct, rank, np.zeros(20, int), [5], decimals=-1)


# --- folds -------------------------------------------------------------------------------------------------------


def test_folds_are_seeded_stratified_and_follow_the_ids():
    truth, _, _, _ = _frames(6, 103)
    folds = assign_folds(truth, 5, seed=7)
    assert folds.shape == (103,) and set(folds) == set(range(5))
    np.testing.assert_array_equal(folds, assign_folds(truth, 5, seed=7))
    assert not np.array_equal(folds, assign_folds(truth, 5, seed=8))
    landmark = (truth["landmarks"] != "").to_numpy()
    per_fold = np.bincount(folds[landmark], minlength=5)
    assert per_fold.max() - per_fold.min() <= 1
    shuffled = truth.sample(frac=1.0, random_state=0)
    again = dict(zip(shuffled["id"], assign_folds(shuffled, 5, seed=7)))
    assert again == dict(zip(truth["id"], folds))


def test_folds_need_a_landmark_query_each():
    truth = pd.DataFrame({"id": ["a", "b", "c"], "landmarks": ["x", "", "y"]})
    with pytest.raises(ValueError, match="3 folds need at least 3 landmark queries"):
        assign_folds(truth, 3)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        assign_folds(truth, 1)


# --- tune ----------------------------------------------------------------------------------------------------------


def _separable(seed: int = 0, n: int = 240, files: int = 2):
    """Correct predictions have 7-40 inliers, wrong ones 0-6 (equal in every column): 7 separates them."""
    rng = np.random.default_rng(seed)
    ids = [f"q{i:04d}" for i in range(n)]
    landmark = rng.random(n) < 0.7
    truth = pd.DataFrame({"id": ids, "landmarks": np.where(landmark, "a", "")})
    tables, inliers = [], []
    for _ in range(files):
        correct = landmark & (rng.random(n) < 0.5)
        count = np.where(correct, rng.integers(7, 41, n), rng.integers(0, 7, n)).astype(float)
        tables.append(pd.DataFrame({"id": ids, "label": np.where(correct, "a", "b"),
                                    "confidence": np.round(rng.random(n), 4)}))
        inliers.append(np.repeat(count[:, None], 5, axis=1))
    return truth, tables, inliers


def test_tune_finds_the_separating_threshold_and_reaches_the_oracle():
    truth, tables, inliers = _separable()
    space = SearchSpace(band_edges=((),), fusion_share=0.0, suppress_actions=(Action(0.0, 0.0),),
                        boost_inliers=(None,), random_candidates=200)
    result = tune(tables, truth, inliers, config=TuneConfig(space=space, workers=1))
    (band,) = result.policy.bands
    assert band.min_inliers == 7
    oracle = [oracle_gap(t, truth) for t in tables]
    assert result.gaps["tuned"].tolist() == pytest.approx(oracle, abs=1e-12)
    assert result.gaps["default"].mean() < result.gaps["tuned"].mean()
    assert result.chosen_score >= result.cv_gap - 1e-12
    curve = result.curves[0]
    assert curve.parameter == "min_inliers" and curve.chosen == 7
    assert max(curve.gaps) == pytest.approx(curve.gaps[curve.values.index(7)])


def test_tune_with_the_full_space_comes_within_a_hair_of_the_oracle():
    # Every fold can be perfectly ordered while the folds' orders do not interleave perfectly (e.g. additive
    # fusion), so the per-fold selection score reaches the oracle and all-query GAP may fall just short of it.
    truth, tables, inliers = _separable(seed=1)
    result = tune(tables, truth, inliers, config=TuneConfig(space=SearchSpace(random_candidates=300), workers=1))
    oracle = np.array([oracle_gap(t, truth) for t in tables])
    assert np.all(result.gaps["tuned"].to_numpy() >= 0.999 * oracle)
    assert np.all(result.gaps["tuned"] > result.gaps["default"])
    assert result.candidates_evaluated >= 300


def test_tune_is_deterministic_and_folds_split_by_query():
    truth, tables, inliers = _separable(seed=2, n=150, files=3)
    config = TuneConfig(folds=4, seed=5, space=SearchSpace(random_candidates=80, coordinate_rounds=1), workers=1)
    first = tune(tables, truth, inliers, config=config)
    second = tune(tables, truth, inliers, config=config)
    assert first.policy.to_dict() == second.policy.to_dict()
    assert first.folds == second.folds
    # A fold's held-out GAP is the mean over files of the GAP on that fold's queries (the same in every file).
    folds = assign_folds(truth, 4, seed=5)
    assert sum(r.num_queries for r in first.folds) == len(truth)
    for r in first.folds:
        rows = folds == r.fold
        assert r.num_landmark_queries == int((truth["landmarks"][rows] != "").sum())
        expected = []
        for table, counts in zip(tables, inliers):
            new, _ = r.policy.apply(table["confidence"].to_numpy(), counts)
            new = np.round(new, 6)
            expected.append(global_average_precision(table[rows].assign(confidence=new[rows]), truth[rows]).gap)
        assert r.heldout_gap == pytest.approx(np.mean(expected), abs=1e-12)
    assert first.cv_gap == pytest.approx(np.mean([r.heldout_gap for r in first.folds]))


def test_tune_records_what_it_was_tuned_on():
    truth, tables, inliers = _separable(seed=3, n=100, files=2)
    config = TuneConfig(folds=3, seed=1, space=SearchSpace(random_candidates=50, coordinate_rounds=1), workers=1)
    result = tune(tables, truth, inliers, extractor="delf", config=config, names=["a.csv", "b.csv"])
    info = result.policy.info
    assert result.policy.name == "tuned" and result.policy.extractor == "delf"
    assert info["tuned_on"] == {
        "files": ["a.csv", "b.csv"], "extractor": "delf", "predictions": 200, "queries": 100,
        "landmark_queries": int((truth["landmarks"] != "").sum()), "max_k": 5, "selection": "spread",
        "folds": 3, "seed": 1, "candidates": result.candidates_evaluated,
        "candidates_invalid": result.candidates_invalid,
    }
    assert info["cv"]["heldout_gap_mean"] == result.cv_gap
    assert [f["heldout_gap"] for f in info["cv"]["folds"]] == [r.heldout_gap for r in result.folds]
    assert set(info["gap"]["mean"]) == {"before", "default", "seed", "tuned", "oracle"}
    assert [row["file"] for row in info["gap"]["per_file"]] == ["a.csv", "b.csv"]
    assert "default" in result.baseline_scores
    json.dumps(info)  # plain JSON


def test_written_policy_loads_and_round_trips(tmp_path):
    truth, tables, inliers = _separable(seed=4, n=80, files=1)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=40, coordinate_rounds=1), workers=1)
    result = tune(tables, truth, inliers, config=config)
    path = tmp_path / "out" / "policy.json"
    write_policy(result.policy, path)
    loaded = load_policy(path, "rootsift")
    assert loaded == result.policy
    assert loaded.to_dict() == result.policy.to_dict()
    assert policy_from_dict(json.loads(path.read_text())).info == json.loads(json.dumps(dict(result.policy.info)))
    assert not [p for p in path.parent.iterdir() if p.name != "policy.json"]  # no temporary file left
    assert describe_policy(loaded).startswith(loaded.mode)


def test_plot_tuning_writes_a_png(tmp_path):
    truth, tables, inliers = _separable(seed=5, n=80, files=1)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=30, coordinate_rounds=1), workers=1)
    result = tune(tables, truth, inliers, config=config)
    assert set(result.inliers_by_outcome) == {"correct", "wrong", "non_landmark"}
    plot_tuning(result, tmp_path / "tuning.png")
    assert (tmp_path / "tuning.png").read_bytes()[:8] == PNG_MAGIC


def test_tune_rejects_mismatched_input():
    truth, tables, inliers = _separable(seed=6, n=40, files=2)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=5, coordinate_rounds=0), workers=1)
    with pytest.raises(ValueError, match="one inlier table per predictions table"):
        tune(tables, truth, inliers[:1], config=config)
    with pytest.raises(ValueError, match=r"inliers\[1\]: expected shape \(40, K\)"):
        tune(tables, truth, [inliers[0], inliers[1][:5]], config=config)
    with pytest.raises(ValueError, match="not in truth"):
        tune([tables[0].assign(id=tables[0]["id"] + "x")], truth, inliers[:1], config=config)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        TuneConfig(folds=1)
    with pytest.raises(ValueError, match="max_k must be a positive integer"):
        SearchSpace(max_k=0)


# --- CLI -----------------------------------------------------------------------------------------------------------


def _run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _sample_args(cache: Path) -> list:
    return ["--truth", SAMPLE / "truth.csv", "--gallery", SAMPLE / "gallery.csv", "--gallery-images",
            SAMPLE / "gallery", "--query-images", SAMPLE / "queries", "--cache-dir", cache]


@pytest.fixture(scope="module")
def sample_tuned(tmp_path_factory):
    """``delfverify tune`` on the sample data once: (status, stdout, stderr, policy path, plot path, cache)."""
    root = tmp_path_factory.mktemp("sample-tune")
    policy, plot, cache = root / "policy.json", root / "tuning.png", root / "cache"
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
    assert plot.read_bytes()[:8] == PNG_MAGIC


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


def test_cli_tune_defaults_equal_library_defaults():
    args = cli.build_parser().parse_args(["tune", "p.csv", "--truth", "t", "--gallery", "g", "--gallery-images",
                                          "gi", "--query-images", "qi", "-o", "x.json"])
    assert args.folds == TuneConfig().folds
    assert args.max_k == SearchSpace().max_k
    assert args.cv_seed == TuneConfig().seed
    assert args.predictions == ["p.csv"] and args.plot is None


@pytest.mark.parametrize("extra, message", [
    (["--folds", "1"], "folds must be an integer >= 2"),
    (["--folds", "40"], "40 folds need at least 40 landmark queries"),
    (["--max-k", "0"], "max_k must be a positive integer"),
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


# --- dev set --------------------------------------------------------------------------------------------------------

#: K = 3 (the default policy's k) and photos shrunk to 480 px keep this test under a minute on 2 cores (about
#: 1,100 pairs; RootSIFT matching dominates). ``benchmarks/bench_tune_dev.py`` runs the same with the defaults.
DEV_MAX_K = 3
DEV_MAX_SIDE = 480


@pytest.fixture(scope="session")
def dev_tuned_and_tested(dev_data, tmp_path_factory):
    """Tune on dev predictions 00-04, re-rank 05-09 with seed, default and tuned: (result, GAP table)."""
    from delfverify import Verifier
    from delfverify.journal import PairJournal
    from delfverify.tables import ImageDirectory, read_gallery, read_predictions, read_solution
    from delfverify.parallel import default_workers
    from delfverify.tuning import measure_builtin_inliers, measure_inliers

    cache = tmp_path_factory.mktemp("tune-dev-cache")
    truth = read_solution(dev_data / "truth.csv")
    gallery = read_gallery(dev_data / "gallery.csv")
    images = {"query_images": ImageDirectory(dev_data / "queries"),
              "gallery_images": ImageDirectory(dev_data / "gallery")}
    verifier = Verifier("rootsift", cache_dir=cache, max_side=DEV_MAX_SIDE)
    space = SearchSpace(max_k=DEV_MAX_K)
    tuning = [read_predictions(dev_data / "predictions" / f"{i:02d}.csv") for i in range(5)]
    testing = [read_predictions(dev_data / "predictions" / f"{i:02d}.csv") for i in range(5, 10)]
    with PairJournal(cache / "journal.sqlite") as journal:
        run = {"journal": journal, "workers": min(2, default_workers())}
        inliers = measure_inliers(tuning, gallery, verifier, **images, max_k=DEV_MAX_K, **run)
        # Every pair the re-ranking of 05-09 needs, verified in parallel now, so rerank only reads the journal.
        measure_inliers(testing, gallery, verifier, **images, max_k=DEV_MAX_K, **run)
        measure_builtin_inliers(testing, gallery, verifier, **images, space=space, **run)
        result = tune(tuning, truth, inliers, config=TuneConfig(space=space))
        write_policy(result.policy, cache / "tuned.json")
        policies = {name: load_policy(name, "rootsift") for name in ("seed", "default")}
        policies["tuned"] = load_policy(cache / "tuned.json", "rootsift")
        table = compare_policies({f"{i:02d}": p for i, p in zip(range(5, 10), testing)}, truth, gallery,
                                 verifier, policies, **images, journal=journal)
    return result, table


def test_dev_policy_tuned_on_00_04_generalises_to_05_09(dev_tuned_and_tested):
    result, table = dev_tuned_and_tested
    means = table.drop(columns="file").mean()
    print(f"\ntuned: {describe_policy(result.policy)}; CV held-out GAP {result.cv_gap:.4f} +/- "
          f"{result.cv_gap_std:.4f}\n{table.to_string(index=False)}\nmeans: {means.round(4).to_dict()}")
    assert means["tuned"] >= means["seed"]
    assert means["tuned"] >= means["default"] - 0.005
    assert means["tuned"] <= means["oracle"] + 1e-12
