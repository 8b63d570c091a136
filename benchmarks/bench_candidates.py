"""Several candidate labels per query, on both labelled sets: mean GAP of ``rerank`` with ``default`` on the ten
top-5 files, as a multiple of the mean top-1 oracle (correct top-1 predictions / M) of the same seeds, beside the
top-5 oracle, the queries whose label changed (of them, landmark queries, and those now right) and the pairs
verified against a top-1 run of the same seed.

    python benchmarks/bench_candidates.py [--shared DIR] [--candidates 5] [--cache-dir DIR] [--workers N]

``DIR`` is ``../shared`` beside the repository (``data/landmarks-dev`` and ``data/landmarks-hard``, each with
``predictions/NN.csv`` and ``predictions-top5/NN.csv``). Each file is re-ranked three times, as ``delfverify rerank``
runs: its top-1 file, its top-5 file, and the top-5 file with ``keep_candidates`` (every candidate verified), from
which two other choice rules are scored for comparison, and which checks that stopping early changed no choice:

- ``confirmed``: a later candidate replaces the first only when verification raised its confidence;
- ``evidence``: as ``confirmed``, and among raised candidates the most inliers wins (then the confidence).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _common import REPO
from delfverify import rerank
from delfverify.execution import default_workers
from delfverify.metrics import global_average_precision, oracle_gap
from delfverify.settings import DEFAULT_CANDIDATES
from delfverify.tables import read_gallery, read_predictions, read_solution

SETS = ("landmarks-dev", "landmarks-hard")
#: The issue's targets: mean GAP with candidates as a multiple of the mean top-1 oracle.
TARGETS = {"landmarks-dev": 1.55, "landmarks-hard": 1.30}
#: Queries by what verifying their candidates costs.
KINDS = {"first right": "landmark queries whose first candidate is right", "landmark": "other landmark queries",
         "non-landmark": "non-landmark queries"}


def _gap(table: pd.DataFrame, truth) -> float:
    return global_average_precision(table, truth.table).gap


def _variant(details: pd.DataFrame, truth, rule: str) -> float:
    """GAP of another choice rule applied to every candidate's rescaled confidence and inliers."""
    raised = (details["new_confidence"] > details["old_confidence"]).to_numpy()
    eligible = raised | (details["rank"] == 1).to_numpy()
    evidence = details["inliers"].fillna("").map(
        lambda text: max([int(v) for v in text.split() if v != "-"], default=0)).to_numpy()
    keys = pd.DataFrame({"query": pd.factorize(details["id"])[0], "eligible": eligible,
                         "raised": raised if rule == "evidence" else False,
                         "evidence": np.where(raised, evidence, 0) if rule == "evidence" else 0,
                         "new": details["new_confidence"], "rank": details["rank"]})
    order = keys.sort_values(["query", "eligible", "raised", "evidence", "new", "rank"],
                             ascending=[True, False, False, False, False, True], kind="stable")
    chosen = details.loc[order.groupby("query").head(1).sort_values("query").index]
    return _gap(pd.DataFrame({"id": chosen["id"], "label": chosen["label"], "confidence": chosen["new_confidence"]}),
                truth)


