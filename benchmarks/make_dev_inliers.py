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
from _common import DEV_DATA, REPO, TABLE_K, TABLE_SELECTIONS, measure_tables, require_dev_data

from delfverify.pipeline import open_session
from delfverify.settings import RunSettings
from delfverify.tables import read_predictions

OUTPUT = REPO / "tests" / "data" / "dev_inliers.npz"


def dev_inlier_tables(data: Path, cache_dir: str | None, workers: int) -> dict[str, np.ndarray]:
    """``ids`` (n,) and, per selection, the inlier tables of files 00-09 stacked (10, n, K)."""
    files = [read_predictions(data / "predictions" / f"{i:02d}.csv") for i in range(10)]
    ids = files[0].ids.astype(str)
    if any(not np.array_equal(p.ids.astype(str), ids) for p in files):
        raise SystemExit("dev prediction files list different queries")
    with open_session(run=RunSettings(cache_dir=cache_dir, workers=workers)) as session:
        tables = measure_tables(data, files, session)
    return {"ids": ids, **{selection: np.stack(t) for selection, t in tables.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", help="feature store and journal (default: the user cache)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    tables = dev_inlier_tables(require_dev_data(DEV_DATA), args.cache_dir, args.workers)
    settings = {"features": "rootsift", "k": TABLE_K, "selections": list(TABLE_SELECTIONS), "verifier": "defaults"}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, settings=np.array(json.dumps(settings)), **tables)
    print(f"wrote {OUTPUT.relative_to(REPO)}: {len(tables['ids'])} queries, tables {tables['spread'].shape}")


if __name__ == "__main__":
    main()
