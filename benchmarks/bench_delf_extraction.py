"""Feature extraction throughput: DELF (architecture of ``google/delf/1``, random weights) versus RootSIFT.

    python benchmarks/bench_delf_extraction.py [--model DIR] [--images 8] [--repeats 2] [--score-threshold 0]

The real DELF weights are not available offline, so the DELF timed here is the model built by
``make_delf_like_model.py`` (same backbone, attention head, image pyramid and signature; random weights), built
in a temporary folder unless ``--model`` gives one. It is loaded through delfverify's own ``delf`` extractor.

Settings timed, on the same dev photos in the same run:

- ``delf`` with the research settings: scales 0.25 ... 2.0, max_feature_num 1000, photos shrunk to 1024 px;
- ``delf`` on photos shrunk to 512 px (same scales): about 4x fewer pixels;
- ``rootsift`` (delfverify's default extractor) at 1024 px.

Only ``extract`` is timed: photos are decoded and resized beforehand. Each setting gets one warm-up call, then
the whole image list is extracted ``--repeats`` times; the best pass gives images/s.

The research's attention threshold (100) keeps no feature with random weights (their attention scores are
below 1), so by default the threshold is 0: every cell is a candidate and the top ``max_feature_num`` by
attention are kept, as the real model does on a typical photo. The backbone, which dominates the cost, runs
the same either way.

TensorFlow uses a GPU when one is visible; the devices are printed so the reader knows what was measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import DEV_DATA, require_dev_data  # noqa: E402
from delfverify.extractors import make_extractor  # noqa: E402
from delfverify.images import load_image  # noqa: E402


def time_extractor(extractor, images, repeats: int) -> tuple[float, float]:
    """(best seconds for one pass over ``images``, mean features per image)."""
    extractor.extract(images[0])  # warm-up: graph optimisation, SIFT object creation
    best = float("inf")
    counts = []
    for _ in range(repeats):
        start = time.perf_counter()
        counts = [len(extractor.extract(image)) for image in images]
        best = min(best, time.perf_counter() - start)
    return best, sum(counts) / len(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEV_DATA))
    parser.add_argument("--model", default=None, help="DELF-like SavedModel folder (default: build one, seed 0)")
    parser.add_argument("--images", type=int, default=8, help="photos to extract (default 8)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per setting, best kept (default 2)")
    parser.add_argument("--score-threshold", type=float, default=0.0,
                        help="DELF attention threshold (default 0; the research's 100 keeps nothing with random "
                             "weights)")
    parser.add_argument("--max-side", type=int, action="append",
                        help="DELF photo sizes to time (repeatable; default 1024 and 512)")
    args = parser.parse_args()
    if args.images < 1 or args.repeats < 1:
        parser.error("--images and --repeats must be at least 1")
    data = require_dev_data(Path(args.data))
    sides = args.max_side or [1024, 512]

    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}; GPUs: {tf.config.list_physical_devices('GPU')} "
          f"({'DELF runs on the GPU' if tf.config.list_physical_devices('GPU') else 'DELF runs on the CPU'}); "
          f"CPU cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (other processes skew timings)")
    files = sorted((data / "queries").glob("*.jpg"))[: args.images]
    if not files:
        sys.exit(f"no photos in {data / 'queries'}")

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from make_delf_like_model import build

            start = time.perf_counter()
            model = str(build(Path(tmp) / "delf_like", seed=0))
            print(f"built the random-weight DELF-like model in {time.perf_counter() - start:.1f} s")
        delf = make_extractor("delf", model=model, score_threshold=args.score_threshold)
        rootsift = make_extractor("rootsift")
        settings = [(f"delf  max_side {side}", delf, side) for side in sides]
        settings.append(("rootsift  max_side 1024", rootsift, 1024))
        rows = []
        for name, extractor, side in settings:
            images = [load_image(f, max_side=side) for f in files]
            seconds, features = time_extractor(extractor, images, args.repeats)
            mean_side = sum(max(image.shape[:2]) for image in images) / len(images)
            rows.append((name, len(images) / seconds, seconds / len(images), features, mean_side))
            print(f"  timed {name}: {seconds:.2f} s for {len(images)} photos", flush=True)

    rootsift_rate = rows[-1][1]
    print()
    print(f"{len(files)} dev photos, best of {args.repeats} passes after a warm-up; DELF scales "
          f"{list(delf.image_scales)}, max_feature_num {delf.max_feature_num}, score_threshold "
          f"{args.score_threshold:g}")
    print(f"{'setting':<26}{'images/s':>10}{'s/image':>10}{'features':>10}{'longest side':>14}"
          f"{'rootsift faster by':>20}")
    for name, rate, per_image, features, mean_side in rows:
        print(f"{name:<26}{rate:>10.2f}{per_image:>10.3f}{features:>10.0f}{mean_side:>14.0f}"
              f"{rootsift_rate / rate:>19.1f}x")


if __name__ == "__main__":
    main()
