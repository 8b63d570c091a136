"""Command-line interface: a thin layer over the library functions, with the same defaults.

    delfverify verify A.jpg B.jpg [--json] [--plot matches.png]
    delfverify rerank PREDICTIONS.csv --gallery ... --gallery-images ... --query-images ...
    delfverify extract GALLERY.csv --images DIR [--workers N | --scheduler tcp://HOST:8786]
    delfverify calibrate --gallery GALLERY.csv --gallery-images DIR -o TABLE.json
    delfverify gap PREDICTIONS.csv --truth SOLUTION.csv
    delfverify tune PREDICTIONS.csv ... --truth SOLUTION.csv --gallery ... -o POLICY.json
    delfverify report DETAILS.csv --gallery ... --gallery-images ... --query-images ... -o REPORT.html

A problem with the input or the surroundings (a ``DelfverifyError``: missing file, unreadable image, model not
loadable, malformed CSV, bad option; or a file system error, told with its file and a remedy by
``delfverify.exits.describe_os_error``) prints one line ``delfverify: error: ...`` and exits with status 2. Any
other exception is a bug: its traceback is shown, with a line saying so, and the exit status is 1. SIGINT, SIGTERM
and SIGHUP stop the command in order (``delfverify.exits``): every cleanup runs, and the exit status is 128 + the
signal's number.

Every option value is checked before the command does anything (``delfverify.options.command_settings``): the
options become the settings objects that declare each setting's range (``VerifySettings``, ``RunSettings``,
``TuneConfig``, and ``measure_null_table``'s sampling), and a value out of range is one line naming the option.

Every output is planned before the work (``delfverify.outputs``). An output may be ``-`` (standard output), a
device or a FIFO; when one goes to standard output, the command's own lines (what it wrote, the scores) go to
standard error, so that they never mix into the data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import traceback
from typing import TYPE_CHECKING, Callable, Sequence

from . import __version__
from .console import DEFAULT, QUIET, VERBOSE, command_output
from .errors import DelfverifyError, shorten
from .exits import check_working_folder, describe_os_error, describe_stop, exit_status, orderly_stops
from .options import (CLIError, CommandSettings, Parser, add_data_options, add_photo_options, add_verifier_options,
                      add_worker_options, command_settings, given_paths, integer, path, run_settings, verify_settings)
from .settings import ON_MISSING, RunSettings

if TYPE_CHECKING:
    from .report import ReportResult
    from .tuning import TuneResult

logger = logging.getLogger(__name__)

# CLIError, integer, run_settings and verify_settings are also reached here (delfverify.options defines them).
__all__ = ["CLIError", "build_parser", "format_summary", "integer", "main", "run_settings", "verify_settings"]


def _say(to_stdout: bool) -> Callable[..., None]:
    """``print`` for a command's own lines: to standard error when an output goes to standard output."""
    stream = sys.stderr if to_stdout else sys.stdout
    return lambda *parts: print(*parts, file=stream)


def _cmd_verify(args: argparse.Namespace, settings: CommandSettings) -> int:
    from .calibration import format_rate
    from .outputs import OutputPlan, goes_to_stdout
    from .verifier import Verifier

    run = settings.run
    store = run.store_folder()
    plan = OutputPlan([("photo A", args.image_a), ("photo B", args.image_b)])
    plan.cache(store)
    plot = plan.file("the plot", args.plot)
    say = _say(goes_to_stdout(plot))
    verifier = Verifier(settings.verify, cache_dir=store, null_table=run.null_table)
    features_a = verifier.features_of(args.image_a)
    features_b = verifier.features_of(args.image_b)
    result = verifier.verify_features(features_a, features_b)
    accept = verifier.thresholds.accept
    accepted = result.num_inliers >= accept
    accept_rate = float(verifier.false_match_rate(accept))
    if args.plot:
        from .images import load_image
        from .plotting import plot_matches

        plot_matches(load_image(args.image_a, None), load_image(args.image_b, None), features_a, features_b,
                     result, plot)
    if args.json:
        say(json.dumps({
            "image_a": args.image_a,
            "image_b": args.image_b,
            "features": args.features,
            "num_inliers": result.num_inliers,
            "num_putative": result.num_putative,
            "num_features_a": result.num_features_a,
            "num_features_b": result.num_features_b,
            "geometry": result.geometry,
            "accept_inliers": accept,
            "accept_false_match_rate": None if math.isnan(accept_rate) else accept_rate,
            "match": accepted,
            "false_match_rate": None if math.isnan(result.false_match_rate) else result.false_match_rate,
            "unverifiable": result.unverifiable,
            "transform": None if result.transform is None else result.transform.tolist(),
        }))
    else:
        verdict = "match" if accepted else f"cannot tell: {result.unverifiable}" if result.unverifiable \
            else "no match"
        if verifier.null_table is None:
            meaning = (f"false-match rate unknown: no null table for {args.features} with the {result.geometry} "
                       f"model (measure one with 'delfverify calibrate')")
        else:
            meaning = (f"false-match rate {format_rate(result.false_match_rate)}: the share of unrelated photo pairs "
                       f"that reach {result.num_inliers} inliers")
        reached = "" if math.isnan(accept_rate) else f", which {format_rate(accept_rate)} of unrelated pairs reach"
        say(f"{result.num_inliers} inliers of {result.num_putative} putative matches "
              f"({result.num_features_a} and {result.num_features_b} features): {verdict} "
              f"(threshold {accept} inliers{reached}, for {args.features} with the {result.geometry} model); "
              f"{meaning}")
    return 0


