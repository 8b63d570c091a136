"""``tune``: fit a re-ranking policy to labelled predictions, cross-validated over queries.

The inlier counts are measured once by the caller (``delfverify tune`` plans and measures them with
``delfverify.pipeline``, reusing the feature store and pair journal); the search never touches an image.

Every candidate, ``default`` included, is scored on the same folds: ``repeats`` partitions of the queries into
``folds`` folds. The search is the small grid around ``default`` (``SmallSpace``, ``delfverify.tuning.grid``) or
the wide random search with coordinate ascent (``SearchSpace``). The written policy is chosen by the
one-standard-error rule of ``delfverify.tuning.selection``: ``default`` is kept unless the best candidate beats it
by more than the standard error of their paired fold differences and tuning's held-out gain in nested
cross-validation (below) exceeds two standard errors; otherwise the candidate closest to ``default`` within one
standard error of the best is taken.

Selecting among many candidates is itself fitting, so the cross-validated estimate is nested: for each repeat and
fold, the search and the rule are run again on that repeat's other folds only, and their choice is scored on the
held-out fold. That honest held-out GAP is ``TuneResult.cv_gap``; ``cv_margin`` is its mean difference to
``default`` on the same folds, with its standard error.

A candidates file (several labels per query) is tuned for ``rerank``'s choice among them: every candidate is
verified (no early stop: the search needs every candidate's counts), and a policy's score is the GAP of the
candidate each query would get under it (``delfverify.pipeline.choose_candidates``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..extractors import DEFAULT_EXTRACTOR, extractor_class
from ..metrics import OUTCOMES, global_average_precision, oracle_gap
from ..candidates import choose_candidates
from ..policy import BUILTINS, Policy, PolicyError, builtin_policy, combine_inliers, policy_from_dict
from ..settings import MAX_SEED, MAX_WORKERS, check, count_range, is_count
from ..tables import Predictions, Solution
from .crossval import LabelledData, collect, fold_scorer, match_candidates, repeated_folds
from .grid import SmallSpace, grid_candidates
from .scoring import PolicyScorer
from .search import CandidatePool, SearchSpace, Space, _variants, as_candidate, candidate_key, climb, doc_distance, \
    mean_over_folds, random_candidate
from .selection import RULE, Selection, confirm, select

logger = logging.getLogger(__name__)

#: The search spaces by name (``delfverify tune --search``): the small grid around ``default`` and the wide random
#: search.
SPACES = {"small": SmallSpace, "wide": SearchSpace}


#: The most cross-validation folds, and repeats of them: bounds that keep a run finite (each repeat is a whole
#: nested cross-validation, each fold a search).
MAX_FOLDS = 100
MAX_REPEATS = 100


@dataclass(frozen=True)
class TuneConfig:
    """How ``tune`` searches and cross-validates (the CLI's defaults come from here).

    Attributes
    ----------
    folds : int
        Cross-validation folds over queries (at least 2, at most ``MAX_FOLDS`` and the number of landmark
        queries). With 2, the rule inside the nested estimate sees one fold, has no standard error and keeps
        ``default``, so ``tune`` can never confirm a candidate: use 3 or more.
    repeats : int
        Partitions of the queries into ``folds`` folds, each with its own seed; scores are averaged over all (1 to
        ``MAX_REPEATS``: each repeat is a whole nested cross-validation).
    seed : int
        Seeds the folds and the random search (0 to ``settings.MAX_SEED``).
    space : SmallSpace or SearchSpace
        The candidates: the small grid around ``default`` (``--search small``) or the wide random search
        (``--search wide``).
    workers : int
        Threads scoring candidates (numpy's sorts release the GIL).
    """

    folds: int = 5
    repeats: int = 5
    seed: int = 0
    space: SmallSpace | SearchSpace = SmallSpace()
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    def __post_init__(self) -> None:
        check(is_count(self.folds, 2, MAX_FOLDS), "folds", count_range(2, MAX_FOLDS), self.folds)
        check(is_count(self.repeats, 1, MAX_REPEATS), "repeats", count_range(1, MAX_REPEATS), self.repeats)
        check(is_count(self.seed, 0, MAX_SEED), "seed", count_range(0, MAX_SEED), self.seed)
        check(isinstance(self.space, (SmallSpace, SearchSpace)), "space", "a SmallSpace or a SearchSpace",
              self.space)
        check(is_count(self.workers, 1, MAX_WORKERS), "workers", count_range(1, MAX_WORKERS), self.workers)

    @property
    def search(self) -> str:
        """The name of the search (a key of ``SPACES``)."""
        return next(name for name, kind in SPACES.items() if isinstance(self.space, kind))


@dataclass(frozen=True)
class FoldResult:
    """One fold of one repeat of the nested cross-validation.

    Attributes
    ----------
    repeat, fold : int
    num_queries, num_landmark_queries : int
        Truth rows in the fold, and how many of them are landmarks (M of the fold).
    train_gap : float
        Score on the repeat's other folds (mean over them of the per-fold GAP) of the policy chosen on them.
    heldout_gap : float
        GAP on this fold of that policy (mean over prediction files).
    default_gap : float
        GAP on this fold of ``default`` (as the search's inlier table serves it).
    chosen_gap : float
        GAP on this fold of the finally chosen policy.
    decision : str
        What the rule decided on the other folds (``selection.DECISIONS``).
    policy : Policy
        The policy chosen without this fold.
    """

    repeat: int
    fold: int
    num_queries: int
    num_landmark_queries: int
    train_gap: float
    heldout_gap: float
    default_gap: float
    chosen_gap: float
    decision: str
    policy: Policy


@dataclass(frozen=True)
class Curve:
    """GAP (mean over files, all queries) as one parameter varies, the others at the chosen values."""

    band: str
    parameter: str
    values: tuple[float, ...]
    gaps: tuple[float, ...]
    chosen: float | None


@dataclass(frozen=True)
class TuneResult:
    """What ``tune`` found.

    Attributes
    ----------
    policy : Policy
        The chosen policy; its ``info`` records the data, the search, the decision and the scores below.
    selection : Selection
        The one-standard-error rule's decision on all folds, with the margin over ``default`` and its standard
        error.
    cv_gap, cv_gap_std : float
        Nested cross-validated GAP: mean and standard deviation over repeats and folds of
        ``FoldResult.heldout_gap``.
    cv_margin, cv_margin_se : float
        Mean of ``heldout_gap - default_gap`` over repeats and folds, and its corrected standard error: what tuning
        (search and rule) gained over ``default`` on queries it did not see.
    chosen_score : float
        The chosen policy's mean over repeats and folds of its per-fold GAP (the selection score; optimistic).
    folds : tuple of FoldResult
    candidates_evaluated : int
        Distinct valid candidates scored.
    candidates_invalid : int
        Candidates skipped because ``policy_from_dict`` rejected them.
    gaps : pandas.DataFrame
        One row per predictions file (``file``, ``before``, ``default``, ``seed``, ``tuned``, ``oracle``): GAP on
        all queries, computed with ``delfverify.metrics`` (the tuned column is in-sample). ``before`` and
        ``oracle`` (the top-1 oracle) are those of the classifier's first candidates; the policies' columns are
        the GAP of each query's chosen candidate. When a file has several candidates per query, ``oracle_top_n``
        too: the share of landmark queries whose true label is among their candidates.
    baseline_scores : dict
        Mean held-out score of the built-ins (when evaluated on the tuning table).
    curves : tuple of Curve
        GAP against each band's ``min_inliers`` (fusion: ``fusion.min_inliers``).
    inliers_by_outcome : dict of str to float array
        Combined inlier counts, as the chosen policy combines them, of correct, wrong (landmark query) and
        non-landmark predictions, every candidate of a query each (predictions without a count are left out).
    """

    policy: Policy
    selection: Selection
    cv_gap: float
    cv_gap_std: float
    cv_margin: float
    cv_margin_se: float
    chosen_score: float
    folds: tuple[FoldResult, ...]
    candidates_evaluated: int
    candidates_invalid: int
    gaps: pd.DataFrame
    baseline_scores: Mapping[str, float]
    curves: tuple[Curve, ...]
    inliers_by_outcome: Mapping[str, np.ndarray]




def _exact_gaps(predictions: Sequence[Predictions], truth: Solution, policy: Policy,
                inliers: Sequence[np.ndarray]) -> list[float]:
    """GAP per file of ``policy`` as ``rerank`` applies it (on_missing keep; each query's chosen candidate), via
    ``delfverify.metrics``."""
    out = []
    for table, counts in zip(predictions, inliers):
        choice = choose_candidates(table, np.where(table.has_label[:, None], counts, np.nan), policy)
        chosen = table.table.iloc[choice.rows].assign(confidence=choice.rescaled.confidence[choice.rows])
        out.append(global_average_precision(chosen, truth.table).gap)
    return out


def _first_candidates(table: Predictions) -> pd.DataFrame:
    """The classifier's predictions: each query's first candidate."""
    return table.table[table.rank == 1]


def _curves(policy: Policy, scorer: PolicyScorer, space: SearchSpace) -> tuple[Curve, ...]:
    """GAP (mean over the scorer's rankings) as each band's ``min_inliers`` varies, the rest as in ``policy``."""
    doc = policy.to_dict()
    doc.pop("info", None)
    curves = []

    def score(docs: list[dict]) -> tuple[list[float], list[float]]:
        values, gaps = [], []
        for value, d in docs:
            try:
                p = policy_from_dict(d)
            except PolicyError:
                continue
            values.append(float(value))
            gaps.append(float(scorer.gaps(p).mean()))
        return values, gaps

    if policy.mode == "bands":
        for i, band in enumerate(policy.bands):
            if band.skip:
                continue
            values, gaps = score(list(zip(space.min_inliers, _variants(doc, "min_inliers", i, space))))
            curves.append(Curve(f"{band.lower:g}-{band.upper:g}", "min_inliers", tuple(values), tuple(gaps),
                                float(band.min_inliers or 0)))
    else:
        variants = []
        for m in sorted(set(space.min_inliers) | set(space.fusion_min_inliers)):
            d = json.loads(json.dumps(doc))
            d["fusion"]["min_inliers"] = float(m)
            variants.append((m, d))
        values, gaps = score(variants)
        curves.append(Curve("all", "fusion.min_inliers", tuple(values), tuple(gaps), policy.fusion.min_inliers))
    return tuple(curves)


def _inliers_by_outcome(policy: Policy, data: LabelledData) -> dict[str, np.ndarray]:
    k = policy.k_for(data.confidence)
    combined = combine_inliers(data.inliers, k, policy.combine)
    landmark = data.is_landmark[data.truth_row]
    masks = (data.correct, ~data.correct & landmark, ~landmark)
    return {name: combined[mask & np.isfinite(combined)] for name, mask in zip(OUTCOMES, masks)}


def _search(config: TuneConfig, pool: CandidatePool,
            builtins: Mapping[str, Policy]) -> Callable[[np.ndarray], tuple[Selection, list[int]]]:
    """The search as a function of the folds it may see, bool (repeats, folds), all of one repeat or all of every
    repeat: ``select``'s choice among the candidates it searched, and their pool indices (``Selection.index``
    indexes them).

    ``small``: the grid around ``default``, scored once, the same for every set of folds. ``wide``: the built-ins
    and the seeded random candidates, then coordinate ascent on the mean score over the visible folds; the
    distance to ``default`` is the number of differing policy values.
    """
    space = config.space
    default_doc = as_candidate(builtins["default"], space)
    if isinstance(space, SmallSpace):
        grid = grid_candidates(space, builtins["default"])
        searched = pool.add(grid.docs)
        if len(searched) != len(grid.docs):
            raise ValueError("the small space produced an invalid policy; check its weights and offsets")
        pool.add(as_candidate(p, space) for p in builtins.values())  # for the record (baseline_scores)
        distances = {i: d for i, d in zip(searched, grid.distance.tolist())}
        start = searched
    else:
        start = pool.add(as_candidate(p, space) for p in builtins.values())  # ties go to the earliest: default
        rng = np.random.default_rng([config.seed, 1])
        start += pool.add(random_candidate(space, rng) for _ in range(space.random_candidates))
        distances = {}

    def run(visible: np.ndarray) -> tuple[Selection, list[int]]:
        if isinstance(space, SmallSpace):
            searched = start
        else:
            _, seen = climb(pool, start, mean_over_folds(visible.reshape(-1)), space)
            searched = list(dict.fromkeys(seen))
            for i in searched:
                if i not in distances:
                    distances[i] = doc_distance(pool.docs[i], default_doc)
        rows = np.flatnonzero(visible.any(axis=1))
        columns = np.flatnonzero(visible[rows[0]])  # the same folds in every visible repeat
        scores = pool.scores().reshape(-1, config.repeats, config.folds)[searched][:, rows][:, :, columns]
        default = searched.index(pool.index[candidate_key(default_doc)])
        return select(scores, default, np.array([distances[i] for i in searched], float)), searched

    return run


def fit_policy(
    predictions: Sequence[Predictions],
    truth: Solution,
    inliers: Sequence[np.ndarray],
    *,
    extractor: str = DEFAULT_EXTRACTOR,
    geometry: str | None = None,
    config: TuneConfig = TuneConfig(),
    baseline_inliers: Mapping[str, Sequence[np.ndarray]] | None = None,
    names: Sequence[str] | None = None,
) -> TuneResult:
    """Fit a policy to labelled predictions and their inlier counts, in named steps: search and choose by the
    one-standard-error rule (``_search``), confirm by nested cross-validation (``_confirm``), score the built-ins and
    the choice on every file (``_baselines``) and record it all in the policy (``_provenance``); see the module
    docstring and ``delfverify.tuning.selection``. ``delfverify.tune`` measures the counts and calls this.

    Parameters
    ----------
    predictions : sequence of Predictions
        One or more predictions tables for the queries of ``truth``; a query may have several candidate labels,
        and each policy is then scored on the candidate it would choose (``choose_candidates``).
    truth : Solution
        The true landmarks (``delfverify.tables.read_solution``).
    inliers : sequence of float array (n_i, K)
        Per table, the inlier counts of every row (every candidate) against its first K gallery photos chosen by
        ``config.space.selection`` (``delfverify.tuning.run.measure_inliers``); K should be at least
        ``config.space.max_k``.
    extractor : str
        The extractor the counts come from (the built-in ``default`` policy's thresholds depend on it).
    geometry : str, optional
        The geometric model the counts come from (default: the extractor's); the thresholds depend on it too.
    config : TuneConfig
        Folds, repeats, seed, search space, threads.
    baseline_inliers : mapping of str to sequence of arrays, optional
        Inlier tables for built-ins whose selection or k differs from the search's (``seed`` uses ``first``);
        without one, a built-in is compared on ``inliers``.
    names : sequence of str, optional
        Names of the predictions files, for the record.

    Returns
    -------
    TuneResult
        The chosen policy (``name`` "tuned"; ``default``'s rules when the decision is "kept default"; ``info``
        with what it was tuned on, the decision, margins and scores), the decision, the nested cross-validated
        GAP and margin over ``default``, per-fold results, GAPs per file before and after the built-ins and the
        tuned policy, curves and inlier histograms for ``plot_tuning``.

    Raises
    ------
    ValueError
        Mismatched tables, ids not in the truth, too few landmark queries for the folds, and the errors of
        ``delfverify.metrics.global_average_precision``.
    """
    space = config.space
    tables = list(predictions)
    names = list(names) if names is not None else [f"predictions[{i}]" for i in range(len(tables))]
    if len(names) != len(tables):
        raise ValueError(f"names: {len(names)} names for {len(tables)} predictions tables")
    data = collect(tables, truth, inliers)
    if data.inliers.shape[1] < space.max_k:
        logger.warning("inlier tables have %d columns, fewer than max_k %d: larger k use what there is",
                       data.inliers.shape[1], space.max_k)
    if config.folds < 3:
        logger.warning("with %d folds tune cannot confirm a candidate on held-out folds and keeps default; "
                       "use 3 or more", config.folds)
    fold_of_truth = repeated_folds(truth, config.folds, config.repeats, config.seed)
    pool = CandidatePool(fold_scorer(data, fold_of_truth, config.folds), data.num_files, config.repeats,
                         config.folds, config.workers)
    geometry = geometry or extractor_class(extractor).ransac.geometry
    builtins = {name: builtin_policy(name, extractor, geometry) for name in BUILTINS}
    search = _search(config, pool, builtins)
    logger.info("%s search: scored %d candidates", config.search, len(pool.docs))
    confirmed = _confirm(search, pool, config, data, fold_of_truth,
                         pool.index[candidate_key(as_candidate(builtins["default"], space))])
    chosen = pool.policies[confirmed.chosen_index]
    gap_table, compared_on = _baselines(tables, truth, inliers, builtins, chosen, baseline_inliers or {}, names,
                                        space, data)
    baseline_scores, same_as = _builtin_scores(builtins, pool, space, confirmed)
    whole = fold_scorer(data, np.zeros(len(data.is_landmark), np.int64), 1)
    # The wide space's thresholds span the useful range whichever space was searched.
    curves = _curves(chosen, whole, space if isinstance(space, SearchSpace) else SearchSpace(
        max_k=space.max_k, selection=space.selection))
    info = _provenance(names, extractor, geometry, data, config, pool, confirmed, gap_table, compared_on,
                       baseline_scores)
    if same_as:
        info["same_as_builtin"] = same_as[0]
    selection = confirmed.selection
    return TuneResult(
        policy=replace(chosen, name="tuned", extractor=extractor, info=info),
        selection=selection,
        cv_gap=float(confirmed.heldout.mean()),
        cv_gap_std=float(confirmed.heldout.std()),
        cv_margin=selection.nested_margin,
        cv_margin_se=selection.nested_se,
        chosen_score=float(confirmed.final[confirmed.chosen_index]),
        folds=confirmed.folds,
        candidates_evaluated=len(pool.docs),
        candidates_invalid=len(pool.invalid),
        gaps=gap_table,
        baseline_scores=baseline_scores,
        curves=curves,
        inliers_by_outcome=_inliers_by_outcome(chosen, data),
    )


@dataclass(frozen=True)
class _Confirmed:
    """The search's choice on all folds, confirmed on held-out folds: the ``selection``, the chosen candidate's
    pool index, each nested fold's held-out GAP (``heldout``, repeat-major), ``folds`` and each candidate's mean
    score over every repeat and fold (``final``)."""

    selection: Selection
    chosen_index: int
    heldout: np.ndarray
    folds: tuple[FoldResult, ...]
    final: np.ndarray


def _confirm(search: Callable[[np.ndarray], tuple[Selection, list[int]]], pool: CandidatePool, config: TuneConfig,
             data: LabelledData, fold_of_truth: np.ndarray, default_index: int) -> _Confirmed:
    """The search on all folds, then nested: the search and rule again without each fold of each repeat, their
    choice scored on the held-out fold against ``default``; ``confirm`` keeps the first choice only if that
    held-out gain exceeds two standard errors."""
    folds, repeats = config.folds, config.repeats
    first, searched = search(np.ones((repeats, folds), bool))
    nested = []
    for r, f in np.ndindex(repeats, folds):
        train_on = np.zeros((repeats, folds), bool)
        train_on[r] = True
        train_on[r, f] = False
        inner, inner_searched = search(train_on)
        nested.append((r, f, train_on, inner.decision, inner_searched[inner.index]))
    scores = pool.scores()  # every candidate any search scored
    cells = [r * folds + f for r, f, *_ in nested]
    heldout = np.array([scores[winner, cell] for (*_, winner), cell in zip(nested, cells)])
    gained = (heldout - scores[default_index, cells]).reshape(repeats, folds)
    selection = confirm(first, searched.index(default_index), gained)
    chosen_index = searched[selection.index]
    fold_results = tuple(
        FoldResult(r, f, int((fold_of_truth[r] == f).sum()), int(((fold_of_truth[r] == f) & data.is_landmark).sum()),
                   float(mean_over_folds(train_on.reshape(-1))(scores[winner])), float(scores[winner, cell]),
                   float(scores[default_index, cell]), float(scores[chosen_index, cell]), decision,
                   pool.policies[winner])
        for (r, f, train_on, decision, winner), cell in zip(nested, cells))
    return _Confirmed(selection, chosen_index, heldout, fold_results, scores.mean(axis=1))


def _baselines(tables: list[Predictions], truth: Solution, inliers: Sequence[np.ndarray],
               builtins: Mapping[str, Policy], chosen: Policy, baseline_inliers: Mapping[str, Sequence[np.ndarray]],
               names: list[str], space: Space, data: LabelledData) -> tuple[pd.DataFrame, dict[str, str]]:
    """GAP per file on all queries, exactly as ``rerank`` would give it: before, each built-in (on its own inlier
    table where given), the chosen policy and the oracles; and what each built-in was compared on."""
    gaps = {"file": names,
            "before": [global_average_precision(_first_candidates(t), truth.table).gap for t in tables]}
    compared_on = {}
    for name, policy in builtins.items():
        own = baseline_inliers.get(name)
        if own is not None:
            if len(own) != len(tables) or any(np.shape(o)[0] != len(t) for o, t in zip(own, tables)):
                raise ValueError(f"baseline_inliers[{name!r}]: one table of n_i rows per predictions table")
            compared_on[name] = f"own inlier table ({policy.selection} selection)"
        else:
            own = inliers
            compared_on[name] = f"tuning inlier table ({space.selection} selection, K {data.inliers.shape[1]})"
        gaps[name] = _exact_gaps(tables, truth, policy, own)
    gaps["tuned"] = _exact_gaps(tables, truth, chosen, inliers)
    gaps["oracle"] = [oracle_gap(_first_candidates(t), truth.table) for t in tables]
    if data.rank.max(initial=1) > 1:
        gaps["oracle_top_n"] = [match_candidates(t, truth).top_n_oracle for t in tables]
    return pd.DataFrame(gaps), compared_on


def _builtin_scores(builtins: Mapping[str, Policy], pool: CandidatePool, space: Space,
                    confirmed: _Confirmed) -> tuple[dict[str, float], list[str]]:
    """Each built-in's mean score over the folds (named for its thresholds where the search's table serves it only
    in part), and the built-ins the chosen policy is."""
    baseline_scores, same_as = {}, []
    for name, policy in builtins.items():
        candidate = candidate_key(as_candidate(policy, space))
        index = pool.index.get(candidate)
        if index is not None:
            exact = candidate == candidate_key({k: v for k, v in policy.to_dict().items() if k != "extractor"})
            baseline_scores[name if exact else f"{name} thresholds ({space.selection}, k <= {space.max_k})"] = \
                float(confirmed.final[index])
            if exact and index == confirmed.chosen_index:
                same_as.append(name)
    return baseline_scores, same_as


def _provenance(names: list[str], extractor: str, geometry: str, data: LabelledData, config: TuneConfig,
                pool: CandidatePool, confirmed: _Confirmed, gap_table: pd.DataFrame, compared_on: Mapping[str, str],
                baseline_scores: Mapping[str, float]) -> dict:
    """The record written in the policy's ``info``: what it was tuned on, the decision, the nested cross-validation
    and the GAP per file."""
    selection, space = confirmed.selection, config.space
    means = gap_table.drop(columns="file").mean()
    return {
        "tuned_on": {
            "files": names,
            "extractor": extractor,
            "geometry": geometry,
            "predictions": int(data.confidence.size),
            "labels_per_query": int(data.rank.max(initial=1)),
            "queries": int(len(data.is_landmark)),
            "landmark_queries": int(data.is_landmark.sum()),
            "max_k": space.max_k,
            "selection": space.selection,
            "folds": config.folds,
            "repeats": config.repeats,
            "seed": config.seed,
            "search": config.search,
            "candidates": len(pool.docs),
            "candidates_invalid": len(pool.invalid),
        },
        "selection": {
            "rule": RULE,
            "decision": selection.decision,
            "reason": selection.reason,
            "margin": selection.margin,
            "se": selection.se,
            "best_margin": selection.best_margin,
            "best_se": selection.best_se,
            "tied_with_best": selection.tied,
            "nested_margin": selection.nested_margin,
            "nested_se": selection.nested_se,
        },
        "cv": {
            "heldout_gap_mean": float(confirmed.heldout.mean()),
            "heldout_gap_std": float(confirmed.heldout.std()),
            "folds_tuned": sum(r.decision == "tuned" for r in confirmed.folds),
            "chosen_heldout_mean": float(confirmed.final[confirmed.chosen_index]),
            "folds": [{"repeat": r.repeat, "fold": r.fold, "queries": r.num_queries,
                       "landmark_queries": r.num_landmark_queries, "train_gap": r.train_gap,
                       "heldout_gap": r.heldout_gap, "default_gap": r.default_gap, "chosen_gap": r.chosen_gap,
                       "decision": r.decision} for r in confirmed.folds],
        },
        "gap": {
            "mean": {name: float(v) for name, v in means.items()},
            "per_file": [{k: v if isinstance(v, str) else float(v) for k, v in row.items()}
                         for row in gap_table.to_dict(orient="records")],
            "builtins_compared_on": dict(compared_on),
            "builtins_heldout_mean": dict(baseline_scores),
        },
    }
