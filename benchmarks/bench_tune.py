"""Speed of policy scoring in ``delfverify tune``: many candidate policies over many predictions, no images.

    python benchmarks/bench_tune.py [--predictions 100000] [--candidates 10000] [--folds 5] [--workers 2]
                                    [--reference 20]

Synthetic data (seeded): every query has one prediction; 70% of the queries are landmarks and 55% of those are
predicted correctly; inlier counts against K = 5 gallery photos are Poisson(14) for correct predictions and
Poisson(3) otherwise, 10% missing. The candidates are random policies of the default ``SearchSpace``.

Prints the time to score every candidate on every fold (``PolicyScorer.gaps_many``), candidates per second, and
the ratio to the straightforward way measured in the same run on ``--reference`` candidates: ``Policy.apply``,
then ``delfverify.metrics.global_average_precision`` on a DataFrame per fold. Also the largest difference between
the two GAPs (confidences rounded to 6 decimals in both, as rerank writes them).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import _common  # noqa: F401  (imports delfverify from the checkout if needed)
from delfverify.metrics import global_average_precision
from delfverify.policy import builtin_policy
from delfverify.tables import Solution
from delfverify.tuning import CONFIDENCE_DECIMALS, PolicyScorer, SearchSpace, assign_folds, random_policies


def synthetic(n: int, k: int, folds: int, seed: int):
    rng = np.random.default_rng(seed)
    ids = np.array([f"{v:016x}" for v in rng.integers(0, 2**63, n)], object)
    ids = np.unique(ids)
    n = ids.size
    ids = ids[rng.permutation(n)]
    landmark = rng.random(n) < 0.7
    true_label = np.where(landmark, rng.integers(0, 5000, n).astype(str), "")
    correct = landmark & (rng.random(n) < 0.55)
    label = np.where(correct, true_label, rng.integers(5000, 10000, n).astype(str))
    confidence = np.where(correct, rng.beta(5, 3, n), rng.beta(2, 4, n))
    inliers = np.where(correct[:, None], rng.poisson(14, (n, k)), rng.poisson(3, (n, k))).astype(float)
    inliers[rng.random((n, k)) < 0.1] = np.nan
    truth = pd.DataFrame({"id": ids, "landmarks": true_label})
    predictions = pd.DataFrame({"id": ids, "label": label, "confidence": confidence})
    fold = assign_folds(Solution(truth), folds, seed)
    rank = np.empty(n, np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(n)
    m = np.bincount(fold[landmark], minlength=folds)
    return predictions, truth, inliers, correct, rank, fold, m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--reference", type=int, default=20, help="candidates scored the straightforward way")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = SearchSpace()
    predictions, truth, inliers, correct, rank, fold, m = synthetic(args.predictions, space.max_k, args.folds,
                                                                     args.seed)
    confidence = predictions["confidence"].to_numpy()
    policies = [builtin_policy("default", "rootsift")] + random_policies(space, args.candidates - 1, args.seed)
    print(f"{len(predictions)} predictions, {args.folds} folds, {len(policies)} candidate policies "
          f"({sum(p.mode == 'bands' for p in policies)} bands, {sum(p.mode != 'bands' for p in policies)} fusion); "
          f"{args.workers} worker thread(s), {os.cpu_count()} cores")

    start = time.perf_counter()
    scorer = PolicyScorer(confidence, inliers, correct, rank, fold, m)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    fast = scorer.gaps_many(policies, workers=args.workers)
    elapsed = time.perf_counter() - start
    print(f"fast: {elapsed:.1f} s for {len(policies)} candidates x {len(predictions)} predictions "
          f"({len(policies) / elapsed:.0f} candidates/s, {1e3 * elapsed / len(policies):.2f} ms each; "
          f"setup {setup:.2f} s)")

    subset = policies[: args.reference]
    frames = [(predictions[fold == f], truth[fold == f], fold == f) for f in range(args.folds)]
    start = time.perf_counter()
    reference = np.empty((len(subset), args.folds))
    for i, policy in enumerate(subset):
        new, _ = policy.apply(confidence, inliers)
        new = np.round(new, CONFIDENCE_DECIMALS)
        for f, (rows, truth_rows, mask) in enumerate(frames):
            reference[i, f] = global_average_precision(rows.assign(confidence=new[mask]), truth_rows).gap
    per_reference = (time.perf_counter() - start) / len(subset)
    per_fast = elapsed / len(policies)
    print(f"reference (Policy.apply + global_average_precision per fold on DataFrames): "
          f"{1e3 * per_reference:.1f} ms per candidate, {len(policies) * per_reference:.0f} s for all")
    print(f"speed-up: {per_reference / per_fast:.0f}x; largest GAP difference on the {len(subset)} reference "
          f"candidates: {np.abs(reference - fast[: len(subset)]).max():.2e}")


if __name__ == "__main__":
    main()
