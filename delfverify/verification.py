"""Geometric verification: fit an affine transform to putative matches with RANSAC and count the inliers.

Two engines, both deterministic (the same input always gives the same count):

- ``opencv`` (default): ``cv2.estimateAffine2D`` with RANSAC; compiled, adaptive number of trials, well under
  a millisecond per pair.
- ``skimage``: ``skimage.measure.ransac`` with ``AffineTransform``, exactly the research's settings
  (min_samples 3, residual_threshold 20, max_trials 1000); the reference, about 250 ms per pair.

Failure has one shape: fewer than ``min_samples`` putative matches, or no model found, is ``num_inliers=0``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from .features import Features
from .matching import MatchConfig, match_descriptors

logger = logging.getLogger(__name__)

ENGINES = ("opencv", "skimage")


@dataclass(frozen=True)
class RansacConfig:
    """RANSAC settings (research defaults).

    Attributes
    ----------
    engine : {"opencv", "skimage"}
        Implementation.
    residual_threshold : float
        Largest reprojection error in pixels for an inlier.
    max_trials : int
        Most RANSAC iterations.
    min_samples : int
        Matches per hypothesis (3 for an affine transform); fewer putative matches give 0 inliers.
    confidence : float
        ``opencv`` only: stop early once a model is found with this confidence.
    max_scale_change : float
        Reject a transform that shrinks or stretches any direction by more than this factor (its singular
        values outside ``[1/max_scale_change, max_scale_change]``). Such fits are degenerate: many features of
        one photo matched to a few points of the other (star fields, coins), and give unrelated photos dozens
        of "inliers".
    seed : int
        Seed of the ``skimage`` engine, >= 0. ``opencv``'s RANSAC uses its own fixed internal seed
        (``cv2.setRNGSeed`` does not reach it), so it is deterministic whatever this value. Same input and seed, same
        result.
    """

    engine: str = "opencv"
    residual_threshold: float = 20.0
    max_trials: int = 1000
    min_samples: int = 3
    confidence: float = 0.999
    max_scale_change: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not self.residual_threshold > 0:
            raise ValueError(f"residual_threshold must be > 0, got {self.residual_threshold}")
        if not (isinstance(self.max_trials, int) and self.max_trials >= 1):
            raise ValueError(f"max_trials must be a positive integer, got {self.max_trials!r}")
        if self.min_samples < 3:
            raise ValueError(f"min_samples must be >= 3 for an affine model, got {self.min_samples}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if not self.max_scale_change > 1:
            raise ValueError(f"max_scale_change must be > 1, got {self.max_scale_change}")
        if not (isinstance(self.seed, (int, np.integer)) and self.seed >= 0):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class Verification:
    """The result of verifying two photos.

    Attributes
    ----------
    num_inliers : int
        Matches consistent with the fitted transform; 0 when verification failed.
    num_putative : int
        Putative matches RANSAC was given.
    num_features_a, num_features_b : int
        Features found in each photo.
    matches : int64 [num_putative, 2]
        Putative matches as (index in A, index in B).
    inlier_mask : bool [num_putative]
        Which putative matches are inliers.
    transform : float64 [3, 3] or None
        Affine map from A's (x, y) pixels to B's, or ``None`` when no model was found.
    """

    num_inliers: int
    num_putative: int
    num_features_a: int = 0
    num_features_b: int = 0
    matches: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64), repr=False)
    inlier_mask: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool), repr=False)
    transform: np.ndarray | None = field(default=None, repr=False)


def ransac_affine(src_xy: np.ndarray, dst_xy: np.ndarray, config: RansacConfig = RansacConfig()):
    """Fit an affine transform ``src -> dst`` with RANSAC.

    Parameters
    ----------
    src_xy, dst_xy : float [M, 2]
        Matched points as (x, y).
    config : RansacConfig

    Returns
    -------
    (transform, inlier_mask)
        ``transform`` is a 3x3 matrix or ``None``; ``inlier_mask`` is bool [M], all False on failure.
    """
    src_xy = np.asarray(src_xy, np.float64).reshape(-1, 2)
    dst_xy = np.asarray(dst_xy, np.float64).reshape(-1, 2)
    if src_xy.shape != dst_xy.shape:
        raise ValueError(f"src_xy and dst_xy must have the same shape, got {src_xy.shape} and {dst_xy.shape}")
    none = np.zeros(len(src_xy), bool)
    if len(src_xy) < config.min_samples:
        return None, none
    if config.engine == "opencv":
        transform, mask = _ransac_opencv(src_xy, dst_xy, config)
    else:
        transform, mask = _ransac_skimage(src_xy, dst_xy, config)
    if transform is None or mask is None or not np.all(np.isfinite(transform)):
        return None, none
    singular = np.linalg.svd(transform[:2, :2], compute_uv=False)
    if singular.min() < 1 / config.max_scale_change or singular.max() > config.max_scale_change:
        logger.debug("rejected a degenerate affine fit (singular values %s)", singular)
        return None, none
    return transform, np.asarray(mask, bool).reshape(-1)


def _ransac_opencv(src_xy, dst_xy, config):
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


def _ransac_skimage(src_xy, dst_xy, config):
    from skimage.measure import ransac
    from skimage.transform import AffineTransform

    with warnings.catch_warnings():
        # Degenerate samples warn on every failed trial; a failed fit is reported as 0 inliers instead.
        warnings.simplefilter("ignore")
        model, mask = ransac(
            (src_xy, dst_xy),
            AffineTransform,
            min_samples=config.min_samples,
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

    RANSAC runs in the pixels the extractor saw (``Features.extraction_scale``), so its thresholds mean the same
    whatever the photos' sizes on disk; the transform is then expressed in the features' own pixels.

    Returns
    -------
    Verification
        ``num_inliers`` is 0 when there are fewer than ``ransac.min_samples`` putative matches or RANSAC finds
        no model; ``transform`` maps A's (x, y) pixels to B's.
    """
    matches = match_descriptors(features_a.descriptors, features_b.descriptors, match)
    src = features_a.locations_xy_extracted()[matches.pairs[:, 0]]
    dst = features_b.locations_xy_extracted()[matches.pairs[:, 1]]
    transform, mask = ransac_affine(src, dst, ransac)
    if transform is not None:
        to_a = np.diag([*features_a.extraction_scale[::-1], 1.0])
        from_b = np.diag([*(1.0 / s for s in features_b.extraction_scale[::-1]), 1.0])
        transform = from_b @ transform @ to_a
    return Verification(
        num_inliers=int(mask.sum()),
        num_putative=len(matches),
        num_features_a=len(features_a),
        num_features_b=len(features_b),
        matches=matches.pairs,
        inlier_mask=mask,
        transform=transform,
    )
