"""Command-line interface: a thin layer over the library functions, with the same defaults.

    delfverify verify A.jpg B.jpg [--json] [--plot matches.png]

Errors in the input (missing file, unreadable image, model not loadable, malformed CSV) print one line
``delfverify: error: ...`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
from typing import Sequence

from . import __version__
from .extractors.delf import DEFAULT_HANDLE, ModelLoadError
from .features import DEFAULT_EXTRACTOR, EXTRACTORS
from .images import DEFAULT_MAX_SIDE, ImageError, load_image
from .parallel import default_workers
from .store import default_cache_dir
from .verification import ENGINES, RansacConfig
from .verifier import Verifier

logger = logging.getLogger(__name__)

_RANSAC = RansacConfig()


class CLIError(Exception):
    """An error to report as one line with exit status 2."""


def add_verifier_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose the extractor, the feature store and RANSAC (shared by all subcommands)."""
    group = parser.add_argument_group("features and verification")
    group.add_argument("--features", choices=EXTRACTORS, default=DEFAULT_EXTRACTOR,
                       help="local features (default: %(default)s; delf needs the TF-Hub model, see --model)")
    group.add_argument("--model", default=None,
                       help=f"delf only: TF-Hub handle or local model directory (default: {DEFAULT_HANDLE})")
    group.add_argument("--engine", choices=ENGINES, default=_RANSAC.engine,
                       help="RANSAC implementation (default: %(default)s)")
    group.add_argument("--seed", type=int, default=_RANSAC.seed,
                       help="seed of the skimage RANSAC engine; opencv is deterministic with its own fixed seed "
                            "(default: %(default)s)")
    group.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                       help="shrink photos to this longest side before extraction (default: %(default)s)")
    cache = group.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", default=None,
                       help=f"feature store directory (default: {default_cache_dir()}, or $DELFVERIFY_CACHE_DIR)")
    cache.add_argument("--no-cache", action="store_true", help="keep features in memory only")


