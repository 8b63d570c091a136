"""Command-line interface: a thin layer over the library functions, with the same defaults.

    delfverify verify A.jpg B.jpg [--json] [--plot matches.png]

Errors in the input (missing file, unreadable image, model not loadable, malformed CSV) print one line
``delfverify: error: ...`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Sequence

from . import __version__
from .extractors.delf import DEFAULT_HANDLE, ModelLoadError
from .features import DEFAULT_EXTRACTOR, EXTRACTORS
from .images import DEFAULT_MAX_SIDE, ImageError, load_image
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
    group.add_argument("--seed", type=int, default=_RANSAC.seed, help="RANSAC seed (default: %(default)s)")
    group.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                       help="shrink photos to this longest side before extraction (default: %(default)s)")
    cache = group.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", default=None,
                       help=f"feature store directory (default: {default_cache_dir()}, or $DELFVERIFY_CACHE_DIR)")
    cache.add_argument("--no-cache", action="store_true", help="keep features in memory only")


def make_verifier(args: argparse.Namespace) -> Verifier:
    """A ``Verifier`` from the options of ``add_verifier_options``."""
    if args.model is not None and args.features != "delf":
        raise CLIError("--model is only used with --features delf")
    if args.max_side < 1:
        raise CLIError(f"--max-side must be a positive integer, got {args.max_side}")
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    return Verifier(
        args.features,
        model=args.model,
        cache_dir=cache_dir,
        ransac=RansacConfig(engine=args.engine, seed=args.seed),
        max_side=args.max_side,
    )


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delfverify",
        description="Verify landmark predictions with local features and geometric verification.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = commands.add_parser("verify", help="how well two photos match",
                                 description="Match two photos with local features and affine RANSAC.")
    verify.add_argument("image_a", help="first photo")
    verify.add_argument("image_b", help="second photo")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--plot", metavar="PNG", help="write the photos side by side with inlier matches drawn")
    add_verifier_options(verify)
    verify.set_defaults(handler=_cmd_verify)
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
