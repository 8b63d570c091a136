"""delfverify: make a landmark classifier's predictions trustworthy with local-feature verification.

Public API::

    from delfverify import verify_pair, Verifier
    result = verify_pair("query.jpg", "gallery.jpg")   # Verification(num_inliers=..., ...)
"""

from .features import Extractor, Features, make_extractor
from .images import ImageError, load_image
from .matching import MatchConfig
from .verification import RansacConfig, Verification
from .verifier import Verifier, verify_pair

__all__ = [
    "Extractor",
    "Features",
    "ImageError",
    "MatchConfig",
    "RansacConfig",
    "Verification",
    "Verifier",
    "load_image",
    "make_extractor",
    "verify_pair",
]
__version__ = "0.1.0"
