"""delfverify.report: the run report is a well-formed page with no network reference, its linked pictures exist,
the sample of pictures is bounded and deterministic, the scores agree with the metrics, a missing photo or
feature set costs one picture with the reason in its row, and 100,000 rows stay under 20 MB; the page's table,
filter and sort work in headless Chromium without a script error."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE
from PIL import Image

from delfverify import Verifier
from delfverify.images import ImageDirectory
from delfverify.metrics import global_average_precision
from delfverify.outputs import MANIFEST
from delfverify.pipeline import Photos
from delfverify.details import read_details
from delfverify.report import PICTURE_KINDS, PICTURE_SIDE, PICTURES_MAX_BYTES, PICTURES_PER_KIND, sample_pictures, \
    write_report
from delfverify.tables import read_gallery, read_predictions, read_solution

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def sample_photos() -> Photos:
    return Photos(ImageDirectory(SAMPLE / "queries"), ImageDirectory(SAMPLE / "gallery"),
                  read_gallery(SAMPLE / "gallery.csv").paths())


@pytest.fixture(scope="module")
def sample_report(sample_run, tmp_path_factory):
    """The report of the sample run, with the truth and its pictures (the run's cache, only read)."""
    folder = tmp_path_factory.mktemp("sample-report")
    details = read_details(sample_run.folder / "details.csv")
    result = write_report(details, folder / "report.html", summary={"pairs_computed": 78, "pairs_reused": 0},
                          truth=SAMPLE / "truth.csv", photos=sample_photos(),
                          verifier=Verifier(cache_dir=sample_run.cache), seconds=1.5)
    return details, result


def sample_scores(sample_run) -> tuple[float, float, float]:
    """GAP of the sample predictions and of the sample run's output, and the accuracy (= the oracle), by the metrics
    module from the files."""
    truth = read_solution(SAMPLE / "truth.csv").table
    before = global_average_precision(read_predictions(SAMPLE / "predictions.csv").table, truth)
    after = global_average_precision(read_predictions(sample_run.folder / "out.csv").table, truth)
    return before.gap, after.gap, before.accuracy


def expected_pictures(details: pd.DataFrame) -> int:
    """The pictures of a run without candidates: up to the bound per kind, every sample row naming gallery photos."""
    counts = details["status"].value_counts()
    return sum(min(PICTURES_PER_KIND, int(counts.get(kind, 0))) for kind in PICTURE_KINDS)


def synthetic_details(n: int, seed: int = 0, candidates: int = 1, gallery_ids=None) -> pd.DataFrame:
    """Seeded details of ``n`` rows shaped like a real run's: 16-hex ids, 20,000 labels, three gallery photos per
    verified row, 5% errors with a reason naming a file; with ``candidates``, that many rows per query with
    ``rank`` and ``chosen`` (the best new confidence), later candidates of some queries ``stopped``."""
    rng = np.random.default_rng(seed)
    queries = n // candidates
    ids = np.repeat([f"{v:016x}" for v in rng.integers(0, 2**63, queries)], candidates)
    gallery_ids = np.array(gallery_ids or [f"{v:016x}" for v in rng.integers(0, 2**63, 3000)], object)
    old = np.round(rng.beta(2, 3, n), 4)
    status = rng.choice(["boosted", "suppressed", "verified", "unverifiable", "skipped", "no_gallery", "error"], n,
                        p=[0.3, 0.35, 0.15, 0.05, 0.05, 0.05, 0.05]).astype(object)
    if candidates > 1:
        status[(np.arange(n) % candidates >= 3) & (rng.random(n) < 0.5)] = "stopped"
    new = np.where(status == "boosted", 2 / 3 + old / 3, np.where(status == "suppressed", old / 3, old))
    verified = ~np.isin(status, ["skipped", "no_gallery", "stopped"])
    photos = gallery_ids[rng.integers(0, len(gallery_ids), (n, 3))]
    counts = rng.integers(0, 80, (n, 3))
    details = pd.DataFrame({
        "id": ids, "label": [str(v) for v in rng.integers(0, 20_000, n)],
        "band": rng.choice(["0-0.4", "0.4-0.8", "0.8-1"], n), "old_confidence": old, "new_confidence": new,
        "gallery_ids": np.where(verified, [" ".join(row) for row in photos], ""),
        "inliers": np.where(status == "error", "- - -",
                            np.where(verified, [" ".join(map(str, row)) for row in counts], "")),
        "status": status,
        "reason": np.where(status == "error", [f"query image: /data/queries/{i[0]}/{i[1]}/{i}.jpg: file not found"
                                               for i in ids],
                           np.where(status == "no_gallery", "label has no gallery photo", "")),
    })
    if candidates > 1:
        rank = np.arange(n) % candidates + 1
        best = details.assign(q=np.arange(n) // candidates).groupby("q")["new_confidence"].idxmax().to_numpy()
        chosen = np.zeros(n, bool)
        chosen[best] = True
        details.insert(1, "rank", rank)
        details["chosen"] = chosen
    return details


# --- the page --------------------------------------------------------------------------------------------------


class _Structure(HTMLParser):
    """Checks that every element is closed in order, and collects the links and the embedded data."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.scripts: dict[str, str] = {}
        self._script_id = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[name] for name in ("href", "src", "action") if attrs.get(name) is not None]
        if tag == "script":
            self._script_id = attrs.get("id", "")
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("href", "src")]

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] == "script":
            self.scripts[self._script_id] = self.scripts.get(self._script_id, "") + data


def parse_page(path: Path) -> _Structure:
    page = path.read_text(encoding="utf-8")
    structure = _Structure()
    structure.feed(page)
    structure.close()
    return structure


def table_data(path: Path) -> dict:
    return json.loads(parse_page(path).scripts["report-data"])


def test_the_sample_report_is_well_formed_and_names_no_network_address(sample_run, sample_report):
    details, result = sample_report
    page = result.path.read_text(encoding="utf-8")
    structure = parse_page(result.path)
    assert page.startswith("<!DOCTYPE html>") and structure.errors == [] and structure.open == []
    assert not re.search(r"https?:|ftp:|url\(|@import|fetch\(|XMLHttpRequest|<link", page, re.IGNORECASE)
    for link in structure.links:  # relative: a picture beside the page, or this page with a query or fragment
        assert not re.match(r"[a-z][a-z0-9+.-]*:|//", link, re.IGNORECASE), link
    files = [link for link in structure.links if not link.startswith(("?", "#"))]
    assert files and all((result.path.parent / link).is_file() for link in files)
    assert {Path(f).name for f in files} | {MANIFEST} == {p.name for p in result.pictures_dir.iterdir()}
    manifest = json.loads((result.pictures_dir / MANIFEST).read_text())  # the tool knows the folder and its files
    assert manifest["written_by"] == "delfverify" and set(manifest["files"]) == {Path(f).name for f in files}
    data = table_data(result.path)
    assert data["data"]["id"] == details["id"].tolist()
    assert [data["coded"]["status"][s] for s in data["data"]["status"]] == details["status"].tolist()
    before, after, oracle = sample_scores(sample_run)
    assert f"GAP</td><td>{before:.4f} &rarr; {after:.4f}" in page and f"oracle (top-1)</td><td>{oracle:.4f}" in page


def test_the_sample_report_draws_one_picture_per_sampled_row_with_the_runs_inliers(sample_report):
    details, result = sample_report
    expected = expected_pictures(details)
    assert (result.pictures, result.pictures_skipped) == (expected, 0) and expected > 20
    data = table_data(result.path)
    for row, picture in enumerate(data["data"]["picture"]):
        if picture < 0:
            continue
        file, why = data["pictures"][picture]
        image = Image.open(result.path.parent / file)
        assert image.format == "JPEG" and max(image.size) <= PICTURE_SIDE and why == ""
        assert Path(file).name.startswith(details["status"][row])
    # Recomputed from the stored features, each picture finds the run's count (a caption would say "the run: N").
    page = result.path.read_text(encoding="utf-8")
    captions = re.findall(r'<a href="\?q=(\w+)#table">\w+</a> &middot; \w+ &middot; (\d+) inliers &middot; '
                          r'false-match rate [0-9.e%-]+</figcaption>', page)
    most = {pid: max(int(v) for v in cell.split()) for pid, cell in zip(details["id"], details["inliers"])}
    assert len(captions) == expected and all(int(count) == most[pid] for pid, count in captions)
    assert result.bytes == result.path.stat().st_size + sum(f.stat().st_size for f in result.pictures_dir.iterdir()
                                                            if f.name != MANIFEST)


def test_a_missing_photo_or_missing_features_cost_that_picture_only_and_the_row_says_why(sample_run, tmp_path,
                                                                                          caplog):
    details = read_details(sample_run.folder / "details.csv")
    queries = Path(shutil.copytree(SAMPLE / "queries", tmp_path / "queries"))
    gone = details["id"][details["status"] == "suppressed"].iloc[0]
    (queries / f"{gone}.jpg").unlink()
    photos = Photos(ImageDirectory(queries), ImageDirectory(SAMPLE / "gallery"))
    with caplog.at_level(logging.WARNING, logger="delfverify.report"):
        result = write_report(details, tmp_path / "r.html", photos=photos,
                              verifier=Verifier(cache_dir=sample_run.cache))
    expected = expected_pictures(details)
    assert (result.pictures, result.pictures_skipped) == (expected - 1, 1)
    data = table_data(result.path)
    row = details.index[details["id"] == gone][0]
    assert data["pictures"][data["data"]["picture"][row]] == ["", f"no picture: query photo: {queries / gone}.jpg: "
                                                                  f"file not found"]
    assert gone in caplog.text

    empty = Verifier(cache_dir=tmp_path / "empty-cache")
    result = write_report(details, tmp_path / "r.html", photos=sample_photos(), verifier=empty)
    assert (result.pictures, result.pictures_skipped) == (0, expected)
    assert empty.extracted == 0 and not (tmp_path / "empty-cache").exists()  # nothing extracted, nothing stored
    assert all("its features are not in the feature store" in why for _, why in table_data(result.path)["pictures"])
    assert not result.pictures_dir.exists()  # the first report's pictures are gone with it, and the tool's folder


def test_a_picture_that_finds_another_count_than_the_run_says_so(sample_run, tmp_path, caplog):
    details = read_details(sample_run.folder / "details.csv")
    row = int(np.flatnonzero(details["status"] == "boosted")[0])
    counts = [int(v) for v in details.loc[row, "inliers"].split()]
    details.loc[row, "inliers"] = " ".join(str(v + 1000 * (v == max(counts))) for v in counts)  # not the run's
    with caplog.at_level(logging.WARNING, logger="delfverify.report"):
        result = write_report(details, tmp_path / "r.html", photos=sample_photos(),
                              verifier=Verifier(cache_dir=sample_run.cache))
    assert f"{max(counts)} inliers (the run: {max(counts) + 1000}) &middot; false-match rate" in result.path.read_text("utf-8")
    assert caplog.text.count("find other inlier counts than the run") == 1 and "1 of " in caplog.text


def test_a_report_without_photos_has_the_table_and_plots_but_no_pictures(sample_run, tmp_path):
    details = read_details(sample_run.folder / "details.csv")
    result = write_report(details, tmp_path / "r.html")
    assert (result.pictures, result.pictures_skipped) == (0, 0) and not result.pictures_dir.exists()
    page = result.path.read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and "by status" in page and "Against the truth" in page
    assert re.search(r'<div style="display:none"><h2>Against the truth', page)  # no truth: no scores shown


def test_a_run_without_rows_or_without_inlier_counts_still_has_a_page(tmp_path):
    for name, details in (("empty", synthetic_details(10).iloc[:0]),
                          ("skipped", synthetic_details(10).assign(inliers="", gallery_ids="", status="skipped"))):
        result = write_report(details, tmp_path / f"{name}.html", photos=sample_photos(), verifier=Verifier())
        structure = parse_page(result.path)
        assert structure.errors == [] and (result.pictures, result.pictures_skipped) == (0, 0)
        assert table_data(result.path)["data"]["id"] == details["id"].tolist()


def test_text_from_the_details_cannot_break_out_of_the_page(tmp_path):
    details = synthetic_details(50, seed=1)
    details.loc[3, "reason"] = "</script><script>alert(1)</script> & <b>"
    details.loc[4, "label"] = '"><img src=x onerror=alert(1)>'
    result = write_report(details, tmp_path / "r.html")
    page = result.path.read_text(encoding="utf-8")
    assert "alert(1)</script>" not in page and "<img src=x" not in page
    data = table_data(result.path)
    assert data["coded"]["reason"][data["data"]["reason"][3]] == details["reason"][3]
    assert data["coded"]["label"][data["data"]["label"][4]] == details["label"][4]


# --- sampling --------------------------------------------------------------------------------------------------


def test_the_picture_sample_is_bounded_per_kind_deterministic_and_of_that_kind():
    details = synthetic_details(5000, seed=2, candidates=5)
    sample = sample_pictures(details)
    assert list(sample) == list(PICTURE_KINDS)
    relabelled = details["chosen"] & (details["rank"] > 1)
    for kind, rows in sample.items():
        assert len(rows) == PICTURES_PER_KIND and list(rows) == sorted(rows)
        assert (relabelled[rows].all() if kind == "relabelled" else (details["status"][rows] == kind).all())
        assert (details["gallery_ids"][rows] != "").all()
    again = sample_pictures(details.copy())
    assert all(np.array_equal(sample[k], again[k]) for k in sample)
    other = sample_pictures(details, seed=1)
    assert not all(np.array_equal(sample[k], other[k]) for k in sample)


def test_a_kind_with_fewer_rows_than_the_bound_is_shown_whole():
    details = synthetic_details(40, seed=3)
    sample = sample_pictures(details, per_kind=100)
    for kind in ("boosted", "suppressed", "verified", "error"):
        assert list(sample[kind]) == list(np.flatnonzero(details["status"] == kind))
    assert len(sample["relabelled"]) == 0  # no candidates, no relabelled rows


# --- scores ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_report(sample_run, tmp_path_factory):
    """A report of 100,000 synthetic rows whose sampled rows point at the sample photos (so every picture is
    drawn: the largest report), and the details."""
    folder = tmp_path_factory.mktemp("large-report")
    gallery = read_gallery(SAMPLE / "gallery.csv").table["id"].tolist()
    details = synthetic_details(100_000, seed=5, gallery_ids=gallery)
    queries = sorted((SAMPLE / "queries").iterdir())
    (folder / "queries").mkdir()
    for number, row in enumerate(np.concatenate(list(sample_pictures(details).values()))):
        shutil.copyfile(queries[number % len(queries)], folder / "queries" / f"{details['id'][row]}.jpg")
    photos = Photos(ImageDirectory(folder / "queries"), ImageDirectory(SAMPLE / "gallery"))
    result = write_report(details, folder / "report.html", photos=photos, verifier=Verifier(cache_dir=sample_run.cache))
    return details, result


def test_a_report_of_100000_rows_with_every_picture_stays_under_20_mb(large_report):
    details, result = large_report
    assert result.pictures == len(PICTURE_KINDS[:2] + PICTURE_KINDS[3:]) * PICTURES_PER_KIND  # no relabelled rows
    pictures = result.bytes - result.path.stat().st_size
    assert pictures <= PICTURES_MAX_BYTES
    assert result.path.stat().st_size < 8_000_000  # the page: 100,000 rows of JSON, plots and script
    assert result.bytes < 20_000_000
    assert len(table_data(result.path)["data"]["id"]) == 100_000


# --- in a browser -------------------------------------------------------------------------------------------------


def chromium(url: str, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM of ``url`` after its scripts ran, and the console messages, from headless Chromium."""
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


def rows_of(dom: str) -> list[tuple[str, list[str]]]:
    """(status, cell texts) of each row of the rendered table."""
    return [(status, re.findall(r"<td[^>]*>(.*?)</td>", cells))
            for status, cells in re.findall(r'<tr data-status="([^"]*)" data-id="[^"]*">(.*?)</tr>', dom)]


@needs_chromium
def test_the_console_check_catches_a_script_error(tmp_path):
    (tmp_path / "broken.html").write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    _, console = chromium((tmp_path / "broken.html").as_uri(), tmp_path)
    assert any("notDefined is not defined" in line for line in console)


@needs_chromium
def test_the_sample_report_shows_its_rows_and_filters_them_in_chromium(sample_report, tmp_path):
    details, result = sample_report
    dom, console = chromium(result.path.as_uri(), tmp_path)
    assert console == []
    assert 'data-ready="1"' in dom and f'data-rows="{len(details)}"' in dom
    rows = rows_of(dom)
    assert [cells[0] for _, cells in rows] == details["id"].tolist()
    assert sum('href="report_files/' in cells[-1] for _, cells in rows) == expected_pictures(details)

    dom, console = chromium(result.path.as_uri() + "?status=suppressed&sort=new&desc=1", tmp_path)
    assert console == []
    rows = rows_of(dom)
    suppressed = details[details["status"] == "suppressed"]  # the page sorts by the 4 decimals it shows, stably
    suppressed = suppressed.iloc[np.argsort(-suppressed["new_confidence"].round(4).to_numpy(), kind="stable")]
    assert {status for status, _ in rows} == {"suppressed"} and f'data-rows="{len(suppressed)}"' in dom
    assert [cells[0] for _, cells in rows] == suppressed["id"].tolist()

    dom, _ = chromium(result.path.as_uri() + f"?q={details['id'][5][:6]}", tmp_path)
    assert [cells[0] for _, cells in rows_of(dom)] == [details["id"][5]]


@needs_chromium
def test_100000_rows_render_a_page_at_a_time_in_chromium(large_report, tmp_path):
    details, result = large_report
    dom, console = chromium(result.path.as_uri() + "?status=error&sort=inliers&page=3", tmp_path)
    assert console == []
    errors = details[details["status"] == "error"]
    assert f'data-rows="{len(errors)}"' in dom and 'data-page="3"' in dom
    rows = rows_of(dom)
    assert len(rows) == 100 and {status for status, _ in rows} == {"error"}
    assert [cells[0] for _, cells in rows] == errors["id"].tolist()[200:300]  # no counts: table order kept


@needs_chromium
def test_candidates_show_with_their_rank_and_the_relabelled_view_in_chromium(tmp_path):
    details = synthetic_details(600, seed=6, candidates=3)
    result = write_report(details, tmp_path / "r.html")
    relabelled = details[details["chosen"] & (details["rank"] > 1)]
    dom, console = chromium(result.path.as_uri() + "?status=relabelled", tmp_path)
    assert console == [] and f'data-rows="{len(relabelled)}"' in dom
    rows = rows_of(dom)
    assert [cells[0] for _, cells in rows] == relabelled["id"].tolist()[:100]
    assert all(cells[3] == "\u2713" and int(cells[1]) > 1 for _, cells in rows)  # chosen, not the first
    dom, _ = chromium(result.path.as_uri() + "?chosen=1", tmp_path)
    assert 'data-rows="200"' in dom and 'data-pages="2"' in dom
