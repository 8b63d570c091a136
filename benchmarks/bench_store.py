"""The compact feature store: RootSIFT descriptors kept as SIFT's uint8 histograms against float32 RootSIFT vectors,
measured in one run.

    python benchmarks/bench_store.py [--sets dev hard] [--cache-dir DIR] [--workers N]

Per set, with the default verification (2,000 keypoints, fundamental matrix) and the one difference of the
descriptors (``RootSIFT(compact=True)``, the default, whose RootSIFT vectors are taken when matched, against
``RootSIFT(compact=False)``, the reference, which stores them):

- bytes on disk: the store's entries (the whole ``.npz`` files) per keypoint stored;
- pairs: every query against every gallery photo (``bench_quality.pair_inliers``): the share with the same inlier
  count, the largest change, and decisions: the share of pairs in the same tier of ``default`` (below the
  extractor's ``support`` count, between, at least ``accept``), and the pairs that changed tier;
- GAP: mean over the ten files of ``predictions/`` (top-1) and of ``predictions-top5/`` (candidates), ``default``,
  with each kind of descriptors.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _common import compare_policies
from bench_quality import SETS, pair_inliers
from delfverify.extractors import RootSIFT
from delfverify.policy import load_policy
from delfverify.tables import read_predictions, read_solution

VARIANTS = {"uint8": RootSIFT(), "float32": RootSIFT(compact=False)}


def store_bytes_per_keypoint(cache: Path, extractor) -> float:
    """Bytes of the store's entries per keypoint they hold, for one extractor's entries."""
    from delfverify.store import FeatureStore
    from delfverify.verifier import Verifier

    verifier = Verifier(extractor, cache_dir=cache)
    folder = cache / verifier.features_fingerprint
    store = FeatureStore(cache, verifier.features_fingerprint, extractor.dim)
    size = keypoints = 0
    for entry in folder.rglob("*.npz"):
        size += entry.stat().st_size
        keypoints += len(store.get(entry.stem))
    return size / max(keypoints, 1)


def tiers(counts: np.ndarray, support: int, accept: int) -> np.ndarray:
    return np.where(counts >= accept, 2, np.where(counts >= support, 1, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--cache-dir", default=None, help="feature store and journal (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    support, accept = RootSIFT.thresholds["fundamental"].support, RootSIFT.thresholds["fundamental"].accept
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir or tmp)
        for name in args.sets:
            data = SETS[name]
            if not (data / "gallery.csv").is_file():
                raise SystemExit(f"{name} set not found at {data}")
            pairs = {v: pair_inliers(data, cache, args.workers, features=e) for v, e in VARIANTS.items()}
            counts = {v: p["inliers"].to_numpy() for v, p in pairs.items()}
            same = counts["uint8"] == counts["float32"]
            change = np.abs(counts["uint8"] - counts["float32"])
            tier = {v: tiers(c, support, accept) for v, c in counts.items()}
            moved = pairs["float32"].assign(uint8=counts["uint8"])[tier["uint8"] != tier["float32"]]
            print(f"\n== {name}: {len(same)} pairs")
            for variant, extractor in VARIANTS.items():
                print(f"store, {variant} descriptors: {store_bytes_per_keypoint(cache, extractor):.1f} bytes a "
                      f"keypoint on disk")
            print(f"same inlier count: {same.mean():.4f} of pairs; largest change {change.max():.0f} inliers "
                  f"(median change where they differ {np.median(change[~same]) if (~same).any() else 0:.0f})")
            print(f"same tier of default (<{support}, {support}-{accept - 1}, >={accept}): "
                  f"{(tier['uint8'] == tier['float32']).mean():.4f} of pairs"
                  + ("" if moved.empty else f"; changed:\n{moved.to_string(index=False)}"))
            truth = read_solution(data / "truth.csv")
            default = {"default": load_policy("default", "rootsift")}
            for kind in ("predictions", "predictions-top5"):
                files = {f.stem: read_predictions(f) for f in sorted((data / kind).glob("*.csv"))}
                gaps = {}
                for variant, extractor in VARIANTS.items():
                    table = compare_policies(files, truth, default, gallery=data / "gallery.csv",
                                             gallery_images=data / "gallery", query_images=data / "queries",
                                             cache_dir=cache, workers=args.workers, features=extractor)
                    gaps[variant] = table["default"].to_numpy()
                frame = pd.DataFrame({"file": list(files), **gaps})
                frame["difference"] = frame["uint8"] - frame["float32"]
                means = frame.drop(columns="file").mean()
                print(f"GAP, {kind}: uint8 {means['uint8']:.4f}, float32 {means['float32']:.4f}, difference "
                      f"{means['difference']:+.4f} (largest per file {frame['difference'].abs().max():.4f})")


if __name__ == "__main__":
    main()
