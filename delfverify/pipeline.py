"""The re-ranking pipeline: its steps, one module each, and ``rerank``, which runs them on files or tables.

1. ``plan_pairs`` (``delfverify.planning``): which gallery photos each prediction is checked against.
2. ``measure`` (``delfverify.measuring``): look the pairs up in the journal, extract and verify what is missing,
   gather the ``InlierTable``.
3. ``rescale`` (``delfverify.rescaling``): apply a policy to the predictions and their inlier counts.
4. ``choose_candidates`` (``delfverify.candidates``): where a query has several candidate labels, keep the one the
   photos confirm.

``rerank`` runs them with the CLI's defaults: feature store and pair journal in the user cache, resumable,
output written atomically. One unreadable image never stops a run: it is recorded in the prediction's status and
reason. The steps are importable from here too.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .candidates import (DEFAULT_CANDIDATES, Choice, best_candidates, choose_candidates, mark_stopped, undecided,
                         verify_in_rounds)
from .extractors import DEFAULT_EXTRACTOR
from .extractors.base import Extractor
from .fileio import atomic_write, check_outputs
from .images import DEFAULT_MAX_SIDE, ImageDirectory
from .matching import MatchConfig
from .measuring import CHUNK_SIZE, InlierTable, Photos, Session, measure, open_session
from .planning import PairPlan, gallery_order, plan_pairs
from .policy import BUILTINS, Policy, load_policy
from .rescaling import ON_MISSING, STATUSES, Rescaled, rescale
from .tables import Gallery, Predictions, Solution, read_gallery, read_predictions, write_predictions
from .verification import RansacConfig

if TYPE_CHECKING:
    from .report import ReportResult, RunScores

__all__ = ["CANDIDATE_DETAILS_COLUMNS", "CHUNK_SIZE", "DEFAULT_CANDIDATES", "DETAILS_COLUMNS", "ON_MISSING",
           "STATUSES", "Choice", "InlierTable", "PairPlan", "Photos", "RerankResult", "Rescaled", "Session",
           "best_candidates", "choose_candidates", "gallery_order", "measure", "open_session", "plan_pairs",
           "rerank", "rescale", "undecided"]

logger = logging.getLogger(__name__)

#: Columns of ``RerankResult.details``.
DETAILS_COLUMNS = ("id", "label", "band", "old_confidence", "new_confidence", "gallery_ids", "inliers", "status",
                   "reason")
#: Columns of ``RerankResult.details`` when queries have several candidates: a row per candidate, its rank, and
#: whether it is the query's chosen label.
CANDIDATE_DETAILS_COLUMNS = ("id", "rank", *DETAILS_COLUMNS[1:], "chosen")


@dataclass(frozen=True)
class RerankResult:
    """The re-ranked predictions (same format and query order; one row per query, its chosen candidate, or every
    candidate with ``keep_candidates``), one details row per prediction (``DETAILS_COLUMNS``; per candidate with
    ``CANDIDATE_DETAILS_COLUMNS`` when queries have several), the summary (a count per status of the details rows,
    ``relabelled``: queries whose chosen label is not the classifier's first, pairs computed and reused, features
    extracted) and the policy used."""

    predictions: Predictions
    details: pd.DataFrame
    summary: dict[str, int]
    policy: Policy
    #: With ``truth``: GAP before and after, the oracle and the accuracy.
    scores: "RunScores | None" = None
    #: With ``report``: the report's page, pictures and size.
    report: "ReportResult | None" = None


def _details(predictions: Predictions, table: InlierTable, rescaled: Rescaled,
             chosen: np.ndarray | None = None) -> pd.DataFrame:
    details = pd.DataFrame({
        "id": predictions.table["id"],
        "label": predictions.table["label"],
        "band": rescaled.band,
        "old_confidence": predictions.confidence,
        "new_confidence": rescaled.confidence,
        "gallery_ids": [" ".join(ids) for ids in table.gallery_ids],
        "inliers": [" ".join("-" if np.isnan(v) else str(int(v)) for v in row[: len(ids)])
                    for row, ids in zip(table.inliers, table.gallery_ids)],
        "status": rescaled.status,
        "reason": rescaled.reason,
    })
    if chosen is not None:
        details.insert(1, "rank", predictions.rank)
        details["chosen"] = chosen
    return details


def rerank(
    predictions: str | os.PathLike | Predictions,
    *,
    gallery: str | os.PathLike | Gallery,
    gallery_images: str | os.PathLike | ImageDirectory,
    query_images: str | os.PathLike | ImageDirectory,
    output: str | os.PathLike | None = None,
    details: str | os.PathLike | None = None,
    report: str | os.PathLike | None = None,
    truth: str | os.PathLike | Solution | None = None,
    policy: str | os.PathLike | Policy = "default",
    features: str | Extractor = DEFAULT_EXTRACTOR,
    model: str | None = None,
    match: MatchConfig | None = None,
    ransac: RansacConfig | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    on_missing: str = "keep",
    candidates: int = DEFAULT_CANDIDATES,
    keep_candidates: bool = False,
    workers: int = 1,
    scheduler=None,
    progress: bool = False,
) -> RerankResult:
    """Re-rank a classifier's predictions: verify each against gallery photos of its label, rescale by policy.

    Where a query has several candidate labels (several rows of its id), each of its first ``candidates`` is
    rescaled as a top-1 prediction would be, and the query's prediction is the one with the highest rescaled
    confidence (ties: the classifier's order); see ``choose_candidates``. Candidates are verified rank by rank,
    and a query's are no longer verified once none left could beat its best (``undecided``).

    The same run as ``delfverify rerank`` with the same arguments, down to the bytes of the files written.

    Parameters
    ----------
    predictions : path or Predictions
        A predictions CSV (``delfverify.tables.read_predictions`` formats) or a table.
    gallery : path or Gallery
        Gallery CSV ``id,landmark_id[,path]`` or a table.
    gallery_images, query_images : path or ImageDirectory
        Photo folders (``<id>.jpg`` flat or in the Kaggle nested layout).
    output, details : path, optional
        Where to write the re-ranked predictions (input format and row order) and the details CSV; atomically.
    report : path, optional
        Where to write the run's visual report (HTML, with match pictures in ``<name>_files/`` beside it); see
        ``delfverify.report.write_report``. Its pictures need the feature store (``cache=True``).
    truth : path or Solution, optional
        The true landmarks of the queries: the result's ``scores`` (GAP before and after, oracle, accuracy), also
        shown in the report. Every query must be in it.
    policy : str, path or Policy
        ``"default"``, ``"seed"``, a policy JSON file or a ``Policy``.
    features : str or Extractor
        ``"rootsift"``, ``"delf"`` or an extractor object; ``model`` is DELF's handle or folder.
    match, ransac, max_side
        Verification settings (default: the extractor's matching and geometric model, photos shrunk to 1024 px).
    cache_dir : path, optional
        Feature store and pair journal (default: ``delfverify.store.default_cache_dir()``); a killed run started
        again resumes from the journal. ``cache=False`` keeps everything in memory.
    on_missing : {"keep", "suppress"}
        A prediction whose images are missing or unreadable, or whose label has no gallery photo, keeps its
        confidence or is treated as verified with 0 inliers.
    candidates : int
        Verify at most this many candidates of each query, the classifier's first; later ones are left out.
    keep_candidates : bool
        Return (and write) every candidate with its rescaled confidence, best first within each query, instead
        of the chosen one; every candidate is then verified.
    workers : int
        Local worker processes (1: this process; the CLI defaults to the machine's cores).
    scheduler : str or distributed.Client, optional
        Run on a Dask cluster; the cache must then be on a path every worker shares.
    progress : bool
        Show a progress bar.

    Returns
    -------
    RerankResult

    Raises
    ------
    OutputError
        ``output``, ``details`` or ``report`` would overwrite an input file or each other (the same file through any
        path or link), or cannot be written; checked before any work.
    TableError, PolicyError, ImageLookupError, ModelLoadError
        Bad input files, policy, image folders or model; nothing is written then.
    ReportError
        A truth that lacks some of the queries or shows no landmark; nothing is written then.
    """
    started = time.perf_counter()
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
    check_outputs([("the output", output), ("the details file", details), ("the report", report)],
                  [("the predictions file", _path_or_none(predictions)), ("the gallery file", _path_or_none(gallery)),
                   ("the policy file", None if str(policy) in BUILTINS else _path_or_none(policy)),
                   ("the truth file", _path_or_none(truth))])
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
    if not isinstance(predictions, Predictions):
        predictions = read_predictions(predictions)
    if not isinstance(gallery, Gallery):
        gallery = read_gallery(gallery)
    rank = predictions.rank
    if rank.max(initial=0) > candidates:
        predictions = Predictions(predictions.table[rank <= candidates].reset_index(drop=True), predictions.format)
    photos = Photos(_directory(query_images), _directory(gallery_images), gallery.paths())
    if truth is not None:
        from .report import load_truth

        truth = load_truth(truth, predictions.ids)
    with open_session(features, model=model, match=match, ransac=ransac, max_side=max_side, cache_dir=cache_dir,
                      cache=cache, workers=workers, scheduler=scheduler) as session:
        extractor = session.verifier.extractor
        if not isinstance(policy, Policy):
            policy = load_policy(policy, extractor, session.verifier.ransac.geometry)
        if policy.extractor is not None and policy.extractor != extractor.name:
            logger.warning("policy %s was set for %s features, running with %s: its inlier thresholds may not fit",
                           policy.name, policy.extractor, extractor.name)
        table, verified = verify_in_rounds(predictions, gallery, policy, session, photos,
                                            early_stop=not keep_candidates, on_missing=on_missing, progress=progress)
    choice = choose_candidates(predictions, table.inliers, policy, errors=table.errors,
                               unverifiable=table.unverifiable, gallery_labels=set(gallery.table["landmark_id"]),
                               on_missing=on_missing)
    rescaled = mark_stopped(predictions, choice, verified, policy)
    several = len(choice.rows) < len(predictions)
    summary = {s: int((rescaled.status == s).sum()) for s in STATUSES}
    summary.update(relabelled=int((predictions.rank[choice.rows] > 1).sum()), pairs_computed=table.pairs_computed,
                   pairs_reused=table.pairs_reused, features_extracted=table.features_extracted)
    rows = choice.rows
    if keep_candidates:  # every candidate, each query's best first
        rows = np.lexsort((np.arange(len(predictions)), -np.nan_to_num(rescaled.confidence, nan=-np.inf),
                           predictions.query))
    chosen = predictions if np.array_equal(rows, np.arange(len(predictions))) else Predictions(
        predictions.table.iloc[rows].reset_index(drop=True), predictions.format)
    is_chosen = np.zeros(len(predictions), bool)
    is_chosen[choice.rows] = True
    result = RerankResult(chosen.with_confidence(rescaled.confidence[rows]),
                          _details(predictions, table, rescaled, is_chosen if several else None), summary, policy)
    if output is not None:
        write_predictions(result.predictions, output)
    if details is not None:
        with atomic_write(details, "w", newline="", encoding="utf-8") as handle:
            result.details.to_csv(handle, index=False, lineterminator="\n")
    if truth is not None:
        from .report import run_scores

        result = replace(result, scores=run_scores(result.details, truth))
    if report is not None:
        from .report import write_report

        result = replace(result, report=write_report(
            result.details, report, summary=summary, truth=truth, scores=result.scores, photos=photos,
            verifier=session.verifier,
            seconds=time.perf_counter() - started))
    return result


def _path_or_none(value) -> str | os.PathLike | None:
    """A file argument given as a path, or None when it was given as an object (a table, a policy)."""
    return value if isinstance(value, (str, os.PathLike)) else None


def _directory(folder: str | os.PathLike | ImageDirectory) -> ImageDirectory:
    return folder if isinstance(folder, ImageDirectory) else ImageDirectory(folder)
