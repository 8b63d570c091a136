"""A visual report of a run: one static HTML page, and a folder of match pictures beside it.

``write_report`` makes it from what a run already has: the details table (a row per prediction, ``rerank``'s
``RerankResult.details`` or a details CSV read back with ``read_details``; a row per candidate, with ``rank`` and
``chosen`` columns, when the input had several labels per query), optionally the run's summary and the truth.

- **Summary**: the rows of each status, the pairs and run time when the run's summary is given, and with the truth
  the GAP before and after, the oracle (top-1, and top-N with candidates) and the accuracy before and after
  (``run_scores``).
- **Plots**, inline SVG drawn here (no plotting library): the most inliers of any gallery photo per prediction,
  as histograms of correct, wrong and non-landmark predictions (with the truth) or per status; and the confidence
  after against before.
- **Table**: every row of the details, embedded in the page as compact JSON and shown 100 rows at a time by a small
  inline script: sort by any column, filter by status (``?status=...``), by id or label (``?q=...``), chosen
  candidates only (``?chosen=1``). Nothing is loaded from the network.
- **Match pictures**: for up to ``PICTURES_PER_KIND`` rows of each kind in ``PICTURE_KINDS`` (a seeded random
  sample, ``sample_pictures``), the query and the gallery photo with the most inliers side by side with the inlier
  matches drawn, as JPEG files of at most ``PICTURE_SIDE`` pixels in ``<report name>_files/``, linked from their
  rows. The matches are recomputed from the features in the store with the run's settings; nothing is extracted
  and the run's results are not changed. A picture whose photo or features are missing is skipped with a
  warning, and its row says why. The pictures stop at ``PICTURES_MAX_BYTES`` in all.

The report is planned before any work (``plan_report``), and written all or nothing (``delfverify.outputs``):
every picture is encoded in memory, then the pictures and the page are written together. The tool makes the
pictures' folder itself, with a manifest listing the pictures; it writes into no folder it did not make (an
existing folder without its manifest, or a symbolic link, is refused before any work) and removes only pictures
its manifest lists.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image

from .calibration import format_rate
from .csv_input import words
from .details import check_details, relabelled
from .errors import shorten
from .fileio import check_path, path_or_none
from .images import ImageError, ImageLookupError, Photos, load_image, read_bytes
from .metrics import OUTCOMES, RunScores, load_truth, outcomes, run_scores
from .outputs import FILE, Output, OutputError, OutputPlan, OwnedFolder, PathArg, write_outputs
from .plotting import draw_matches, encode_picture
from .rescaling import STATUSES
from .store import content_hash
from .tables import Solution
from .verifier import Verifier

logger = logging.getLogger(__name__)

#: The kinds of rows that get match pictures: statuses, and ``relabelled`` (a query's chosen candidate that is not
#: the classifier's first). ``unverifiable``: a photo with too few keypoints to give evidence either way;
#: ``verified`` is the undecided middle: checked, but the evidence left the confidence unchanged. Other statuses
#: have no gallery photo to show.
PICTURE_KINDS = ("boosted", "suppressed", "relabelled", "unverifiable", "verified", "error")
#: The names of the match pictures in the report's folder: the only files the tool writes or removes there.
PICTURE_NAME = re.compile(rf"(?:{'|'.join(PICTURE_KINDS)})-\d+\.jpg")
#: At most this many match pictures per kind, whatever the number of rows.
PICTURES_PER_KIND = 12
#: Seed of the sample of rows that get pictures.
PICTURE_SEED = 0
#: Longest side of a match picture (both photos side by side), in pixels.
PICTURE_SIDE = 640
#: No picture is written once the pictures hold this many bytes.
PICTURES_MAX_BYTES = 8 * 2**20
#: Rows of the table shown at a time.
PAGE_ROWS = 100
#: The inlier histograms put counts at or above this in their last bin.
HISTOGRAM_TOP = 60

_COLOURS = {"boosted": "#1a9850", "suppressed": "#d73027", "verified": "#4575b4", "unverifiable": "#abd9e9",
            "skipped": "#999999",
            "no_gallery": "#fdae61", "error": "#762a83", "no_prediction": "#cccccc", "stopped": "#8c510a",
            "correct": "#1a9850", "wrong": "#d73027", "non-landmark": "#fdae61"}
_SUMMARY_NAMES = {"relabelled": "queries relabelled", "pairs_computed": "pairs verified",
                  "pairs_reused": "pairs reused from the journal", "features_extracted": "features extracted"}


@dataclass(frozen=True)
class Picture:
    """The match picture of one row: ``file`` (relative to the page) or why there is none (``why``)."""

    row: int
    kind: str
    file: str = ""
    why: str = ""
    width: int = 0
    height: int = 0
    inliers: int = 0
    false_match_rate: float = math.nan


@dataclass(frozen=True)
class ReportResult:
    """What ``write_report`` wrote: the page, the pictures' folder, how many pictures it holds and how many sampled
    rows have none (a missing photo or features, or the byte budget spent), and the bytes of page and pictures."""

    path: Path
    pictures_dir: Path
    pictures: int
    pictures_skipped: int
    bytes: int


@dataclass(frozen=True)
class ReportOutput:
    """A planned report (``plan_report``): the page, and the folder of its pictures (``None`` when the report has
    no pictures and there is no folder of an earlier report of the tool's to tidy)."""

    page: Output
    pictures: OwnedFolder | None


def plan_report(plan: OutputPlan, path: PathArg | None, *, pictures: bool,
                name: str = "the report") -> ReportOutput | None:
    """Plan a report's page and, beside its real path, its pictures' folder ``<page stem>_files`` (``None`` for
    ``None``). With ``pictures`` the page must be a file (a device, a FIFO or standard output takes the page
    alone), and the folder must be missing or one the tool made (with its manifest); without, a folder of the
    tool's is planned for tidying and any other is left alone.

    Raises
    ------
    OutputError
        Before any work: the page or the folder collides with an input or another output, or cannot be made.
    """
    if path is None:
        return None
    page = plan.file(name, path, remedy="choose another path")
    if page.kind != FILE:
        if pictures:
            raise OutputError(f"{page.given}: {name} goes to {page.shown if page.given == '-' else 'a stream'}, "
                              f"but its match pictures go in a folder beside it: give a file name, or make the "
                              f"report without the photos ('delfverify report' without --gallery-images)")
        return ReportOutput(page, None)
    folder = plan.folder("the report's pictures folder", page.path.with_name(f"{page.path.stem}_files"),
                         PICTURE_NAME, member_name="the match picture", purpose="the match pictures of a report "
                         "beside this folder", create=pictures, remedy="choose another report name")
    return ReportOutput(page, folder)


@dataclass(frozen=True)
class RenderedReport:
    """A report made in memory (``render_report``): the files to write, with the names its pictures' folder holds
    (for ``delfverify.outputs.write_outputs``), and what ``write_report`` returns."""

    files: list[tuple[Output, bytes]]
    folders: list[tuple[OwnedFolder, list[str]]]
    result: ReportResult


# --- inlier counts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inliers:
    """Per row, the most inliers of any gallery photo (``most``, NaN when none was counted) and that photo's position
    in ``gallery_ids`` (``best``, the first of equals; 0 when none was counted); ``pairs`` counted in all."""

    most: np.ndarray
    best: np.ndarray
    pairs: int


def _inliers(details: pd.DataFrame) -> _Inliers:
    cells = details["inliers"].str.split(" ", expand=True)
    if cells.shape[1] == 0:  # no rows
        return _Inliers(np.zeros(0), np.zeros(0, int), 0)
    counts = cells.apply(pd.to_numeric, errors="coerce").to_numpy(float)  # "-", "" and missing cells: NaN
    best = np.argmax(np.nan_to_num(counts, nan=-1.0), axis=1)
    return _Inliers(counts[np.arange(len(counts)), best], best, int(np.count_nonzero(~np.isnan(counts))))


# --- match pictures ------------------------------------------------------------------------------------------------


def sample_pictures(details: pd.DataFrame, per_kind: int = PICTURES_PER_KIND,
                    seed: int = PICTURE_SEED) -> dict[str, np.ndarray]:
    """The rows (positions) that get a match picture, per kind of ``PICTURE_KINDS``.

    A kind's rows are those of its status (``relabelled``: chosen candidates that are not their query's first)
    that name a gallery photo; up to ``per_kind`` of them are drawn at random with ``seed`` and the kind, so the
    same details always give the same sample. Each kind's rows are returned in table order.
    """
    details = check_details(details)
    has_gallery = np.array([bool(words(ids)) for ids in details["gallery_ids"]], bool)
    status = details["status"].to_numpy(object)
    moved = relabelled(details)
    sample = {}
    for number, kind in enumerate(PICTURE_KINDS):
        rows = np.flatnonzero(has_gallery & (moved if kind == "relabelled" else status == kind))
        if len(rows) > per_kind:
            rows = np.sort(np.random.default_rng([seed, number]).choice(rows, per_kind, replace=False))
        sample[kind] = rows
    return sample


def _draw_pictures(details: pd.DataFrame, inliers: _Inliers, sample: Mapping[str, np.ndarray], folder: str,
                   photos: Photos, verifier: Verifier) -> tuple[list[Picture], dict[str, bytes]]:
    """The match picture of each sampled row, encoded: a ``Picture`` per sampled row (its file in ``folder``, the
    name of the pictures' folder), and the bytes of each file by name."""
    recorded, best = inliers.most, inliers.best
    pictures, spent, differ, files = [], 0, [], {}
    for kind, rows in sample.items():
        for number, row in enumerate(rows, start=1):
            name = f"{kind}-{number:02d}.jpg"
            query, gallery = details["id"].iloc[row], words(details["gallery_ids"].iloc[row])[best[row]]
            if spent >= PICTURES_MAX_BYTES:
                pictures.append(Picture(int(row), kind, why=f"no picture: the pictures reached "
                                                            f"{PICTURES_MAX_BYTES // 2**20} MiB"))
                continue
            try:
                count, picture = _match_picture(query, gallery, photos, verifier)
            except _NoPicture as exc:
                logger.warning("report: no match picture for %r (%s): %s", shorten(query), kind,
                               shorten(str(exc), 400))
                pictures.append(Picture(int(row), kind, why=f"no picture: {exc}"))
                continue
            if not math.isnan(recorded[row]) and count != recorded[row]:
                differ.append(f"{shorten(query)!r} against {shorten(gallery)!r}: {count} inliers now, "
                              f"{recorded[row]:.0f} in the run")
            files[name] = encode_picture(picture, "jpeg")
            spent += len(files[name])
            pictures.append(Picture(int(row), kind, f"{folder}/{name}", "", picture.width, picture.height, count,
                                    float(verifier.false_match_rate(count))))
    if differ:
        logger.warning("report: %d of %d pictures find other inlier counts than the run (e.g. %s): were the "
                       "verification settings and the feature store the same?", len(differ), len(pictures), differ[0])
    return pictures, files


class _NoPicture(Exception):
    """Why a sampled row has no picture (a photo or its features missing)."""


def _match_picture(query: str, gallery: str, photos: Photos, verifier: Verifier) -> tuple[int, Image.Image]:
    """The inlier count and the picture of a query and a gallery photo (shrunk to ``PICTURE_SIDE``), from the
    features in the store."""
    images, features = [], []
    for what, directory, image_id, relative in (("query", photos.queries, query, ""),
                                               ("gallery", photos.gallery, gallery,
                                                photos.gallery_paths.get(gallery, ""))):
        try:
            file = directory.find(image_id, relative)
            data = read_bytes(file)
        except (ImageError, ImageLookupError) as exc:
            raise _NoPicture(f"{what} photo: {exc}") from None
        key = content_hash(data)
        if not verifier.has_features(key):
            raise _NoPicture(f"{what} photo {file}: its features are not in the feature store")
        try:
            images.append(load_image(data, None, source=str(file)))
        except ImageError as exc:
            raise _NoPicture(f"{what} photo: {exc}") from None
        features.append(verifier.features_of(data, key))
    result = verifier.verify_features(*features)
    return result.num_inliers, draw_matches(*images, *features, result, max_side=PICTURE_SIDE)


# --- the page ------------------------------------------------------------------------------------------------------


def write_report(
    details: pd.DataFrame,
    path: str | os.PathLike | ReportOutput,
    *,
    summary: Mapping[str, int] | None = None,
    truth: str | os.PathLike | Solution | None = None,
    scores: RunScores | None = None,
    photos: Photos | None = None,
    verifier: Verifier | None = None,
    seconds: float | None = None,
    title: str = "delfverify report",
) -> ReportResult:
    """Write the report of a run: ``path`` (HTML) and its match pictures in ``<path stem>_files/`` beside it.

    Parameters
    ----------
    details : pandas.DataFrame
        ``RerankResult.details`` or ``read_details(file)``.
    path : path or ReportOutput
        The page (planned with the truth and the photo folders as inputs, before any work), or a report planned
        by the caller with its own inputs (``plan_report``). The page and the pictures are written together, all
        or nothing; a device, a FIFO or ``-`` takes a report without pictures.
    summary : mapping, optional
        ``RerankResult.summary``; without it the counts come from the details.
    truth : path or Solution, optional
        Adds GAP, oracle and accuracy, and the plots and table by outcome (correct, wrong, non-landmark).
    scores : RunScores, optional
        ``run_scores(details, truth)`` when the caller has it already (``rerank`` does); computed otherwise.
    photos, verifier : optional
        Where the photos are and the run's ``Verifier`` (its settings and feature store); without them, no
        pictures are drawn.
    seconds : float, optional
        The run's time, shown in the summary.
    title : str

    Returns
    -------
    ReportResult

    Raises
    ------
    OutputError
        The page or the pictures' folder collides with an input or another output, or is a folder the tool did not
        make (before any work); or they cannot be written (nothing is then replaced).
    """
    path = check_path(path, "path", (ReportOutput,))
    truth = check_path(truth, "truth", (Solution, pd.DataFrame), optional=True)
    if not isinstance(path, ReportOutput):
        plan = OutputPlan([("the truth file", path_or_none(truth))], image_folders(photos))
        path = plan_report(plan, path, pictures=photos is not None and verifier is not None)
    rendered = render_report(details, path, summary=summary, truth=truth, scores=scores, photos=photos,
                             verifier=verifier, seconds=seconds, title=title)
    write_outputs(rendered.files, rendered.folders)
    return rendered.result


def image_folders(photos: Photos | None) -> list[tuple[str, object]]:
    """The photo folders of ``photos``, for an ``OutputPlan``: nothing is written in them."""
    if photos is None:
        return []
    return [("the query image folder", photos.queries), ("the gallery image folder", photos.gallery)]


def render_report(details: pd.DataFrame, target: ReportOutput, *, summary: Mapping[str, int] | None = None,
                  truth: str | os.PathLike | Solution | None = None, scores: RunScores | None = None,
                  photos: Photos | None = None, verifier: Verifier | None = None, seconds: float | None = None,
                  title: str = "delfverify report") -> RenderedReport:
    """The report of ``write_report`` made in memory, for the caller to write with its other outputs."""
    details = check_details(details)
    page_output, owned = target.page, target.pictures
    folder = owned.path if owned is not None else Path(page_output.given + "_files")
    outcome = None
    if truth is not None:
        truth = load_truth(truth)
        scores = scores if scores is not None else run_scores(details, truth)
        outcome = outcomes(details, truth)
    inliers = _inliers(details)
    pictures, files = [], {}
    if photos is not None and verifier is not None and owned is not None:
        pictures, files = _draw_pictures(details, inliers, sample_pictures(details), folder.name, photos, verifier)
    page = _page(details, inliers, title=title, summary=summary, scores=scores, outcome=outcome, pictures=pictures,
                 seconds=seconds).encode("utf-8", errors="backslashreplace")  # a non-UTF-8 file name, escaped
    written = [(owned.member(name), data) for name, data in files.items()] + [(page_output, page)]
    drawn = [p for p in pictures if p.file]
    result = ReportResult(Path(page_output.given), folder, len(drawn), len(pictures) - len(drawn),
                          sum(len(data) for _, data in written))
    return RenderedReport(written, [(owned, list(files))] if owned is not None else [], result)


def _page(details: pd.DataFrame, inliers: _Inliers, *, title: str, summary: Mapping[str, int] | None,
          scores: RunScores | None, outcome: np.ndarray | None, pictures: Sequence[Picture],
          seconds: float | None) -> str:
    from .report_page import PAGE, histogram_svg, scatter_svg

    esc = html.escape
    counts = details["status"].value_counts()
    statuses = [s for s in STATUSES if s in counts] + sorted(s for s in counts.index if s not in STATUSES)
    facts = [f'<tr><td><a href="?status={quote(s)}#table">{esc(s)}</a></td><td>{int(counts[s]):,}</td></tr>'
             for s in statuses]
    extra = dict(summary or {})
    if "chosen" in details.columns:
        extra.setdefault("relabelled", int(relabelled(details).sum()))
    else:  # one label per query: nothing can be relabelled
        extra.pop("relabelled", None)
    for key, value in extra.items():
        name = esc(_SUMMARY_NAMES.get(key, key))
        if key == "relabelled":
            name = f'<a href="?status=relabelled#table">{name}</a>'
        if key not in STATUSES:
            facts.append(f"<tr><td>{name}</td><td>{int(value):,}</td></tr>")
    recorded = inliers.most
    facts.append(f"<tr><td>pairs with an inlier count</td><td>{inliers.pairs:,}</td></tr>")
    if seconds is not None:
        facts.append(f"<tr><td>run time</td><td>{seconds:,.1f} s</td></tr>")
    score_rows = ""
    if scores is not None:
        rows = [("GAP", f"{scores.gap_before:.4f} &rarr; {scores.gap_after:.4f}"),
                ("oracle (top-1)", f"{scores.oracle:.4f}")]
        if scores.oracle_candidates is not None:
            rows.append((f"oracle (top-{scores.candidates})", f"{scores.oracle_candidates:.4f}"))
        rows += [("accuracy", f"{scores.accuracy_before:.4f} &rarr; {scores.accuracy_after:.4f}"),
                 ("landmark queries", f"{scores.landmark_queries:,}")]
        score_rows = "".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in rows)
    groups_by = outcome if outcome is not None else details["status"].to_numpy(object)
    names = OUTCOMES if outcome is not None else tuple(statuses)
    has_count = ~np.isnan(recorded)
    histogram = histogram_svg({name: recorded[has_count & (groups_by == name)] for name in names},
                              _COLOURS, HISTOGRAM_TOP, "most inliers of any gallery photo",
                              "by outcome" if outcome is not None else "by status")
    has_both = details[["old_confidence", "new_confidence"]].notna().all(axis=1).to_numpy()
    scatter = scatter_svg(details["old_confidence"].to_numpy(float)[has_both],
                          details["new_confidence"].to_numpy(float)[has_both],
                          groups_by[has_both], _COLOURS)
    data = _table_json(details, recorded, outcome, pictures)
    return PAGE.substitute(
        title=esc(title), facts="".join(facts), scores=score_rows, histogram=histogram, scatter=scatter,
        gallery=_gallery_html(details, recorded, pictures), data=data, page_rows=PAGE_ROWS, per_kind=PICTURES_PER_KIND,
        side=PICTURE_SIDE, kinds=", ".join(PICTURE_KINDS), budget=PICTURES_MAX_BYTES // 2**20,
        score_style="" if scores is not None else "display:none")


