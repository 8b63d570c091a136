"""Write ``tests/data/dev_inliers.npz``: the inlier tables of the ten dev prediction files, so that the dev tuning
test runs without touching a photo.

Each labelled prediction is verified against the first 5 gallery photos of its label in the ``spread`` order (what
``default`` and tuned policies read) and in the ``first`` order (what ``seed`` reads), with the default verifier.
Run it again whenever the verification defaults change; ``tests/test_dev_quality.py`` recomputes a sample of the
pairs and fails while the file is stale.

    python benchmarks/make_dev_inliers.py [--cache-dir DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import DEV_DATA, REPO, require_dev_data

from delfverify.images import ImageDirectory
from delfverify.pipeline import Photos, measure, open_session, plan_pairs
from delfverify.tables import read_gallery, read_predictions

OUTPUT = REPO / "tests" / "data" / "dev_inliers.npz"
K = 5
SELECTIONS = ("spread", "first")


def dev_inlier_tables(data: Path, cache_dir: str | None, workers: int) -> dict[str, np.ndarray]:
    """``ids`` (n,) and, per selection, the inlier tables of files 00-09 stacked (10, n, K)."""
    gallery = read_gallery(data / "gallery.csv")
    photos = Photos(ImageDirectory(data / "queries"), ImageDirectory(data / "gallery"), gallery.paths())
    files = [read_predictions(data / "predictions" / f"{i:02d}.csv") for i in range(10)]
    out: dict[str, np.ndarray] = {"ids": files[0].ids.astype(str)}
    with open_session(cache_dir=cache_dir, workers=workers) as session:
        for selection in SELECTIONS:
            tables = []
            for predictions in files:
                if not np.array_equal(predictions.ids.astype(str), out["ids"]):
                    raise SystemExit("dev prediction files list different queries")
                k = np.where(predictions.has_label, K, 0)
                table = measure(predictions, plan_pairs(predictions, gallery, k, selection), session, photos)
                counts = np.full((len(predictions), K), np.nan)
                counts[:, : table.inliers.shape[1]] = table.inliers
                tables.append(counts)
            out[selection] = np.stack(tables)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", help="feature store and journal (default: the user cache)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    tables = dev_inlier_tables(require_dev_data(DEV_DATA), args.cache_dir, args.workers)
    settings = {"features": "rootsift", "k": K, "selections": list(SELECTIONS), "verifier": "defaults"}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, settings=np.array(json.dumps(settings)), **tables)
    print(f"wrote {OUTPUT.relative_to(REPO)}: {len(tables['ids'])} queries, tables {tables['spread'].shape}")


if __name__ == "__main__":
    main()
