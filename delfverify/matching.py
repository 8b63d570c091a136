"""Putative matches between two descriptor sets: exact nearest neighbours, by KD-tree or by brute force.

For every descriptor of image B the nearest descriptor of image A is looked up within ``max_distance``
(the research's DELF setting is 0.8). Optional filters: Lowe's ratio test (nearest / second nearest distance
below ``ratio``) and mutual nearest neighbours (A's nearest in B must be the same pair).

Two methods give identical matches (``MatchConfig.method``):

- ``"kdtree"``: ``scipy.spatial.cKDTree``, the research's method and the reference.
- ``"brute"``: one float32 matrix product (BLAS) of the two sets estimates every squared distance within a
  proven error margin. It is computed in blocks of at most ``_BLOCK_ENTRIES`` entries, so that memory stays
  bounded at any keypoint count, and one sweep over each block, part by part while it is in the cache, keeps what
  every decision needs: each descriptor of B's two smallest estimates and each descriptor of A's smallest (for
  the mutual check, which needs no second product). Distances are recomputed in float64 exactly as cKDTree
  computes them (same summation order, so bit for bit) for the matches reported and wherever the margin leaves a
  decision open (nearest, second nearest, strict ``distance < max_distance``, ratio test, mutual check). An exact
  tie that decides a match (equal float64 distances: duplicate descriptors) is resolved by asking cKDTree about
  just that descriptor, because cKDTree picks among ties by its traversal order.
- ``"auto"`` (default): ``choose_method``, brute force for descriptors of 8 or more dimensions once
  ``N_a * N_b >= 200 * 200``, else the KD-tree. Measured with one BLAS thread on a 2-core AMD EPYC
  (``benchmarks/bench_matching.py --crossover``, two runs: unit vectors, half of B near copies of A, bound 0.8):
  the KD-tree wins in 2 and 4 dimensions at every size up to 4,000 features (brute force is at best 1.02x faster
  there), and in 6 brute force gains at most 2x, between 400 and 1,000 features only; brute force overtakes it at
  about 200 features per image in 8 dimensions and about 100 from 16 on (40 is DELF's, 128 RootSIFT's), and is
  3x (8-D) to 10-13x faster there at 1,000 features and 2x (8-D) to 11-20x at 4,000.

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
    # min and max propagate NaN; unsigned descriptors cannot be negated, so take magnitudes as floats.
    extremes = [float(x) for desc in (desc_a, desc_b) if desc.size for x in (desc.min(), desc.max())]
    largest = float(np.abs(extremes).max(initial=0.0))
    if not np.isfinite(largest):
        raise ValueError("descriptors must be finite (no NaN or infinity)")
    method = choose_method(desc_a.shape[1], n_a, n_b) if config.method == "auto" else config.method
    if method == "kdtree":
        a_idx, b_idx, dist = _match_kdtree(desc_a, desc_b, config)
    else:
        a_idx, b_idx, dist = _match_brute(desc_a, desc_b, config, largest)
    return Matches(np.stack([a_idx, b_idx], axis=1).astype(np.int64), dist.astype(np.float32))


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


def _match_kdtree(desc_a: np.ndarray, desc_b: np.ndarray, config: MatchConfig) -> tuple[np.ndarray, ...]:
    """The reference: (index in A, index in B, float64 distance) of the matches, from cKDTree queries; the mutual
    check asks a second tree (of B) for the nearest neighbour of every matched descriptor of A."""
    n_a = len(desc_a)
    k = 2 if config.ratio is not None else 1
    dist, idx = _query_kdtree(desc_a, desc_b, k, config.max_distance)
    keep = idx[:, 0] < n_a  # a miss returns index n_a
    if k == 2:
        # A missing second neighbour (inf) means the nearest one is unambiguous within the bound.
        keep &= dist[:, 0] < config.ratio * dist[:, 1]
    b_idx = np.flatnonzero(keep)
    a_idx = idx[keep, 0]
    dist = dist[keep, 0]
    if config.mutual and len(b_idx):
        unique_a, inverse = np.unique(a_idx, return_inverse=True)
        _, back = _query_kdtree(desc_b, desc_a[unique_a], 1, np.inf)
        mutual = back[inverse, 0] == b_idx
        a_idx, b_idx, dist = a_idx[mutual], b_idx[mutual], dist[mutual]
    return a_idx, b_idx, dist


def _query_kdtree(data: np.ndarray, queries: np.ndarray, k: int, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``data`` to each query closer than ``bound``: float64 distances [Q, k] (inf for
    none) and indices [Q, k] (``len(data)`` for none), from ``scipy.spatial.cKDTree``."""
    from scipy.spatial import cKDTree

    return cKDTree(data).query(queries, k=list(range(1, k + 1)), distance_upper_bound=bound)