def measure_set(data: Path, candidates: int, cache: Path, workers: int) -> pd.DataFrame:
    truth = read_solution(data / "truth.csv")
    truth_labels = {i: set(labels.split()) for i, labels in zip(truth.table["id"], truth.table["landmarks"])}
    landmark_queries = sum(bool(labels) for labels in truth_labels.values())
    options = dict(gallery=read_gallery(data / "gallery.csv"), gallery_images=data / "gallery",
                   query_images=data / "queries", cache_dir=cache, workers=workers, candidates=candidates)
    rows = []
    for top5 in sorted((data / "predictions-top5").glob("*.csv")):
        top1 = read_predictions(data / "predictions" / top5.name)
        first = rerank(top1, **options)
        chosen = rerank(top5, **options)
        every = rerank(top5, keep_candidates=True, **options)
        details = chosen.details
        picked = details[details["chosen"]]
        right = np.array([label in truth_labels[i] for i, label in zip(picked["id"], picked["label"])], bool)
        landmark = np.array([bool(truth_labels[i]) for i in picked["id"]], bool)
        changed = (picked["rank"] > 1).to_numpy()
        considered = details.groupby("id", sort=False)["label"].agg(set)
        verified = (details["status"] != "stopped").groupby(details["id"], sort=False).sum()
        top = details[details["rank"] == 1]
        first_right = np.array([label in truth_labels[i] for i, label in zip(top["id"], top["label"])], bool)
        kinds = np.where(first_right, "first right", np.where(landmark, "landmark", "non-landmark"))
        assert set(kinds) <= set(KINDS)
        # The chosen candidates of the early-stopped run are the argmax over every candidate verified.
        pd.testing.assert_frame_equal(chosen.predictions.table,
                                      every.predictions.table.drop_duplicates("id").reset_index(drop=True))
        rows.append({
            "file": top5.name,
            "top1 default": _gap(first.predictions.table, truth),
            "top1 oracle": oracle_gap(top1.table, truth.table),
            "candidates": _gap(chosen.predictions.table, truth),
            "top5 oracle": sum(bool(truth_labels[i] & labels) for i, labels in considered.items()) / landmark_queries,
            "confirmed": _variant(every.details, truth, "confirmed"),
            "evidence": _variant(every.details, truth, "evidence"),
            "relabelled": int(changed.sum()),
            "of landmarks": int((changed & landmark).sum()),
            "right": int((changed & right).sum()),
            "pairs": chosen.summary["pairs_computed"] + chosen.summary["pairs_reused"],
            "pairs top1": first.summary["pairs_computed"] + first.summary["pairs_reused"],
            "pairs all": every.summary["pairs_computed"] + every.summary["pairs_reused"],
            **{f"verified/{kind}": verified.to_numpy()[kinds == kind].mean() for kind in np.unique(kinds)},
        })
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(REPO.parent / "shared"),
                        help="the shared folder (default: %(default)s)")
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
    parser.add_argument("--cache-dir", default=None, help="feature store and journal (default: a fresh temporary one)")
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    folders = {name: Path(args.shared) / "data" / name for name in SETS}
    missing = [str(path) for path in folders.values() if not (path / "predictions-top5").is_dir()]
    if missing:
        sys.exit(f"labelled sets not found: {', '.join(missing)} (expected ../shared/data/<set>/predictions-top5 "
                 f"beside the repository, or give --shared)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in folders.items():
            table = measure_set(data, args.candidates, Path(args.cache_dir or tmp) / name, args.workers)
            print(f"\n{name} (--candidates {args.candidates}, policy default)")
            shown = table.drop(columns=[column for column in table if column.startswith("verified/")])
            print(shown.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
            mean = table.drop(columns="file").mean()
            queries = len(read_solution(data / "truth.csv").table)
            print(f"mean GAP {mean['candidates']:.4f} = {mean['candidates'] / mean['top1 oracle']:.3f}x the mean top-1 "
                  f"oracle {mean['top1 oracle']:.4f} (target {TARGETS[name]:.2f}x); top-5 oracle "
                  f"{mean['top5 oracle']:.4f}; top-1 run {mean['top1 default']:.4f}")
            print(f"relabelled {mean['relabelled']:.1f} of {queries} queries per file "
                  f"({mean['relabelled'] / queries:.1%}): {mean['right']:.1f} to the right label "
                  f"({mean['right'] / queries:.1%} of the queries), {mean['right'] / mean['of landmarks']:.0%} of the "
                  f"{mean['of landmarks']:.1f} landmark queries relabelled (no label is right for the others)")
            print(f"pairs verified {mean['pairs']:.1f} per file = {mean['pairs'] / mean['pairs top1']:.2f}x a top-1 "
                  f"run ({mean['pairs top1']:.1f}); every candidate would be "
                  f"{mean['pairs all'] / mean['pairs top1']:.2f}x")
            print("candidates verified per query: " + ", ".join(
                f"{mean[f'verified/{kind}']:.2f} ({what})" for kind, what in KINDS.items()))
            print("other choice rules, mean GAP: " + ", ".join(
                f"{rule} {mean[rule]:.4f} ({mean[rule] / mean['top1 oracle']:.3f}x)"
                for rule in ("confirmed", "evidence")))


if __name__ == "__main__":
    main()
