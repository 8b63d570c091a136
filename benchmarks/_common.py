"""Shared helpers for the benchmark scripts: locating the dev set and importing delfverify from a checkout."""

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
