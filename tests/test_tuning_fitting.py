"""delfverify.tuning.fitting: ``tune`` finds a well-supported optimum, keeps ``default`` on pure noise, stays closer to
``default`` with fewer queries, is deterministic and splits folds by query, records what it was tuned on and what it
decided, and on the dev set a policy tuned on files 00-04 re-ranks 05-09 at least as well as the built-ins (from
precomputed inlier tables, ``tests/data/dev_inliers.npz``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tuning_cases import CUT, noise, second_choice, separable

from delfverify.metrics import global_average_precision, oracle_gap
from delfverify.pipeline import choose_candidates, rescale
from delfverify.policy import Action, builtin_policy, describe_policy, load_policy, policy_from_dict, save_policy
from delfverify.tables import Predictions, read_predictions, read_solution
from delfverify.tuning import (DECISIONS, RULE, SearchSpace, SmallSpace, TuneConfig, corrected_se, grid_candidates,
                               fit_policy, repeated_folds)
from delfverify.tuning.search import candidate_key


def _distance_to_default(policy) -> int:
    """Grid steps of a small-space policy from ``default`` (rootsift)."""
    grid = grid_candidates(SmallSpace(), builtin_policy("default", "rootsift"))
    doc = {k: v for k, v in policy.to_dict().items() if k not in ("extractor", "info")}
    return int(grid.distance[[candidate_key(d) for d in grid.docs].index(candidate_key(doc))])


def test_tune_finds_a_well_supported_optimum():
    # Correct predictions have CUT-40 inliers and wrong ones fewer: suppressing below CUT (default: CUT - 3) and
    # boosting at CUT (default: CUT) is the optimum.
    truth, tables, inliers = separable()
    result = fit_policy(tables, truth, inliers, config=TuneConfig(workers=1))
    selection = result.selection
    assert selection.decision == "tuned" and result.policy.info["selection"]["decision"] == "tuned"
    (band,) = result.policy.bands
    assert band.min_inliers == CUT
    assert selection.best_margin > selection.best_se > 0 and selection.margin > selection.se
    assert result.cv_margin > result.cv_margin_se > 0  # tuning also wins on queries it did not see
    oracle = np.array([oracle_gap(t.table, truth.table) for t in tables])
    assert np.all(result.gaps["tuned"].to_numpy() >= 0.99 * oracle)
    assert np.all(result.gaps["tuned"] > result.gaps["default"] + 0.05)
    assert result.chosen_score >= result.cv_gap - 1e-12
    curve = result.curves[0]
    assert curve.parameter == "min_inliers" and curve.chosen == CUT
    assert max(curve.gaps) == pytest.approx(curve.gaps[curve.values.index(CUT)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tune_keeps_default_on_pure_noise(seed):
    truth, tables, inliers = noise(seed)
    result = fit_policy(tables, truth, inliers, config=TuneConfig(workers=1))
    default = builtin_policy("default", "rootsift")
    assert result.selection.decision == "kept default" and result.selection.margin == 0.0
    assert result.policy.bands == default.bands and result.policy.combine == default.combine
    assert result.policy.info["same_as_builtin"] == "default"
    assert result.gaps["tuned"].tolist() == result.gaps["default"].tolist()


def _chosen_gap(table: Predictions, counts: np.ndarray, policy, truth) -> float:
    """GAP of ``rerank``'s choice among each query's candidates."""
    choice = choose_candidates(table, counts, policy)
    chosen = table.table.iloc[choice.rows].assign(confidence=choice.rescaled.confidence[choice.rows])
    return global_average_precision(chosen, truth.table).gap


def test_tune_on_candidates_files_tunes_the_choice_among_candidates():
    """The true label is often the second candidate with weak evidence that ``default`` leaves alone. On the first
    candidates alone ``default`` is perfect and kept; on the candidates, tuning lowers the boost threshold so that
    the true second candidates win their queries, and that holds on queries it never saw."""
    truth, tables, inliers = second_choice()
    default = builtin_policy("default", "rootsift")
    firsts = [Predictions(t.table[t.rank == 1].reset_index(drop=True)) for t in tables]
    first_only = fit_policy(firsts, truth, [c[t.rank == 1] for t, c in zip(tables, inliers)],
                      config=TuneConfig(workers=1))
    assert first_only.selection.decision == "kept default"
    result = fit_policy(tables, truth, inliers, config=TuneConfig(workers=1), names=["a.csv", "b.csv"])
    assert result.selection.decision == "tuned" and result.cv_margin > 2 * result.cv_margin_se
    (band,) = result.policy.bands
    assert band.boost_inliers < default.bands[0].boost_inliers
    info = result.policy.info
    assert info["tuned_on"]["labels_per_query"] == 2 and info["tuned_on"]["predictions"] == 4 * len(truth.table)
    gaps = result.gaps
    assert gaps.columns.tolist() == ["file", "before", "seed", "default", "tuned", "oracle", "oracle_top_n"]
    for row, table, counts in zip(gaps.itertuples(), tables, inliers):
        first = table.table[table.rank == 1]
        assert row.before == global_average_precision(first, truth.table).gap  # the classifier's first labels
        assert row.oracle == oracle_gap(first, truth.table)
        assert row.oracle_top_n == 1.0  # every landmark query has its true label among its two candidates
        assert row.tuned == pytest.approx(_chosen_gap(table, counts, result.policy, truth), abs=1e-15)
        assert row.default == pytest.approx(_chosen_gap(table, counts, default, truth), abs=1e-15)
        assert row.tuned > row.oracle  # above what re-ranking the first labels could ever reach
    assert info["gap"]["mean"]["oracle_top_n"] == 1.0
    fresh_truth, fresh, fresh_inliers = second_choice(seed=9)
    for table, counts in zip(fresh, fresh_inliers):
        tuned, kept = (_chosen_gap(table, counts, p, fresh_truth) for p in (result.policy, default))
        assert tuned > kept + 0.05


def test_fewer_queries_stay_closer_to_default():
    """The one-standard-error tolerance grows as the queries fall, so the choice moves toward default."""
    few, many = [], []
    for seed in range(3):
        for n, out in ((20, few), (320, many)):
            truth, tables, inliers = separable(seed=seed, n=n)
            out.append(fit_policy(tables, truth, inliers, config=TuneConfig(workers=1)).policy)
    assert [p.bands[0].min_inliers for p in many] == [CUT, CUT, CUT]
    assert sum(map(_distance_to_default, few)) < sum(map(_distance_to_default, many))
    assert builtin_policy("default", "rootsift").bands in [p.bands for p in few]


def test_wide_search_finds_the_separating_threshold():
    truth, tables, inliers = separable()
    space = SearchSpace(band_edges=((),), fusion_share=0.0, suppress_actions=(Action(0.0, 0.0),),
                        boost_inliers=(None,), random_candidates=200)
    result = fit_policy(tables, truth, inliers, config=TuneConfig(space=space, repeats=2, workers=1))
    assert result.policy.info["tuned_on"]["search"] == "wide" and result.selection.decision == "tuned"
    (band,) = result.policy.bands
    assert band.min_inliers == CUT
    oracle = [oracle_gap(t.table, truth.table) for t in tables]
    assert result.gaps["tuned"].tolist() == pytest.approx(oracle, abs=1e-12)


def test_tune_is_deterministic_and_folds_split_by_query():
    truth, tables, inliers = separable(seed=2, n=150, files=3)
    config = TuneConfig(folds=4, repeats=2, seed=5, workers=1)
    first = fit_policy(tables, truth, inliers, config=config)
    second = fit_policy(tables, truth, inliers, config=config)
    assert first.policy.to_dict() == second.policy.to_dict()
    assert first.folds == second.folds and first.selection == second.selection
    # A fold's held-out GAP is the mean over files of the GAP on that fold's queries (the same in every file).
    assignments = repeated_folds(truth, 4, 2, seed=5)
    frame = truth.table
    assert [(r.repeat, r.fold) for r in first.folds] == [(r, f) for r in range(2) for f in range(4)]
    for repeat in range(2):
        assert sum(r.num_queries for r in first.folds if r.repeat == repeat) == len(frame)
    for r in first.folds:
        rows = assignments[r.repeat] == r.fold
        assert r.num_landmark_queries == int((frame["landmarks"][rows] != "").sum())
        for policy, gap in ((r.policy, r.heldout_gap), (builtin_policy("default", "rootsift"), r.default_gap)):
            expected = []
            for table, counts in zip(tables, inliers):
                new = np.round(rescale(table, counts, policy).confidence, 6)
                expected.append(global_average_precision(table.table[rows].assign(confidence=new[rows]),
                                                         frame[rows]).gap)
            assert gap == pytest.approx(np.mean(expected), abs=1e-12)
    assert first.cv_gap == pytest.approx(np.mean([r.heldout_gap for r in first.folds]))
    gains = np.array([r.heldout_gap - r.default_gap for r in first.folds]).reshape(2, 4)
    assert first.cv_margin == pytest.approx(gains.mean()) and first.cv_margin_se == pytest.approx(corrected_se(gains))


def test_tune_records_what_it_was_tuned_on_and_what_it_decided():
    truth, tables, inliers = separable(seed=3, n=100, files=2)
    config = TuneConfig(folds=3, repeats=2, seed=1, workers=1)
    result = fit_policy(tables, truth, inliers, extractor="delf", config=config, names=["a.csv", "b.csv"])
    info = result.policy.info
    assert result.policy.name == "tuned" and result.policy.extractor == "delf"
    assert info["tuned_on"] == {
        "files": ["a.csv", "b.csv"], "extractor": "delf", "geometry": "affine", "predictions": 200,
        "labels_per_query": 1, "queries": 100,
        "landmark_queries": int((truth.table["landmarks"] != "").sum()), "max_k": 5, "selection": "spread",
        "folds": 3, "repeats": 2, "seed": 1, "search": "small", "candidates": result.candidates_evaluated,
        "candidates_invalid": result.candidates_invalid,
    }
    selection = result.selection
    assert info["selection"] == {
        "rule": RULE, "decision": selection.decision, "reason": selection.reason, "margin": selection.margin,
        "se": selection.se, "best_margin": selection.best_margin, "best_se": selection.best_se,
        "tied_with_best": selection.tied, "nested_margin": result.cv_margin, "nested_se": result.cv_margin_se,
    }
    assert selection.decision in DECISIONS
    assert info["cv"]["heldout_gap_mean"] == result.cv_gap
    assert [f["heldout_gap"] for f in info["cv"]["folds"]] == [r.heldout_gap for r in result.folds]
    assert [f["decision"] for f in info["cv"]["folds"]] == [r.decision for r in result.folds]
    assert info["cv"]["folds_tuned"] == sum(r.decision == "tuned" for r in result.folds)
    assert set(info["gap"]["mean"]) == {"before", "default", "seed", "tuned", "oracle"}
    assert [row["file"] for row in info["gap"]["per_file"]] == ["a.csv", "b.csv"]
    assert {"default", "seed thresholds (spread, k <= 5)"} <= set(result.baseline_scores)
    json.dumps(info)  # plain JSON


def test_two_folds_keep_default_and_say_so(caplog):
    truth, tables, inliers = separable()
    with caplog.at_level("WARNING", logger="delfverify.tuning.fitting"):
        result = fit_policy(tables, truth, inliers, config=TuneConfig(folds=2, workers=1))
    assert result.selection.best_margin > result.selection.best_se  # the best candidate is clearly better ...
    assert result.selection.decision == "kept default"  # ... but one inner fold cannot confirm it
    assert "with 2 folds tune cannot confirm a candidate" in caplog.text


def test_written_policy_loads_and_round_trips(tmp_path):
    truth, tables, inliers = separable(seed=4, n=80, files=1)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=40, coordinate_rounds=1), workers=1)
    result = fit_policy(tables, truth, inliers, config=config)
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
        fit_policy(tables, truth, inliers[:1], config=config)
    with pytest.raises(ValueError, match=r"inliers\[1\]: expected shape \(40, K\)"):
        fit_policy(tables, truth, [inliers[0], inliers[1][:5]], config=config)
    with pytest.raises(ValueError, match="not in truth"):
        fit_policy([Predictions(tables[0].table.assign(id=tables[0].table["id"] + "x"))], truth, inliers[:1],
             config=config)
    with pytest.raises(ValueError, match=r"folds must be an integer in \[2, 100\]"):
        TuneConfig(folds=1)
    with pytest.raises(ValueError, match=r"repeats must be an integer in \[1, 100\]"):
        TuneConfig(repeats=0)
    with pytest.raises(ValueError, match="space must be a SmallSpace or a SearchSpace"):
        TuneConfig(space="small")
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
    result = fit_policy(files[:5], truth, inliers["spread"][:5], baseline_inliers={"seed": inliers["first"][:5]})
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
    print(f"\ntuned: {describe_policy(result.policy)} ({result.selection.decision}); CV held-out GAP "
          f"{result.cv_gap:.4f}; means {means}")
    assert means["tuned"] >= means["seed"]
    assert means["tuned"] >= means["default"]
    assert means["tuned"] <= means["oracle"] + 1e-12
