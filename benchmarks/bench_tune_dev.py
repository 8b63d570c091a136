"""Does a tuned policy generalise? Tune on dev prediction files 00-04, re-rank 05-09 with it.

    python benchmarks/bench_tune_dev.py [--data DIR] [--features rootsift] [--search small|wide] [--max-k 5]
                                        [--folds 5] [--repeats 5] [--workers N] [--cache-dir DIR]

Prints the tuning summary (cross-validated GAP on 00-04), then for every file of 05-09 the GAP before, after the
``seed`` and ``default`` built-ins and after the tuned policy (all through ``delfverify.rerank``, as the
``rerank`` command does), the oracle GAP (correct predictions / M), and the means. The dev files share their
80 queries, so the held-out files test new predictions of known photos, not new photos.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


from _common import DEV_DATA, compare_policies, require_dev_data
from delfverify.cli import format_summary
from delfverify.execution import default_workers
from delfverify.images import ImageDirectory
from delfverify.pipeline import Photos, open_session
from delfverify.policy import load_policy, save_policy
from delfverify.tables import read_gallery, read_predictions, read_solution
from delfverify.settings import RunSettings, VerifySettings
from delfverify.tuning import SPACES, TuneConfig, fit_policy, measure_builtin_inliers, measure_inliers

TUNE_FILES = ("00", "01", "02", "03", "04")
TEST_FILES = ("05", "06", "07", "08", "09")


def evaluate(data: Path, cache: Path, features: str = "rootsift", config: TuneConfig = TuneConfig(),
             workers: int = 1):
    """Tune on ``TUNE_FILES`` and re-rank ``TEST_FILES``: (TuneResult, per-file GAP table, measuring and searching
    seconds)."""
    truth = read_solution(data / "truth.csv")
    gallery = read_gallery(data / "gallery.csv")
    photos = Photos(ImageDirectory(data / "queries"), ImageDirectory(data / "gallery"), gallery.paths())
    space = config.space
    tuning = [read_predictions(data / "predictions" / f"{name}.csv") for name in TUNE_FILES]
    with open_session(VerifySettings(features), RunSettings(cache_dir=cache, workers=workers)) as session:
        start = time.perf_counter()
        inliers = measure_inliers(tuning, gallery, session, photos, space=space)
        baselines = measure_builtin_inliers(tuning, gallery, session, photos, space=space)
        measured = time.perf_counter() - start
        start = time.perf_counter()
        result = fit_policy(tuning, truth, inliers, extractor=features, config=config, baseline_inliers=baselines,
                            names=[f"{name}.csv" for name in TUNE_FILES])
        searched = time.perf_counter() - start
    policy_file = cache / "tuned.json"
    save_policy(result.policy, policy_file)
    policies = {name: load_policy(name, features) for name in ("seed", "default")}
    policies["tuned"] = load_policy(policy_file, features)
    testing = {f"{name}.csv": read_predictions(data / "predictions" / f"{name}.csv") for name in TEST_FILES}
    table = compare_policies(testing, truth, policies, gallery=gallery, gallery_images=data / "gallery",
                             query_images=data / "queries", features=features, cache_dir=cache, workers=workers)
    return result, table, measured, searched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEV_DATA))
    parser.add_argument("--features", default="rootsift")
    parser.add_argument("--search", choices=SPACES, default=TuneConfig().search)
    parser.add_argument("--max-k", type=int, default=TuneConfig().space.max_k)
    parser.add_argument("--folds", type=int, default=TuneConfig().folds)
    parser.add_argument("--repeats", type=int, default=TuneConfig().repeats)
    parser.add_argument("--seed", type=int, default=TuneConfig().seed, help="folds and random search")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes verifying pairs")
    parser.add_argument("--cache-dir", default=None, help="reuse this store (default: a fresh temporary one)")
    args = parser.parse_args()
    data = require_dev_data(Path(args.data))
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir or tmp)
        config = TuneConfig(folds=args.folds, repeats=args.repeats, seed=args.seed,
                            space=SPACES[args.search](max_k=args.max_k))
        result, table, measured, searched = evaluate(data, cache, args.features, config, args.workers)
    print(format_summary(result))
    print(f"inliers measured in {measured:.1f} s, {result.candidates_evaluated} candidates searched in "
          f"{searched:.1f} s")
    print(f"\nheld-out files {', '.join(TEST_FILES)} re-ranked with each policy:")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    means = table.drop(columns="file").mean()
    print("mean   " + "  ".join(f"{name} {value:.4f}" for name, value in means.items()))
    for name in ("seed", "default", "tuned"):
        print(f"{name}: mean GAP / oracle {(table[name] / table['oracle']).mean():.3f}; files worse than before "
              f"{int((table[name] < table['before'] - 1e-12).sum())}")


if __name__ == "__main__":
    main()