def _table_json(details: pd.DataFrame, most: np.ndarray, outcome: np.ndarray | None,
                pictures: Sequence[Picture]) -> str:
    """The table as compact JSON, column by column: text columns with few distinct values as indices into a list of
    them, confidences rounded to 4 decimals (null: none); safe inside a ``<script>`` element."""
    columns: dict[str, list] = {"id": details["id"].tolist()}
    coded: dict[str, list[str]] = {}

    def code(name: str, values) -> None:
        codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=True)
        columns[name], coded[name] = codes.tolist(), [str(u) for u in uniques]

    if "rank" in details.columns:
        columns["rank"] = details["rank"].astype(int).tolist()
    code("label", details["label"])
    if "chosen" in details.columns:
        columns["chosen"] = details["chosen"].astype(int).tolist()
    code("band", details["band"])
    for name, column in (("old", "old_confidence"), ("new", "new_confidence")):
        columns[name] = _numbers(details[column].round(4).to_numpy(float))
    columns["inliers"] = details["inliers"].tolist()
    columns["top"] = _numbers(most)  # the most inliers, to sort the inliers column by
    columns["fmr"] = _numbers(details["false_match_rate"].to_numpy(float))
    code("status", details["status"])
    if outcome is not None:
        code("outcome", outcome)
    code("reason", details["reason"])
    picture = np.full(len(details), -1)
    if pictures:
        picture[[p.row for p in pictures]] = np.arange(len(pictures))
    columns["picture"] = picture.tolist()
    document = {"columns": list(columns), "coded": coded, "data": columns,
                "pictures": [[p.file, p.why] for p in pictures]}
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _numbers(values: np.ndarray) -> list:
    """Floats for JSON: whole numbers without a decimal point, NaN as null."""
    whole = values == np.round(values)
    return [None if v != v else int(v) if w else v for v, w in zip(values.tolist(), whole.tolist())]


