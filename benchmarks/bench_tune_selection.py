"""How often does ``tune`` write a policy on pure noise, and how often on a real, well-supported optimum?

    python benchmarks/bench_tune_selection.py [--queries 80 240] [--seeds 100-129] [--search small]

Synthetic labelled sets from ``tests/tuning_cases.py`` (two prediction files each, seeded):

- ``noise``: correctness independent of both the confidence and the inlier counts, so no candidate is better than
  ``default`` except by chance; every "tuned" decision is a false one.
- ``separable``: correct predictions have ``CUT``-40 inliers and wrong ones fewer (``CUT``: three inliers above
  RootSIFT's default suppress threshold, 14), so suppressing below ``CUT`` is a real gain; every "kept default"
  decision is a missed one.

For each, prints the share of data sets where step 1 of the rule (``select``: best candidate beats ``default`` by
more than one standard error) passes, and the share finally tuned when the nested held-out gain must exceed one
standard error, and two (``CONFIRM_SE``, what ``tune`` does).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _common import REPO
from delfverify.tuning import SPACES, TuneConfig, fit_policy

sys.path.insert(0, str(REPO / "tests"))
from tuning_cases import noise, separable  # noqa: E402

CASES = {"noise": noise, "separable": separable}


def seeds(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, nargs="+", default=[80, 240])
    parser.add_argument("--seeds", type=seeds, default=seeds("100-129"), help="e.g. 100-129")
    parser.add_argument("--search", choices=SPACES, default=TuneConfig().search)
    args = parser.parse_args()
    config = TuneConfig(space=SPACES[args.search](), workers=1)
    print(f"{args.search} search, {config.repeats} x {config.folds} folds, seeds {args.seeds.start}-"
          f"{args.seeds.stop - 1}")
    print("case       queries  step 1 passes  tuned (1 SE)  tuned (2 SE, tune)  seconds per tune")
    for name, case in CASES.items():
        for n in args.queries:
            passes, ratios = [], []
            start = time.perf_counter()
            for seed in args.seeds:
                truth, tables, inliers = case(seed=seed, n=n)
                selection = fit_policy(tables, truth, inliers, config=config).selection
                passes.append(selection.best_margin > selection.best_se)
                if selection.nested_se > 0:
                    ratios.append(selection.nested_margin / selection.nested_se)
                else:  # every held-out gain equal
                    ratios.append(np.inf if selection.nested_margin > 0 else 0.0)
            passes, ratios = np.array(passes), np.array(ratios)
            count = len(args.seeds)
            print(f"{name:<10} {n:>7}  {passes.sum():>6} / {count:<4}  {(passes & (ratios > 1)).sum():>5} / {count:<4}"
                  f"  {(passes & (ratios > 2)).sum():>11} / {count:<4}  "
                  f"{(time.perf_counter() - start) / count:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
