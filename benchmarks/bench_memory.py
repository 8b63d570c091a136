"""Peak memory of ``delfverify rerank`` on 1,000,000 predictions against 10,000 gallery feature sets.

    python benchmarks/bench_memory.py [--n 1000000] [--gallery 10000] [--workers 1]

No photos are needed. Every gallery and query "image" is a small unique file whose features (random,
seeded) are put in the feature store under that file's content hash, so rerank finds them there and never
decodes an image. The n query ids are hard links to a pool of 1,000 such files (directory entries, not disk
space); prediction i names query i mod 1,000 and the label of gallery group i mod 1,000, so the pairs repeat and
verification stays cheap, while every per-prediction path (hashing, journal look-ups, policy, output) runs n
times. The same run at n/10 is the reference: the script prints the peak RSS of both runs
(``getrusage(RUSAGE_CHILDREN)``) and their ratio (target: under 2 GB at 1M; memory should not grow with n
beyond the output itself).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import REPO
from delfverify import Features, Verifier

POOL = 1000


def build(root: Path, n: int, gallery_size: int, seed: int) -> None:
    """Write gallery.csv, predictions.csv, the small image files and their features in root/store."""
    rng = np.random.default_rng(seed)
    verifier = Verifier("rootsift", cache_dir=root / "store")
    (root / "gallery").mkdir()
    (root / "pool").mkdir()
    (root / "queries").mkdir()

    def features() -> Features:
        count = 60
        desc = rng.normal(size=(count, 128)).astype(np.float32)
        desc /= np.linalg.norm(desc, axis=1, keepdims=True)
        return Features((rng.random((count, 2)) * 500).astype(np.float32), desc,
                        np.ones(count, np.float32), np.ones(count, np.float32), image_shape=(500, 500))

    with open(root / "gallery.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "landmark_id"])
        for g in range(gallery_size):
            file = root / "gallery" / f"g{g:07d}.jpg"
            file.write_bytes(f"gallery {g}".encode())
            verifier.store.put(verifier.key(file), features())
            writer.writerow([f"g{g:07d}", f"L{g % POOL}"])
    for q in range(POOL):
        file = root / "pool" / f"q{q}.jpg"
        file.write_bytes(f"query {q}".encode())
        verifier.store.put(verifier.key(file), features())
    with open(root / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "landmarks"])
        for i, confidence in enumerate(rng.random(n)):
            os.link(root / "pool" / f"q{i % POOL}.jpg", root / "queries" / f"p{i:08d}.jpg")
            writer.writerow([f"p{i:08d}", f"L{i % POOL} {confidence:.4f}"])


def peak_rss_of_rerank(root: Path, workers: int) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one rerank subprocess."""
    command = [sys.executable, "-m", "delfverify.cli", "rerank", str(root / "predictions.csv"),
               "--gallery", str(root / "gallery.csv"), "--gallery-images", str(root / "gallery"),
               "--query-images", str(root / "queries"), "--cache-dir", str(root / "store"),
               "-o", str(root / "out.csv"), "--workers", str(workers), "-q"]
    script = (f"import resource, subprocess, sys; subprocess.run({command!r}, check=True); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO)
    return int(out.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--gallery", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for n in (args.n // 10, args.n):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            build(root, n, args.gallery, args.seed)
            built = time.perf_counter() - start
            rss, seconds = peak_rss_of_rerank(root, args.workers)
            rows.append((n, rss, seconds, built))
    print(f"gallery feature sets: {args.gallery}; workers: {args.workers}")
    print(f"{'predictions':>12s} {'peak RSS MiB':>13s} {'rerank s':>9s} {'setup s':>8s}")
    for n, rss, seconds, built in rows:
        print(f"{n:12,d} {rss:13.0f} {seconds:9.1f} {built:8.1f}")
    print(f"peak RSS ratio {rows[1][0] // rows[0][0]}x predictions: {rows[1][1] / rows[0][1]:.2f}x; "
          f"under 2 GB at {rows[1][0]:,}: {'yes' if rows[1][1] < 2048 else 'NO'}")


if __name__ == "__main__":
    main()
