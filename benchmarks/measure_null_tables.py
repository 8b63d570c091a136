"""Measure the built-in null tables (what unrelated photo pairs reach) and check their calibration on held-out pairs.

    python benchmarks/measure_null_tables.py [--cache-dir DIR] [--workers N] [--geometries ...] [--seeds N]
                                             [--output-dir DIR | --no-write]

Re-run it whenever a change moves inlier counts (extraction, descriptor storage, matching, RANSAC): with a
``--cache-dir`` kept between runs, features and pairs are reused while the verifier's pair fingerprint is unchanged
and measured again when it changes. About 5 minutes from cold on two cores (most of it RootSIFT extraction and
the fundamental-matrix RANSAC), about a minute with a warm cache.

What it does, for RootSIFT with each geometric model (``fundamental``, the default; ``affine``; ``homography``):

1. **Pairs.** Every query photo of ``landmarks-dev`` and ``landmarks-hard`` (landmark and non-landmark) against
   every gallery photo of a label other than the query's true label (``bench_quality.pair_inliers``, cached in the
   pair journal): 1,679 dev pairs and 1,458 hard pairs. Pairs with a photo of too few keypoints to tell anything
   (``unverifiable_reason``: 6 non-landmark hard queries with 0 to 44 keypoints, 84 pairs) are left out, as
   ``measure_null_table`` leaves them out.
2. **Shared scenes.** ``fit_null_table``'s rule sets aside counts far beyond chance, measured on the default model
   (the fundamental matrix separates same-place pairs best). A label pair with such pairs shows one scene: all of
   its pairs, both ways and for every model, are left out of the tables, because the rate is about *unrelated*
   photos and such pairs are not. The script prints the evidence: per label pair, its pairs, median and maximum
   counts, and the rates with and without it.
3. **Tables.** One table per model from the remaining pairs of both sets, written to
   ``delfverify/data/null_rootsift_<geometry>.json`` (``--output-dir`` elsewhere, ``--no-write`` not at all), with
   p90 / p99 / max and the false-match rate of today's built-in thresholds (``Extractor.thresholds``), with a 90%
   interval from 200 bootstrap resamples of the queries.
4. **Calibration check** (issue #23, point 4): fit on some unrelated pairs, compare with others not used for the
   fit: dev -> hard, hard -> dev, and ``--seeds`` seeded splits of the queries of both sets into halves (each half
   predicting the other). For each count whose predicted rate is at least 1%: the observed share, the ratio
   observed / predicted, and whether every ratio is within [1/2, 2].
5. **A gallery's own table**: ``measure_null_table`` on the dev gallery (all its pairs of different labels),
   compared with the hard pairs; the hard gallery (14 photos, 91 pairs) is too small and says so.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom

from _common import DEV_DATA, HARD_DATA, REPO
from bench_quality import pair_inliers
from delfverify import Verifier, VerifySettings
from delfverify.calibration import (CalibrationError, check_calibration, fit_null_table, measure_null_table,
                                    shared_geometry_cut, write_null_table)
from delfverify.extractors import RootSIFT
from delfverify.images import ImageDirectory
from delfverify.tables import read_gallery, read_solution
from delfverify.verification import GEOMETRY_SETTINGS, unverifiable_reason

SETS = {"dev": DEV_DATA, "hard": HARD_DATA}
GEOMETRIES = ("fundamental", "affine", "homography")
#: The model whose set-aside pairs decide which label pairs share a scene: the default, which separates best.
DECIDING_GEOMETRY = "fundamental"
MIN_RATE = 0.01
#: Today's thresholds restated as rates: support is the count that at most 10% of unrelated pairs reach, accept the
#: count that at most 0.1% reach (the script checks that these give the built-in counts).
SUPPORT_RATE, ACCEPT_RATE = 0.10, 0.001


def null_pairs(name: str, data: Path, cache: Path, workers: int, geometry: str) -> pd.DataFrame:
    """Every query photo against every gallery photo of another label: query, gallery, their labels, inliers, and
    ``unverifiable`` (a photo with too few keypoints to tell anything: left out, as ``measure_null_table`` does)."""
    pairs = pair_inliers(data, cache, workers, ransac=GEOMETRY_SETTINGS[geometry])
    truth = read_solution(data / "truth.csv").table
    gallery = read_gallery(data / "gallery.csv")
    pairs["query_label"] = pairs["query"].map(dict(zip(truth["id"], truth["landmarks"])))
    pairs["gallery_label"] = pairs["gallery"].map(dict(zip(gallery.table["id"], gallery.table["landmark_id"])))
    pairs["set"] = name
    pairs["inliers"] = pairs["inliers"].astype(np.int64)  # every pair of these sets verifies
    keypoints = keypoint_counts(data, cache, gallery)
    pairs["unverifiable"] = [bool(unverifiable_reason(keypoints[("queries", q)], keypoints[("gallery", g)]))
                             for q, g in zip(pairs["query"], pairs["gallery"])]
    return pairs[pairs["kind"] != "positive"].reset_index(drop=True)


def keypoint_counts(data: Path, cache: Path, gallery) -> dict[tuple[str, str], int]:
    """Keypoints of every photo of a set, from the feature store ``pair_inliers`` filled."""
    verifier = Verifier(cache_dir=cache)
    truth = read_solution(data / "truth.csv").table
    queries, photos = ImageDirectory(data / "queries"), ImageDirectory(data / "gallery")
    paths = gallery.paths()
    counts = {("queries", q): len(verifier.features_of(queries.find(q))) for q in truth["id"]}
    counts.update({("gallery", g): len(verifier.features_of(photos.find(g, paths[g]))) for g in paths})
    return counts


def label_pair(frame: pd.DataFrame) -> pd.Series:
    """The unordered label pair of each row (``a | b``); a non-landmark query is ``(none)``."""
    q = frame["query_label"].replace("", "(none)")
    g = frame["gallery_label"]
    return frame["set"] + ":" + np.minimum(q, g) + " | " + np.maximum(q, g)


def shared_scenes(pairs: pd.DataFrame) -> list[str]:
    """Label pairs with pairs that ``fit_null_table`` sets aside (per set), with the evidence printed."""
    shared = []
    print(f"\n== shared scenes: label pairs with pairs set aside by fit_null_table ({DECIDING_GEOMETRY})")
    for name, frame in pairs.groupby("set", sort=False):
        cut = shared_geometry_cut(frame["inliers"].to_numpy())
        if cut is None:
            print(f"{name}: none (largest count {frame['inliers'].max()})")
            continue
        above = frame[frame["inliers"] >= cut]
        print(f"{name}: {len(above)} pairs at {cut} or more inliers (up to {above['inliers'].max()}); the "
              f"largest count of every other pair: {frame.loc[frame['inliers'] < cut, 'inliers'].max()}")
        shared += sorted(set(label_pair(above)))
    if shared:
        frame = pairs.assign(labels=label_pair(pairs))
        rows = []
        for labels, group in frame.groupby("labels"):
            direction = group["query_label"].replace("", "(none)") + " -> " + group["gallery_label"]
            for way, part in group.groupby(direction):
                rows.append({"label pair": labels, "query -> gallery": way, "pairs": len(part),
                             "median": part["inliers"].median(), "max": part["inliers"].max(),
                             ">= 14": int((part["inliers"] >= 14).sum()), "shared": labels in shared})
        table = pd.DataFrame(rows)
        others = table[~table["shared"]]
        print(table[table["shared"]].to_string(index=False))
        print(f"every other label pair ({len(others)} directions, {others['pairs'].sum()} pairs): median of medians "
              f"{others['median'].median():g}, largest {others['max'].max()}, pairs >= 14: {others['>= 14'].sum()}")
    return shared


def figures(table, counts: np.ndarray, thresholds) -> dict:
    return {"pairs": table.pairs, "set aside": len(table.set_aside), "p90": np.percentile(counts, 90),
            "p99": np.percentile(counts, 99), "max": counts.max(), "anchor": table.anchor,
            "q": table.continuation, "support": thresholds.support,
            "rate(support)": table.false_match_rate(thresholds.support), "accept": thresholds.accept,
            "rate(accept)": table.false_match_rate(thresholds.accept),
            **{f"count for {p:g}%": table.count_for_rate(p / 100) for p in (10, 1, 0.1)}}


def bootstrap_rates(pairs: pd.DataFrame, geometry: str, counts, replicates: int = 200, seed: int = 0):
    """5th and 95th percentiles of the rates of ``counts`` over tables fitted to the pairs of queries resampled with
    replacement (pairs of one query are not independent: the query is the unit)."""
    groups = [group["inliers"].to_numpy() for _, group in pairs.groupby("query")]
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(replicates):
        chosen = rng.integers(0, len(groups), len(groups))
        table = fit_null_table(np.concatenate([groups[i] for i in chosen]), extractor="rootsift", geometry=geometry)
        rates.append(table.false_match_rate(np.asarray(counts)))
    return np.percentile(rates, 5, axis=0), np.percentile(rates, 95, axis=0)


def print_check(title: str, check) -> bool:
    ok = check.within(2.0)
    print(f"-- {title}: {check.pairs} held-out pairs; every ratio in [1/2, 2]: {'yes' if ok else 'NO'}")
    print("   count  predicted  observed  ratio")
    for k, p, o, r in zip(check.counts, check.predicted, check.observed, check.ratio):
        print(f"   {k:5d}  {p:9.4f}  {o:8.4f}  {r:5.3f}")
    return ok


def query_split_checks(pairs: pd.DataFrame, geometry: str, seeds: int) -> tuple[bool, list[float]]:
    """Seeded halves of the queries of both sets: fit on one, check the other, both ways; the worst ratios."""
    queries = np.sort(pairs["query"].unique())
    passed, extremes = 0, []
    for seed in range(seeds):
        half = dict(zip(queries, np.random.default_rng(seed).permutation(len(queries)) % 2))
        side = pairs["query"].map(half).to_numpy()
        for fit_side in (0, 1):
            table = fit_null_table(pairs.loc[side == fit_side, "inliers"], extractor="rootsift", geometry=geometry)
            check = check_calibration(table, pairs.loc[side != fit_side, "inliers"], MIN_RATE)
            title = f"{geometry}, seed {seed}, queries of half {fit_side} -> half {1 - fit_side}"
            if seed == 0 or not check.within(2.0):
                print_check(title, check)
            passed += check.within(2.0)
            if not check.within(2.0):
                held = pairs[side != fit_side]
                for k, p, o in zip(check.counts, check.predicted, check.observed):
                    if not 0.5 <= o / p <= 2:
                        reached = held[held["inliers"] >= k]
                        fit = pairs.loc[side == fit_side, "inliers"]
                        print(f"   at {k}: {len(reached)} held-out pairs from {reached['query'].nunique()} queries "
                              f"where {p * len(held):.1f} were predicted; binomial P(as few or fewer) = "
                              f"{binom.cdf(len(reached), len(held), p):.3f} if pairs were independent (pairs of one "
                              f"query are not); the fitted half's own share: {(fit >= k).sum()} of {len(fit)} pairs "
                              f"({(fit >= k).mean():.4f}) from {pairs.loc[(side == fit_side) & (pairs['inliers'] >= k), 'query'].nunique()} queries")
            extremes += [check.ratio.min(), check.ratio.max()]
    return passed, extremes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", default=None, help="feature store and pair journal (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--geometries", nargs="+", default=list(GEOMETRIES), choices=GEOMETRIES)
    parser.add_argument("--seeds", type=int, default=10, help="seeded query splits checked (default 10)")
    parser.add_argument("--output-dir", type=Path, default=REPO / "delfverify" / "data")
    parser.add_argument("--no-write", action="store_true", help="measure and check, write no table")
    args = parser.parse_args()
    for data in SETS.values():
        if not (data / "gallery.csv").is_file():
            raise SystemExit(f"data set not found at {data}")
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir or tmp)
        measured = {g: pd.concat([null_pairs(name, data, cache, args.workers, g) for name, data in SETS.items()],
                                 ignore_index=True)
                    for g in dict.fromkeys([DECIDING_GEOMETRY, *args.geometries])}
        unverifiable = {g: pairs[pairs["unverifiable"]] for g, pairs in measured.items()}
        measured = {g: pairs[~pairs["unverifiable"]].reset_index(drop=True) for g, pairs in measured.items()}
        first = unverifiable[DECIDING_GEOMETRY]
        print(f"unverifiable pairs left out (a photo with fewer keypoints than a decision needs): {len(first)} "
              f"({', '.join(f'{n}: {c}' for n, c in first['set'].value_counts().items()) or 'none'}), "
              f"inliers {sorted(set(first['inliers']))}")
        shared = shared_scenes(measured[DECIDING_GEOMETRY])
        summary, verdicts, kept_pairs = {}, {}, {}
        for geometry in args.geometries:
            pairs = measured[geometry]
            thresholds = RootSIFT.thresholds[geometry]
            excluded = label_pair(pairs).isin(shared).to_numpy()
            kept = kept_pairs[geometry] = pairs[~excluded]
            fingerprint = Verifier(VerifySettings(ransac=GEOMETRY_SETTINGS[geometry])).settings_fingerprint
            for name in SETS:
                in_set = (pairs["set"] == name).to_numpy()
                everything = pairs.loc[in_set, "inliers"].to_numpy()
                summary[(geometry, f"{name}, every pair")] = figures(
                    fit_null_table(everything, extractor="rootsift", geometry=geometry, set_aside=False), everything,
                    thresholds)
                counts = pairs.loc[in_set & ~excluded, "inliers"].to_numpy()
                summary[(geometry, name)] = figures(fit_null_table(counts, extractor="rootsift", geometry=geometry),
                                                    counts, thresholds)
                summary[(geometry, name)]["pairs left out"] = int(excluded[in_set].sum())
            source = (f"landmarks-dev and landmarks-hard: every query photo (landmark and non-landmark) against every "
                      f"gallery photo of another label, {len(kept)} pairs; left out as one scene: "
                      f"{', '.join(shared) or 'none'} ({int(excluded.sum())} pairs); "
                      f"RootSIFT {RootSIFT().max_features} keypoints, {geometry} model "
                      f"(benchmarks/measure_null_tables.py)")
            table = fit_null_table(kept["inliers"].to_numpy(), extractor="rootsift", geometry=geometry,
                                   source=source, pair_fingerprint=fingerprint,
                                   unverifiable=len(unverifiable[geometry]))
            summary[(geometry, "both (shipped)")] = figures(table, kept["inliers"].to_numpy(), thresholds)
            low, high = bootstrap_rates(kept, geometry, (thresholds.support, thresholds.accept))
            summary[(geometry, "both (shipped)")].update(
                {f"rate({which}) 90%": f"{lo:.2g}-{hi:.2g}" for which, lo, hi in zip(("support", "accept"), low, high)})
            support, accept = (table.count_for_rate(r) for r in (SUPPORT_RATE, ACCEPT_RATE))
            print(f"\n{geometry}: built-in thresholds support {thresholds.support} (rate "
                  f"{table.false_match_rate(thresholds.support):.4f}), accept {thresholds.accept} (rate "
                  f"{table.false_match_rate(thresholds.accept):.5f}); the counts for rates {SUPPORT_RATE:g} and "
                  f"{ACCEPT_RATE:g}: {support} and {accept}: "
                  f"{'the same' if (support, accept) == (thresholds.support, thresholds.accept) else 'DIFFERENT'}")
            if not args.no_write:
                path = args.output_dir / f"null_rootsift_{geometry}.json"
                write_null_table(table, path)
                print(f"\nwrote {path}: {table.describe()}")
            print(f"\n== calibration check, {geometry} (counts whose predicted rate is at least {MIN_RATE:.0%})")
            ok = True
            for fit, test in (("dev", "hard"), ("hard", "dev")):
                fitted = fit_null_table(kept.loc[kept["set"] == fit, "inliers"], extractor="rootsift",
                                        geometry=geometry)
                ok &= print_check(f"{geometry}, {fit} -> {test}",
                                  check_calibration(fitted, kept.loc[kept["set"] == test, "inliers"], MIN_RATE))
            passed, extremes = query_split_checks(kept, geometry, args.seeds)
            print(f"-- {geometry}, {args.seeds} seeded query splits x 2 directions: ratios from {min(extremes):.3f} "
                  f"to {max(extremes):.3f}; every ratio in [1/2, 2] in {passed} of {2 * args.seeds}")
            verdicts[geometry] = f"{'yes' if ok else 'NO'} across sets, {passed} of {2 * args.seeds} query halves"
        print("\n== tables (set: pairs of the set with shared scenes left out; 'every pair': all of them, no rule)")
        frame = pd.DataFrame(summary).T
        for column in ("pairs", "set aside", "max", "anchor", "support", "accept", "pairs left out"):
            frame[column] = frame[column].map(lambda x: "" if pd.isna(x) else f"{int(x)}")
        print(frame.fillna("").to_string(float_format=lambda x: f"{x:.3g}"))
        gallery_check(cache, kept_pairs)
    print("\n== calibration within a factor of 2 wherever the rate is at least 1%: "
          + "; ".join(f"{g}: {v}" for g, v in verdicts.items()))


def gallery_check(cache: Path, kept_pairs: dict) -> None:
    """``measure_null_table`` on each gallery, checked against the other set's query pairs (shared scenes left
    out)."""
    print("\n== measure_null_table on each gallery (fundamental, all pairs of different labels)")
    verifier = Verifier(VerifySettings(ransac=GEOMETRY_SETTINGS["fundamental"]), cache_dir=cache)
    for name, data in SETS.items():
        try:
            result = measure_null_table(verifier, data / "gallery.csv", data / "gallery", pairs=1000)
        except CalibrationError as exc:
            print(f"{name}: {exc}")
            continue
        table = result.table
        print(f"{name}: {table.describe()}; statuses {result.pairs['status'].value_counts().to_dict()}")
        aside = result.pairs[result.pairs["status"] == "set_aside"]
        if len(aside):
            print(aside[["label_a", "label_b", "inliers"]].value_counts(["label_a", "label_b"]).to_string())
        pairs = kept_pairs.get("fundamental")
        if pairs is not None:
            other = "hard" if name == "dev" else "dev"
            print_check(f"the {name} gallery's table -> {other} query pairs",
                        check_calibration(table, pairs.loc[pairs["set"] == other, "inliers"], MIN_RATE))


if __name__ == "__main__":
    main()
