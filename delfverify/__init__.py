"""delfverify: make a landmark classifier's predictions trustworthy with local-feature verification.

Public API::

    from delfverify import verify_pair, Verifier
    result = verify_pair("query.jpg", "gallery.jpg")   # Verification(num_inliers=..., ...)

    from delfverify import rerank, load_policy, read_predictions, read_gallery, global_average_precision

TensorFlow is imported only when the DELF extractor is used.
"""

from .features import Extractor, Features, make_extractor
from .images import ImageError, load_image
from .matching import MatchConfig
from .verification import RansacConfig, Verification
from .verifier import Verifier, verify_pair
from .metrics import GapResult, global_average_precision, oracle_gap
from .policy import Policy, load_policy
from .rerank import RerankResult, rerank
from .tables import ImageDirectory, read_gallery, read_predictions, read_solution, write_predictions
from .tuning import tune

__all__ = [
    "Extractor",
    "Features",
    "GapResult",
    "global_average_precision",
    "ImageDirectory",
    "ImageError",
    "load_image",
    "load_policy",
    "make_extractor",
    "MatchConfig",
    "oracle_gap",
    "Policy",
    "RansacConfig",
    "read_gallery",
    "read_predictions",
    "read_solution",
    "rerank",
    "RerankResult",
    "tune",
    "Verification",
    "Verifier",
    "verify_pair",
    "write_predictions",
]
__version__ = "0.1.0"
