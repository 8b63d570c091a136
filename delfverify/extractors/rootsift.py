"""RootSIFT: OpenCV SIFT keypoints with Hellinger-normalised descriptors (Arandjelovic & Zisserman, 2012).

Needs no model download, so it is what tests, benchmarks and offline users run. RootSIFT descriptors are
unit-length 128-D vectors: ``sqrt(d / |d|_1)``. Matching uses Lowe's ratio test (0.8) and mutual nearest
neighbours rather than a fixed distance bound alone: on the dev photos (``benchmarks/rootsift_threshold.py``)
a distance bound alone separated same-landmark pairs from others with ROC AUC 0.80, ratio 0.8 + mutual with
0.98 (the bound then never binds); ratios 0.85 and 0.9 let more chance matches through.

The defaults were measured on the dev and hard photo sets (``benchmarks/bench_quality.py``, README): 2,000
keypoints (1,000 miss correct wide-baseline pairs: recall at zero false accepts 0.65 against 0.69) verified by a
fundamental matrix (USAC/MAGSAC++, 4 px at 1,024 px). The thresholds are anchored on the non-landmark photos
matched against every gallery photo (2,385 unrelated pairs): 90% of them reach at most 10 inliers and none more
than 13, so fewer than 11 is no support and 14 or more accepts. The thresholds hold for 2,000 keypoints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..features import Features, root_sift
from ..matching import MatchConfig
from ..verification import GEOMETRY_SETTINGS
from .base import Thresholds


class RootSIFT:
    """OpenCV SIFT + RootSIFT descriptors.

    Parameters
    ----------
    max_features : int
        Keep at most this many keypoints, strongest first (the thresholds were measured with 2,000).
    contrast_threshold : float
        SIFT's contrast threshold (OpenCV default 0.04).
    compact : bool
        Give the descriptors as SIFT's own histograms, whole numbers in [0, 255] stored as uint8, whose RootSIFT
        vectors are taken when they are matched (``Features.unit_descriptors``, ``delfverify.features.root_sift``): 128 bytes a
        keypoint in the feature store instead of 512, and bit for bit the same vectors, hence the same matches and
        inliers. ``False`` gives the float32 RootSIFT vectors themselves, the reference.
    """

    name = "rootsift"
    dim = 128
    match = MatchConfig(max_distance=0.8, ratio=0.8, mutual=True)
    ransac = GEOMETRY_SETTINGS["fundamental"]
    #: Anchored on unrelated pairs (non-landmark photos against gallery photos, 2,000 keypoints): fewer inliers
    #: than 90% of them reach + 1 is no support; more than any reaches accepts.
    thresholds = {"fundamental": Thresholds(support=11, accept=14), "affine": Thresholds(support=6, accept=8),
                  "homography": Thresholds(support=6, accept=8)}

    def __init__(self, max_features: int = 2000, contrast_threshold: float = 0.04, compact: bool = True):
        if not (isinstance(max_features, int) and max_features >= 1):
            raise ValueError(f"max_features must be a positive integer, got {max_features!r}")
        if not contrast_threshold > 0:
            raise ValueError(f"contrast_threshold must be > 0, got {contrast_threshold}")
        if not isinstance(compact, bool):
            raise ValueError(f"compact must be True or False, got {compact!r}")
        self.max_features = max_features
        self.contrast_threshold = contrast_threshold
        self.compact = compact
        self._sift = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_sift": None}  # OpenCV's detector is rebuilt where it is used

    def limit_threads(self, threads: int) -> None:
        import cv2

        cv2.setNumThreads(threads)

    def params(self) -> dict[str, Any]:
        import cv2

        return {
            "max_features": self.max_features,
            "contrast_threshold": self.contrast_threshold,
            "descriptors": "uint8 SIFT histograms" if self.compact else "float32 RootSIFT",
            "opencv": cv2.__version__,
        }

    def extract(self, image: np.ndarray) -> Features:
        import cv2

        if self._sift is None:
            self._sift = cv2.SIFT_create(nfeatures=self.max_features, contrastThreshold=self.contrast_threshold)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        keypoints, desc = self._sift.detectAndCompute(gray, None)
        if desc is None or len(keypoints) == 0:
            return Features.empty(self.dim, np.uint8 if self.compact else np.float32)
        responses = np.array([kp.response for kp in keypoints], np.float32)
        # SIFT may return a few more than nfeatures on ties; keep the strongest, in a stable order.
        order = np.argsort(-responses, kind="stable")[: self.max_features]
        histograms = desc[order]  # OpenCV's SIFT descriptors are whole numbers in [0, 255]
        desc = histograms.astype(np.uint8) if self.compact else root_sift(histograms)
        pts = np.array([keypoints[i].pt for i in order], np.float32)
        return Features(
            locations=np.ascontiguousarray(pts[:, ::-1]),
            descriptors=desc,
            scales=np.array([keypoints[i].size for i in order], np.float32),
            scores=responses[order],
        )

