"""delfverify.tuning.fitting: ``tune`` finds a known threshold, is deterministic and splits folds by query,
records what it was tuned on, and on the dev set a policy tuned on files 00-04 re-ranks 05-09 at least as well as
the built-ins (from precomputed inlier tables, ``tests/data/dev_inliers.npz``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tuning_cases import separable

from delfverify.metrics import global_average_precision, oracle_gap
from delfverify.pipeline import rescale
from delfverify.policy import Action, describe_policy, load_policy, policy_from_dict, save_policy
from delfverify.tables import Predictions, read_predictions, read_solution
from delfverify.tuning import SearchSpace, TuneConfig, assign_folds, tune


def test_tune_finds_the_separating_threshold_and_reaches_the_oracle():
    truth, tables, inliers = separable()
    space = SearchSpace(band_edges=((),), fusion_share=0.0, suppress_actions=(Action(0.0, 0.0),),
                        boost_inliers=(None,), random_candidates=200)
    result = tune(tables, truth, inliers, config=TuneConfig(space=space, workers=1))
    (band,) = result.policy.bands
    assert band.min_inliers == 7
    oracle = [oracle_gap(t.table, truth.table) for t in tables]
    assert result.gaps["tuned"].tolist() == pytest.approx(oracle, abs=1e-12)
    assert result.gaps["default"].mean() < result.gaps["tuned"].mean()
    assert result.chosen_score >= result.cv_gap - 1e-12
    curve = result.curves[0]
    assert curve.parameter == "min_inliers" and curve.chosen == 7
    assert max(curve.gaps) == pytest.approx(curve.gaps[curve.values.index(7)])


def test_tune_with_the_full_space_comes_within_a_hair_of_the_oracle():
    # Every fold can be perfectly ordered while the folds' orders do not interleave perfectly (e.g. additive
    # fusion), so the per-fold selection score reaches the oracle and all-query GAP may fall just short of it.
    truth, tables, inliers = separable(seed=1)
    result = tune(tables, truth, inliers, config=TuneConfig(space=SearchSpace(random_candidates=300), workers=1))
    oracle = np.array([oracle_gap(t.table, truth.table) for t in tables])
    assert np.all(result.gaps["tuned"].to_numpy() >= 0.999 * oracle)
    assert np.all(result.gaps["tuned"] > result.gaps["default"])
    assert result.candidates_evaluated >= 300


def test_tune_is_deterministic_and_folds_split_by_query():
    truth, tables, inliers = separable(seed=2, n=150, files=3)
    config = TuneConfig(folds=4, seed=5, space=SearchSpace(random_candidates=80, coordinate_rounds=1), workers=1)
    first = tune(tables, truth, inliers, config=config)
    second = tune(tables, truth, inliers, config=config)
    assert first.policy.to_dict() == second.policy.to_dict()
    assert first.folds == second.folds
    # A fold's held-out GAP is the mean over files of the GAP on that fold's queries (the same in every file).
    folds = assign_folds(truth, 4, seed=5)
    frame = truth.table
    assert sum(r.num_queries for r in first.folds) == len(frame)
    for r in first.folds:
        rows = folds == r.fold
        assert r.num_landmark_queries == int((frame["landmarks"][rows] != "").sum())
        expected = []
        for table, counts in zip(tables, inliers):
            new = np.round(rescale(table, counts, r.policy).confidence, 6)
            expected.append(global_average_precision(table.table[rows].assign(confidence=new[rows]),
                                                     frame[rows]).gap)
        assert r.heldout_gap == pytest.approx(np.mean(expected), abs=1e-12)
    assert first.cv_gap == pytest.approx(np.mean([r.heldout_gap for r in first.folds]))


def test_tune_records_what_it_was_tuned_on():
    truth, tables, inliers = separable(seed=3, n=100, files=2)
    config = TuneConfig(folds=3, seed=1, space=SearchSpace(random_candidates=50, coordinate_rounds=1), workers=1)
    result = tune(tables, truth, inliers, extractor="delf", config=config, names=["a.csv", "b.csv"])
    info = result.policy.info
    assert result.policy.name == "tuned" and result.policy.extractor == "delf"
    assert info["tuned_on"] == {
        "files": ["a.csv", "b.csv"], "extractor": "delf", "predictions": 200, "queries": 100,
        "landmark_queries": int((truth.table["landmarks"] != "").sum()), "max_k": 5, "selection": "spread",
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
    truth, tables, inliers = separable(seed=4, n=80, files=1)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=40, coordinate_rounds=1), workers=1)
    result = tune(tables, truth, inliers, config=config)
    path = tmp_path / "out" / "policy.json"
    save_policy(result.policy, path)
    loaded = load_policy(path, "rootsift")
    assert loaded == result.policy
    assert loaded.to_dict() == result.policy.to_dict()
    assert policy_from_dict(json.loads(path.read_text())).info == json.loads(json.dumps(dict(result.policy.info)))
    assert not [p for p in path.parent.iterdir() if p.name != "policy.json"]  # no temporary file left
    assert describe_policy(loaded).startswith(loaded.mode)


def test_tune_rejects_mismatched_input():
    truth, tables, inliers = separable(seed=6, n=40, files=2)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=5, coordinate_rounds=0), workers=1)
    with pytest.raises(ValueError, match="one inlier table per predictions table"):
        tune(tables, truth, inliers[:1], config=config)
    with pytest.raises(ValueError, match=r"inliers\[1\]: expected shape \(40, K\)"):
        tune(tables, truth, [inliers[0], inliers[1][:5]], config=config)
    with pytest.raises(ValueError, match="not in truth"):
        tune([Predictions(tables[0].table.assign(id=tables[0].table["id"] + "x"))], truth, inliers[:1],
             config=config)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        TuneConfig(folds=1)
    with pytest.raises(ValueError, match="max_k must be a positive integer"):
        SearchSpace(max_k=0)


# --- dev set --------------------------------------------------------------------------------------------------------

DEV_INLIERS = Path(__file__).parent / "data" / "dev_inliers.npz"


@pytest.fixture(scope="module")
def dev_tables(dev_data):
    """Dev files 00-09, the truth, and their precomputed inlier tables by selection (``spread``, ``first``)."""
    truth = read_solution(dev_data / "truth.csv")
    files = [read_predictions(dev_data / "predictions" / f"{i:02d}.csv") for i in range(10)]
    with np.load(DEV_INLIERS, allow_pickle=False) as npz:
        assert all(np.array_equal(p.ids.astype(str), npz["ids"]) for p in files), "stale tests/data/dev_inliers.npz"
        return files, truth, {"spread": list(npz["spread"]), "first": list(npz["first"])}


def test_dev_policy_tuned_on_00_04_generalises_to_05_09(dev_tables):
    files, truth, inliers = dev_tables
    result = tune(files[:5], truth, inliers["spread"][:5], baseline_inliers={"seed": inliers["first"][:5]})
    policies = {"seed": (load_policy("seed", "rootsift"), "first"), "default": (load_policy("default", "rootsift"),
                                                                                 "spread"),
                "tuned": (result.policy, "spread")}
    means = {}
    for name, (policy, selection) in policies.items():
        gaps = []
        for predictions, counts in zip(files[5:], inliers[selection][5:]):
            new = rescale(predictions, counts, policy).confidence
            gaps.append(global_average_precision(predictions.with_confidence(new).table, truth.table).gap)
        means[name] = np.mean(gaps)
    means["oracle"] = np.mean([oracle_gap(p.table, truth.table) for p in files[5:]])
    print(f"\ntuned: {describe_policy(result.policy)}; CV held-out GAP {result.cv_gap:.4f}; means {means}")
    assert means["tuned"] >= means["seed"]
    assert means["tuned"] >= means["default"] - 0.005
    assert means["tuned"] <= means["oracle"] + 1e-12
