"""Putative matches between two descriptor sets: exact nearest neighbours, by KD-tree or by brute force.

For every descriptor of image B the nearest descriptor of image A is looked up within ``max_distance``
(the research's DELF setting is 0.8). Optional filters: Lowe's ratio test (nearest / second nearest distance
below ``ratio``) and mutual nearest neighbours (A's nearest in B must be the same pair).

Two methods give identical matches (``MatchConfig.method``):

- ``"kdtree"``: ``scipy.spatial.cKDTree``, the research's method and the reference.
- ``"brute"``: float32 matrix products (BLAS) shortlist each descriptor's candidates, in blocks of at most
  ``_BLOCK_ENTRIES`` products so that memory stays bounded at any keypoint count; the shortlisted distances are
  recomputed in float64 exactly as cKDTree computes them (same summation order, so bit for bit), and every
  decision (nearest, second nearest, strict ``distance < max_distance``, ratio test, mutual check) is taken on
  those. Exact ties among the reported neighbours (equal float64 distances: duplicate descriptors) are resolved
  by asking cKDTree about just those descriptors, because cKDTree picks among ties by its traversal order.
- ``"auto"`` (default): ``choose_method``, brute force for descriptors of 8 or more dimensions once
  ``N_a * N_b >= 200 * 200``, else the KD-tree. Measured with one BLAS thread on a 2-core AMD EPYC
  (``benchmarks/bench_matching.py --crossover``: unit vectors, half of B near copies of A, bound 0.8): the
  KD-tree wins in 2 to 6 dimensions at every size up to 4,000 features (brute force is at best 1.1x faster
  there); brute force overtakes it at about 200 features per image in 8 to 16 dimensions and about 100 in 40
  (DELF's) and 128 (RootSIFT's), and is about 9x faster there at 1,000 features and 11-15x at 4,000.

Brute force runs in BLAS, which starts a thread per core in every process: worker processes call
``limit_blas_threads`` so that together they stay within the cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("auto", "brute", "kdtree")


@dataclass(frozen=True)
class MatchConfig:
    """How descriptors are matched.

    Attributes
    ----------
    max_distance : float
        Matched descriptors are strictly closer than this Euclidean distance (``distance_upper_bound`` of the
        KD-tree query, which compares the float64 squared distance with ``max_distance ** 2``).
    ratio : float or None
        Lowe's ratio test threshold in (0, 1]; ``None`` disables it.
    mutual : bool
        Keep only mutual nearest neighbours.
    method : {"auto", "brute", "kdtree"}
        How nearest neighbours are found; the matches are the same whichever it is, only the time differs, so
        it is left out of ``fingerprint_fields``. ``"auto"`` chooses per call with ``choose_method``.
    """

    max_distance: float = 0.8
    ratio: float | None = None
    mutual: bool = False
    method: str = "auto"

    def __post_init__(self) -> None:
        if not self.max_distance > 0:
            raise ValueError(f"max_distance must be > 0, got {self.max_distance}")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1] or None, got {self.ratio}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")

    def fingerprint_fields(self) -> dict[str, Any]:
        """The settings that determine the matches (all but ``method``): use these in cache keys."""
        return {"max_distance": self.max_distance, "ratio": self.ratio, "mutual": self.mutual}


@dataclass(frozen=True)
class Matches:
    """Putative matches: ``pairs[i] = (index in A, index in B)`` with their descriptor ``distances``."""

    pairs: np.ndarray  # int64 [M, 2]
    distances: np.ndarray  # float32 [M]

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


def choose_method(dim: int, n_a: int, n_b: int) -> str:
    """The faster of ``"brute"`` and ``"kdtree"`` for ``n_a`` and ``n_b`` descriptors of dimension ``dim``
    (what ``method="auto"`` uses; the crossover is measured in the module docstring)."""
    return "brute" if dim >= 8 and n_a * n_b >= 200 * 200 else "kdtree"


def match_descriptors(desc_a: np.ndarray, desc_b: np.ndarray, config: MatchConfig = MatchConfig()) -> Matches:
    """Match descriptors of image B to their nearest neighbours in image A.

    Parameters
    ----------
    desc_a, desc_b : float [N_a, D], [N_b, D]
        Descriptors; either may be empty.
    config : MatchConfig
        Distance bound, filters and method.

    Returns
    -------
    Matches
        At most one match per descriptor of B, ordered by index in B.

    Raises
    ------
    ValueError
        If the descriptor dimensions differ or a descriptor is not finite.
    """
    if desc_a.ndim != 2 or desc_b.ndim != 2 or desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(f"descriptor shapes do not match: {desc_a.shape} vs {desc_b.shape}")
    n_a, n_b = desc_a.shape[0], desc_b.shape[0]
    if n_a == 0 or n_b == 0:
        return Matches(np.zeros((0, 2), np.int64), np.zeros((0,), np.float32))
    if not (np.isfinite(desc_a).all() and np.isfinite(desc_b).all()):
        raise ValueError("descriptors must be finite (no NaN or infinity)")
    method = choose_method(desc_a.shape[1], n_a, n_b) if config.method == "auto" else config.method
    query = _query_kdtree if method == "kdtree" else _query_brute
    k = 2 if config.ratio is not None else 1
    dist, idx = query(desc_a, desc_b, k, config.max_distance)
    keep = idx[:, 0] < n_a  # a miss returns index n_a
    if k == 2:
        # A missing second neighbour (inf) means the nearest one is unambiguous within the bound.
        keep &= dist[:, 0] < config.ratio * dist[:, 1]
    b_idx = np.flatnonzero(keep)
    a_idx = idx[keep, 0]
    dist = dist[keep, 0]
    if config.mutual and len(b_idx):
        unique_a, inverse = np.unique(a_idx, return_inverse=True)
        _, back = query(desc_b, desc_a[unique_a], 1, np.inf)
        mutual = back[inverse, 0] == b_idx
        a_idx, b_idx, dist = a_idx[mutual], b_idx[mutual], dist[mutual]
    pairs = np.stack([a_idx, b_idx], axis=1).astype(np.int64)
    return Matches(pairs, dist.astype(np.float32))


def limit_blas_threads(workers: int, cores: int):
    """Cap this process's BLAS threads so that ``workers`` tasks running at once use at most ``cores`` cores.

    Each process gets ``max(1, cores // workers)`` threads. Call it once in every worker process before it
    matches (for example where the worker builds its verifier): the cap then holds for the life of the process.
    Used as a context manager, or through the returned object's ``restore_original_limits()``, it restores the
    previous limits. It applies to the BLAS libraries loaded when it is called (numpy's is: this module imports
    numpy).

    Parameters
    ----------
    workers : int
        Tasks that run at the same time on this machine: worker processes times the threads of each.
    cores : int
        Cores they share.

    Returns
    -------
    threadpoolctl.threadpool_limits

    Raises
    ------
    ValueError
        If ``workers`` or ``cores`` is not a positive integer.
    """
    for name, value in (("workers", workers), ("cores", cores)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, cores // workers), user_api="blas")


def _query_kdtree(data: np.ndarray, queries: np.ndarray, k: int, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``data`` to each query closer than ``bound``: float64 distances [Q, k] (inf for
    none) and indices [Q, k] (``len(data)`` for none), from ``scipy.spatial.cKDTree``."""
    from scipy.spatial import cKDTree

    return cKDTree(data).query(queries, k=list(range(1, k + 1)), distance_upper_bound=bound)


#: Most float32 entries of one block of query-by-data products (2 MiB), whatever the number of descriptors.
_BLOCK_ENTRIES = 1 << 19


def _query_brute(data: np.ndarray, queries: np.ndarray, k: int, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """What ``_query_kdtree`` returns, bit for bit, computed with BLAS matrix products.

    A float32 product ``g = |a|^2 - 2 q.a`` (the squared distance less the query's own ``|q|^2``) is off the exact
    value by at most ``slack``, so the exact k nearest within the bound lie among the entries no more than
    ``2 * slack`` above the row's k-th smallest ``g`` and no more than ``slack`` above the bound. Those are
    recomputed exactly; rows whose reported neighbours tie exactly (equal float64 distances, e.g. duplicate
    descriptors) are handed to the KD-tree itself, whose choice among ties depends on its traversal order.
    """
    n, dim = data.shape
    # Scaled by a power of two (exact) so that float32 squares neither overflow nor underflow. An extra column
    # (|a|^2 against 1) makes one matrix product give g.
    largest = max(abs(float(x)) for x in (data.min(), data.max(), queries.min(), queries.max()))
    scale = 2.0 ** -np.frexp(largest)[1]
    data32 = np.empty((n, dim + 1), np.float32)
    np.multiply(data, -2 * scale, out=data32[:, :dim], dtype=np.float64, casting="same_kind")
    sq_data = np.einsum("ij,ij->i", data32[:, :dim], data32[:, :dim], dtype=np.float64) / 4
    data32[:, dim] = sq_data
    step = max(1, _BLOCK_ENTRIES // n)
    block32 = np.ones((min(step, len(queries)), dim + 1), np.float32)
    g = np.empty((len(block32), n), np.float32)
    rows, cols = [], []
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        scaled = block32[: len(block), :dim]
        np.multiply(block, scale, out=scaled, dtype=np.float64, casting="same_kind")
        sq_block = np.einsum("ij,ij->i", scaled, scaled, dtype=np.float64)
        # A float32 dot product of D terms errs by at most D * eps * |q||a| <= D * eps * (|q|^2 + |a|^2) / 2
        # whatever the summation order; the rounding of inputs, norms and sums adds a few eps, underflow a few
        # float32.tiny (generous bounds: they only widen the shortlist).
        slack = (dim + 16) * (np.finfo(np.float32).eps * (sq_block + sq_data.max()) + np.finfo(np.float32).tiny)
        g_block = np.matmul(block32[: len(block)], data32.T, out=g[: len(block)])
        block_rows, block_cols = _shortlist(g_block, k, 2 * slack, (bound * scale) ** 2 - sq_block + slack)
        rows.append(block_rows + start)
        cols.append(block_cols)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    chunk = max(1, _BLOCK_ENTRIES // (16 * dim))  # candidates whose float64 differences take 1/4 of a block of g
    sq = np.empty(len(rows))
    for i in range(0, len(rows), chunk):
        sq[i : i + chunk] = _sqeuclidean(data[cols[i : i + chunk]], queries[rows[i : i + chunk]])
    inside = sq < bound * bound  # as cKDTree compares squared distances
    rows, cols, sq = rows[inside], cols[inside], sq[inside]
    order = np.lexsort((cols, sq, rows))
    rows, cols, sq = rows[order], cols[order], sq[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    top = rank < k
    dist = np.full((len(queries), k), np.inf)
    idx = np.full((len(queries), k), n, np.int64)
    dist[rows[top], rank[top]] = np.sqrt(sq[top])
    idx[rows[top], rank[top]] = cols[top]
    tied = np.unique(rows[:-1][(rank[:-1] < k) & (rows[:-1] == rows[1:]) & (sq[:-1] == sq[1:])])
    if len(tied):
        dist[tied], idx[tied] = _query_kdtree(data, queries[tied], k, bound)
    return dist, idx


def _shortlist(g: np.ndarray, k: int, margin: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the entries of each row of ``g`` at most ``margin`` above its k-th smallest and at most
    ``limit``: the k smallest per row are found by repeated ``argmin``, and only rows where the next smallest
    also qualifies (near-ties) are scanned in full."""
    rows = np.arange(len(g))
    cols, values = [], []
    for _ in range(k):
        col = g.argmin(axis=1)
        cols.append(col)
        values.append(g[rows, col])
        g[rows, col] = np.inf
    following = g.min(axis=1)
    for col, value in zip(reversed(cols), reversed(values)):  # restore (the same column may repeat when N < k)
        g[rows, col] = value
    threshold = np.minimum(values[-1] + margin, limit)
    full = following <= threshold
    best_rows, rank = np.nonzero((np.stack(values, axis=1) <= threshold[:, None]) & ~full[:, None])
    best_cols = np.stack(cols, axis=1)[best_rows, rank]
    full = np.flatnonzero(full)
    full_rows, full_cols = np.nonzero(g[full] <= threshold[full, None])
    return np.concatenate([best_rows, full[full_rows]]), np.concatenate([best_cols, full_cols])


def _sqeuclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``x`` and ``y`` in float64, summed in cKDTree's order
    (four interleaved running sums, added up, then the remaining terms) so that they are bit for bit the same."""
    sq = np.subtract(x, y, dtype=np.float64)
    sq *= sq
    whole = sq.shape[1] - sq.shape[1] % 4
    acc = np.zeros((len(sq), 4))
    for i in range(0, whole, 4):
        acc += sq[:, i : i + 4]
    total = acc[:, 0] + acc[:, 1] + acc[:, 2] + acc[:, 3]
    for i in range(whole, sq.shape[1]):
        total += sq[:, i]
    return total

