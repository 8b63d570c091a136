"""Time delfverify.metrics.global_average_precision against a plain Python loop.

Builds seeded synthetic predictions and ground truth (about 30% non-landmark queries,
100,000 labels, 5% of landmark queries with two truth labels, 5% of queries without a
prediction, confidences rounded to four decimals so that ties occur), then prints a table of best-of-N times, the speed-up
and whether both implementations give the same GAP.

The Python loop costs a few microseconds per row, so it runs on the first
``--reference-n`` queries only; the vectorised code is timed on that subset (for the
ratio) and on all ``--n`` queries (target: under 2 s for a million).

Usage::

    python benchmarks/bench_gap.py [--n 1000000] [--seed 0] [--reference-n 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

import _common  # noqa: F401  (puts the checkout on sys.path when delfverify is not installed)
from delfverify.metrics import global_average_precision

NUM_LABELS = 100_000
NON_LANDMARK_FRACTION = 0.3
TWO_LABEL_FRACTION = 0.05
NO_PREDICTION_FRACTION = 0.05
CORRECT_FRACTION = 0.5
TARGET_SECONDS = 2.0
TOLERANCE = 1e-9


def make_data(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return seeded synthetic ``(predictions, truth)`` frames for ``n`` queries.

    The predictions come in another row order than the truth and hold their own string
    objects, as two CSV files read from disk would.
    """
    rng = np.random.default_rng(seed)
    raw_ids = rng.choice(2**62, size=n, replace=False)
    first = rng.integers(0, NUM_LABELS, n)
    second = rng.integers(0, NUM_LABELS, n)
    is_landmark = rng.random(n) >= NON_LANDMARK_FRACTION
    two_labels = is_landmark & (rng.random(n) < TWO_LABEL_FRACTION)
    landmarks = np.where(is_landmark, first.astype(str), None).astype(object)
    landmarks[two_labels] = [f"{a} {b}" for a, b in zip(first[two_labels], second[two_labels])]
    truth = pd.DataFrame({"id": hex_ids(raw_ids), "landmarks": landmarks})

    correct = is_landmark & (rng.random(n) < CORRECT_FRACTION)
    label = np.where(correct, first, rng.integers(0, NUM_LABELS, n))
    has_label = rng.random(n) >= NO_PREDICTION_FRACTION
    # Correct predictions tend to be more confident; rounding creates ties.
    confidence = np.round(np.where(correct, rng.beta(4, 2, n), rng.beta(2, 4, n)), 4)
    order = rng.permutation(n)
    predictions = pd.DataFrame({
        "id": hex_ids(raw_ids[order]),
        "label": np.where(has_label[order], label[order].astype(str), None).astype(object),
        "confidence": confidence[order],
    })
    return predictions, truth


def hex_ids(values: np.ndarray) -> np.ndarray:
    """16-character hexadecimal ids, like those of the Google Landmarks photos."""
    return np.array([f"{value:016x}" for value in values], dtype=object)


def reference_gap(predictions: pd.DataFrame, truth: pd.DataFrame) -> float:
    """GAP straight from the definition, one Python iteration per row."""
    solution = {}
    for query_id, landmarks in zip(truth["id"], truth["landmarks"]):
        solution[query_id] = landmarks.split() if isinstance(landmarks, str) else []
    num_landmark_queries = sum(1 for labels in solution.values() if labels)

    ranked = []
    rows = zip(predictions["id"], predictions["label"], predictions["confidence"])
    for query_id, label, confidence in rows:
        if isinstance(label, str) and label:
            ranked.append((-confidence, query_id, label))
    ranked.sort()

    gap = 0.0
    num_correct = 0
    for rank, (_, query_id, label) in enumerate(ranked, start=1):
        if label in solution[query_id]:
            num_correct += 1
            gap += num_correct / rank
    return gap / num_landmark_queries


def best_time(function, *args, repeat: int) -> tuple[float, float]:
    """Return ``(best seconds over repeat calls, value of the last call)``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        value = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, value


def vectorised_gap(predictions: pd.DataFrame, truth: pd.DataFrame) -> float:
    return global_average_precision(predictions, truth).gap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=1_000_000, help="number of queries (default: 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--reference-n",
        type=int,
        default=100_000,
        help="queries given to the Python loop reference (default: 100,000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timings per measurement; the best is kept (default: 3)"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.reference_n < 1 or args.repeat < 1:
        parser.error("--n, --reference-n and --repeat must be at least 1")

    predictions, truth = make_data(args.n, args.seed)
    reference_n = min(args.reference_n, args.n)
    subset_truth = truth.iloc[:reference_n]
    subset_predictions = predictions[predictions["id"].isin(subset_truth["id"])]

    subset = (subset_predictions, subset_truth)
    reference_seconds, reference_value = best_time(reference_gap, *subset, repeat=args.repeat)
    subset_seconds, subset_value = best_time(vectorised_gap, *subset, repeat=args.repeat)
    rows = [
        (reference_n, "python loop", reference_seconds, reference_value),
        (reference_n, "vectorised", subset_seconds, subset_value),
    ]
    full_seconds = subset_seconds
    if reference_n < args.n:
        full_seconds, full_value = best_time(vectorised_gap, predictions, truth, repeat=args.repeat)
        rows.append((args.n, "vectorised", full_seconds, full_value))

    print(f"GAP benchmark, seed {args.seed}, best of {args.repeat}")
    print(f"{'queries':>10}  {'implementation':<14}  {'seconds':>8}  {'GAP':>10}")
    for num_queries, name, seconds, value in rows:
        print(f"{num_queries:>10,}  {name:<14}  {seconds:>8.3f}  {value:>10.6f}")
    difference = abs(subset_value - reference_value)
    agree = difference < TOLERANCE
    print(f"speed-up on {reference_n:,} queries: {reference_seconds / subset_seconds:.1f}x")
    answer = "yes" if agree else "NO"
    print(f"same GAP as the reference (|diff| < {TOLERANCE:g}): {answer} (diff {difference:.2e})")
    verdict = "met" if full_seconds < TARGET_SECONDS else "MISSED"
    print(f"target {args.n:,} queries under {TARGET_SECONDS:g} s: {verdict} ({full_seconds:.3f} s)")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