def make_verifier(args: argparse.Namespace, cache_dir: str | None = None) -> Verifier:
    """A ``Verifier`` from the options of ``add_verifier_options`` (``cache_dir`` overrides them)."""
    if args.model is not None and args.features != "delf":
        raise CLIError("--model is only used with --features delf")
    if args.max_side < 1:
        raise CLIError(f"--max-side must be a positive integer, got {args.max_side}")
    if cache_dir is None:
        cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    return Verifier(
        args.features,
        model=args.model,
        cache_dir=cache_dir,
        ransac=RansacConfig(engine=args.engine, seed=args.seed),
        max_side=args.max_side,
    )


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Where the gallery and the photos are, and where the work runs (``rerank`` and ``tune``)."""
    parser.add_argument("--gallery", required=True, help="gallery CSV with id,landmark_id[,path]")
    parser.add_argument("--gallery-images", required=True, metavar="DIR",
                        help="gallery photos: DIR/<id>.jpg or DIR/a/b/c/<id>.jpg")
    parser.add_argument("--query-images", required=True, metavar="DIR", help="query photos, same layouts")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="local worker processes for extraction and verification (default: this machine's "
                             "cores, %(default)s)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask distributed cluster (e.g. tcp://host:8786); --cache-dir must then be "
                             "a path every worker shares")


@dataclasses.dataclass(frozen=True)
class _Run:
    """What ``add_data_options`` and ``add_verifier_options`` set up for a verification run."""

    verifier: Verifier
    gallery: object
    images: dict
    options: dict  # journal, progress, workers, scheduler: keyword arguments of rerank and tuning.measure_*


@contextlib.contextmanager
def _verification_run(args: argparse.Namespace):
    """Read the gallery, open the image folders, build the verifier and open the journal for one run.

    Parallel workers share features through a store; without ``--cache-dir`` they get a temporary one (and no
    journal), removed afterwards.
    """
    from .journal import PairJournal
    from .tables import ImageDirectory, read_gallery

    if args.workers < 1:
        raise CLIError(f"--workers must be a positive integer, got {args.workers}")
    gallery = read_gallery(args.gallery)
    images = {"query_images": ImageDirectory(args.query_images),
              "gallery_images": ImageDirectory(args.gallery_images)}
    with contextlib.ExitStack() as stack:
        parallel = args.workers > 1 or args.scheduler is not None
        scratch = stack.enter_context(tempfile.TemporaryDirectory()) if args.no_cache and parallel else None
        verifier = make_verifier(args, cache_dir=scratch)
        journal = None
        if verifier.store is not None and scratch is None:
            journal = stack.enter_context(PairJournal(verifier.store.root / "journal.sqlite"))
        options = {"journal": journal, "progress": not args.quiet and sys.stderr.isatty(),
                   "workers": args.workers, "scheduler": args.scheduler}
        yield _Run(verifier, gallery, images, options)


def _cmd_verify(args: argparse.Namespace) -> int:
    verifier = make_verifier(args)
    features_a = verifier.features(args.image_a)
    features_b = verifier.features(args.image_b)
    from .verification import verify_features

    result = verify_features(features_a, features_b, verifier.match, verifier.ransac)
    accepted = result.num_inliers >= verifier.extractor.accept_inliers
    if args.plot:
        from .plotting import plot_matches

        plot_matches(
            load_image(args.image_a, verifier.max_side),
            load_image(args.image_b, verifier.max_side),
            features_a,
            features_b,
            result,
            args.plot,
        )
    if args.json:
        print(json.dumps({
            "image_a": args.image_a,
            "image_b": args.image_b,
            "features": args.features,
            "num_inliers": result.num_inliers,
            "num_putative": result.num_putative,
            "num_features_a": result.num_features_a,
            "num_features_b": result.num_features_b,
            "accept_inliers": verifier.extractor.accept_inliers,
            "match": accepted,
            "transform": None if result.transform is None else result.transform.tolist(),
        }))
    else:
        verdict = "match" if accepted else "no match"
        print(f"{result.num_inliers} inliers of {result.num_putative} putative matches "
              f"({result.num_features_a} and {result.num_features_b} features): {verdict} "
              f"(threshold {verifier.extractor.accept_inliers} inliers for {args.features})")
    return 0


def _cmd_rerank(args: argparse.Namespace) -> int:
    from .policy import load_policy
    from .rerank import rerank
    from .tables import read_predictions, write_predictions

    predictions = read_predictions(args.predictions)
    policy = load_policy(args.policy, args.features)
    if policy.extractor != args.features:
        logger.warning("policy %s was set for %s features, running with %s: its inlier thresholds may not fit",
                       policy.name, policy.extractor, args.features)
    output = args.output or f"{os.path.splitext(os.path.basename(args.predictions))[0]}.reranked.csv"
    with _verification_run(args) as run:
        result = rerank(predictions, run.gallery, run.verifier, policy, **run.images, on_missing=args.on_missing,
                        **run.options)
    write_predictions(result.predictions, output)
    if args.details:
        from .fileio import atomic_write

        with atomic_write(args.details, "w", newline="", encoding="utf-8") as handle:
            result.details.to_csv(handle, index=False, lineterminator="\n")
    summary = result.summary
    statuses = ", ".join(f"{name} {count}" for name, count in summary.items()
                         if count and name not in ("pairs_computed", "pairs_reused", "features_extracted"))
    print(f"wrote {output} ({len(result.details)} predictions, policy {policy.name}): {statuses or 'none'}; "
          f"pairs verified {summary['pairs_computed']}, reused {summary['pairs_reused']}; "
          f"features extracted {summary['features_extracted']}")
    for row in result.details.itertuples():
        if row.status == "error":
            logger.warning("%s: %s", row.id, row.reason)
    return 0


def _cmd_gap(args: argparse.Namespace) -> int:
    from .metrics import global_average_precision
    from .tables import read_predictions, read_solution

    predictions = read_predictions(args.predictions)
    result = global_average_precision(predictions.table, read_solution(args.truth))
    if args.json:
        print(json.dumps({"file": args.predictions, **dataclasses.asdict(result)}))
    else:
        print(f"GAP {result.gap:.4f}  predictions {result.num_predictions}  M {result.num_landmark_queries}  "
              f"correct {result.num_correct}  accuracy {result.accuracy:.4f}  ({args.predictions})")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from .tables import read_predictions, read_solution
    from .tuning import (SearchSpace, TuneConfig, assign_folds, format_summary, measure_builtin_inliers,
                         measure_inliers, plot_tuning, tune, write_policy)

    space = dataclasses.replace(SearchSpace(), max_k=args.max_k)
    config = TuneConfig(folds=args.folds, seed=args.cv_seed, space=space)
    predictions = [read_predictions(path) for path in args.predictions]
    truth = read_solution(args.truth)
    assign_folds(truth, config.folds, config.seed)  # too few landmark queries: fail before reading any image
    with _verification_run(args) as run:
        inliers = measure_inliers(predictions, run.gallery, run.verifier, **run.images, max_k=space.max_k,
                                  selection=space.selection, **run.options)
        baselines = measure_builtin_inliers(predictions, run.gallery, run.verifier, **run.images,
                                            extractor=args.features, space=space, **run.options)
    result = tune(predictions, truth, inliers, extractor=args.features, config=config, baseline_inliers=baselines,
                  names=args.predictions)
    write_policy(result.policy, args.output)
    if args.plot:
        plot_tuning(result, args.plot)
    print(format_summary(result))
    print(f"wrote {args.output}" + (f" and {args.plot}" if args.plot else "")
          + f"; use it with: delfverify rerank ... --policy {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delfverify",
        description="Verify landmark predictions with local features and geometric verification.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = commands.add_parser("verify", parents=[common], help="how well two photos match",
                                 description="Match two photos with local features and affine RANSAC.")
    verify.add_argument("image_a", help="first photo")
    verify.add_argument("image_b", help="second photo")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--plot", metavar="PNG", help="write the photos side by side with inlier matches drawn")
    add_verifier_options(verify)
    verify.set_defaults(handler=_cmd_verify)

    from .rerank import ON_MISSING

    rerank = commands.add_parser(
        "rerank", parents=[common], help="re-rank a classifier's predictions by geometric verification",
        description="Verify each prediction against gallery photos of its label and rescale its confidence "
                    "by the policy. The output keeps the input's format and row order.")
    rerank.add_argument("predictions", help="predictions CSV: id,landmarks ('label score'), "
                        "id,landmarks,confidence or id,label,confidence")
    rerank.add_argument("--policy", default="default",
                        help="built-in policy (default, seed) or a policy JSON file (default: %(default)s)")
    rerank.add_argument("-o", "--output", metavar="CSV",
                        help="re-ranked predictions (default: <predictions name>.reranked.csv here)")
    rerank.add_argument("--details", metavar="CSV", help="per-prediction details: confidences, band, gallery "
                        "ids, inlier counts, status and reason")
    rerank.add_argument("--on-missing", choices=ON_MISSING, default="keep",
                        help="a prediction whose images are missing/unreadable or whose label has no gallery "
                             "photo keeps its confidence, or is suppressed as if 0 inliers (default: %(default)s)")
    add_data_options(rerank)
    add_verifier_options(rerank)
    rerank.set_defaults(handler=_cmd_rerank)

    gap = commands.add_parser("gap", parents=[common], help="Global Average Precision of a predictions file",
                              description="GAP (Kaggle landmark recognition metric) of predictions against a "
                                          "solution file id,landmarks (space-separated labels; empty = none).")
    gap.add_argument("predictions", help="predictions CSV (any accepted format)")
    gap.add_argument("--truth", required=True, help="solution CSV id,landmarks")
    gap.add_argument("--json", action="store_true", help="print one JSON object")
    gap.set_defaults(handler=_cmd_gap)

    from .tuning import SearchSpace, TuneConfig

    tune_defaults, space_defaults = TuneConfig(), SearchSpace()
    tune = commands.add_parser(
        "tune", parents=[common], help="fit a re-ranking policy to labelled predictions",
        description="Verify every prediction once against up to --max-k gallery photos of its label, then search "
                    "policies (bands, thresholds, actions, fusion modes) for the best GAP, cross-validated over "
                    "queries. Writes a policy JSON for 'delfverify rerank --policy'.")
    tune.add_argument("predictions", nargs="+", help="one or more predictions CSV files for the queries of --truth")
    tune.add_argument("--truth", required=True, help="solution CSV id,landmarks")
    tune.add_argument("-o", "--output", required=True, metavar="JSON", help="the tuned policy")
    tune.add_argument("--plot", metavar="PNG", help="GAP against each band's min_inliers, and inlier histograms "
                      "of correct, wrong and non-landmark predictions")
    tune.add_argument("--folds", type=int, default=tune_defaults.folds,
                      help="cross-validation folds over queries (default: %(default)s)")
    tune.add_argument("--max-k", type=int, default=space_defaults.max_k,
                      help="most gallery photos per prediction a policy may use (default: %(default)s)")
    tune.add_argument("--cv-seed", type=int, default=tune_defaults.seed,
                      help="seed of the folds and the random search (default: %(default)s; --seed is RANSAC's)")
    add_data_options(tune)
    add_verifier_options(tune)
    tune.set_defaults(handler=_cmd_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``delfverify`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("delfverify").setLevel(
        logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    )
    try:
        return args.handler(args)
    except (CLIError, ImageError, ModelLoadError, ValueError, OSError) as exc:
        print(f"delfverify: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("delfverify: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