def _gallery_html(details: pd.DataFrame, most: np.ndarray, pictures: Sequence[Picture]) -> str:
    esc = html.escape
    if not pictures:
        return "<p>No match pictures: the report was made without the photos and the feature store.</p>"
    parts = []
    for kind in PICTURE_KINDS:
        chosen = [p for p in pictures if p.kind == kind]
        if not chosen:
            continue
        figures = []
        for p in chosen:
            pid, label = details["id"].iloc[p.row], details["label"].iloc[p.row]
            link = f'<a href="?q={quote(pid, safe="")}#table">{esc(pid)}</a> &middot; {esc(label)}'
            ran = f" (the run: {most[p.row]:.0f})" if p.inliers != most[p.row] and most[p.row] == most[p.row] else ""
            if p.file:
                figures.append(f'<figure><a href="{esc(quote(p.file))}"><img src="{esc(quote(p.file))}" '
                               f'width="{p.width}" height="{p.height}" loading="lazy" alt="matches of {esc(pid)}">'
                               f'</a><figcaption>{link} &middot; {p.inliers} inliers{ran}{_rate(p.false_match_rate)}</figcaption>'
                               f'</figure>')
            else:
                figures.append(f'<figure class="none"><figcaption>{link}<br>{esc(p.why)}</figcaption></figure>')
        parts.append(f'<h3>{esc(kind)} ({len(chosen)})</h3><div class="pictures">{"".join(figures)}</div>')
    return "".join(parts)


def _rate(rate: float) -> str:
    """A caption's false-match rate, or nothing where there is no null table."""
    return "" if math.isnan(rate) else f" &middot; false-match rate {format_rate(rate)}"