#: Most float32 entries of one block of query-by-data products (8 MiB), whatever the number of descriptors:
#: large blocks keep BLAS efficient (each call repacks the data)...
_BLOCK_ENTRIES = 1 << 21
#: ...and the passes over a block take it in parts of at most this many entries (1 MiB, a core's L2 cache), so
#: that the passes after the first find the part in the cache.
_PART_ENTRIES = 1 << 18
_EPS, _TINY = float(np.finfo(np.float32).eps), float(np.finfo(np.float32).tiny)


def _match_brute(desc_a: np.ndarray, desc_b: np.ndarray, config: MatchConfig, largest: float
                 ) -> tuple[np.ndarray, ...]:
    """What ``_match_kdtree`` returns, bit for bit, from one float32 matrix product (BLAS) computed in blocks.

    ``largest`` is the largest magnitude of a component of ``desc_a`` or ``desc_b``. Both are scaled by a power of
    two (exact) that brings it to [1/2, 1), so that float32 squares neither overflow nor underflow, and the product
    of B's rows ``[b, |b|^2, 1]`` with A's rows ``[-2a, 1, |a|^2]`` estimates every squared distance ``|b - a|^2``.

    Error margin: each estimate is within ``slack = (2 D + 16) (eps S + tiny)`` of the float64 squared distance
    that cKDTree computes (scaled), where ``S = max |a|^2 + max |b|^2``, whatever the summation order. A float32
    sum of n terms errs by at most ``n eps / 2`` times the sum of their magnitudes: ``(D + 2) eps S`` for the
    product (its terms add up to ``2 (|a|^2 + |b|^2)`` at most) and ``D eps S / 2`` for the squared norms.
    Rounding the inputs to float32 adds ``2 eps S`` at most; cKDTree's own float64 rounding, underflow and the
    float64 arithmetic of the tests below stay far within the remaining ``(D / 2 + 12) eps S + (2 D + 16) tiny``.

    Rows (descriptors of B): one sweep over the blocks keeps each row's two smallest estimates ``v1 <= v2`` and the
    column of ``v1``. The exact nearest distance lies within ``slack`` of ``v1``, the second within ``slack`` of
    ``v2``. A row needs no exact distance when it surely has nothing within the bound (``v1 - slack >= bound^2``)
    or surely fails the ratio test (``v2 + slack < bound^2`` and ``v1 - slack >= ratio^2 (v2 + slack)``). It needs
    one, to the column of ``v1``, when that column is surely the nearest (``v1 + slack < v2 - slack``) and the
    ratio test surely passes (no ratio, ``v1 + slack < ratio^2 (v2 - slack)``, or ``v2 - slack >= bound^2``: the
    second beyond the bound). Any other row (a near-tie) is recomputed and its entries within ``2 slack`` of its
    k-th smallest and ``slack`` of the bound are kept: they include its exact k nearest. Then ``_nearest_two``
    computes these candidates' distances as cKDTree does, and the bound and ratio test apply to them as to
    cKDTree's. Without the ratio test, a row whose nearest two tie exactly is handed to cKDTree, which picks among
    ties by its traversal order; with it, such a row fails the test whichever cKDTree would name.

    Mutual check (columns, descriptors of A): the same sweep keeps each column's smallest estimate among the rows
    that did not choose it. With the smallest ``v1`` of the other rows that chose it, that is the match's rival:
    the best estimate of any other row for the same column. A rival more than ``slack`` above the match's exact
    squared distance makes it A's unique nearest; more than ``slack`` below, not its nearest. Otherwise (or when
    the exact nearest is not the column of ``v1``) A's nearest in B is looked up exactly, by this same method.
    """
    n_a, dim = desc_a.shape
    n_b = len(desc_b)
    scale = 2.0 ** min(-np.frexp(largest)[1], 126)  # at most 2^126: a float32 too, so float32 products are exact
    data32 = _augmented(desc_a, scale, -2.0, dim + 1, np.empty((n_a, dim + 2), np.float32))
    col1, v1, v2 = np.empty(n_b, np.int64), np.empty(n_b, np.float32), np.empty(n_b, np.float32)
    others = np.full(n_a, np.inf, np.float32)
    largest_sq_b = 0.0
    for start, queries32, h in _products(desc_b, scale, data32):
        rows, stop = np.arange(len(h)), start + len(h)
        h.argmin(axis=1, out=col1[start:stop])
        v1[start:stop] = h[rows, col1[start:stop]]
        h[rows, col1[start:stop]] = np.inf
        h.min(axis=1, out=v2[start:stop])
        if config.mutual:
            np.minimum(others, h.min(axis=0), out=others)
        largest_sq_b = max(largest_sq_b, float(queries32[:, dim].max()))
    slack = (2 * dim + 16) * (_EPS * (float(data32[:, dim + 1].max()) + largest_sq_b) + _TINY)
    limit = (config.max_distance * scale) ** 2
    v1, v2 = v1.astype(np.float64), v2.astype(np.float64)
    nothing = v1 - slack >= limit
    certain = v1 + slack < v2 - slack
    if config.ratio is not None:
        r2 = config.ratio**2
        nothing |= (v2 + slack < limit) & (v1 - slack >= r2 * (v2 + slack))
        certain &= (v1 + slack < r2 * (v2 - slack)) | (v2 - slack >= limit)
    clear = np.flatnonzero(~nothing & certain)
    rows, cols = [clear], [col1[clear]]
    near_ties = np.flatnonzero(~nothing & ~certain)
    if len(near_ties):
        kth = v2 if config.ratio is not None else v1
        threshold = np.minimum(kth[near_ties] + 2 * slack, limit + slack)
        for start, _, h in _products(desc_b[near_ties], scale, data32):
            # flatnonzero: numpy's two-dimensional nonzero is ten times slower
            block_rows, block_cols = np.divmod(np.flatnonzero(h <= threshold[start : start + len(h), None]), n_a)
            rows.append(near_ties[start + block_rows])
            cols.append(block_cols)
    b_idx, a_idx, sq, sq_second = _nearest_two(desc_a, desc_b, np.concatenate(rows), np.concatenate(cols),
                                               config.max_distance)
    if config.ratio is not None:
        keep = np.sqrt(sq) < config.ratio * np.sqrt(sq_second)
        b_idx, a_idx, sq = b_idx[keep], a_idx[keep], sq[keep]
    else:
        tied = np.flatnonzero(sq == sq_second)
        if len(tied):
            a_idx[tied] = _query_kdtree(desc_a, desc_b[b_idx[tied]], 1, config.max_distance)[1][:, 0]
    if config.mutual and len(b_idx):
        rival = np.minimum(others[a_idx], _chooser_rivals(col1, v1, n_a)[b_idx])
        sq_scaled = sq * scale**2
        known = col1[b_idx] == a_idx
        mutual = known & (rival - slack > sq_scaled)
        unsure = np.flatnonzero(~(mutual | (known & (rival + slack < sq_scaled))))
        if len(unsure):
            columns, inverse = np.unique(a_idx[unsure], return_inverse=True)
            in_b, in_columns, _ = _match_brute(desc_b, desc_a[columns], MatchConfig(max_distance=np.inf), largest)
            nearest = np.empty(len(columns), np.int64)
            nearest[in_columns] = in_b
            mutual[unsure] = nearest[inverse] == b_idx[unsure]
        b_idx, a_idx, sq = b_idx[mutual], a_idx[mutual], sq[mutual]
    return a_idx, b_idx, np.sqrt(sq)


