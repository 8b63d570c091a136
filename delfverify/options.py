"""The command line's options: their value types, the parser, and the settings objects they become.

Each option is a field of a settings object (``VerifySettings``, ``RunSettings``, ``TuneConfig``, or
``measure_null_table``'s sampling), which declares its default and its range once. ``command_settings`` builds every
object a command's options describe before the command reads or writes anything, so a value out of range stops it
first, as one line naming the option (``settings_of``). A value that is not a number at all (``nan``, ``1_0``,
``٣``) is refused by its type (``integer``) while the options are parsed, and ``Parser`` tells every parsing error
in one line too, as the command tells every other error.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, NoReturn, TypeVar

from .errors import DelfverifyError, InputValueError, shorten
from .execution import default_workers
from .extractors import EXTRACTORS
from .extractors.delf import DEFAULT_HANDLE
from .fileio import expand_home
from .matching import METHODS, MatchConfig
from .numbers import NumberError, parse_number
from .settings import RunSettings, SettingsError, VerifySettings
from .store import default_cache_dir
from .verification import ENGINES, GEOMETRIES, RansacConfig

if TYPE_CHECKING:
    from .tuning import TuneConfig

T = TypeVar("T")


class CLIError(DelfverifyError):
    """A bad option or option value, reported as one line with exit status 2."""


_ARGUMENT = re.compile(r"^argument ([^:]+): ")  # how argparse starts a message about one option


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are ``CLIError``s, told in one line like every other error (argparse prints
    its usage and exits): ``--workers: 'nan' is not an integer ...; see 'delfverify rerank --help'``."""

    def error(self, message: str) -> NoReturn:
        option_first = _ARGUMENT.sub(r"\1: ", message)
        raise CLIError(f"{option_first}; see '{self.prog} --help'")


