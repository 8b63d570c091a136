"""Shared helpers for the benchmark scripts: locating the dev sets, importing delfverify from a checkout, ROC AUC,
the GAP of several policies on several prediction files, the inlier tables of a labelled set (measured once and
cached under the verifier's pair fingerprint), and the split of queries in halves by a hash of their id."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = REPO.parent / "shared" / "data" / "landmarks-dev"
HARD_DATA = REPO.parent / "shared" / "data" / "landmarks-hard"
#: Inlier tables are measured against this many gallery photos per prediction, in each of these orders.
TABLE_K = 5
TABLE_SELECTIONS = ("spread", "first")

try:
    import delfverify  # noqa: F401
except ImportError:  # running from a checkout without `pip install .`
    sys.path.insert(0, str(REPO))


def require_dev_data(path: Path = DEV_DATA) -> Path:
    """A dev set folder, or exit with a message saying where it was expected."""
    if not (path / "gallery.csv").is_file():
        sys.exit(f"dev data not found at {path} (expected ../shared/data/{path.name} beside the repository)")
    return path


def roc_auc(positives, negatives) -> float:
    """Probability that a random positive scores above a random negative (ties count one half)."""
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
        first = table.table[table.rank == 1]  # the classifier's predictions (each query's first candidate)
        row = {"file": name, "before": global_average_precision(first, truth.table).gap}
        for label, policy in policies.items():
            result = rerank(table, policy=policy, **rerank_options)
            row[label] = global_average_precision(result.predictions.table, truth.table).gap
        row["oracle"] = oracle_gap(first, truth.table)
        rows.append(row)
    return pd.DataFrame(rows)


def query_half(ids) -> np.ndarray:
    """0 or 1 per query id: the low bit of the SHA-256 of the id (UTF-8), so a query is in the same half whatever
    the file, its row order or the other ids; the halves hold about half the queries each."""
    return np.array([hashlib.sha256(str(i).encode("utf-8")).digest()[-1] & 1 for i in ids], np.int64)


@dataclass(frozen=True)
class LabelledSet:
    """A labelled set's ten prediction files, its truth, and their inlier tables.

    ``inliers[selection]`` is one float array (n, ``TABLE_K``) per file, NaN where not verified: each labelled
    prediction against the first ``TABLE_K`` gallery photos of its label in that order (``spread`` serves
    ``default`` and tuned policies, ``first`` serves ``seed``). ``fingerprint`` is the verifier's pair fingerprint.
    """

    name: str
    files: list
    truth: object
    inliers: dict
    fingerprint: str


def measure_tables(data: Path, files, session) -> dict[str, list[np.ndarray]]:
    """The inlier tables of ``files`` (Predictions) of the set in ``data``, per selection in ``TABLE_SELECTIONS``:
    ``tune``'s own measurement (``measure_inliers``) with ``k = TABLE_K``."""
    from delfverify.images import ImageDirectory
    from delfverify.pipeline import Photos
    from delfverify.tables import read_gallery
    from delfverify.tuning import SmallSpace, measure_inliers

    gallery = read_gallery(data / "gallery.csv")
    photos = Photos(ImageDirectory(data / "queries"), ImageDirectory(data / "gallery"), gallery.paths())
    return {selection: measure_inliers(files, gallery, session, photos,
                                       space=SmallSpace(max_k=TABLE_K, selection=selection))
            for selection in TABLE_SELECTIONS}


def labelled_set(data: Path, cache_dir: Path, workers: int = 1) -> LabelledSet:
    """Read a labelled set (``gallery.csv``, ``truth.csv``, ``predictions/00..09.csv``) and its inlier tables.

    The tables are measured once (features and pairs go to the store and journal in ``cache_dir``) and kept in
    ``cache_dir/benchmark-inliers/<set>-<pair fingerprint>-<csv hash>.npz``: a change of verification settings
    (fingerprint) or of the CSV files measures them again, anything else reads them back.
    """
    from delfverify.fileio import atomic_write
    from delfverify.pipeline import open_session
    from delfverify.settings import RunSettings
    from delfverify.tables import read_predictions, read_solution

    data = require_dev_data(Path(data))
    paths = [data / "predictions" / f"{i:02d}.csv" for i in range(10)]
    files = [read_predictions(p) for p in paths]
    truth = read_solution(data / "truth.csv")
    digest = hashlib.sha256()
    for path in [data / "gallery.csv", *paths]:
        digest.update(path.read_bytes())
    with open_session(run=RunSettings(cache_dir=cache_dir, workers=workers)) as session:
        fingerprint = session.verifier.pair_fingerprint
        cached = Path(cache_dir) / "benchmark-inliers" / f"{data.name}-{fingerprint}-{digest.hexdigest()[:12]}.npz"
        if cached.is_file():
            with np.load(cached, allow_pickle=False) as npz:
                inliers = {s: list(npz[s]) for s in TABLE_SELECTIONS}
        else:
            print(f"measuring the inlier tables of {data.name} (verifier {fingerprint}) ...", flush=True)
            inliers = measure_tables(data, files, session)
            with atomic_write(cached, "wb") as handle:
                np.savez_compressed(handle, settings=np.array(json.dumps({"k": TABLE_K, "verifier": fingerprint})),
                                    **{s: np.stack(tables) for s, tables in inliers.items()})
    return LabelledSet(data.name, files, truth, inliers, fingerprint)
