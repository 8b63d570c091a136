"""Geometric verification: fit a geometric model to putative matches with RANSAC and count the inliers.

Three models (``RansacConfig.geometry``), measured on the dev and hard photo sets (README, "Verification on hard
photos"):

- ``affine``: ``cv2.estimateAffine2D`` (or ``skimage.measure.ransac``, the research's reference), 20 px in the
  extractor's pixels: the research's setting, kept for DELF.
- ``homography``: ``cv2.findHomography`` with USAC/MAGSAC++; for planar facades and distant scenes.
- ``fundamental``: ``cv2.findFundamentalMat`` with USAC/MAGSAC++: any rigid 3-D scene seen from two viewpoints.
  It separates same-place from other pairs best on wide-baseline photos (ROC AUC 0.988 dev, 0.909 hard with
  2,000 RootSIFT keypoints, against 0.902 and 0.883 for today's affine fit), and accepts more chance matches
  (unrelated photos reach up to 13 inliers), so its thresholds are higher: RootSIFT's default.

With ``image_side`` set, residuals are measured with each photo scaled so that its longer side is that many pixels,
so one threshold means the same on a thumbnail and on a large photo. Failure has one shape: too few putative
matches, no model, or a degenerate one (an affine map or homography that shrinks or stretches by more than
``max_scale_change``: many features collapsing onto a few points) is ``num_inliers=0``. Deterministic: the same
input always gives the same inliers.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .features import Features
from .matching import MatchConfig, match_descriptors

logger = logging.getLogger(__name__)

ENGINES = ("opencv", "skimage")
GEOMETRIES = ("affine", "homography", "fundamental")
#: Fewest matches each model is fitted from (OpenCV's USAC fits a fundamental matrix to 8 or more).
MIN_MATCHES = {"affine": 3, "homography": 4, "fundamental": 8}
#: A photo with fewer keypoints than this gives no evidence either way: its pairs are ``unverifiable``. No
#: landmark query of the dev and hard sets has fewer than 400 (RootSIFT, 2,000 at most); night shots, blurred
#: photos and thumbnails do.
MIN_KEYPOINTS = 50


@dataclass(frozen=True)
class RansacConfig:
    """Model and RANSAC settings (default: the research's affine fit).

    Attributes
    ----------
    geometry : {"affine", "homography", "fundamental"}
        The model fitted to the matches.
    engine : {"opencv", "skimage"}
        Implementation; ``skimage`` (the research's reference, about 250 ms per pair) fits the affine model only.
    residual_threshold : float
        Largest error in pixels for an inlier: the reprojection error for affine maps and homographies, the
        distance to the epipolar line for the fundamental matrix.
    image_side : int or None
        Measure errors with each photo scaled so that its longer side is this many pixels; ``None``: in the
        pixels the extractor saw (photos shrunk to ``max_side``, small ones as they are).
    max_trials : int
        Most RANSAC iterations.
    min_samples : int, optional
        Fewest putative matches a fit is tried on (for ``skimage``, also the matches per hypothesis); default:
        the model's minimum (``MIN_MATCHES``). Fewer give 0 inliers.
    confidence : float
        ``opencv`` only: stop early once a model is found with this confidence.
    max_scale_change : float
        Reject an affine map or homography that shrinks or stretches any direction by more than this factor
        (where the inliers are). Such fits are degenerate: many features of one photo matched to a few points of
        the other (star fields, coins), and give unrelated photos dozens of "inliers".
    seed : int
        Seed of the ``skimage`` engine, >= 0. OpenCV's RANSAC uses its own fixed internal seed (``cv2.setRNGSeed``
        does not reach it), so it is deterministic whatever this value. Same input and seed, same result.
    """

    geometry: str = "affine"
    engine: str = "opencv"
    residual_threshold: float = 20.0
    image_side: int | None = None
    max_trials: int = 1000
    min_samples: int | None = None
    confidence: float = 0.999
    max_scale_change: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {self.geometry!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "skimage" and self.geometry != "affine":
            raise ValueError(f"engine 'skimage' fits the affine model only, not geometry {self.geometry!r}")
        if not self.residual_threshold > 0:
            raise ValueError(f"residual_threshold must be > 0, got {self.residual_threshold}")
        if self.image_side is not None and not (isinstance(self.image_side, int) and self.image_side >= 1):
            raise ValueError(f"image_side must be a positive integer or None, got {self.image_side!r}")
        if not (isinstance(self.max_trials, int) and self.max_trials >= 1):
            raise ValueError(f"max_trials must be a positive integer, got {self.max_trials!r}")
        if self.min_samples is not None and not (isinstance(self.min_samples, int)
                                                 and self.min_samples >= MIN_MATCHES[self.geometry]):
            raise ValueError(f"min_samples must be an integer >= {MIN_MATCHES[self.geometry]} for the "
                             f"{self.geometry} model, got {self.min_samples!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if not self.max_scale_change > 1:
            raise ValueError(f"max_scale_change must be > 1, got {self.max_scale_change}")
        if not (isinstance(self.seed, (int, np.integer)) and self.seed >= 0):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def fewest_matches(self) -> int:
        """Fewest putative matches a fit is tried on."""
        return self.min_samples or MIN_MATCHES[self.geometry]


#: The settings of each model: the research's affine fit, and the USAC fits as measured (4 px at 1,024 px).
GEOMETRY_SETTINGS = {
    "affine": RansacConfig(),
    "homography": RansacConfig("homography", residual_threshold=4.0, image_side=1024, max_trials=10_000),
    "fundamental": RansacConfig("fundamental", residual_threshold=4.0, image_side=1024, max_trials=10_000),
}


@dataclass(frozen=True)
class Verification:
    """The result of verifying two photos.

    Attributes
    ----------
    num_inliers : int
        Matches consistent with the fitted model; 0 when verification failed.
    num_putative : int
        Putative matches RANSAC was given.
    num_features_a, num_features_b : int
        Features found in each photo.
    matches : int64 [num_putative, 2]
        Putative matches as (index in A, index in B).
    inlier_mask : bool [num_putative]
        Which putative matches are inliers.
    transform : float64 [3, 3] or None
        The model in the photos' pixels, or ``None`` when none was found: the map from A's (x, y, 1) to B's for
        an affine map or a homography; for the fundamental matrix ``F``, ``[x_b, y_b, 1] F [x_a, y_a, 1]^T = 0``.
    geometry : str
        The model (``RansacConfig.geometry``).
    false_match_rate : float
        The estimated share of unrelated photo pairs (two photos of different places) that reach at least
        ``num_inliers`` inliers with the same extractor and model, in (0, 1], from a null table
        (``delfverify.calibration``; a ``Verifier`` fills it in); NaN where there is no table for them (DELF, until
        one is measured with ``delfverify calibrate``).
    """

    num_inliers: int
    num_putative: int
    num_features_a: int = 0
    num_features_b: int = 0
    matches: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64), repr=False)
    inlier_mask: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool), repr=False)
    transform: np.ndarray | None = field(default=None, repr=False)
    geometry: str = "affine"
    false_match_rate: float = math.nan

    @property
    def unverifiable(self) -> str:
        """Why this pair gives no evidence either way (``unverifiable_reason``), or ``""``."""
        return unverifiable_reason(self.num_features_a, self.num_features_b)


def unverifiable_reason(num_features_query: int, num_features_gallery: int) -> str:
    """Why a pair gives no evidence either way, or ``""``: a photo with fewer than ``MIN_KEYPOINTS`` keypoints
    (night, blur, a tiny thumbnail) can match nothing. Few putative matches between photos rich in keypoints are
    evidence (nothing matched), not doubt."""
    for which, count in (("query", num_features_query), ("gallery photo", num_features_gallery)):
        if count < MIN_KEYPOINTS:
            return f"{which} has {count} keypoints (fewer than {MIN_KEYPOINTS}): no evidence either way"
    return ""


def fit_geometry(src_xy: np.ndarray, dst_xy: np.ndarray, config: RansacConfig = RansacConfig()):
    """Fit ``config.geometry`` to matched points ``src -> dst`` with RANSAC.

    Parameters
    ----------
    src_xy, dst_xy : float [M, 2]
        Matched points as (x, y), in the pixels the thresholds are measured in.
    config : RansacConfig

    Returns
    -------
    (matrix, inlier_mask)
        ``matrix`` is 3x3 or ``None``; ``inlier_mask`` is bool [M], all False on failure.
    """
    src_xy = np.asarray(src_xy, np.float64).reshape(-1, 2)
    dst_xy = np.asarray(dst_xy, np.float64).reshape(-1, 2)
    if src_xy.shape != dst_xy.shape:
        raise ValueError(f"src_xy and dst_xy must have the same shape, got {src_xy.shape} and {dst_xy.shape}")
    none = np.zeros(len(src_xy), bool)
    if len(src_xy) < config.fewest_matches:
        return None, none
    fit = _ransac_skimage if config.engine == "skimage" else _FITS[config.geometry]
    matrix, mask = fit(src_xy, dst_xy, config)
    if matrix is None or mask is None or not np.all(np.isfinite(matrix)):
        return None, none
    mask = np.asarray(mask, bool).reshape(-1)
    if not mask.any():
        return None, none
    if config.geometry != "fundamental" and not _keeps_scale(matrix, src_xy[mask], config):
        logger.debug("rejected a degenerate %s fit", config.geometry)
        return None, none
    return matrix, mask


def _keeps_scale(matrix: np.ndarray, inliers_xy: np.ndarray, config: RansacConfig) -> bool:
    """Whether a fit neither collapses nor stretches the photo beyond ``max_scale_change``: for an affine map, its
    linear part; for a homography, where the inliers are (all in front of the camera, orientation kept, the
    local scale at their centroid)."""
    if config.geometry == "affine":
        singular = np.linalg.svd(matrix[:2, :2], compute_uv=False)
    else:
        h = matrix / np.abs(matrix).max()
        w = np.c_[inliers_xy, np.ones(len(inliers_xy))] @ h[2]
        if np.median(w) < 0:  # a homography is defined up to its sign
            h, w = -h, -w
        if not (np.all(w > 0) and np.linalg.det(h) > 0):
            return False
        centre = np.append(inliers_xy.mean(axis=0), 1.0)
        wc, p = h[2] @ centre, h @ centre
        singular = np.linalg.svd((h[:2, :2] * wc - np.outer(p[:2], h[2, :2])) / wc**2, compute_uv=False)
    return bool(1 / config.max_scale_change <= singular.min() and singular.max() <= config.max_scale_change)


def _affine_opencv(src_xy, dst_xy, config):
    import cv2

    matrix, mask = cv2.estimateAffine2D(
        src_xy.astype(np.float32),
        dst_xy.astype(np.float32),
        method=cv2.RANSAC,
        ransacReprojThreshold=config.residual_threshold,
        maxIters=config.max_trials,
        confidence=config.confidence,
        refineIters=10,  # least-squares refit on the inliers (as skimage does); the mask is unchanged
    )
    if matrix is None:
        return None, None
    return np.vstack([matrix, [0.0, 0.0, 1.0]]), mask


def _homography_opencv(src_xy, dst_xy, config):
    import cv2

    try:
        return cv2.findHomography(src_xy.astype(np.float32), dst_xy.astype(np.float32), cv2.USAC_MAGSAC,
                                  config.residual_threshold, maxIters=config.max_trials,
                                  confidence=config.confidence)
    except cv2.error:  # a degenerate sample set can make USAC raise instead of failing
        return None, None


def _fundamental_opencv(src_xy, dst_xy, config):
    import cv2

    try:
        matrix, mask = cv2.findFundamentalMat(src_xy.astype(np.float32), dst_xy.astype(np.float32),
                                              cv2.USAC_MAGSAC, config.residual_threshold, config.confidence,
                                              config.max_trials)
    except cv2.error:
        return None, None
    if matrix is None or matrix.shape != (3, 3):  # OpenCV may stack several solutions
        return None, None
    return matrix, mask


_FITS = {"affine": _affine_opencv, "homography": _homography_opencv, "fundamental": _fundamental_opencv}


def _ransac_skimage(src_xy, dst_xy, config):
    from skimage.measure import ransac
    from skimage.transform import AffineTransform

    with warnings.catch_warnings():
        # Degenerate samples warn on every failed trial; a failed fit is reported as 0 inliers instead.
        warnings.simplefilter("ignore")
        model, mask = ransac(
            (src_xy, dst_xy),
            AffineTransform,
            min_samples=config.fewest_matches,
            residual_threshold=config.residual_threshold,
            max_trials=config.max_trials,
            is_data_valid=_spans_plane,
            rng=config.seed,
        )
    if model is None:
        return None, None
    return np.asarray(model.params, np.float64), mask


def _spans_plane(src_xy, dst_xy) -> bool:
    """Whether a RANSAC sample determines an affine map: neither side collinear or repeated (as OpenCV checks).

    A collinear sample leaves the affine map underdetermined; skimage would fit an arbitrary least-squares
    solution and count every point on the line as an inlier. Called on every trial, so kept cheap.
    """
    for points in (src_xy, dst_xy):
        if len(points) == 3:
            (x0, y0), (x1, y1), (x2, y2) = points.tolist()
            ax, ay, bx, by = x1 - x0, y1 - y0, x2 - x0, y2 - y0
            area, size = abs(ax * by - ay * bx), max(ax * ax + ay * ay, bx * bx + by * by)
        else:
            d = points[1:] - points[0]
            area = np.abs(np.outer(d[:, 0], d[:, 1]) - np.outer(d[:, 1], d[:, 0])).max()
            size = (d * d).sum(axis=1).max()
        if not area > 1e-6 * size:
            return False
    return True


def verify_features(
    features_a: Features,
    features_b: Features,
    match: MatchConfig = MatchConfig(),
    ransac: RansacConfig = RansacConfig(),
) -> Verification:
    """Match two feature sets and verify the matches geometrically (``Verifier.verify_features`` calls this with
    the verifier's settings).

    The model is fitted in the pixels its thresholds are measured in (``RansacConfig.image_side``, else the
    extractor's: ``Features.extraction_scale``), so they mean the same whatever the photos' sizes on disk; the
    model is then expressed in the features' own pixels.

    Returns
    -------
    Verification
        ``num_inliers`` is 0 when there are too few putative matches or RANSAC finds no model.
    """
    matches = match_descriptors(features_a.unit_descriptors, features_b.unit_descriptors, match)
    scale_a, scale_b = (_fitting_scale(f, ransac) for f in (features_a, features_b))
    src = features_a.locations[matches.pairs[:, 0], ::-1].astype(np.float64) * scale_a
    dst = features_b.locations[matches.pairs[:, 1], ::-1].astype(np.float64) * scale_b
    matrix, mask = fit_geometry(src, dst, ransac)
    if matrix is not None:
        to_a, to_b = np.diag([*scale_a, 1.0]), np.diag([*scale_b, 1.0])
        if ransac.geometry == "fundamental":
            matrix = to_b.T @ matrix @ to_a
        else:
            matrix = np.linalg.inv(to_b) @ matrix @ to_a
    return Verification(
        num_inliers=int(mask.sum()),
        num_putative=len(matches),
        num_features_a=len(features_a),
        num_features_b=len(features_b),
        matches=matches.pairs,
        inlier_mask=mask,
        transform=matrix,
        geometry=ransac.geometry,
    )


def _fitting_scale(features: Features, ransac: RansacConfig) -> np.ndarray:
    """(x, y) factors from the features' pixels to those the model is fitted in."""
    if ransac.image_side is None:
        return np.array(features.extraction_scale[::-1], np.float64)
    if min(features.image_shape) < 1:
        raise ValueError("features lack their image's size (image_shape), which image_side needs; extract "
                         "them through a Verifier")
    return np.full(2, ransac.image_side / max(features.image_shape), np.float64)
