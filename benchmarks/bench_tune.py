"""Speed of policy scoring in ``delfverify tune``: many candidate policies over many predictions, no images.

    python benchmarks/bench_tune.py [--predictions 100000] [--candidates 10000] [--folds 5] [--workers 2]
                                    [--reference 20] [--labels-per-query 1]

Synthetic data (seeded): ``--predictions`` rows, ``--labels-per-query`` candidate labels per query (1: every query
has one prediction; 5: a top-5 candidates file of a fifth as many queries); 70% of the queries are landmarks and
55% of those have the true label, as the first candidate or, with several, at a random rank; inlier counts against
K = 5 gallery photos are Poisson(14) for correct predictions and Poisson(3) otherwise, 10% missing. The candidates
are random policies of the default ``SearchSpace``.

Prints the time to score every candidate on every fold (``PolicyScorer.gaps_many``, with the choice among a
query's candidate labels), candidates per second, and the ratio to the straightforward way measured in the same
run on ``--reference`` candidates: ``Policy.apply``, ``delfverify.pipeline.best_candidates`` (the choice of
``choose_candidates``; every row with one label per query), then ``delfverify.metrics.global_average_precision``
on a DataFrame per fold. Also the largest difference between the two GAPs (confidences rounded to 6 decimals in
both, as rerank writes them).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import _common  # noqa: F401  (imports delfverify from the checkout if needed)
from delfverify.metrics import global_average_precision
from delfverify.pipeline import best_candidates
from delfverify.policy import builtin_policy
from delfverify.tables import Solution
from delfverify.tables import CONFIDENCE_DECIMALS
from delfverify.tuning import PolicyScorer, SearchSpace, assign_folds, random_policies


def synthetic(n: int, k: int, folds: int, seed: int, per_query: int = 1):
    """Predictions (a query's candidates consecutive, best first), truth, inliers, correct, id rank, fold and
    candidate rank of each row, M per fold, and each query's first row. With one label per query, the data of
    earlier versions of this script (the true label's rank is drawn last)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"{v:016x}" for v in rng.integers(0, 2**63, n // per_query)], object)
    ids = np.unique(ids)
    q = ids.size
    ids = ids[rng.permutation(q)]
    landmark = rng.random(q) < 0.7
    true_label = np.where(landmark, rng.integers(0, 5000, q).astype(str), "")
    has_true = landmark & (rng.random(q) < 0.55)
    rows = q * per_query
    other_label = rng.integers(5000, 10000, rows).astype(str)
    strong, weak = rng.beta(5, 3, rows), rng.beta(2, 4, rows)
    many, few = rng.poisson(14, (rows, k)), rng.poisson(3, (rows, k))
    missing = rng.random((rows, k)) < 0.1
    query = np.repeat(np.arange(q), per_query)
    candidate = np.tile(np.arange(1, per_query + 1), q)
    correct = has_true[query] & (candidate == rng.integers(1, per_query + 1, q)[query])
    label = np.where(correct, true_label[query], other_label)
    confidence = np.where(correct, strong, weak)
    inliers = np.where(correct[:, None], many, few).astype(float)
    inliers[missing] = np.nan
    best_first = np.lexsort((-confidence, query))  # each query's candidates by confidence, as read_predictions does
    label, correct, confidence, inliers = (a[best_first] for a in (label, correct, confidence, inliers))
    truth = pd.DataFrame({"id": ids, "landmarks": true_label})
    predictions = pd.DataFrame({"id": ids[query], "label": label, "confidence": confidence})
    fold = assign_folds(Solution(truth), folds, seed)
    rank = np.empty(q, np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(q)
    m = np.bincount(fold[landmark], minlength=folds)
    starts = np.arange(0, rows, per_query)
    return predictions, truth, inliers, correct, rank[query], fold[query], candidate, m, starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--reference", type=int, default=20, help="candidates scored the straightforward way")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels-per-query", type=int, default=1,
                        help="candidate labels per query (rows per query); --predictions counts rows")
    args = parser.parse_args()

    space = SearchSpace()
    predictions, truth, inliers, correct, rank, fold, candidate, m, starts = synthetic(
        args.predictions, space.max_k, args.folds, args.seed, args.labels_per_query)
    confidence = predictions["confidence"].to_numpy()
    policies = [builtin_policy("default", "rootsift")] + random_policies(space, args.candidates - 1, args.seed)
    print(f"{len(predictions)} predictions of {len(truth)} queries ({args.labels_per_query} label(s) each), "
          f"{args.folds} folds, {len(policies)} candidate policies "
          f"({sum(p.mode == 'bands' for p in policies)} bands, {sum(p.mode != 'bands' for p in policies)} fusion); "
          f"{args.workers} worker thread(s), {os.cpu_count()} cores")

    start = time.perf_counter()
    scorer = PolicyScorer(confidence, inliers, correct, rank, fold, m, candidate=candidate)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    fast = scorer.gaps_many(policies, workers=args.workers)
    elapsed = time.perf_counter() - start
    print(f"fast: {elapsed:.1f} s for {len(policies)} candidates x {len(predictions)} predictions "
          f"({len(policies) / elapsed:.0f} candidates/s, {1e3 * elapsed / len(policies):.2f} ms each; "
          f"setup {setup:.2f} s)")

    subset = policies[: args.reference]
    truth_of_fold = [truth[fold[starts] == f] for f in range(args.folds)]
    start = time.perf_counter()
    reference = np.empty((len(subset), args.folds))
    for i, policy in enumerate(subset):
        new, _ = policy.apply(confidence, inliers)
        chosen = best_candidates(starts, new)
        rows = predictions.iloc[chosen].assign(confidence=np.round(new[chosen], CONFIDENCE_DECIMALS))
        for f, truth_rows in enumerate(truth_of_fold):
            reference[i, f] = global_average_precision(rows[fold[chosen] == f], truth_rows).gap
    per_reference = (time.perf_counter() - start) / len(subset)
    per_fast = elapsed / len(policies)
    print(f"reference (Policy.apply, best_candidates, global_average_precision per fold on DataFrames): "
          f"{1e3 * per_reference:.1f} ms per candidate, {len(policies) * per_reference:.0f} s for all")
    print(f"speed-up: {per_reference / per_fast:.0f}x; largest GAP difference on the {len(subset)} reference "
          f"candidates: {np.abs(reference - fast[: len(subset)]).max():.2e}")


if __name__ == "__main__":
    main()
