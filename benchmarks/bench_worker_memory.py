"""Peak memory (RSS) of a worker process, DELF or RootSIFT, with 1 and with 2 local workers.

    python benchmarks/bench_worker_memory.py [--features delf|rootsift] [--model DIR] [--images 6]
        [--workers 1 --workers 2] [--max-side 1024]

What ``--workers N`` costs in memory per worker (docs/SCALE.md). With ``--features delf`` (the default): the real
DELF weights are not available offline, so the model is the DELF-sized one of ``make_delf_like_model.py`` (DELF's
backbone, attention head, image pyramid and signature; random weights; its variables take as much memory as
DELF's), built in a temporary folder unless ``--model`` gives one. ``score_threshold`` is 0, so that the top 1000
cells are kept as the real model does on a typical photo (see ``bench_delf_extraction.py``).

The dev photos are resized so that their longest side is ``--max-side`` (default 1024, the extractor's default
``max_side``: the largest a photo reaches the extractor), then each run extracts them from an empty feature store
through delfverify's own local workers (``execution.Runner``, spawned processes, each with ``cores // N``
threads), one photo per batch, then verifies the first photo against each of the others, one pair per batch, as
``rerank`` does (the workers are as quiet as ``delfverify -q`` makes them). Every worker reports its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) after each batch; the largest report of each worker is its peak. Measured on
the CPU: TensorFlow uses a GPU when one is visible, and then the figures are host memory only (the devices are
printed).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import DEV_DATA, require_dev_data  # noqa: E402
from delfverify import RunSettings, Verifier  # noqa: E402
from delfverify.console import command_output  # noqa: E402
from delfverify.execution import ImageItem, PairItem, Runner, extract_batch, verify_batch  # noqa: E402
from delfverify.extractors import make_extractor  # noqa: E402


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measured_extraction(verifier: Verifier, items) -> tuple[int, float, int]:
    """In a worker: extract the batch; (pid, peak RSS in MiB, photos extracted)."""
    extracted = sum(now for _, _, now in extract_batch(verifier, items))
    return os.getpid(), peak_rss_mib(), extracted


def measured_verification(verifier: Verifier, items) -> tuple[int, float, int]:
    """In a worker: verify the batch's pairs; (pid, peak RSS in MiB, pairs verified)."""
    return os.getpid(), peak_rss_mib(), len(verify_batch(verifier, items).results)


def resized_photos(files: list[Path], side: int, folder: Path) -> list[Path]:
    """Copies of ``files`` whose longest side is ``side`` (PNG, so no new JPEG artefacts)."""
    from PIL import Image

    out = []
    for file in files:
        with Image.open(file) as image:
            image = image.convert("RGB")
            scale = side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            path = folder / f"{file.stem}.png"
            image.resize(size, Image.Resampling.BILINEAR).save(path)
            out.append(path)
    return out


def run(extractor, photos: list[Path], workers: int, store: Path) -> dict[int, float]:
    """Extract ``photos``, then verify the first against the others, in ``workers`` worker processes; each
    worker's peak RSS in MiB."""
    verifier = Verifier(extractor, cache_dir=store)
    images = [ImageItem(verifier.key(photo), str(photo)) for photo in photos]
    pairs = [[PairItem(images[0], (image,))] for image in images[1:]]
    peaks: dict[int, float] = {}
    done = {}
    with command_output("quiet"), \
            Runner(verifier, RunSettings(workers=workers), in_process=False) as runner:  # quiet workers
        for function, batches in ((measured_extraction, [[image] for image in images]),
                                  (measured_verification, pairs)):
            done[function] = 0
            for pid, peak, count in runner.map(function, batches):
                peaks[pid] = max(peaks.get(pid, 0.0), peak)
                done[function] += count
    if list(done.values()) != [len(images), len(pairs)]:
        sys.exit(f"{list(done.values())} photos extracted and pairs verified of {[len(images), len(pairs)]}: "
                 "the store was not empty?")
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEV_DATA))
    parser.add_argument("--features", choices=("delf", "rootsift"), default="delf")
    parser.add_argument("--model", default=None, help="DELF-like SavedModel folder (default: build one, seed 0)")
    parser.add_argument("--images", type=int, default=6, help="photos extracted in each run (default 6)")
    parser.add_argument("--workers", type=int, action="append",
                        help="worker processes of a run (repeatable; default 1 and 2)")
    parser.add_argument("--max-side", type=int, default=1024, help="longest side of the photos (default 1024)")
    args = parser.parse_args()
    counts = args.workers or [1, 2]
    if args.images < 1 or args.max_side < 1 or min(counts) < 1:
        parser.error("--images, --max-side and --workers must be at least 1")
    data = require_dev_data(Path(args.data))
    files = sorted((data / "queries").glob("*.jpg"))[: args.images]
    if not files:
        sys.exit(f"no photos in {data / 'queries'}")

    delf = args.features == "delf"
    if delf:
        import tensorflow as tf

        print(f"TensorFlow {tf.__version__}; GPUs: {tf.config.list_physical_devices('GPU')}")
    print(f"CPU cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if delf and model is None:
            from make_delf_like_model import build

            model = str(build(Path(tmp) / "delf_like", seed=0))
        (Path(tmp) / "photos").mkdir()
        photos = resized_photos(files, args.max_side, Path(tmp) / "photos")
        extractor = make_extractor("delf", model=model, score_threshold=0.0) if delf else make_extractor("rootsift")
        rows = []
        for workers in counts:
            start = time.perf_counter()
            peaks = run(extractor, photos, workers, Path(tmp) / f"store-{workers}")
            rows.append((workers, sorted(peaks.values()), time.perf_counter() - start))
            print(f"  {workers} worker(s): peaks {', '.join(f'{p:.0f}' for p in sorted(peaks.values()))} MiB",
                  flush=True)

    cores = len(os.sched_getaffinity(0))
    print()
    what = (f"DELF-sized model (random weights), scales {list(extractor.image_scales)}, max_feature_num "
            f"{extractor.max_feature_num}, score_threshold 0" if delf else "RootSIFT, default settings")
    print(f"{len(photos)} dev photos resized to a longest side of {args.max_side} px, {what}; extracted one photo "
          f"per batch from an empty store, then {len(photos) - 1} pairs verified one per batch")
    print(f"{'workers':>8}{'threads each':>14}{'workers used':>14}{'peak RSS per worker (MiB)':>28}{'largest':>10}"
          f"{'seconds':>10}")
    for workers, peaks, seconds in rows:
        print(f"{workers:>8}{max(1, cores // workers):>14}{len(peaks):>14}"
              f"{' / '.join(f'{p:.0f}' for p in peaks):>28}{max(peaks):>10.0f}{seconds:>10.1f}")


if __name__ == "__main__":
    main()