def _cmd_rerank(args: argparse.Namespace, settings: CommandSettings) -> int:
    from .outputs import goes_to_stdout
    from .pipeline import rerank

    output = args.output or f"{os.path.splitext(os.path.basename(args.predictions))[0]}.reranked.csv"
    say = _say(any(goes_to_stdout(p) for p in (output, args.details, args.report)))
    result = rerank(args.predictions, gallery=args.gallery, gallery_images=args.gallery_images,
                    query_images=args.query_images, output=output, details=args.details, report=args.report,
                    truth=args.truth, policy=args.policy, settings=settings.verify, run=settings.run)
    summary = result.summary
    statuses = ", ".join(f"{name} {count}" for name, count in summary.items() if count and name not in
                         ("relabelled", "pairs_computed", "pairs_reused", "features_extracted"))
    details, policy = result.details, shorten(result.policy.name)
    if "chosen" in details:  # several candidates per query
        counted = (f"{int(details['chosen'].sum())} queries, {len(details)} candidates, policy {policy}): "
                   f"{statuses or 'none'}; relabelled {summary['relabelled']}")
    else:
        counted = f"{len(details)} predictions, policy {policy}): {statuses or 'none'}"
    shown = "standard output" if output == "-" else output
    say(f"wrote {shown} ({counted}; pairs verified {summary['pairs_computed']}, reused {summary['pairs_reused']}; "
        f"features extracted {summary['features_extracted']}")
    if result.scores is not None:
        say(result.scores.describe())
    if result.report is not None:
        say(_describe_report(result.report))
    for row in result.details.itertuples():
        if row.status == "error":
            logger.warning("%s: %s", shorten(row.id), shorten(row.reason, 400))
    return 0


def _cmd_extract(args: argparse.Namespace, settings: CommandSettings) -> int:
    from .extracting import extract

    if args.no_cache:
        raise CLIError("--no-cache: extract fills the feature store; name its folder with --cache-dir, or leave both "
                       "out for the user cache")
    result = extract(args.ids, images=args.images, settings=settings.verify, run=settings.run)
    for image_id, reason in result.failed.items():
        logger.warning("%s: %s", shorten(image_id), shorten(reason, 400))
    print(f"stored the features of {args.ids}: {result.describe()}")
    return 0


