"""The re-ranking pipeline: its steps, one module each, and ``rerank``, which runs them on files or tables.

1. ``plan_pairs`` (``delfverify.planning``): which gallery photos each prediction is checked against.
2. ``measure`` (``delfverify.measuring``): look the pairs up in the journal, extract and verify what is missing,
   gather the ``InlierTable``.
3. ``rescale`` (``delfverify.rescaling``): apply a policy to the predictions and their inlier counts.
4. ``decide`` (``delfverify.candidates``): where a query has several candidate labels, keep the one the photos
   confirm; it runs steps 1 to 3 in rounds of rank, and stops verifying a query once no candidate left could win.

``rerank`` runs them with the CLI's defaults: feature store and pair journal in the user cache, resumable; every
output planned before the work and written together at the end, all or nothing (``delfverify.outputs``). One
unreadable image never stops a run: it is recorded in the prediction's status and reason. The steps are importable
from here too.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .candidates import Choice, Decision, best_candidates, choose_candidates, decide, undecided
from .details import CANDIDATE_DETAILS_COLUMNS, DETAILS_COLUMNS, encode_details
from .errors import shorten
from .fileio import check_path, path_or_none
from .images import ImageDirectory, Photos, as_directory
from .measuring import CHUNK_SIZE, InlierTable, Session, measure, open_session
from .metrics import RunScores, load_truth, run_scores
from .planning import PairPlan, gallery_order, plan_pairs
from .outputs import OutputPlan, write_outputs
from .policy import BUILTINS, Policy, load_policy
from .report import ReportResult, plan_report, render_report
from .rescaling import STATUSES, Rescaled, rescale
from .settings import RunSettings, VerifySettings, split_options
from .tables import Gallery, Predictions, Solution, as_gallery, as_predictions, encode_predictions
from .verifier import Verifier

__all__ = ["CANDIDATE_DETAILS_COLUMNS", "CHUNK_SIZE", "DETAILS_COLUMNS", "STATUSES", "Choice", "Decision",
           "InlierTable", "PairPlan", "Photos", "RerankResult", "Rescaled", "Session", "best_candidates",
           "choose_candidates", "decide", "gallery_order", "measure", "open_session", "plan_pairs", "rerank",
           "rescale", "undecided"]

logger = logging.getLogger(__name__)


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
    scores: RunScores | None = None
    #: With ``report``: the report's page, pictures and size.
    report: ReportResult | None = None

    @property
    def table(self) -> pd.DataFrame:
        """The re-ranked predictions as the output file holds them: the input's columns, text cells."""
        return self.predictions.to_frame()


def details_table(predictions: Predictions, decision: Decision, verifier: Verifier) -> pd.DataFrame:
    """The details of a run: ``DETAILS_COLUMNS``, or ``CANDIDATE_DETAILS_COLUMNS`` when a query has several
    candidates. ``false_match_rate`` is that of the most inliers of any gallery photo of the row (4 significant
    digits; empty where nothing was counted or the verifier has no null table)."""
    table, rescaled = decision.table, decision.choice.rescaled
    most = np.max(np.nan_to_num(table.inliers, nan=-1.0), axis=1, initial=-1.0)
    rates = verifier.false_match_rate(np.where(most < 0, np.nan, most))
    details = pd.DataFrame({
        "id": predictions.table["id"],
        "label": predictions.table["label"],
        "band": rescaled.band,
        "old_confidence": predictions.confidence,
        "new_confidence": rescaled.confidence,
        "gallery_ids": [" ".join(ids) for ids in table.gallery_ids],
        "inliers": [" ".join("-" if np.isnan(v) else str(int(v)) for v in row[: len(ids)])
                    for row, ids in zip(table.inliers, table.gallery_ids)],
        "false_match_rate": [float(f"{r:.4g}") for r in np.atleast_1d(rates)],
        "status": rescaled.status,
        "reason": rescaled.reason,
    })
    rows = decision.choice.rows
    if len(rows) < len(predictions):
        chosen = np.zeros(len(predictions), bool)
        chosen[rows] = True
        details.insert(1, "rank", predictions.rank)
        details["chosen"] = chosen
    return details



