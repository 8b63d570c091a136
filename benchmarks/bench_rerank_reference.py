"""Re-ranking speed against the research notebook's way: re-extract both photos for every pair.

    python benchmarks/bench_rerank_reference.py [--data DIR] [--file predictions/00.csv] [--reference-pairs 60]

Three timings on one prediction file of the dev set, all with RootSIFT, the ``default`` policy and the same
(query, gallery) pairs:

- cold: ``rerank`` with an empty feature store and pair journal (a temporary folder): each distinct photo is
  extracted once, each distinct pair verified once;
- warm: the same run again on that store and journal (nothing is extracted or verified);
- reference: what the notebook did, for every pair ``rerank`` verified (the ``gallery_ids`` of its details):
  load both photos (``load_image``, default max_side), extract features of both afresh (no cache), verify with
  ``verify_features`` and the verifier's match and RANSAC settings. It is timed on ``--reference-pairs`` pairs
  spread evenly over the list (0: all) and extrapolated to all pairs; both numbers are printed.

The reference uses delfverify's fast OpenCV RANSAC; the notebook's scikit-image RANSAC (about 250 ms per pair,
see docs/RESEARCH.md) would make it slower still. The inlier counts of the reference must equal ``rerank``'s
for the measured pairs (verification is deterministic), which shows the speed-up changes no result.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import DEV_DATA, require_dev_data
from delfverify import Verifier, rerank
from delfverify.images import ImageDirectory, decode_image
from delfverify.policy import load_policy
from delfverify.tables import read_gallery

FEATURES = "rootsift"
TARGET_COLD_VS_REFERENCE = 20.0
TARGET_COLD_VS_WARM = 10.0


def run_rerank(data: Path, prediction_file: Path, gallery, policy, cache: Path):
    return rerank(prediction_file, gallery=gallery, gallery_images=data / "gallery", query_images=data / "queries",
                  policy=policy, features=FEATURES, cache_dir=cache)


def verified_pairs(details) -> list[tuple[str, str, int]]:
    """(query id, gallery id, inliers) of every pair rerank verified, in its order."""
    pairs = []
    for query_id, gallery_ids, inliers in zip(details["id"], details["gallery_ids"], details["inliers"]):
        for gallery_id, count in zip(gallery_ids.split(), inliers.split()):
            if count != "-":
                pairs.append((query_id, gallery_id, int(count)))
    return pairs


def reference(pairs, data: Path, gallery) -> tuple[float, list[int]]:
    """Seconds and inlier counts of the notebook's way: load and extract both photos of every pair afresh."""
    verifier = Verifier(FEATURES)  # only its extractor and settings are used: no store, no memory cache
    extractor = verifier.extractor
    queries, gallery_images = ImageDirectory(data / "queries"), ImageDirectory(data / "gallery")
    paths = gallery.paths()
    def extract(file: Path):
        decoded = decode_image(file, verifier.max_side)
        return extractor.extract(decoded.pixels).in_original_pixels(decoded.scale_yx, decoded.original_shape)

    counts = []
    start = time.perf_counter()
    for query_id, gallery_id, _ in pairs:
        query = extract(queries.find(query_id))
        photo = extract(gallery_images.find(gallery_id, paths[gallery_id]))
        counts.append(verifier.verify_features(query, photo).num_inliers)
    return time.perf_counter() - start, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEV_DATA))
    parser.add_argument("--file", default="predictions/00.csv", help="prediction file, relative to --data or a path")
    parser.add_argument("--reference-pairs", type=int, default=60,
                        help="pairs the reference is timed on, spread over all pairs (default 60; 0: all)")
    args = parser.parse_args()
    data = require_dev_data(Path(args.data))
    prediction_file = Path(args.file) if Path(args.file).is_file() else data / args.file
    if not prediction_file.is_file():
        parser.error(f"prediction file not found: {args.file}")
    gallery = read_gallery(data / "gallery.csv")
    policy = load_policy("default", FEATURES)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cold_result = run_rerank(data, prediction_file, gallery, policy, Path(tmp))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        warm_result = run_rerank(data, prediction_file, gallery, policy, Path(tmp))
        warm = time.perf_counter() - start

    pairs = verified_pairs(cold_result.details)
    if not pairs:
        raise SystemExit("rerank verified no pair; nothing to compare")
    n = len(pairs) if args.reference_pairs <= 0 else min(args.reference_pairs, len(pairs))
    subset = [pairs[i] for i in np.unique(np.linspace(0, len(pairs) - 1, n).round().astype(int))]
    measured, reference_counts = reference(subset, data, gallery)
    extrapolated = measured / len(subset) * len(pairs)
    mismatches = [(q, g, c, r) for (q, g, c), r in zip(subset, reference_counts) if c != r]

    s = cold_result.summary
    print(f"{prediction_file.name}: {len(cold_result.details)} predictions, {len(pairs)} verified pairs "
          f"({len({q for q, _, _ in pairs})} queries, {len({g for _, g, _ in pairs})} gallery photos); "
          f"{FEATURES}, policy {policy.name}; {os.cpu_count()} CPU cores, load average at the end "
          f"{os.getloadavg()[0]:.1f} (other processes skew timings)")
    print(f"cold rerank (empty store + journal):  {cold:8.2f} s   extracted {s['features_extracted']} photos, "
          f"verified {s['pairs_computed']} pairs, reused {s['pairs_reused']}")
    w = warm_result.summary
    print(f"warm rerank (same store + journal):   {warm:8.2f} s   extracted {w['features_extracted']} photos, "
          f"verified {w['pairs_computed']} pairs, reused {w['pairs_reused']}")
    print(f"reference, MEASURED on {len(subset)} of {len(pairs)} pairs: {measured:8.2f} s "
          f"({measured / len(subset) * 1000:.0f} ms per pair, {2 * len(subset)} extractions)")
    label = "MEASURED" if len(subset) == len(pairs) else "EXTRAPOLATED"
    print(f"reference, {label} to all {len(pairs)} pairs: {extrapolated:8.2f} s")
    ratio_reference = extrapolated / cold
    ratio_warm = cold / warm
    print(f"cold vs reference ({label.lower()}): {ratio_reference:6.1f}x faster  "
          f"(target >= {TARGET_COLD_VS_REFERENCE:g}x: {'met' if ratio_reference >= TARGET_COLD_VS_REFERENCE else 'NOT met'})")
    print(f"cold / warm:                {ratio_warm:6.1f}x  "
          f"(target >= {TARGET_COLD_VS_WARM:g}x: {'met' if ratio_warm >= TARGET_COLD_VS_WARM else 'NOT met'})")
    print(f"extractions: reference {2 * len(pairs)}, cold rerank {s['features_extracted']} "
          f"({2 * len(pairs) / max(s['features_extracted'], 1):.1f}x fewer); both verify all {len(pairs)} pairs, so "
          f"the cold speed-up cannot exceed that ratio on this file")
    if mismatches:
        print(f"inlier counts: reference differs from rerank on {len(mismatches)} of {len(subset)} measured pairs:")
        for q, g, c, r in mismatches[:10]:
            print(f"  {q} / {g}: rerank {c}, reference {r}")
    else:
        print(f"inlier counts: reference equals rerank on all {len(subset)} measured pairs")


if __name__ == "__main__":
    main()