def _cmd_calibrate(args: argparse.Namespace, settings: CommandSettings) -> int:
    from .calibration import measure_null_table, write_null_table
    from .outputs import OutputPlan, goes_to_stdout
    from .verifier import Verifier

    store = settings.run.store_folder()
    plan = OutputPlan([("the gallery file", args.gallery)], [("the gallery image folder", args.gallery_images)])
    plan.cache(store)
    output = plan.file("the null table", args.output)
    say = _say(goes_to_stdout(output))
    verifier = Verifier(settings.verify, cache_dir=store)
    measured = measure_null_table(verifier, args.gallery, args.gallery_images, pairs=args.pairs, seed=args.seed_pairs,
                                  max_photos=args.max_photos, progress=not args.quiet and sys.stderr.isatty())
    write_null_table(measured.table, output)
    aside = measured.pairs[measured.pairs["status"] == "set_aside"]
    if len(aside):
        labels = aside.groupby(["label_a", "label_b"]).size().sort_values(ascending=False)
        logger.warning("%d pair(s) set aside as sharing geometry, from %d label pair(s), e.g. %s and %s (%d pairs): "
                       "photos of these labels may show the same place", len(aside), len(labels),
                       str(labels.index[0][0])[:80], str(labels.index[0][1])[:80], labels.iloc[0])
    say(f"wrote {args.output}: {measured.table.describe()}; use it with --null-table {args.output}")
    return 0


def _describe_report(report: "ReportResult") -> str:
    pictures = f"{report.pictures} match pictures in {report.pictures_dir}" if report.pictures else "no match pictures"
    skipped = f", {report.pictures_skipped} sampled rows without (see the warnings)" if report.pictures_skipped else ""
    shown = "standard output" if str(report.path) == "-" else report.path
    return f"wrote {shown} ({pictures}{skipped}; {report.bytes / 2**20:.1f} MiB in all)"


def _cmd_report(args: argparse.Namespace, settings: CommandSettings) -> int:
    from .details import read_details
    from .images import ImageDirectory, Photos
    from .outputs import OutputPlan
    from .report import plan_report, write_report
    from .tables import read_gallery
    from .verifier import Verifier

    if bool(args.gallery_images) != bool(args.query_images):
        raise CLIError("--gallery-images and --query-images go together: the pictures need both")
    plan = OutputPlan([("the details file", args.details), ("the truth file", args.truth),
                       ("the gallery file", args.gallery)],
                      [("the query image folder", args.query_images),
                       ("the gallery image folder", args.gallery_images)])
    report = plan_report(plan, args.output, pictures=bool(args.gallery_images))
    details = read_details(args.details)
    photos = verifier = None
    if args.gallery_images:
        paths = read_gallery(args.gallery).paths() if args.gallery else {}
        photos = Photos(ImageDirectory(args.query_images), ImageDirectory(args.gallery_images), paths)
        verifier = Verifier(settings.verify, cache_dir=settings.run.store_folder())
    result = write_report(details, report, truth=args.truth, photos=photos, verifier=verifier,
                          title=f"delfverify report: {os.path.basename(args.details)}")
    _say(report.page.to_stdout)(_describe_report(result))
    return 0


def _cmd_gap(args: argparse.Namespace, settings: CommandSettings) -> int:
    from .metrics import global_average_precision
    from .tables import read_predictions, read_solution

    predictions = read_predictions(args.predictions)
    repeated = predictions.table["id"][predictions.table["id"].duplicated()]
    if len(repeated):
        raise CLIError(f"{args.predictions}: id {shorten(repeated.iloc[0])!r} has several candidate predictions; GAP "
                       f"takes one prediction per query: choose one per query with 'delfverify rerank' first")
    truth = read_solution(args.truth)
    try:
        result = global_average_precision(predictions.table, truth.table)
    except ValueError as exc:
        raise CLIError(f"{args.predictions} against {args.truth}: {exc}") from None
    if args.json:
        print(json.dumps({"file": args.predictions, **dataclasses.asdict(result)}))
    else:
        print(f"GAP {result.gap:.4f}  predictions {result.num_predictions}  M {result.num_landmark_queries}  "
              f"correct {result.num_correct}  accuracy {result.accuracy:.4f}  ({args.predictions})")
    return 0


def _cmd_tune(args: argparse.Namespace, settings: CommandSettings) -> int:
    from .outputs import goes_to_stdout
    from .tuning import tune

    result = tune(args.predictions, truth=args.truth, gallery=args.gallery, gallery_images=args.gallery_images,
                  query_images=args.query_images, output=args.output, plot=args.plot, config=settings.tune,
                  settings=settings.verify, run=settings.run)
    say = _say(goes_to_stdout(args.output) or goes_to_stdout(args.plot))
    say(format_summary(result))
    if args.output == "-":
        say("wrote the policy to standard output" + (f" and the plot to {args.plot}" if args.plot else "")
            + "; save it to a file to use it with: delfverify rerank ... --policy FILE")
    else:
        say(f"wrote {args.output}" + (f" and {args.plot}" if args.plot else "")
            + f"; use it with: delfverify rerank ... --policy {args.output}")
    return 0