def rerank(
    predictions: str | os.PathLike | Predictions | pd.DataFrame,
    *,
    gallery: str | os.PathLike | Gallery | pd.DataFrame,
    gallery_images: str | os.PathLike | ImageDirectory,
    query_images: str | os.PathLike | ImageDirectory,
    output: str | os.PathLike | None = None,
    details: str | os.PathLike | None = None,
    report: str | os.PathLike | None = None,
    truth: str | os.PathLike | Solution | pd.DataFrame | None = None,
    policy: str | os.PathLike | Policy | dict = "default",
    settings: VerifySettings | None = None,
    run: RunSettings | None = None,
    **options: Any,
) -> RerankResult:
    """Re-rank a classifier's predictions: verify each against gallery photos of its label, rescale by policy.

    Where a query has several candidate labels (several rows of its id), each of its first ``candidates`` is
    rescaled as a top-1 prediction would be, and the query's prediction is the one with the highest rescaled
    confidence (ties: the classifier's order); see ``choose_candidates``. Candidates are verified rank by rank,
    and a query's are no longer verified once none left could beat its best (``decide``).

    The same run as ``delfverify rerank`` with the same arguments, down to the bytes of the files written.

    Parameters
    ----------
    predictions : path, Predictions or DataFrame
        A predictions CSV (``delfverify.tables.read_predictions`` formats), a table, or a DataFrame with the columns
        of one of those formats (``delfverify.tables.as_predictions``), checked as a file is.
    gallery : path, Gallery or DataFrame
        Gallery CSV ``id,landmark_id[,path]``, a table, or a DataFrame with those columns.
    gallery_images, query_images : path or ImageDirectory
        Photo folders (``<id>.jpg`` flat or in the Kaggle nested layout).
    output, details : path, optional
        Where to write the re-ranked predictions (input format and row order) and the details CSV: a regular file
        (replaced atomically), a device or FIFO (written into), or ``"-"`` (standard output).
    report : path, optional
        Where to write the run's visual report (HTML, with match pictures in ``<name>_files/`` beside it, a folder
        the tool makes and alone fills); see ``delfverify.report.write_report``. Its pictures need the feature
        store (``cache=True``).
    truth : path, Solution or DataFrame, optional
        The true landmarks of the queries (``id,landmarks``): the result's ``scores`` (GAP before and after,
        oracle, accuracy), also shown in the report. Every query must be in it.
    policy : str, path, Policy or dict
        ``"default"``, ``"seed"``, a policy JSON file, a ``Policy``, or a policy document as a dict (what a policy
        file holds, checked as a file is).
    settings : VerifySettings, optional
        What decides a pair's inlier count (default: RootSIFT, its matching and fundamental-matrix RANSAC, photos
        shrunk to 1024 px).
    run : RunSettings, optional
        How the run goes (default: in this process, the user cache, 5 candidates per query, missing photos keep
        their confidence, no progress bar).
    **options
        Any field of ``VerifySettings`` (``features``, ``model``, ``max_side``, ``match``, ``ransac``) or of
        ``RunSettings`` (``workers``, ``scheduler``, ``cache_dir``, ``cache``, ``candidates``, ``keep_candidates``,
        ``on_missing``, ``progress``), laid over ``settings`` and ``run``.

    Returns
    -------
    RerankResult
        ``table`` is the output file's content as a DataFrame.

    Raises
    ------
    TypeError
        A keyword that is no setting; an argument of a type it does not take (``InputTypeError``, naming it and
        the types it takes: each path is ``str``, ``bytes`` or ``os.PathLike``, ``delfverify.fileio.check_path``).
    ValueError
        A path that is empty or holds a NUL character (``InputValueError``, naming the argument).
    SettingsError
        A setting out of range.
    OutputError
        Before any work: ``output``, ``details``, ``report`` or its pictures' folder, the cache folder or the
        journal would overwrite an input file or each other (the same file through any path or link), would be
        written into an image folder, or cannot be written; the report's folder exists but the tool did not make
        it. After the work: an output could not be written (nothing is then replaced).
    TableError, PolicyError, ImageLookupError, ModelLoadError
        Bad input files, policy, image folders or model; nothing is written then.
    TruthError
        A truth that lacks some of the queries or shows no landmark; nothing is written then.
    """
    started = time.perf_counter()
    settings, run = split_options(options, settings, run)
    predictions = check_path(predictions, "predictions", (Predictions, pd.DataFrame))
    gallery = check_path(gallery, "gallery", (Gallery, pd.DataFrame))
    query_images = check_path(query_images, "query_images", (ImageDirectory,))
    gallery_images = check_path(gallery_images, "gallery_images", (ImageDirectory,))
    output, details, report = (check_path(value, name, optional=True) for value, name in
                               ((output, "output"), (details, "details"), (report, "report")))
    truth = check_path(truth, "truth", (Solution, pd.DataFrame), optional=True)
    policy = check_path(policy, "policy", (Policy, dict))
    plan = OutputPlan([("the predictions file", path_or_none(predictions)), ("the gallery file", path_or_none(gallery)),
                       ("the policy file", None if str(policy) in BUILTINS else path_or_none(policy)),
                       ("the truth file", path_or_none(truth))],
                      [("the query image folder", query_images), ("the gallery image folder", gallery_images)])
    plan.cache(run.store_folder(), run.journal_file())
    output, details = plan.file("the output", output), plan.file("the details file", details)
    report = plan_report(plan, report, pictures=True)
    predictions, gallery = as_predictions(predictions), as_gallery(gallery)
    rank = predictions.rank
    if rank.max(initial=0) > run.candidates:
        predictions = Predictions(predictions.table[rank <= run.candidates].reset_index(drop=True),
                                  predictions.format)
    photos = Photos(as_directory(query_images), as_directory(gallery_images), gallery.paths())
    if truth is not None:
        truth = load_truth(truth, predictions.ids)
    with open_session(settings, run) as session:
        extractor = session.verifier.extractor
        if not isinstance(policy, Policy):
            policy = load_policy(policy, extractor, session.verifier.ransac.geometry, session.verifier.null_table)
        if policy.extractor is not None and policy.extractor != extractor.name:
            logger.warning("policy %r was set for %s features, running with %s: its inlier thresholds may not fit",
                           shorten(policy.name), shorten(policy.extractor), extractor.name)
        decision = decide(predictions, gallery, policy, session, photos, run)
    choice = decision.choice
    rescaled = choice.rescaled
    summary = {s: int((rescaled.status == s).sum()) for s in STATUSES}
    summary.update(relabelled=int((predictions.rank[choice.rows] > 1).sum()),
                   pairs_computed=decision.table.pairs_computed, pairs_reused=decision.table.pairs_reused,
                   features_extracted=decision.table.features_extracted)
    rows = choice.rows
    if run.keep_candidates:  # every candidate, each query's best first
        rows = np.lexsort((np.arange(len(predictions)), -np.nan_to_num(rescaled.confidence, nan=-np.inf),
                           predictions.query))
    chosen = predictions if np.array_equal(rows, np.arange(len(predictions))) else Predictions(
        predictions.table.iloc[rows].reset_index(drop=True), predictions.format)
    result = RerankResult(chosen.with_confidence(rescaled.confidence[rows]),
                          details_table(predictions, decision, session.verifier), summary, policy)
    files, folders = [], []
    if output is not None:
        files.append((output, encode_predictions(result.predictions)))
    if details is not None:
        files.append((details, encode_details(result.details)))
    if truth is not None:
        result = replace(result, scores=run_scores(result.details, truth))
    if report is not None:
        rendered = render_report(result.details, report, summary=summary, truth=truth, scores=result.scores,
                                 photos=photos, verifier=session.verifier, seconds=time.perf_counter() - started)
        files += rendered.files
        folders += rendered.folders
        result = replace(result, report=rendered.result)
    write_outputs(files, folders)
    return result
