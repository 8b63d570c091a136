"""Where a cold ``rerank`` spends its time, as ratios measured in one run (issue: cold run close to the floor).

    python benchmarks/bench_cold.py [--data DIR] [--file predictions/00.csv] [--repeats 3] [--workers 2]
                                    [--settings today|previous]

For one dev prediction file, each measured ``--repeats`` times (median reported):

- floor: decode and extract every image the run needs, once each, with the same extractor, in one process;
- cold: ``delfverify.rerank`` from an empty cache, in this process (1 worker) and with N worker processes;
- pairs only: the features are in the store but the journal is gone, so every pair is matched and verified again
  (matching, RANSAC, I/O, start-up of the workers);
- warm: the same run again (nothing extracted or verified);
- previous settings: a cold run with the verification defaults before the hard-photo work (1,000 keypoints,
  affine RANSAC), in one process: today's cold run must cost at most 1.3x that.

Also the cost of choosing gallery photos: ``plan_pairs`` for one prediction whose label has 40,000 gallery photos,
against one with a single photo; and the rates ``docs/SCALE.md`` extrapolates from, measured on the N-worker runs
(one thread each): photos extracted a second per core ((cold - pairs only) / images / N), pairs verified a second
per core (pairs only, start-up of the workers and hashing of the photos included), and the store's bytes a photo.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import DEV_DATA, require_dev_data
from bench_quality import PREVIOUS, PREVIOUS_POLICY
from delfverify import rerank
from delfverify.extractors import make_extractor
from delfverify.images import DEFAULT_MAX_SIDE, ImageDirectory, decode_image
from delfverify.pipeline import plan_pairs
from delfverify.tables import Gallery, Predictions, read_gallery


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _images(details: pd.DataFrame, data: Path) -> list[Path]:
    """The files of every query and gallery photo the run verified."""
    queries, gallery = ImageDirectory(data / "queries"), ImageDirectory(data / "gallery")
    verified = details[details["gallery_ids"] != ""]
    photos = {g for ids in verified["gallery_ids"] for g in ids.split()}
    return [queries.find(q) for q in verified["id"]] + [gallery.find(g) for g in sorted(photos)]


def _floor(files: list[Path], extractor) -> float:
    start = time.perf_counter()
    for file in files:
        extractor.extract(decode_image(file, DEFAULT_MAX_SIDE).pixels)
    return time.perf_counter() - start


def _selection_cost() -> tuple[float, float]:
    """Seconds to plan one prediction against a label of 40,000 gallery photos, and of one photo."""
    times = []
    for size in (40_000, 1):
        gallery = Gallery(pd.DataFrame({"id": [f"g{i:06d}" for i in range(size)], "landmark_id": "big",
                                        "path": ""}))
        predictions = Predictions(pd.DataFrame({"id": ["q"], "label": ["big"], "confidence": [0.5]}))
        times.append(_timed(lambda: plan_pairs(predictions, gallery, np.array([3]), "spread"))[0])
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEV_DATA))
    parser.add_argument("--file", default="predictions/00.csv")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settings", choices=("today", "previous"), default="today",
                        help="verification settings of every run but the comparison line (default: today's)")
    args = parser.parse_args()
    settings = {} if args.settings == "today" else {**PREVIOUS, "policy": PREVIOUS_POLICY}
    data = require_dev_data(Path(args.data))
    predictions = data / args.file
    gallery = read_gallery(data / "gallery.csv")

    def run(cache: Path, workers: int, **settings):
        return rerank(predictions, gallery=gallery, gallery_images=data / "gallery", query_images=data / "queries",
                      cache_dir=cache, workers=workers, **settings)

    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for workers in (1, args.workers):
                cache = Path(tmp) / f"{repeat}-{workers}"
                cold, result = _timed(lambda: run(cache, workers, **settings))
                figures.setdefault(f"cold, {workers} worker(s)", []).append(cold)
                (cache / "journal.sqlite").unlink()
                for suffix in ("-wal", "-shm"):
                    Path(f"{cache / 'journal.sqlite'}{suffix}").unlink(missing_ok=True)
                pairs, again = _timed(lambda: run(cache, workers, **settings))
                assert again.summary["features_extracted"] == 0 and again.summary["pairs_computed"] > 0
                figures.setdefault(f"pairs only, {workers} worker(s)", []).append(pairs)
                warm, _ = _timed(lambda: run(cache, workers, **settings))
                figures.setdefault(f"warm, {workers} worker(s)", []).append(warm)
                entries = list(cache.rglob("*.npz"))
                figures.setdefault("store bytes a photo", []).append(sum(e.stat().st_size for e in entries)
                                                                     / max(len(entries), 1))
                shutil.rmtree(cache)
            files = _images(result.details, data)
            extractor = settings.get("features", make_extractor("rootsift"))
            figures.setdefault("floor (decode + extract, 1 process)", []).append(_floor(files, extractor))
            previous, _ = _timed(lambda: run(Path(tmp) / f"{repeat}-previous", 1, policy=PREVIOUS_POLICY,
                                             **PREVIOUS))
            figures.setdefault("cold, previous settings, 1 worker", []).append(previous)
    median = {name: statistics.median(values) for name, values in figures.items()}
    per_photo = median.pop("store bytes a photo")
    floor = median["floor (decode + extract, 1 process)"]
    print(f"{args.file}: {len(files)} images, {result.summary['pairs_computed']} pairs; median of {args.repeats}; "
          f"{args.settings}'s settings")
    for name, value in median.items():
        print(f"  {name:38s} {value:7.2f} s   {value / floor:5.2f}x floor")
    for workers in (1, args.workers):
        cold = median[f"cold, {workers} worker(s)"]
        print(f"{workers} worker(s): cold / floor {cold / floor:.2f} (target <= 1.15); pairs only / cold "
              f"{median[f'pairs only, {workers} worker(s)'] / cold:.1%} (target <= 20%); warm "
              f"{cold / median[f'warm, {workers} worker(s)']:.0f}x faster than cold (target >= 10x)")
    n, pairs = args.workers, result.summary["pairs_computed"]
    cold, only = median[f"cold, {n} worker(s)"], median[f"pairs only, {n} worker(s)"]
    print(f"rates with {n} workers, one thread each: {len(files) / (cold - only) / n:.2f} photos extracted a second "
          f"per core, {pairs / only / n:.1f} pairs verified a second per core; {per_photo / 1024:.0f} KiB a photo "
          f"in the store")
    print(f"today's settings / previous settings, cold, 1 worker: "
          f"{median['cold, 1 worker(s)'] / median['cold, previous settings, 1 worker']:.2f}x (target <= 1.3x)")
    big, one = _selection_cost()
    print(f"gallery selection: one label with 40,000 photos {big * 1000:.0f} ms, with 1 photo {one * 1000:.1f} ms "
          f"(target: under a second added)")


if __name__ == "__main__":
    main()
