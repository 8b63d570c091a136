"""Time the two RANSAC engines on the same putative matches of the dev photos, and check they agree.

    python benchmarks/bench_verify.py [--data DIR] [--cache-dir DIR] [--pairs N] [--seed 0] [--per-landmark 2]

RootSIFT features of the dev photos are extracted once (kept in ``--cache-dir``, default a temporary folder).
Each query is paired with ``--per-landmark`` seeded gallery photos of every landmark. Putative matches are
computed once per pair (``match_descriptors`` with RootSIFT's ``MatchConfig``); then each pair's matches go
through ``fit_geometry`` (affine model) with the ``opencv`` and the ``skimage`` engine, both with the research's settings
(residual 20 px, 1000 trials, 3 samples) and the same seed, in the same run. Reported: milliseconds per pair
for each engine, the speed ratio (skimage / opencv; target >= 100x), the fraction of pairs where both engines
make the same accept/reject decision at RootSIFT's affine acceptance threshold (target >= 95%), and the mean absolute
difference of their inlier counts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import DEV_DATA, require_dev_data, roc_auc
from delfverify import Verifier
from delfverify.matching import match_descriptors
from delfverify.verification import ENGINES, RansacConfig, fit_geometry

SPEED_TARGET = 100.0
AGREEMENT_TARGET = 0.95


def build_pairs(data: Path, per_landmark: int, seed: int) -> pd.DataFrame:
    """Every query against ``per_landmark`` seeded gallery photos of every landmark."""
    gallery = pd.read_csv(data / "gallery.csv", dtype=str)
    truth = pd.read_csv(data / "truth.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    chosen = {
        label: sorted(rng.choice(sorted(ids), size=min(per_landmark, len(ids)), replace=False))
        for label, ids in gallery.groupby("landmark_id", sort=True)["id"]
    }
    rows = [
        (qid, gid, label, qlabel == label)
        for qid, qlabel in zip(truth["id"], truth["landmarks"])
        for label, gids in chosen.items()
        for gid in gids
    ]
    return pd.DataFrame(rows, columns=["query", "gallery", "label", "positive"])


def time_engine(src: np.ndarray, dst: np.ndarray, config: RansacConfig) -> tuple[float, int]:
    """Milliseconds for one ``fit_geometry`` call and its inlier count."""
    start = time.perf_counter()
    _, mask = fit_geometry(src, dst, config)
    return (time.perf_counter() - start) * 1000.0, int(mask.sum())


def run(args: argparse.Namespace, cache_dir: Path) -> None:
    data = require_dev_data(Path(args.data))
    pairs = build_pairs(data, args.per_landmark, args.seed)
    if args.pairs is not None and args.pairs < len(pairs):
        keep = np.random.default_rng(args.seed).choice(len(pairs), size=args.pairs, replace=False)
        pairs = pairs.iloc[np.sort(keep)].reset_index(drop=True)

    verifier = Verifier("rootsift", cache_dir=cache_dir)
    start = time.perf_counter()
    features = {}
    for folder, column in (("queries", "query"), ("gallery", "gallery")):
        for image_id in sorted(set(pairs[column])):
            features[image_id] = verifier.features_of(data / folder / f"{image_id}.jpg")
    extract_s = time.perf_counter() - start

    start = time.perf_counter()
    matches = []
    for qid, gid in zip(pairs["query"], pairs["gallery"]):
        fg, fq = features[gid], features[qid]
        found = match_descriptors(fg.unit_descriptors, fq.unit_descriptors, verifier.extractor.match)
        matches.append((fg.locations_xy_extracted()[found.pairs[:, 0]],
                        fq.locations_xy_extracted()[found.pairs[:, 1]]))
    match_ms = (time.perf_counter() - start) * 1000.0 / max(len(pairs), 1)

    configs = {
        engine: RansacConfig(engine=engine, residual_threshold=20.0, max_trials=1000, min_samples=3, seed=args.seed)
        for engine in ENGINES
    }
    warm = np.random.default_rng(0).uniform(0, 100, size=(20, 2))
    for config in configs.values():  # first calls pay for imports
        fit_geometry(warm, warm + 1.0, config)

    results = {engine: ([], []) for engine in ENGINES}
    for src, dst in matches:
        for engine, config in configs.items():
            ms, inliers = time_engine(src, dst, config)
            results[engine][0].append(ms)
            results[engine][1].append(inliers)
    for engine, (times, inliers) in results.items():
        pairs[f"{engine}_ms"] = times
        pairs[f"{engine}_inliers"] = inliers
    pairs["putative"] = [len(src) for src, _ in matches]

    accept = verifier.extractor.thresholds["affine"].accept
    same = (pairs["opencv_inliers"] >= accept) == (pairs["skimage_inliers"] >= accept)
    diff = (pairs["opencv_inliers"] - pairs["skimage_inliers"]).abs()
    ratio = pairs["skimage_ms"].mean() / pairs["opencv_ms"].mean()
    active = pairs["putative"] >= 3

    print(f"{len(pairs)} pairs ({int(pairs.positive.sum())} same-landmark, {int((~pairs.positive).sum())} other); "
          f"{int(active.sum())} with >= 3 putative matches; putative matches per pair: "
          f"median {pairs.putative.median():.0f}, max {pairs.putative.max()}")
    print(f"features: {len(features)} photos in {extract_s:.1f} s ({verifier.extracted} extracted, "
          f"rest from {cache_dir}); matching: {match_ms:.2f} ms per pair")
    print("RANSAC settings: residual 20 px, 1000 trials, min_samples 3, seed", args.seed)
    print()
    rows = []
    for engine in ENGINES:
        ms = pairs[f"{engine}_ms"]
        inl = pairs[f"{engine}_inliers"]
        rows.append({
            "engine": engine,
            "mean_ms": round(ms.mean(), 3),
            "median_ms": round(ms.median(), 3),
            "p95_ms": round(ms.quantile(0.95), 3),
            "mean_ms_active": round(ms[active].mean(), 3),
            "total_s": round(ms.sum() / 1000.0, 2),
            "mean_inliers": round(inl.mean(), 2),
            f"accepted(>={accept})": int((inl >= accept).sum()),
            "roc_auc": round(roc_auc(inl[pairs.positive], inl[~pairs.positive]), 4),
        })
    print(pd.DataFrame(rows).to_string(index=False))
    print()
    median_ratio = (pairs.loc[active, "skimage_ms"] / pairs.loc[active, "opencv_ms"]).median()
    verdict = lambda ok: "ok" if ok else "BELOW TARGET"  # noqa: E731
    print(f"speed ratio skimage/opencv (mean time): {ratio:.0f}x  (median per-pair ratio {median_ratio:.0f}x; "
          f"target >= {SPEED_TARGET:.0f}x: {verdict(ratio >= SPEED_TARGET)})")
    print(f"same accept/reject decision at {accept} inliers: {same.mean():.1%} of pairs "
          f"({int((~same).sum())} differ; target >= {AGREEMENT_TARGET:.0%}: {verdict(same.mean() >= AGREEMENT_TARGET)})")
    print(f"mean |inlier difference|: {diff.mean():.2f} (median {diff.median():.0f}, max {diff.max()}); "
          f"identical counts in {(diff == 0).mean():.1%} of pairs")
    if (~same).any():
        print()
        print("pairs with different decisions:")
        print(pairs.loc[~same, ["query", "gallery", "positive", "putative", "opencv_inliers", "skimage_inliers"]]
              .to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEV_DATA), help="dev set folder (default: %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="feature store (default: a temporary folder)")
    parser.add_argument("--pairs", type=int, default=None, help="time at most this many (seeded) pairs")
    parser.add_argument("--per-landmark", type=int, default=2, help="gallery photos per landmark (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="gallery choice, pair subset and RANSAC seed")
    args = parser.parse_args()
    if args.pairs is not None and args.pairs < 1:
        parser.error("--pairs must be a positive integer")
    if args.cache_dir is not None:
        run(args, Path(args.cache_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="delfverify-bench-") as tmp:
            run(args, Path(tmp))


if __name__ == "__main__":
    main()
