"""Shared helpers for the benchmark scripts: locating the dev set, importing delfverify from a checkout, ROC AUC,
and the GAP of several policies on several prediction files."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = REPO.parent / "shared" / "data" / "landmarks-dev"

try:
    import delfverify  # noqa: F401
except ImportError:  # running from a checkout without `pip install .`
    sys.path.insert(0, str(REPO))


def require_dev_data(path: Path = DEV_DATA) -> Path:
    """The dev set folder, or exit with a message saying where it was expected."""
    if not (path / "gallery.csv").is_file():
        sys.exit(f"dev data not found at {path} (expected ../shared/data/landmarks-dev beside the repository)")
    return path


def roc_auc(positives, negatives) -> float:
    """Probability that a random positive scores above a random negative (ties count one half)."""
    import numpy as np

    pos = np.asarray(positives, float)[:, None]
    neg = np.asarray(negatives, float)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def compare_policies(predictions, truth, policies, **rerank_options):
    """GAP of each predictions file before re-ranking, after each policy (``delfverify.rerank`` with
    ``rerank_options``, as the ``rerank`` command runs), and the oracle (correct predictions / M).

    ``predictions`` maps file names to ``Predictions``, ``policies`` names to ``Policy``; ``truth`` is a
    ``Solution``. Returns a DataFrame with one row per file: ``file``, ``before``, one column per policy, ``oracle``.
    """
    import pandas as pd

    from delfverify import rerank
    from delfverify.metrics import global_average_precision, oracle_gap

    rows = []
    for name, table in predictions.items():
        row = {"file": name, "before": global_average_precision(table.table, truth.table).gap}
        for label, policy in policies.items():
            result = rerank(table, policy=policy, **rerank_options)
            row[label] = global_average_precision(result.predictions.table, truth.table).gap
        row["oracle"] = oracle_gap(table.table, truth.table)
        rows.append(row)
    return pd.DataFrame(rows)
