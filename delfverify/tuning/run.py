"""``tune``: fit a re-ranking policy to labelled predictions in one call, from files or tables, exactly as
``delfverify tune`` does: check the inputs before any work, measure every prediction's inlier counts once through
the feature store and pair journal (``measure_inliers``, and ``measure_builtin_inliers`` for built-ins the search's
table cannot serve), fit (``delfverify.tuning.fitting.fit_policy``) and write the policy and its plot.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputTypeError
from ..fileio import PATH_TYPES, check_path, path_or_none
from ..images import ImageDirectory, Photos, as_directory
from ..measuring import Session, measure_all, open_session
from ..metrics import TruthError
from ..outputs import OutputPlan, write_outputs
from ..policy import BUILTINS, builtin_policy
from ..policy.files import encode_policy
from ..settings import RunSettings, VerifySettings, split_options
from ..tables import Gallery, Predictions, Solution, as_gallery, as_predictions, as_solution
from .crossval import assign_folds, match_candidates
from .fitting import TuneConfig, TuneResult, fit_policy
from .grid import SmallSpace
from .search import Space

#: One predictions argument of ``tune``.
PredictionsArg = str | os.PathLike | Predictions | pd.DataFrame


def measure_inliers(predictions: Sequence[Predictions], gallery: Gallery, session: Session, photos: Photos, *,
                    space: Space = SmallSpace(), progress: bool = False) -> list[np.ndarray]:
    """Inlier counts of every labelled prediction against the first ``space.max_k`` gallery photos of its label
    (``space.selection``): one table serves every candidate of the search. In a candidates file every candidate
    label of a query is verified, none left out as ``rerank`` stops early, since each policy of the search chooses
    among them on its own. Images already in the session's store are not extracted again, and no journaled pair
    is verified twice (across files, runs and ``rerank``).

    Returns
    -------
    list of float array (n_i, max_k)
        Per predictions table, in its row order; NaN where not verified (no label, fewer photos, unreadable).
    """
    return [measure_all(p, gallery, np.full(len(p), space.max_k), space.max_k, space.selection, 0, session, photos,
                        progress=progress) for p in predictions]


def measure_builtin_inliers(predictions: Sequence[Predictions], gallery: Gallery, session: Session, photos: Photos,
                            *, space: Space = SmallSpace(), progress: bool = False) -> dict[str, list[np.ndarray]]:
    """Inlier tables for the built-in policies of the session's extractor and geometric model that the tuning
    table cannot serve (another ``selection``, or a larger ``k`` than ``space.max_k``), for
    ``fit_policy(baseline_inliers=...)``: the comparison is then exact.

    Each is measured as ``rerank`` measures it for that policy (its own ``k`` per band, skipped bands not at all),
    every candidate of a query as in ``measure_inliers``.
    """
    verifier = session.verifier
    out: dict[str, list[np.ndarray]] = {}
    for name in BUILTINS:
        policy = builtin_policy(name, verifier.extractor, verifier.ransac.geometry)
        if policy.selection != space.selection or policy.max_k > space.max_k:
            out[name] = [measure_all(p, gallery, policy.k_for(np.nan_to_num(p.confidence)), max(policy.max_k, 1),
                                     policy.selection, policy.seed, session, photos, progress=progress)
                         for p in predictions]
    return out


def tune(
    predictions: PredictionsArg | Sequence[PredictionsArg],
    *,
    truth: str | os.PathLike | Solution | pd.DataFrame,
    gallery: str | os.PathLike | Gallery | pd.DataFrame,
    gallery_images: str | os.PathLike | ImageDirectory,
    query_images: str | os.PathLike | ImageDirectory,
    output: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    config: TuneConfig = TuneConfig(),
    settings: VerifySettings | None = None,
    run: RunSettings | None = None,
    **options: Any,
) -> TuneResult:
    """Fit a re-ranking policy to labelled predictions: the same run as ``delfverify tune``, and the same policy.

    Parameters
    ----------
    predictions : path, Predictions or DataFrame, or a list or tuple of them
        One or more predictions files or tables of the queries of ``truth`` (several candidates per query are
        tuned for the choice among them).
    truth : path, Solution or DataFrame
        The true landmarks of the queries (``id,landmarks``).
    gallery : path, Gallery or DataFrame
        The gallery (``id,landmark_id[,path]``).
    gallery_images, query_images : path or ImageDirectory
        The photo folders.
    output : path, optional
        Where to write the policy JSON (for ``rerank --policy``): a regular file (replaced atomically), a device
        or FIFO (written into), or ``"-"`` (standard output).
    plot : path, optional
        Where to write the PNG of ``delfverify.tuning.plot.plot_tuning``. Both are written together at the end, all
        or nothing (``delfverify.outputs``).
    config : TuneConfig
        Folds, repeats, their seed and the search space.
    settings, run, **options
        As for ``delfverify.rerank``: what decides the inlier counts, and how the measuring runs (``workers``,
        ``scheduler``, ``cache_dir``, ``cache``, ``progress``).

    Returns
    -------
    TuneResult
        The policy (as written to ``output``) and what the search found.

    Raises
    ------
    InputTypeError, InputValueError
        (a ``TypeError``, a ``ValueError``) An argument of a type it does not take, or a path that is empty or holds
        a NUL character, naming the argument (``delfverify.fileio.check_path``).
    OutputError
        Before any work: ``output``, ``plot``, the cache folder or the journal would overwrite an input or each
        other, would be written into an image folder, or cannot be written. After the work: they could not be
        written (nothing is then replaced).
    TableError, TruthError
        A malformed input, an id missing from the truth, or too few landmark queries for the folds; before any
        image is read.
    """
    settings, run = split_options(options, settings, run)
    tables = (Predictions, pd.DataFrame)
    if isinstance(predictions, (str, bytes, os.PathLike, *tables)):  # one file or table
        predictions = [predictions]
    if not isinstance(predictions, (list, tuple)):
        raise InputTypeError(f"predictions must be {PATH_TYPES}, Predictions or DataFrame, or a list or tuple of "
                             f"them; got {type(predictions).__name__}")
    predictions = [check_path(p, f"predictions[{i}]", tables) for i, p in enumerate(predictions)]
    truth = check_path(truth, "truth", (Solution, pd.DataFrame))
    gallery = check_path(gallery, "gallery", (Gallery, pd.DataFrame))
    query_images = check_path(query_images, "query_images", (ImageDirectory,))
    gallery_images = check_path(gallery_images, "gallery_images", (ImageDirectory,))
    output, plot = check_path(output, "output", optional=True), check_path(plot, "plot", optional=True)
    paths = [path_or_none(p) for p in predictions]
    plan = OutputPlan([*(("the predictions file", path) for path in paths), ("the truth file", path_or_none(truth)),
                       ("the gallery file", path_or_none(gallery))],
                      [("the query image folder", query_images), ("the gallery image folder", gallery_images)])
    plan.cache(run.store_folder(), run.journal_file())
    output, plot = plan.file("the policy", output), plan.file("the plot", plot)
    names = [str(path) if path is not None else f"predictions[{i}]" for i, path in enumerate(paths)]
    tables = [as_predictions(p) for p in predictions]
    truth_name = str(path_or_none(truth) or "the truth table")
    truth = as_solution(truth)
    for name, table in zip(names, tables):  # ids missing from the truth: fail before any work
        try:
            match_candidates(table, truth)
        except ValueError as exc:
            raise TruthError(f"{name} against {truth_name}: {exc}") from None
    try:
        assign_folds(truth, config.folds, config.seed)  # too few landmark queries: fail before reading any image
    except ValueError as exc:
        raise TruthError(f"{truth_name}: {exc}") from None
    gallery = as_gallery(gallery)
    photos = Photos(as_directory(query_images), as_directory(gallery_images), gallery.paths())
    with open_session(settings, run) as session:
        inliers = measure_inliers(tables, gallery, session, photos, space=config.space, progress=run.progress)
        baselines = measure_builtin_inliers(tables, gallery, session, photos, space=config.space,
                                            progress=run.progress)
        extractor, geometry = session.verifier.extractor.name, session.verifier.ransac.geometry
    result = fit_policy(tables, truth, inliers, extractor=extractor, geometry=geometry, config=config,
                        baseline_inliers=baselines, names=names)
    files = [(output, encode_policy(result.policy))] if output is not None else []
    if plot is not None:
        from .plot import tuning_png

        files.append((plot, tuning_png(result)))
    write_outputs(files)
    return result
