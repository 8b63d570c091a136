"""Verification quality on both photo sets: pair-level separation and GAP, today's defaults against the previous
ones (RootSIFT 1,000 keypoints, affine RANSAC 20 px, thresholds 5/10), measured in one run.

    python benchmarks/bench_quality.py [--sets dev hard] [--cache-dir DIR] [--workers N]

Per set:

- pairs: every query against every gallery photo. Positives: a landmark query and a photo of its landmark.
  Unrelated: a non-landmark query and any gallery photo (the distractors the thresholds are anchored on). ROC AUC
  of the inlier count (positives against all other pairs), the unrelated pairs' 90th and 99th percentile and
  maximum, and the recall of positives above the 99th percentile and above the maximum;
- GAP of the ten simulated prediction files: before, ``seed``, ``default``, the previous default, the oracle;
  mean GAP / mean oracle, and the files where ``default`` is below the previous default.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _common import REPO, compare_policies, roc_auc
from delfverify.extractors import RootSIFT
from delfverify.images import ImageDirectory
from delfverify.pipeline import Photos, measure, open_session, plan_pairs
from delfverify.settings import RunSettings, VerifySettings
from delfverify.policy import load_policy, policy_from_dict
from delfverify.tables import Predictions, read_gallery, read_predictions, read_solution
from delfverify.verification import GEOMETRY_SETTINGS

SETS = {"dev": REPO.parent / "shared" / "data" / "landmarks-dev", "hard": REPO.parent / "shared" / "data" / "landmarks-hard"}
#: The previous defaults, for comparison in the same run.
PREVIOUS = {"features": RootSIFT(max_features=1000), "ransac": GEOMETRY_SETTINGS["affine"]}
PREVIOUS_POLICY = policy_from_dict({"name": "previous default", "bands": [
    {"lower": 0, "upper": 1, "k": 3, "min_inliers": 5, "suppress": {"multiply": 1 / 3}, "boost_inliers": 10,
     "boost": {"range": [2 / 3, 1.0]}}]})


def pair_inliers(data: Path, cache: Path, workers: int, **settings) -> pd.DataFrame:
    """Inliers of every (query, gallery photo) pair: columns query, gallery, kind (positive/unrelated/other)."""
    gallery = read_gallery(data / "gallery.csv")
    truth = read_solution(data / "truth.csv").table
    labels = sorted(gallery.ids_by_label())
    rows = pd.DataFrame([(q, label) for q in truth["id"] for label in labels], columns=["id", "label"])
    everything = Predictions(rows.assign(confidence=0.5))
    k = np.array([len(gallery.ids_by_label()[label]) for label in rows["label"]])
    plan = plan_pairs(everything, gallery, k, "first")
    photos = Photos(ImageDirectory(data / "queries"), ImageDirectory(data / "gallery"), gallery.paths())
    with open_session(VerifySettings(**settings), RunSettings(cache_dir=cache, workers=workers)) as session:
        table = measure(everything, plan, session, photos)
    truth_of = dict(zip(truth["id"], truth["landmarks"]))
    out = []
    for (query, label), ids, counts in zip(rows.itertuples(index=False), plan.gallery_ids, table.inliers):
        kind = "positive" if truth_of[query] == label else "unrelated" if not truth_of[query] else "other"
        out += [(query, g, kind, c) for g, c in zip(ids, counts)]
    return pd.DataFrame(out, columns=["query", "gallery", "kind", "inliers"])


def pair_figures(pairs: pd.DataFrame) -> dict[str, float]:
    positive = pairs.loc[pairs["kind"] == "positive", "inliers"].to_numpy()
    unrelated = pairs.loc[pairs["kind"] == "unrelated", "inliers"].to_numpy()
    others = pairs.loc[pairs["kind"] != "positive", "inliers"].to_numpy()
    p99 = np.percentile(unrelated, 99)
    return {"AUC": roc_auc(positive, others), "unrelated p90": np.percentile(unrelated, 90), "p99": p99,
            "max": unrelated.max(), "recall > p99": (positive > p99).mean(),
            "recall > max": (positive > unrelated.max()).mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--cache-dir", default=None, help="feature store and journal (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir or tmp)
        for name in args.sets:
            data = SETS[name]
            if not (data / "gallery.csv").is_file():
                raise SystemExit(f"{name} set not found at {data}")
            figures = {"today": pair_figures(pair_inliers(data, cache, args.workers)),
                       "previous": pair_figures(pair_inliers(data, cache, args.workers, **PREVIOUS))}
            print(f"\n== {name}: pairs (inlier counts)")
            print(pd.DataFrame(figures).T.to_string(float_format=lambda x: f"{x:.3f}"))
            truth = read_solution(data / "truth.csv")
            files = {f.stem: read_predictions(f) for f in sorted((data / "predictions").glob("*.csv"))}
            where = {"gallery": data / "gallery.csv", "gallery_images": data / "gallery",
                     "query_images": data / "queries", "cache_dir": cache, "workers": args.workers}
            table = compare_policies(files, truth, {p: load_policy(p, "rootsift") for p in ("seed", "default")},
                                     **where)
            previous = compare_policies(files, truth, {"previous": PREVIOUS_POLICY}, **where, **PREVIOUS)
            table.insert(4, "previous", previous["previous"])
            print(f"== {name}: GAP per file")
            print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
            means = table.drop(columns="file").mean()
            print("mean   " + "  ".join(f"{k} {v:.4f}" for k, v in means.items()))
            for column in ("seed", "default", "previous"):
                print(f"{column}: mean GAP / mean oracle {means[column] / means['oracle']:.4f}")
            worse = table.loc[table["default"] < table["previous"] - 1e-12, "file"].tolist()
            print(f"files where default is below the previous default: {worse or 'none'}")


if __name__ == "__main__":
    main()