def path(text: str) -> str:
    """A path option's value, as given but for a leading ``~`` or ``~user``, expanded by the rule of every path a
    user gives (``fileio.expand_home``: ``--cache-dir=~/c``, which the shell leaves as written, names the home
    folder's ``c``). The type marks the options that name files and folders (a relative one needs the current
    folder, ``exits.check_working_folder``).

    Raises
    ------
    argparse.ArgumentTypeError
        ``~user`` names no user.
    """
    try:
        return expand_home(text, "the path")
    except InputValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def integer(text: str) -> int:
    """An integer option's value, read by ``delfverify.numbers.parse_number``: ASCII digits only (argparse's ``int``
    takes ``٣``, ``３`` and ``1_000``); the setting it goes to checks its range.

    Raises
    ------
    argparse.ArgumentTypeError
        Quoting the value (shortened) and what it must be.
    """
    try:
        return parse_number(text, integer=True)
    except NumberError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_verifier_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose the extractor, the feature store and RANSAC (shared by all subcommands); their defaults
    are those of ``VerifySettings``, ``MatchConfig`` and ``RansacConfig``."""
    verify, match, ransac = VerifySettings(), MatchConfig(), RansacConfig()
    group = parser.add_argument_group("features and verification")
    group.add_argument("--features", choices=EXTRACTORS, default=verify.features,
                       help="local features (default: %(default)s; delf needs the TF-Hub model, see --model)")
    group.add_argument("--model", default=verify.model,
                       help=f"delf only: TF-Hub handle or local model directory (default: {DEFAULT_HANDLE})")
    group.add_argument("--matcher", choices=METHODS, default=match.method,
                       help="nearest neighbours: kdtree (the research's) or brute (BLAS), identical matches; auto "
                            "picks the faster (default: %(default)s)")
    group.add_argument("--geometry", choices=GEOMETRIES, default=None,
                       help="model fitted to the matches (default: the extractor's: fundamental for rootsift, "
                            "affine for delf)")
    group.add_argument("--engine", choices=ENGINES, default=ransac.engine,
                       help="RANSAC implementation; skimage fits the affine model only (default: %(default)s)")
    group.add_argument("--seed", type=integer, default=ransac.seed,
                       help="seed of the skimage RANSAC engine; opencv is deterministic with its own fixed seed "
                            "(default: %(default)s)")
    group.add_argument("--max-side", type=integer, default=verify.max_side,
                       help="shrink photos to this longest side before extraction (default: %(default)s)")
    group.add_argument("--null-table", type=path, metavar="JSON",
                       help="what unrelated photo pairs reach, for the false-match rates of inlier counts, measured by "
                            "'delfverify calibrate' (default: the table shipped for the extractor and model)")
    cache = group.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", type=path, default=None,
                       help=f"feature store directory (default: {default_cache_dir(check=False)}, or "
                            f"$DELFVERIFY_CACHE_DIR)")
    cache.add_argument("--no-cache", action="store_true", help="keep features in memory only")


def settings_of(build: Callable[[], T], flags: Mapping[str, str] | None = None) -> T:
    """``build()``, with a ``SettingsError`` reported as the command line option it came from (``--max-side``; a
    setting's option is its name with dashes unless ``flags`` maps it)."""
    try:
        return build()
    except SettingsError as exc:
        flag = (flags or {}).get(exc.setting, f"--{exc.setting.replace('_', '-')}")
        raise CLIError(f"{flag} must be {exc.requirement}, got {shorten(repr(exc.value))}") from None


def verify_settings(args: argparse.Namespace) -> VerifySettings:
    """The ``VerifySettings`` the options describe."""
    return settings_of(lambda: VerifySettings.from_options(
        args.features, args.model, args.max_side, matcher=args.matcher, geometry=args.geometry, engine=args.engine,
        seed=args.seed))


def run_settings(args: argparse.Namespace, **fixed: Any) -> RunSettings:
    """The ``RunSettings`` the options describe (the cache, and where a command has them the workers, scheduler,
    candidates and what to do with missing photos), with ``fixed`` laid over them."""
    options = {"cache_dir": args.cache_dir, "cache": not args.no_cache}
    for name in ("workers", "scheduler", "journal", "null_table", "candidates", "keep_candidates", "on_missing"):
        if hasattr(args, name):
            options[name] = getattr(args, name)
    if hasattr(args, "workers"):
        options["progress"] = not args.quiet and sys.stderr.isatty()
    return settings_of(lambda: RunSettings(**{**options, **fixed}))


@dataclass(frozen=True)
class CommandSettings:
    """The settings objects a command's options describe (``None`` where the command has none of their options)."""

    verify: VerifySettings | None = None
    run: RunSettings | None = None
    tune: "TuneConfig | None" = None


def command_settings(args: argparse.Namespace) -> CommandSettings:
    """Every settings object the command's options describe, built before the command reads or writes anything:
    each option's range is checked where its setting is declared, and a value out of it is one line naming the
    option, whatever the command would have done first.

    Raises
    ------
    CLIError
        Naming the option, its range and the value.
    """
    if hasattr(args, "pairs"):  # calibrate: the sampling of measure_null_table
        from .calibration.measure import check_sampling

        settings_of(lambda: check_sampling(args.pairs, args.seed_pairs, args.max_photos), {"seed": "--pair-seed"})
    tune = None
    if hasattr(args, "folds"):
        from .tuning import SPACES, TuneConfig

        tune = settings_of(lambda: TuneConfig(folds=args.folds, repeats=args.repeats, seed=args.cv_seed,
                                              space=SPACES[args.search](max_k=args.max_k)), {"seed": "--cv-seed"})
    return CommandSettings(verify_settings(args) if hasattr(args, "features") else None,
                           run_settings(args) if hasattr(args, "no_cache") else None, tune)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each subcommand of ``build_parser()``, by name."""
    return dict(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def given_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The values of the command's path options (``type=path``) that were given."""
    values = [getattr(args, a.dest) for a in subcommands(parser)[args.command]._actions if a.type is path]
    return [p for v in values for p in (v if isinstance(v, list) else [v]) if p is not None]


def add_photo_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Where the gallery and the photos are (``rerank``, ``tune``, and ``report`` for its pictures)."""
    parser.add_argument("--gallery", type=path, required=required, help="gallery CSV with id,landmark_id[,path]")
    parser.add_argument("--gallery-images", type=path, required=required, metavar="DIR",
                        help="gallery photos: DIR/<id>.jpg or DIR/a/b/c/<id>.jpg")
    parser.add_argument("--query-images", type=path, required=required, metavar="DIR",
                        help="query photos, same layouts")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Where the gallery and the photos are, where the work runs and the journal (``rerank`` and ``tune``)."""
    add_photo_options(parser)
    add_worker_options(parser)
    parser.add_argument("--journal", type=path, metavar="FILE",
                        help="the pair journal (default: journal.sqlite in the cache folder); with --scheduler keep "
                             "it on a local disk of this machine, not on NFS (docs/SCALE.md)")


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """Where the work runs: local worker processes or a Dask cluster."""
    parser.add_argument("--workers", type=integer, default=default_workers(),
                        help="local worker processes for extraction and verification (default: this machine's "
                             "cores, %(default)s)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask distributed cluster (e.g. tcp://host:8786); --cache-dir must then be "
                             "a path every worker shares")
