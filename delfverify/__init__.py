"""delfverify: make a landmark classifier's predictions trustworthy with local-feature verification.

Public API::

    import delfverify
    delfverify.verify_pair("query.jpg", "gallery.jpg")          # Verification(num_inliers=..., ...)
    delfverify.rerank("predictions.csv", gallery="gallery.csv", gallery_images="gallery/",
                      query_images="queries/", output="reranked.csv", report="report.html")
    delfverify.tune(["predictions.csv"], truth="truth.csv", gallery="gallery.csv", gallery_images="gallery/",
                    query_images="queries/", output="policy.json")
    delfverify.write_report(delfverify.read_details("details.csv"), "report.html")  # again (no pictures without
                                                                                    # photos= and verifier=)

``import delfverify`` loads nothing heavy: each name below is imported from its module on first use (PEP 562), so
pandas, SciPy, OpenCV and TensorFlow load only when a function needs them.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "DelfverifyError": "errors",
    "Extractor": "extractors.base",
    "Features": "features",
    "GapResult": "metrics",
    "global_average_precision": "metrics",
    "oracle_gap": "metrics",
    "RunScores": "metrics",
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
    "RunSettings": "settings",
    "VerifySettings": "settings",
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
    "read_details": "details",
    "write_report": "report",
    "ReportResult": "report",
    "tune": "tuning",
    "TuneConfig": "tuning",
    "TuneResult": "tuning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*__all__, "__version__"]


if _typing.TYPE_CHECKING:  # for type checkers and IDEs; never run
    from .details import read_details  # noqa: F401
    from .errors import DelfverifyError  # noqa: F401
    from .extractors import make_extractor  # noqa: F401
    from .extractors.base import Extractor  # noqa: F401
    from .features import Features  # noqa: F401
    from .images import ImageDirectory, ImageError, load_image  # noqa: F401
    from .matching import MatchConfig  # noqa: F401
    from .metrics import GapResult, RunScores, global_average_precision, oracle_gap  # noqa: F401
    from .pipeline import RerankResult, rerank  # noqa: F401
    from .policy import Policy, load_policy, save_policy  # noqa: F401
    from .report import ReportResult, write_report  # noqa: F401
    from .settings import RunSettings, VerifySettings  # noqa: F401
    from .tables import (Gallery, Predictions, Solution, read_gallery, read_predictions,  # noqa: F401
                         read_solution, write_predictions)
    from .tuning import TuneConfig, TuneResult, tune  # noqa: F401
    from .verification import RansacConfig, Verification  # noqa: F401
    from .verifier import Verifier, verify_pair  # noqa: F401
