"""Extraction throughput: one process vs N local worker processes vs a Dask LocalCluster, same images, same run.

    python benchmarks/bench_scale.py [--data DIR] [--workers 2] [--features rootsift] [--repeat 1]

Every configuration extracts all dev photos (gallery + queries) into a fresh feature store, through the same
code path ``rerank`` uses (``Runner.map(extract_batch, ...)``). Times include starting the worker processes,
as a user's run does; the ratio is images/s of the configuration over images/s of one worker process. Worker
processes run OpenCV single-threaded; the in-process row (what ``--workers 1`` does) lets OpenCV use its own
threads, about 1.5 cores for SIFT.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import DEV_DATA, require_dev_data
from delfverify import RunSettings, Verifier
from delfverify.execution import ImageItem, Runner, batched, extract_batch


def measure(images: list[Path], features: str, workers: int = 1, scheduler=None, in_process=None):
    """(seconds in all, steady images/s): every image extracted into a fresh store; the steady rate leaves out
    starting the workers, by timing from when each worker has extracted one warm-up image."""
    with tempfile.TemporaryDirectory() as store:
        verifier = Verifier(features, cache_dir=store)
        items = [ImageItem(verifier.key(path), str(path)) for path in images]
        start = time.perf_counter()
        with Runner(verifier, RunSettings(workers=workers, scheduler=scheduler), in_process=in_process) as runner:
            warm, rest = items[: runner.parallelism], items[runner.parallelism :]
            done = sum(len(r) for r in runner.map(extract_batch, [[item] for item in warm]))
            steady_start = time.perf_counter()
            batch = max(1, len(rest) // (4 * runner.parallelism))
            done += sum(len(r) for r in runner.map(extract_batch, list(batched(rest, batch))))
        end = time.perf_counter()
    assert done == len(items)
    return end - start, len(rest) / (end - steady_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEV_DATA))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--features", default="rootsift")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster measurement")
    args = parser.parse_args()
    data = require_dev_data(Path(args.data))
    images = sorted((data / "gallery").glob("*.jpg")) + sorted((data / "queries").glob("*.jpg"))
    rows = [("1 worker process", measure(images, args.features, in_process=False))]
    rows.append((f"{args.workers} worker processes", measure(images, args.features, workers=args.workers)))
    rows.append(("in-process (OpenCV's own threads)", measure(images, args.features)))
    if not args.no_dask:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            rows.append((f"Dask LocalCluster, {args.workers} workers", measure(images, args.features, scheduler=client)))
    base_total, base_rate = rows[0][1]
    print(f"{len(images)} dev photos, {args.features}")
    print(f"{'configuration':36s} {'seconds':>8s} {'vs 1 worker':>12s} {'steady images/s':>16s} {'vs 1 worker':>12s}")
    for name, (seconds, rate) in rows:
        print(f"{name:36s} {seconds:8.2f} {base_total / seconds:11.2f}x {rate:16.1f} {rate / base_rate:11.2f}x")


if __name__ == "__main__":
    main()
