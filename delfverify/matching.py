"""Putative matches between two descriptor sets: nearest neighbours in a KD-tree (``scipy.spatial.cKDTree``).

For every descriptor of image B the nearest descriptor of image A is looked up within ``max_distance``
(the research's DELF setting is 0.8). Optional filters: Lowe's ratio test (nearest / second nearest distance
below ``ratio``) and mutual nearest neighbours (A's nearest in B must be the same pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class MatchConfig:
    """How descriptors are matched.

    Attributes
    ----------
    max_distance : float
        Largest Euclidean distance between matched descriptors (``distance_upper_bound`` of the KD-tree query).
    ratio : float or None
        Lowe's ratio test threshold in (0, 1]; ``None`` disables it.
    mutual : bool
        Keep only mutual nearest neighbours.
    """

    max_distance: float = 0.8
    ratio: float | None = None
    mutual: bool = False

    def __post_init__(self) -> None:
        if not self.max_distance > 0:
            raise ValueError(f"max_distance must be > 0, got {self.max_distance}")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1] or None, got {self.ratio}")


@dataclass(frozen=True)
class Matches:
    """Putative matches: ``pairs[i] = (index in A, index in B)`` with their descriptor ``distances``."""

    pairs: np.ndarray  # int64 [M, 2]
    distances: np.ndarray  # float32 [M]

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


def match_descriptors(desc_a: np.ndarray, desc_b: np.ndarray, config: MatchConfig = MatchConfig()) -> Matches:
    """Match descriptors of image B to their nearest neighbours in image A.

    Parameters
    ----------
    desc_a, desc_b : float32 [N_a, D], [N_b, D]
        Descriptors; either may be empty.
    config : MatchConfig
        Distance bound and filters.

    Returns
    -------
    Matches
        At most one match per descriptor of B, ordered by index in B.

    Raises
    ------
    ValueError
        If the descriptor dimensions differ.
    """
    if desc_a.ndim != 2 or desc_b.ndim != 2 or desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(f"descriptor shapes do not match: {desc_a.shape} vs {desc_b.shape}")
    n_a = desc_a.shape[0]
    if n_a == 0 or desc_b.shape[0] == 0:
        return Matches(np.zeros((0, 2), np.int64), np.zeros((0,), np.float32))
    k = 2 if config.ratio is not None else 1
    dist, idx = cKDTree(desc_a).query(desc_b, k=k, distance_upper_bound=config.max_distance)
    if k == 2:
        # A missing second neighbour (inf) means the nearest one is unambiguous within the bound.
        keep = dist[:, 0] < config.ratio * dist[:, 1]
        dist, idx = dist[:, 0], idx[:, 0]
        keep &= idx < n_a
    else:
        keep = idx < n_a  # a miss returns index n_a
    b_idx = np.flatnonzero(keep)
    a_idx = idx[keep]
    if config.mutual and len(b_idx):
        _, back = cKDTree(desc_b).query(desc_a[a_idx], k=1)
        mutual = back == b_idx
        a_idx, b_idx = a_idx[mutual], b_idx[mutual]
        dist = dist[keep][mutual]
    else:
        dist = dist[keep]
    pairs = np.stack([a_idx, b_idx], axis=1).astype(np.int64)
    return Matches(pairs, dist.astype(np.float32))
