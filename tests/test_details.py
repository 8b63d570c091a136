"""delfverify.details: the details file read back, checked and typed."""

from __future__ import annotations

import pytest
from test_report import synthetic_details, table_data

from delfverify.details import DetailsError, read_details
from delfverify.report import write_report


def test_details_files_missing_columns_or_with_bad_numbers_are_refused(tmp_path):
    (tmp_path / "d.csv").write_text("id,label,status\nq1,a,verified\n")
    with pytest.raises(DetailsError, match=r"d\.csv: details lack column\(s\) band, old_confidence"):
        read_details(tmp_path / "d.csv")
    synthetic_details(3).assign(new_confidence=["0.5", "high", "0.1"]).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DetailsError, match=r"d\.csv: row 3: new_confidence 'high' is not a number"):
        read_details(tmp_path / "d.csv")


def test_candidate_details_read_back_with_their_rank_and_choice(tmp_path):
    details = synthetic_details(20, seed=4, candidates=4)
    details.to_csv(tmp_path / "d.csv", index=False)
    back = read_details(tmp_path / "d.csv")
    assert back["rank"].tolist() == details["rank"].tolist() and back["chosen"].tolist() == details["chosen"].tolist()
    result = write_report(back, tmp_path / "r.html")
    data = table_data(result.path)
    assert data["columns"][:4] == ["id", "rank", "label", "chosen"] and sum(data["data"]["chosen"]) == 5
    relabelled = int((details["chosen"] & (details["rank"] > 1)).sum())
    assert relabelled and (f'<a href="?status=relabelled#table">queries relabelled</a></td><td>{relabelled}<'
                           in result.path.read_text(encoding="utf-8"))


# --- size at 100,000 rows ------------------------------------------------------------------------------------------
