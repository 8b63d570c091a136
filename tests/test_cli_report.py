"""``delfverify rerank --report/--truth`` and ``delfverify report`` end to end on the sample data: the scores line,
the report of the run, the same report regenerated from the details file, the library's ``rerank(report=,
truth=)``, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from test_cli_rerank import DATA, _assert_one_line_error, _main, _rerank_args
from test_report import expected_pictures, sample_scores

import delfverify
from delfverify.details import read_details
from delfverify.tables import read_predictions, read_solution


def scores_line(sample_run) -> str:
    """The line ``--truth`` prints for the sample run, from the metrics of its files."""
    before, after, accuracy = sample_scores(sample_run)
    return (f"GAP {before:.4f} -> {after:.4f} (oracle {accuracy:.4f}); accuracy {accuracy:.4f} -> {accuracy:.4f} "
            f"(15 landmark queries)")


def _data_block(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)[1])


@pytest.fixture(scope="module")
def reported_run(sample_run, tmp_path_factory):
    """``rerank --report --truth`` of the sample data on a copy of the warm cache: (status, stdout, folder)."""
    folder = tmp_path_factory.mktemp("reported-run")
    cache = sample_run.warm_cache(folder / "cache")
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", cache, "-o", folder / "out.csv", "--details",
                                           folder / "details.csv", "--report", folder / "report.html", "--truth",
                                           DATA / "truth.csv", "--workers", 1, "-q"))
    assert status == 0, err
    return out, folder


def test_rerank_with_truth_and_report_prints_the_scores_and_the_report(sample_run, reported_run):
    out, folder = reported_run
    lines = out.strip().splitlines()
    pictures = expected_pictures(read_details(folder / "details.csv"))
    assert len(lines) == 3 and lines[1] == scores_line(sample_run)
    assert re.fullmatch(rf"wrote {re.escape(str(folder / 'report.html'))} \({pictures} match pictures in "
                        rf"{re.escape(str(folder / 'report_files'))}; \d+\.\d MiB in all\)", lines[2])
    assert (folder / "out.csv").read_bytes() == sample_run.output  # the report changes nothing of the run
    assert (folder / "details.csv").read_bytes() == sample_run.details
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "pairs reused from the journal</td><td>78" in page and "run time</td>" in page


def test_report_regenerates_the_runs_report_from_its_details(sample_run, reported_run, tmp_path):
    _, folder = reported_run
    status, out, err = _main("report", folder / "details.csv", "-o", tmp_path / "again.html", "--truth",
                             DATA / "truth.csv", "--gallery", DATA / "gallery.csv", "--gallery-images",
                             DATA / "gallery", "--query-images", DATA / "queries", "--cache-dir", sample_run.cache)
    assert status == 0, err
    pictures = expected_pictures(read_details(folder / "details.csv"))
    assert out.startswith(f"wrote {tmp_path / 'again.html'} ({pictures} match pictures")
    assert _data_block(tmp_path / "again.html") == {**_data_block(folder / "report.html"),
                                                    "pictures": [[f.replace("report_files", "again_files"), why]
                                                                 for f, why in _data_block(folder / "report.html")
                                                                 ["pictures"]]}
    run_pictures = sorted((folder / "report_files").iterdir())
    assert [p.name for p in run_pictures] == sorted(p.name for p in (tmp_path / "again_files").iterdir())
    assert all(p.read_bytes() == (tmp_path / "again_files" / p.name).read_bytes() for p in run_pictures)
    page = (tmp_path / "again.html").read_text(encoding="utf-8")
    before, after, _ = sample_scores(sample_run)
    assert f"GAP</td><td>{before:.4f} &rarr; {after:.4f}" in page
    assert "run time" not in page and "pairs reused" not in page  # not in the details: not made up


def test_report_without_photos_writes_the_page_alone(reported_run, tmp_path):
    _, folder = reported_run
    status, out, err = _main("report", folder / "details.csv", "-o", tmp_path / "r.html")
    assert status == 0, err
    assert out.startswith(f"wrote {tmp_path / 'r.html'} (no match pictures;")
    assert not (tmp_path / "r_files").exists()


def test_library_rerank_returns_the_scores_and_the_report(sample_run, tmp_path):
    result = delfverify.rerank(DATA / "predictions.csv", gallery=DATA / "gallery.csv",
                               gallery_images=DATA / "gallery", query_images=DATA / "queries",
                               cache_dir=sample_run.warm_cache(tmp_path / "cache"), report=tmp_path / "r.html",
                               truth=DATA / "truth.csv")
    assert result.scores.describe() == scores_line(sample_run)
    pictures = expected_pictures(result.details)
    assert (result.report.path, result.report.pictures, result.report.pictures_skipped) == (tmp_path / "r.html",
                                                                                         pictures, 0)


def test_rerank_refuses_a_truth_without_some_queries_before_any_work(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("id,landmarks\nda07d5ba65959f62,astronaut\n")
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", tmp_path / "c", "-o", tmp_path / "o.csv",
                                           "--truth", truth))
    _assert_one_line_error(status, err, truth, "25 query id(s)")
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "c").exists()


def test_a_report_that_would_overwrite_an_input_is_refused_before_any_work(tmp_path):
    status, out, err = _main(*_rerank_args(DATA, "--cache-dir", tmp_path / "c", "-o", tmp_path / "o.csv",
                                           "--truth", DATA / "truth.csv", "--report", DATA / "truth.csv"))
    _assert_one_line_error(status, err, "the report would overwrite the truth file")
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "c").exists()
    details = tmp_path / "details.csv"
    details.write_text("id,label,band,old_confidence,new_confidence,gallery_ids,inliers,status,reason\n")
    status, out, err = _main("report", details, "-o", details)
    _assert_one_line_error(status, err, "the report would overwrite the details file")
    assert details.read_text().startswith("id,label")


def test_report_errors_are_one_line(tmp_path):
    status, out, err = _main("report", DATA / "predictions.csv", "-o", tmp_path / "r.html")
    _assert_one_line_error(status, err, DATA / "predictions.csv", "details lack column(s)")
    status, out, err = _main("report", tmp_path / "absent.csv", "-o", tmp_path / "r.html")
    _assert_one_line_error(status, err, tmp_path / "absent.csv")
    (tmp_path / "d.csv").write_text("id,label,band,old_confidence,new_confidence,gallery_ids,inliers,status,reason\n")
    status, out, err = _main("report", tmp_path / "d.csv", "-o", tmp_path / "r.html", "--query-images",
                             DATA / "queries")
    _assert_one_line_error(status, err, "--gallery-images and --query-images go together")
    assert not (tmp_path / "r.html").exists()


def test_a_run_with_candidates_reports_the_top_n_oracle_and_its_relabelled_queries(sample_run, tmp_path):
    """Each sample query gets a second candidate: its true label where the first is wrong, else another one."""
    first = read_predictions(DATA / "predictions.csv").table
    truth = dict(read_solution(DATA / "truth.csv").table.itertuples(index=False))
    labels = sorted(set(first["label"]))
    second = [truth[i] if truth[i] and truth[i] != label else next(x for x in labels if x != label)
              for i, label in zip(first["id"], first["label"])]
    rows = pd.concat([first, pd.DataFrame({"id": first["id"], "label": second,
                                           "confidence": (first["confidence"] / 2).round(4)})])
    rows.sort_values("id", kind="stable").to_csv(tmp_path / "candidates.csv", index=False)
    args = _rerank_args(DATA, "--cache-dir", sample_run.warm_cache(tmp_path / "cache"), "-o", tmp_path / "o.csv",
                        "--details", tmp_path / "d.csv", "--truth", DATA / "truth.csv", "--report",
                        tmp_path / "r.html", "--workers", 1, "-q")
    args[1] = str(tmp_path / "candidates.csv")
    status, out, err = _main(*args)
    assert status == 0, err
    details = read_details(tmp_path / "d.csv")
    relabelled = details[details["chosen"] & (details["rank"] > 1)]
    assert len(relabelled) > 0 and f"relabelled {len(relabelled)}" in out
    assert "(oracle 0.8000, top-2 1.0000)" in out  # every landmark query has its true label among its two
    data = _data_block(tmp_path / "r.html")
    assert data["columns"][:4] == ["id", "rank", "label", "chosen"]
    pictures = [file for file, _ in data["pictures"] if file.startswith("r_files/relabelled-")]
    assert len(pictures) == min(12, len(relabelled)) and all((tmp_path / f).is_file() for f in pictures)
