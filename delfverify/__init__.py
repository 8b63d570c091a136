"""delfverify: make a landmark classifier's predictions trustworthy with local-feature verification.

Public API::

    import delfverify
    delfverify.verify_pair("query.jpg", "gallery.jpg")          # Verification(num_inliers=..., ...)
    delfverify.rerank("predictions.csv", gallery="gallery.csv", gallery_images="gallery/",
                      query_images="queries/", output="reranked.csv", report="report.html")
    delfverify.write_report(delfverify.read_details("details.csv"), "report.html")  # again (no pictures without
                                                                                    # photos= and verifier=)

``import delfverify`` loads nothing heavy: each name below is imported from its module on first use (PEP 562), so
pandas, SciPy, OpenCV and TensorFlow load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "DelfverifyError": "errors",
    "Extractor": "extractors.base",
    "Features": "features",
    "GapResult": "metrics",
    "global_average_precision": "metrics",
    "oracle_gap": "metrics",
    "ImageDirectory": "images",
    "ImageError": "images",
    "load_image": "images",
    "make_extractor": "extractors",
    "MatchConfig": "matching",
    "Policy": "policy",
    "load_policy": "policy",
    "save_policy": "policy",
    "RansacConfig": "verification",
    "Verification": "verification",
    "Verifier": "verifier",
    "verify_pair": "verifier",
    "Predictions": "tables",
    "Gallery": "tables",
    "Solution": "tables",
    "read_predictions": "tables",
    "read_gallery": "tables",
    "read_solution": "tables",
    "write_predictions": "tables",
    "rerank": "pipeline",
    "RerankResult": "pipeline",
    "read_details": "report",
    "write_report": "report",
    "ReportResult": "report",
    "RunScores": "report",
    "tune": "tuning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from .errors import DelfverifyError
    from .extractors import make_extractor
    from .extractors.base import Extractor
    from .features import Features
    from .images import ImageDirectory, ImageError, load_image
    from .matching import MatchConfig
    from .metrics import GapResult, global_average_precision, oracle_gap
    from .pipeline import RerankResult, rerank
    from .policy import Policy, load_policy, save_policy
    from .report import ReportResult, RunScores, read_details, write_report
    from .tables import Gallery, Predictions, Solution, read_gallery, read_predictions, read_solution, \
        write_predictions
    from .tuning import tune
    from .verification import RansacConfig, Verification
    from .verifier import Verifier, verify_pair