def _augmented(x: np.ndarray, scale: float, factor: float, norm_column: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` [N, D + 2] (float32) and return it: the rows of ``x`` times ``scale * factor``, rounded once
    (both are powers of two), the squared norms of the rows times ``scale`` (float32 sums) in column
    ``norm_column`` (D or D + 1), and ones in the other."""
    dim = x.shape[1]
    np.multiply(x, scale * factor, out=out[:, :dim], dtype=np.result_type(x.dtype, np.float32), casting="same_kind")
    np.einsum("ij,ij->i", out[:, :dim], out[:, :dim], out=out[:, norm_column])
    out[:, norm_column] /= factor * factor
    out[:, 2 * dim + 1 - norm_column] = 1
    return out


def _products(queries: np.ndarray, scale: float, data32: np.ndarray):
    """Yield ``(start, queries32, h)`` for parts of the rows of ``queries`` from ``start`` on: their ``_augmented``
    rows and their float32 products with ``data32`` (estimated squared distances), computed in blocks of at most
    ``_BLOCK_ENTRIES`` and yielded in parts of at most ``_PART_ENTRIES``; ``h`` may be modified, it is
    overwritten by a later block."""
    n, dim = queries.shape
    step = max(1, _BLOCK_ENTRIES // max(len(data32), dim + 2))  # bounds both h and the block of queries
    part = max(1, _PART_ENTRIES // len(data32))
    block = np.empty((min(step, n), dim + 2), np.float32)
    out = np.empty((min(step, n), len(data32)), np.float32)
    for start in range(0, n, step):
        queries32 = _augmented(queries[start : start + step], scale, 1.0, dim, block[: n - start])
        h = np.matmul(queries32, data32.T, out=out[: len(queries32)])
        for first in range(0, len(h), part):
            yield start + first, queries32[first : first + part], h[first : first + part]


def _nearest_two(data: np.ndarray, queries: np.ndarray, rows: np.ndarray, cols: np.ndarray, bound: float):
    """The exact nearest of each query among its candidates ``(rows, cols)``, within ``bound``: (query index,
    data index, float64 squared distance, the second smallest squared distance or inf), ordered by query."""
    chunk = max(1, _BLOCK_ENTRIES // (2 * data.shape[1]))  # float64 differences take one block's memory
    sq = np.empty(len(rows))
    for i in range(0, len(rows), chunk):
        sq[i : i + chunk] = _sqeuclidean(data[cols[i : i + chunk]], queries[rows[i : i + chunk]])
    inside = sq < bound * bound  # as cKDTree compares squared distances
    rows, cols, sq = rows[inside], cols[inside], sq[inside]
    order = np.lexsort((sq, rows))
    rows, cols, sq = rows[order], cols[order], sq[order]
    first = np.flatnonzero(np.diff(rows, prepend=-1))
    sq_second = np.full(len(first), np.inf)
    has_second = np.diff(first, append=len(rows)) > 1
    sq_second[has_second] = sq[first[has_second] + 1]
    return rows[first], cols[first], sq[first], sq_second


def _chooser_rivals(col1: np.ndarray, v1: np.ndarray, n_cols: int) -> np.ndarray:
    """For each row, the smallest ``v1`` among the other rows with the same ``col1`` (inf if none)."""
    best = np.full(n_cols, np.inf, v1.dtype)
    np.minimum.at(best, col1, v1)
    is_best = v1 == best[col1]
    runner_up = np.full(n_cols, np.inf, v1.dtype)
    np.minimum.at(runner_up, col1[~is_best], v1[~is_best])
    alone = np.bincount(col1[is_best], minlength=n_cols)[col1] == 1  # the only row at its column's best
    return np.where(is_best & alone, runner_up[col1], best[col1])


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

