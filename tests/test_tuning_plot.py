"""delfverify.tuning.plot: the picture of what ``tune`` found."""

from __future__ import annotations

from tuning_cases import separable

from delfverify.metrics import OUTCOMES
from delfverify.tuning import SearchSpace, TuneConfig, fit_policy
from delfverify.tuning.plot import plot_tuning

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_tuning_writes_a_png(tmp_path):
    truth, tables, inliers = separable(seed=5, n=80, files=1)
    config = TuneConfig(folds=2, space=SearchSpace(random_candidates=30, coordinate_rounds=1), workers=1)
    result = fit_policy(tables, truth, inliers, config=config)
    assert set(result.inliers_by_outcome) == set(OUTCOMES) == {"correct", "wrong", "non-landmark"}
    plot_tuning(result, tmp_path / "tuning.png")
    assert (tmp_path / "tuning.png").read_bytes()[:8] == PNG_MAGIC