def format_summary(result: "TuneResult") -> str:
    """A few lines for the terminal: cross-validated GAP, the policy, and the comparison with the built-ins."""
    from .policy import describe_policy

    info = result.policy.info
    tuned_on = info["tuned_on"]
    selection = result.selection
    means = result.gaps.drop(columns="file").mean()
    builtins = ", ".join(f"{name} {value:.4f}" for name, value in result.baseline_scores.items())
    labels = tuned_on["labels_per_query"]
    lines = [
        f"tuned on {tuned_on['predictions']} predictions"
        + (f" (up to {labels} candidate labels per query, scored by the choice among them)" if labels > 1 else "")
        + f" of {tuned_on['queries']} queries "
        f"({tuned_on['landmark_queries']} landmarks, {len(result.gaps)} file(s)); {tuned_on['search']} search, "
        f"{result.candidates_evaluated} candidates, {tuned_on['repeats']} x {tuned_on['folds']} folds",
        f"best candidate vs default on the folds: {selection.best_margin:+.4f} GAP, standard error "
        f"{selection.best_se:.4f}; tuning on held-out folds (nested): {result.cv_margin:+.4f}, standard error "
        f"{result.cv_margin_se:.4f}",
        f"decision: {selection.decision} ({selection.reason})",
        f"cross-validated held-out GAP (nested) {result.cv_gap:.4f} +/- {result.cv_gap_std:.4f}; "
        f"chosen policy's mean over folds {result.chosen_score:.4f} (built-ins: {builtins})",
        f"policy: {describe_policy(result.policy)}",
        "GAP on all queries (mean over files): " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
        + " (tuned: in-sample)",
    ]
    if "same_as_builtin" in info:
        lines.append(f"(the written policy is the built-in {info['same_as_builtin']!r} policy)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="delfverify",
        description="Verify landmark predictions with local features and geometric verification.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true",
                           help="log debug messages, and all that TensorFlow, Pillow and OpenCV say")
    verbosity.add_argument("-q", "--quiet", action="store_true",
                           help="no progress bar, delfverify's warnings and errors only (nothing from TensorFlow, "
                                "Pillow or OpenCV)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = commands.add_parser("verify", parents=[common], help="how well two photos match",
                                 description="Match two photos with local features and affine RANSAC.")
    verify.add_argument("image_a", type=path, help="first photo")
    verify.add_argument("image_b", type=path, help="second photo")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--plot", type=path, metavar="PNG", help="write the photos side by side with inlier matches "
                        "drawn (- for standard output; the result line then goes to standard error)")
    add_verifier_options(verify)
    verify.set_defaults(handler=_cmd_verify)

    run = RunSettings()

    rerank = commands.add_parser(
        "rerank", parents=[common], help="re-rank a classifier's predictions by geometric verification",
        description="Verify each prediction against gallery photos of its label and rescale its confidence "
                    "by the policy. Where a query has several candidate labels, each is rescaled and the one with "
                    "the highest new confidence is kept. The output keeps the input's format and query order.")
    rerank.add_argument("predictions", type=path, help="predictions CSV: id,landmarks ('label score', or several pairs "
                        "'label1 score1 label2 score2 ...'), id,landmarks,confidence or id,label,confidence; several "
                        "rows or pairs per id are its candidate labels")
    rerank.add_argument("--policy", default="default",
                        help="built-in policy (default, seed) or a policy JSON file (default: %(default)s: suppress "
                             "below the inlier count that 10%% of unrelated photo pairs reach, boost from the count "
                             "that 0.1%% reach; for rootsift with a fundamental matrix 11 and 14)")
    rerank.add_argument("-o", "--output", type=path, metavar="CSV",
                        help="re-ranked predictions (default: <predictions name>.reranked.csv here; - for standard "
                             "output, the summary then goes to standard error)")
    rerank.add_argument("--details", type=path, metavar="CSV",
                        help="per-prediction details: confidences, band, gallery ids, inlier counts, status and "
                             "reason (per candidate, with its rank and whether chosen)")
    rerank.add_argument("--candidates", type=integer, default=run.candidates, metavar="N",
                        help="verify at most the first N candidates of each query and keep the one with the highest "
                             "rescaled confidence (default: %(default)s)")
    rerank.add_argument("--keep-candidates", action="store_true",
                        help="write every candidate with its rescaled confidence, best first, instead of the chosen "
                             "one (verifies them all)")
    rerank.add_argument("--on-missing", choices=ON_MISSING, default=run.on_missing,
                        help="a prediction whose images are missing/unreadable or whose label has no gallery "
                             "photo keeps its confidence, or is suppressed as if 0 inliers (default: %(default)s)")
    rerank.add_argument("--report", type=path, metavar="HTML",
                        help="a visual report of the run: summary, plots, a table of every prediction and match "
                             "pictures (in <name>_files/ beside it, a folder delfverify makes itself: an existing one "
                             "it did not make is refused)")
    rerank.add_argument("--truth", type=path, metavar="CSV", help="solution CSV id,landmarks: print GAP before and "
                        "after, the oracle and the accuracy (and show them in the report)")
    add_data_options(rerank)
    add_verifier_options(rerank)
    rerank.set_defaults(handler=_cmd_rerank)

    extract = commands.add_parser(
        "extract", parents=[common], help="fill the feature store ahead of rerank",
        description="Extract and store the features of every photo of a gallery (or of any CSV with an id column) "
                    "that the feature store lacks, on local workers or a Dask cluster, so that rerank only "
                    "verifies pairs. Run it again to resume: what is stored is skipped.")
    extract.add_argument("ids", type=path,
                         help="CSV with an id column (and optionally a gallery's relative path column)")
    extract.add_argument("--images", type=path, required=True, metavar="DIR",
                         help="the photos: DIR/<id>.jpg or DIR/a/b/c/<id>.jpg")
    add_worker_options(extract)
    add_verifier_options(extract)
    extract.set_defaults(handler=_cmd_extract)

    from .calibration import DEFAULT_PAIRS

    calibrate = commands.add_parser(
        "calibrate", parents=[common], help="measure what unrelated photo pairs reach, on your gallery",
        description="Verify seeded pairs of gallery photos of different labels and fit the table of how many "
                    "unrelated pairs reach each inlier count: the false-match rates that verify, rerank and tune "
                    "quote with --null-table. Pairs whose photos share a scene (counts far beyond chance) are set "
                    "aside and named.")
    calibrate.add_argument("--gallery", type=path, required=True, help="gallery CSV with id,landmark_id[,path]")
    calibrate.add_argument("--gallery-images", type=path, required=True, metavar="DIR",
                           help="gallery photos: DIR/<id>.jpg or DIR/a/b/c/<id>.jpg")
    calibrate.add_argument("-o", "--output", type=path, required=True, metavar="JSON", help="the null table")
    calibrate.add_argument("--pairs", type=integer, default=DEFAULT_PAIRS,
                           help="pairs of photos of different labels to verify (default: %(default)s)")
    calibrate.add_argument("--pair-seed", dest="seed_pairs", type=integer, default=0,
                           help="seed of the sample of pairs (default: %(default)s; --seed is RANSAC's)")
    calibrate.add_argument("--max-photos", type=integer, default=None,
                           help="sample the pairs among this many photos, drawn first: fewer extractions on a large "
                                "gallery (default: every photo)")
    add_verifier_options(calibrate)
    calibrate.set_defaults(handler=_cmd_calibrate)

    gap = commands.add_parser("gap", parents=[common], help="Global Average Precision of a predictions file",
                              description="GAP (Kaggle landmark recognition metric) of predictions against a "
                                          "solution file id,landmarks (space-separated labels; empty = none).")
    gap.add_argument("predictions", type=path, help="predictions CSV (any accepted format), one prediction per query")
    gap.add_argument("--truth", type=path, required=True, help="solution CSV id,landmarks")
    gap.add_argument("--json", action="store_true", help="print one JSON object")
    gap.set_defaults(handler=_cmd_gap)

    from .tuning import SPACES, TuneConfig

    tune_defaults = TuneConfig()
    tune = commands.add_parser(
        "tune", parents=[common], help="fit a re-ranking policy to labelled predictions",
        description="Verify every prediction once against up to --max-k gallery photos of its label, then search "
                    "policies around the built-in default (or, with --search wide, bands, actions and fusion "
                    "modes) for the best GAP, cross-validated over queries. Keeps default unless a candidate beats "
                    "it by more than one standard error, also on held-out folds. Writes a policy JSON for "
                    "'delfverify rerank --policy'.")
    tune.add_argument("predictions", type=path, nargs="+",
                      help="one or more predictions CSV files for the queries of --truth")
    tune.add_argument("--truth", type=path, required=True, help="solution CSV id,landmarks")
    tune.add_argument("-o", "--output", type=path, required=True, metavar="JSON", help="the tuned policy (- for "
                      "standard output; the summary then goes to standard error)")
    tune.add_argument("--plot", type=path, metavar="PNG", help="GAP against each band's min_inliers, and inlier "
                      "histograms of correct, wrong and non-landmark predictions")
    tune.add_argument("--search", choices=SPACES, default=tune_defaults.search,
                      help="small: default's thresholds, k and tier weights a few steps around default; wide: 1,500 "
                           "random policies of every mode and coordinate ascent (default: %(default)s)")
    tune.add_argument("--folds", type=integer, default=tune_defaults.folds,
                      help="cross-validation folds over queries (default: %(default)s)")
    tune.add_argument("--repeats", type=integer, default=tune_defaults.repeats,
                      help="cross-validation repeated with this many fold seeds (default: %(default)s)")
    tune.add_argument("--max-k", type=integer, default=tune_defaults.space.max_k,
                      help="most gallery photos per prediction a policy may use (default: %(default)s)")
    tune.add_argument("--cv-seed", type=integer, default=tune_defaults.seed,
                      help="seed of the folds and the random search (default: %(default)s; --seed is RANSAC's)")
    add_data_options(tune)
    add_verifier_options(tune)
    tune.set_defaults(handler=_cmd_tune)

    report = commands.add_parser(
        "report", parents=[common], help="the visual report of a run, again, from its details file",
        description="Write the report of 'rerank --report' from a details CSV, without verifying anything again: "
                    "the match pictures are recomputed from the feature store, so give the run's photos, "
                    "--cache-dir and verification options. Without the photos, the report has no pictures.")
    report.add_argument("details", type=path, help="details CSV written by 'delfverify rerank --details'")
    report.add_argument("-o", "--output", type=path, required=True, metavar="HTML", help="the report")
    report.add_argument("--truth", type=path, metavar="CSV", help="solution CSV id,landmarks: GAP, oracle, accuracy "
                        "and outcomes in the report")
    add_photo_options(report, required=False)
    add_verifier_options(report)
    report.set_defaults(handler=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``delfverify`` command; returns the exit status (``--help`` and ``--version`` exit).

    A stop (Ctrl-C, SIGTERM, SIGHUP) is one line and ``128 + the signal's number`` wherever it comes, parsing the
    options included (which imports pandas and the tuning code: long enough for a signal to arrive).
    """
    with orderly_stops():
        try:
            return _command(argv)
        except KeyboardInterrupt as exc:  # every cleanup has run
            print(f"delfverify: {describe_stop(exc)}", file=sys.stderr)
            return exit_status(exc)


def _command(argv: Sequence[str] | None) -> int:
    """The command from its options to its exit status; a stop propagates (``main`` tells it)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except DelfverifyError as exc:
        return _error(str(exc))
    with command_output(VERBOSE if args.verbose else QUIET if args.quiet else DEFAULT):  # before TF loads
        try:
            check_working_folder(given_paths(parser, args))
            return args.handler(args, command_settings(args))
        except DelfverifyError as exc:  # one line, whatever the message holds (a library's own text)
            return _error(str(exc))
        except OSError as exc:  # one that no layer described: its file and a remedy
            return _error(describe_os_error(exc))
        except Exception:  # a bug: never hide it behind a one-line message (a stop is no Exception)
            traceback.print_exc()
            print("delfverify: internal error: this is a bug in delfverify, not a problem with the input; "
                  "please report it with the traceback above", file=sys.stderr)
            return 1


def _error(message: str) -> int:
    """Print ``delfverify: error: <message>`` on one line (whatever the message holds); the exit status, 2."""
    print("delfverify: error: " + " ".join(message.replace("\r", "\n").split("\n")), file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
