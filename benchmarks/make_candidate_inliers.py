"""Write ``tests/data/candidate_inliers.npz``: the inlier counts of every query of both labelled sets against every
landmark of its gallery, as the ``default`` policy measures them, so that the candidates quality test scores the
twenty top-5 files without touching a photo.

Each (query, landmark) pair is verified against the first ``k`` gallery photos of the landmark in the ``default``
policy's order, with the default verifier. Run it again whenever the verification defaults change;
``tests/test_dev_quality.py`` recomputes a sample of the counts and fails while the file is stale.

    python benchmarks/make_candidate_inliers.py [--cache-dir DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from _common import REPO, require_dev_data

from delfverify.images import ImageDirectory
from delfverify.pipeline import Photos, measure, open_session, plan_pairs
from delfverify.settings import RunSettings
from delfverify.policy import builtin_policy
from delfverify.tables import Predictions, read_gallery, read_solution

OUTPUT = REPO / "tests" / "data" / "candidate_inliers.npz"
SETS = ("landmarks-dev", "landmarks-hard")


def all_pairs_inliers(data: Path, session) -> dict[str, np.ndarray]:
    """``ids`` (Q,), ``labels`` (L,) and ``inliers`` (Q, L, k): each query against each landmark's photos."""
    policy = builtin_policy("default", session.verifier.extractor.name)
    gallery = read_gallery(data / "gallery.csv")
    photos = Photos(ImageDirectory(data / "queries"), ImageDirectory(data / "gallery"), gallery.paths())
    ids = read_solution(data / "truth.csv").table["id"].to_numpy(str)
    labels = np.array(sorted(gallery.ids_by_label()), str)
    inliers = np.full((len(ids), len(labels), policy.max_k), np.nan)
    for j, label in enumerate(labels):  # one landmark at a time: one row per query
        predictions = Predictions(pd.DataFrame({"id": ids.astype(object), "label": label, "confidence": 0.5}))
        plan = plan_pairs(predictions, gallery, policy.k_for(predictions.confidence), policy.selection, policy.seed)
        table = measure(predictions, plan, session, photos)
        inliers[:, j, : table.inliers.shape[1]] = table.inliers
    return {"ids": ids, "labels": labels, "inliers": inliers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", help="feature store and journal (default: the user cache)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    out = {}
    with open_session(run=RunSettings(cache_dir=args.cache_dir, workers=args.workers)) as session:
        for name in SETS:
            tables = all_pairs_inliers(require_dev_data(REPO.parent / "shared" / "data" / name), session)
            out.update({f"{name}/{key}": value for key, value in tables.items()})
            print(f"{name}: {len(tables['ids'])} queries x {len(tables['labels'])} landmarks")
    settings = {"features": "rootsift", "policy": "default", "verifier": "defaults"}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, settings=np.array(json.dumps(settings)), **out)
    print(f"wrote {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
