"""Re-ranking quality and speed on the dev set: GAP before, after the ``seed`` and ``default`` policies (or any
policy files), and the oracle GAP (correct predictions / M), for each of the ten simulated prediction files;
then the cold and warm run time of one file.

    python benchmarks/bench_rerank.py [--data DIR] [--features rootsift] [--gallery-per-landmark N]
                                      [--policy default --policy seed --policy my.json]

``--gallery-per-landmark 1`` keeps only the first gallery photo of each landmark, the harder setting of
landmark sets with a single reference photo. Cold: empty feature store and journal. Warm: the same run again
(it must extract and verify nothing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import DEV_DATA, compare_policies, require_dev_data
from delfverify import rerank
from delfverify.policy import load_policy
from delfverify.tables import Gallery, read_gallery, read_predictions, read_solution


def run(data: Path, prediction_file: Path, gallery: Gallery, policy, cache: Path, features: str):
    return rerank(prediction_file, gallery=gallery, gallery_images=data / "gallery", query_images=data / "queries",
                  policy=policy, features=features, cache_dir=cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEV_DATA))
    parser.add_argument("--features", default="rootsift")
    parser.add_argument("--policy", action="append", help="policy name or file (repeatable; default: seed, default)")
    parser.add_argument("--gallery-per-landmark", type=int, default=None)
    parser.add_argument("--cache-dir", default=None, help="reuse this store (default: a fresh temporary one)")
    args = parser.parse_args()
    data = require_dev_data(Path(args.data))
    truth = read_solution(data / "truth.csv")
    gallery = read_gallery(data / "gallery.csv")
    if args.gallery_per_landmark:
        gallery = Gallery(gallery.table.groupby("landmark_id", sort=False).head(args.gallery_per_landmark))
    policies = [load_policy(p, args.features) for p in (args.policy or ["seed", "default"])]
    files = sorted((data / "predictions").glob("*.csv"))
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir or tmp)
        start = time.perf_counter()
        run(data, files[0], gallery, policies[-1], cache / "timing", args.features)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        warm_result = run(data, files[0], gallery, policies[-1], cache / "timing", args.features)
        warm = time.perf_counter() - start
        table = compare_policies(
            {file.name: read_predictions(file) for file in files}, truth, {policy.name: policy for policy in policies},
            gallery=gallery, gallery_images=data / "gallery", query_images=data / "queries",
            features=args.features, cache_dir=cache / "quality")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    means = table.drop(columns="file").mean()
    print("mean   " + "  ".join(f"{name} {value:.4f}" for name, value in means.items()))
    for policy in policies:
        ratio = table[policy.name] / table["oracle"]
        worse = int((table[policy.name] < table["before"] - 1e-12).sum())
        print(f"{policy.name}: mean GAP / oracle {ratio.mean():.3f} (min {ratio.min():.3f}); "
              f"files made worse than before: {worse}")
    print(f"timing ({files[0].name}, {policies[-1].name}): cold {cold:.2f} s, warm {warm:.2f} s, "
          f"cold/warm {cold / warm:.1f}x; warm run extracted {warm_result.summary['features_extracted']} images "
          f"and verified {warm_result.summary['pairs_computed']} pairs")


if __name__ == "__main__":
    main()
