"""The null table: the model of how many unrelated pairs reach each inlier count, fitted with its tail, and the
check of its calibration on pairs not used to fit it (see ``delfverify.calibration``)."""

from __future__ import annotations

import itertools
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DelfverifyError, shorten
from ..settings import MAX_SEED
from ..verification import GEOMETRIES

logger = logging.getLogger(__name__)

FORMAT = "delfverify-null-table"
#: The file format version written and read.
FORMAT_VERSION = 1
#: The empirical share is used where at least this many pairs reach a count (relative standard error <= 18%).
EMPIRICAL_MIN_PAIRS = 30
#: Fewest pairs a table is fitted from.
MIN_PAIRS = 100
#: Most pairs a table may hold, and most pairs ``measure_null_table`` samples.
MAX_PAIRS = 10**12
MAX_SAMPLE_PAIRS = 1_000_000
#: Largest inlier count a table may hold: far more than any pair of photos has matches.
MAX_COUNT = 100_000
#: The smallest rate ``false_match_rate`` gives (the smallest normal float64): never 0.
MIN_RATE = float(np.finfo(np.float64).tiny)
#: Pairs are set aside as sharing geometry when fewer than this many of all pairs would reach their count by chance.
SET_ASIDE_ALPHA = 0.01
#: At most this share of the pairs is ever set aside (the largest counts).
SET_ASIDE_MAX_SHARE = 0.05
#: ``measure_null_table``'s default number of pairs.
DEFAULT_PAIRS = 2000
#: Largest JSON file read (a table of ``MAX_COUNT`` counts is about 1 MiB).
MAX_FILE_BYTES = 8 * 2**20
_MAX_SEED = MAX_SEED
_MAX_SOURCE = 2000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_FINGERPRINT = re.compile(r"(|[0-9a-f]{16})")
_FIELDS = ("format", "version", "extractor", "geometry", "pair_fingerprint", "source", "seed", "pairs", "reaching",
           "tail", "set_aside", "unverifiable", "failed")


class NullTableError(DelfverifyError, ValueError):
    """A null table (file or fields) is invalid; the message names the file and the field."""


class CalibrationError(DelfverifyError, ValueError):
    """A gallery cannot give a null table (too few pairs of different labels, too many unreadable photos)."""


@dataclass(frozen=True)
class NullTable:
    """What unrelated photo pairs reach, for one extractor and geometric model, and the false-match rate fitted to it.

    Build one with ``fit_null_table`` (from counts), ``measure_null_table`` (from a gallery), ``read_null_table``
    or ``builtin_table``; the constructor checks every field and raises ``NullTableError`` naming it.

    Attributes
    ----------
    extractor : str
        The extractor's name (``Extractor.name``).
    geometry : {"affine", "homography", "fundamental"}
        The geometric model (``RansacConfig.geometry``).
    reaching : tuple of int
        ``reaching[k]``: the pairs with at least ``k`` inliers, ``k = 0 .. max count``; non-increasing,
        ``reaching[0]`` is the number of pairs, the last entry is positive.
    anchor : int
        The last count whose rate is the empirical share; the geometric tail starts there.
    continuation : float
        The tail's ``q`` in (0, 1): ``rate(k + 1) = q * rate(k)`` beyond the anchor.
    source : str
        Where the pairs came from and how they were chosen.
    seed : int or None
        The sampling seed; ``None`` when every pair was used.
    pair_fingerprint : str
        ``Verifier.settings_fingerprint`` of the settings measured (16 hex digits), or ``""`` when unknown.
    set_aside : tuple of int
        Inlier counts of pairs set aside as sharing geometry (ascending); not in ``reaching``.
    unverifiable, failed : int
        Pairs left out: a photo with too few keypoints to tell anything, or one that could not be read.
    """

    extractor: str
    geometry: str
    reaching: tuple[int, ...]
    anchor: int
    continuation: float
    source: str = ""
    seed: int | None = None
    pair_fingerprint: str = ""
    set_aside: tuple[int, ...] = ()
    unverifiable: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.extractor, str) and _NAME.fullmatch(self.extractor)):
            raise NullTableError(f"extractor: expected a name of letters, digits and _.+- (at most 64), "
                                 f"got {_short(self.extractor)}")
        if self.geometry not in GEOMETRIES:
            raise NullTableError(f"geometry: expected one of {', '.join(GEOMETRIES)}, got {_short(self.geometry)}")
        reaching = self.reaching
        if not isinstance(reaching, tuple) or not all(_is_int(v) for v in reaching):
            raise NullTableError("reaching: expected a tuple of integers")
        if not 1 <= len(reaching) <= MAX_COUNT + 1:
            raise NullTableError(f"reaching: expected 1 to {MAX_COUNT + 1} entries (counts 0 to {MAX_COUNT}), "
                                 f"got {len(reaching)}")
        if not MIN_PAIRS <= reaching[0] <= MAX_PAIRS:
            raise NullTableError(f"reaching[0]: the number of pairs must be in [{MIN_PAIRS}, {MAX_PAIRS}], "
                                 f"got {reaching[0]}")
        rising = next((k for k in range(1, len(reaching)) if reaching[k] > reaching[k - 1]), None)
        if rising is not None:
            raise NullTableError(f"reaching[{rising}]: pairs reaching a count must not increase with it "
                                 f"({reaching[rising - 1]} reach {rising - 1}, {reaching[rising]} reach {rising})")
        if reaching[-1] < 1:
            raise NullTableError(f"reaching[{len(reaching) - 1}]: the last entry (the largest count measured) must "
                                 f"be positive, got {reaching[-1]}")
        if not (_is_int(self.anchor) and 0 <= self.anchor < len(reaching)):
            raise NullTableError(f"tail.anchor: expected an integer in [0, {len(reaching) - 1}], "
                                 f"got {_short(self.anchor)}")
        if not (_is_number(self.continuation) and 0 < self.continuation < 1):
            raise NullTableError(f"tail.continuation: expected a number in (0, 1), got {_short(self.continuation)}")
        if not (isinstance(self.source, str) and len(self.source) <= _MAX_SOURCE):
            raise NullTableError(f"source: expected a string of at most {_MAX_SOURCE} characters")
        if self.seed is not None and not (_is_int(self.seed) and 0 <= self.seed <= _MAX_SEED):
            raise NullTableError(f"seed: expected null or an integer in [0, {_MAX_SEED}], got {_short(self.seed)}")
        if not (isinstance(self.pair_fingerprint, str) and _FINGERPRINT.fullmatch(self.pair_fingerprint)):
            raise NullTableError(f"pair_fingerprint: expected 16 lowercase hex digits or \"\", got "
                                 f"{_short(self.pair_fingerprint)}")
        aside = self.set_aside
        if not (isinstance(aside, tuple) and all(_is_int(v) and 0 <= v <= MAX_COUNT for v in aside)):
            raise NullTableError(f"set_aside: expected a list of integers in [0, {MAX_COUNT}]")
        if any(b < a for a, b in itertools.pairwise(aside)):
            raise NullTableError("set_aside: expected counts in ascending order")
        for name in ("unverifiable", "failed"):
            value = getattr(self, name)
            if not (_is_int(value) and 0 <= value <= MAX_PAIRS):
                raise NullTableError(f"{name}: expected an integer in [0, {MAX_PAIRS}], got {_short(value)}")

    @property
    def pairs(self) -> int:
        """The unrelated pairs the table was fitted on (set-aside, unverifiable and failed pairs excluded)."""
        return self.reaching[0]

    @property
    def max_count(self) -> int:
        """The largest inlier count of a pair in the table."""
        return len(self.reaching) - 1

    def false_match_rate(self, counts):
        """The estimated share of unrelated photo pairs that reach at least each count.

        Parameters
        ----------
        counts : int or array-like of int
            Inlier counts >= 0 (a float array of whole numbers is accepted; NaN, a pair not verified, gives NaN).

        Returns
        -------
        float or float64 ndarray
            Of the shape of ``counts``; each rate in ``[MIN_RATE, 1]``, 1 at 0 inliers, non-increasing in the
            count: ``(m_k + 1) / (n + 1)`` up to the anchor, the geometric tail beyond.

        Raises
        ------
        ValueError
            If a count is negative, infinite or not a whole number.

        Examples
        --------
        >>> table = fit_null_table([0] * 50 + [7] * 300 + [8] * 400 + [9] * 200 + [10] * 40 + [11] * 8 + [12] * 2,
        ...                        extractor="rootsift", geometry="fundamental")
        >>> float(table.false_match_rate(0))
        1.0
        >>> round(float(table.false_match_rate(10)), 4)  # (50 + 1) / (1000 + 1)
        0.0509
        >>> bool(table.false_match_rate(14) < table.false_match_rate(13) < table.false_match_rate(12))
        True
        """
        scalar = np.ndim(counts) == 0
        k = np.asarray(counts, dtype=np.float64)
        missing = np.isnan(k)
        known = k[~missing]
        if not np.all(np.isfinite(known)) or np.any(known < 0) or np.any(known != np.floor(known)):
            bad = known[~(np.isfinite(known) & (known >= 0) & (known == np.floor(known)))][0]
            raise ValueError(f"counts must be whole numbers >= 0 (NaN for a pair not verified), got {bad!r}")
        reaching = np.asarray(self.reaching, np.float64)
        n, a = reaching[0], self.anchor
        log_anchor = math.log((reaching[a] + 1) / (n + 1))
        below = np.minimum(np.where(missing, 0, k), a).astype(np.int64)
        empirical = (reaching[below] + 1) / (n + 1)
        log_tail = log_anchor + (np.where(missing, a, k) - a) * math.log(self.continuation)
        with np.errstate(over="ignore", under="ignore"):
            tail = np.where(log_tail > math.log(MIN_RATE), np.maximum(np.exp(log_tail), MIN_RATE), MIN_RATE)
        rate = np.where(k > a, tail, empirical)
        rate = np.where(missing, np.nan, rate)
        return float(rate) if scalar else rate

    def count_for_rate(self, rate):
        """The smallest inlier count whose false-match rate is at most ``rate``.

        Parameters
        ----------
        rate : float or array-like of float
            Rates in ``[MIN_RATE, 1]``.

        Returns
        -------
        int or int64 ndarray
            ``k`` with ``false_match_rate(k) <= rate < false_match_rate(k - 1)`` (0 for a rate of 1).

        Raises
        ------
        ValueError
            If a rate is not a number in ``[MIN_RATE, 1]``.

        Examples
        --------
        >>> table = fit_null_table([0] * 50 + [7] * 300 + [8] * 400 + [9] * 200 + [10] * 40 + [11] * 8 + [12] * 2,
        ...                        extractor="rootsift", geometry="fundamental")
        >>> table.count_for_rate(0.10), table.count_for_rate(0.01)
        (10, 12)
        """
        scalar = np.ndim(rate) == 0
        r = np.asarray(rate, dtype=np.float64)
        ok = np.isfinite(r) & (r >= MIN_RATE) & (r <= 1)
        if not np.all(ok):
            raise ValueError(f"rate must be a number in [{MIN_RATE:g}, 1], got {r[~ok].flat[0]!r}")
        reaching = np.asarray(self.reaching, np.float64)
        n, a = reaching[0], self.anchor
        empirical = (reaching[: a + 1] + 1) / (n + 1)  # non-increasing: the first at or below each rate
        first = np.searchsorted(-empirical, -r, side="left")
        log_anchor = math.log(empirical[a])
        steps = np.ceil((np.log(r) - log_anchor) / math.log(self.continuation))
        counts = np.where(first <= a, first, a + np.maximum(steps, 1)).astype(np.int64)
        # The tail's rounding: make the answer exact against false_match_rate itself.
        for _ in range(2):
            too_high = (counts > a) & (self.false_match_rate(counts) > r)
            counts = counts + too_high
            lower = np.maximum(counts - 1, 0)
            too_far = (counts > a + 1) & (self.false_match_rate(lower) <= r)
            counts = counts - too_far
        return int(counts) if scalar else counts

    def describe(self) -> str:
        """One line: the table's extractor, model, pairs, and the counts that at most 10%, 1% and 0.1% of them
        reach."""
        ten, one, tenth = (self.count_for_rate(p) for p in (0.1, 0.01, 0.001))
        aside = f"; {len(self.set_aside)} set aside as sharing geometry" if self.set_aside else ""
        return (f"{self.extractor} with the {self.geometry} model: {self.pairs} unrelated pairs{aside}; at most 10% "
                f"reach {ten} inliers, 1% reach {one}, 0.1% reach {tenth}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the table (``null_table_from_dict`` reads it back)."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "extractor": self.extractor, "geometry": self.geometry,
                "pair_fingerprint": self.pair_fingerprint, "source": self.source, "seed": self.seed,
                "pairs": self.pairs, "reaching": list(self.reaching),
                "tail": {"anchor": self.anchor, "continuation": self.continuation},
                "set_aside": list(self.set_aside), "unverifiable": self.unverifiable, "failed": self.failed}


def format_rate(rate: float) -> str:
    """A false-match rate for people, to two significant digits: a percentage from 0.01% up (``100%``, ``6%``,
    ``0.066%``), a power of ten below (``3.1e-12``); ``unknown`` for NaN.

    >>> format_rate(1.0), format_rate(0.0598), format_rate(0.000659), format_rate(3.14e-12)
    ('100%', '6%', '0.066%', '3.1e-12')
    """
    if math.isnan(rate):
        return "unknown"
    return f"{float(f'{rate * 100:.2g}'):g}%" if rate >= 1e-4 else f"{rate:.2g}"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _short(value: Any) -> str:
    """A value quoted in a message (``errors.shorten`` of its repr)."""
    return shorten(repr(value))


# ---------------------------------------------------------------------------------------------------------------
# Fitting


def _reaching(counts: np.ndarray) -> np.ndarray:
    """``reaching[k]``: how many counts are at least ``k``, ``k = 0 .. max``."""
    histogram = np.bincount(counts)
    return np.cumsum(histogram[::-1])[::-1]


def _fit_tail(reaching: np.ndarray) -> tuple[int, float]:
    """The anchor (last count reached by ``EMPIRICAL_MIN_PAIRS`` pairs, else 0) and the tail's continuation
    probability by Laplace's rule: each pair at or beyond the anchor took ``x - a`` steps and stopped once."""
    plentiful = np.flatnonzero(reaching >= EMPIRICAL_MIN_PAIRS)
    anchor = int(plentiful[-1]) if len(plentiful) else 0
    steps = int(reaching[anchor + 1:].sum())  # sum over pairs of max(x - anchor, 0)
    return anchor, (steps + 1) / (steps + int(reaching[anchor]) + 2)


def _rate(reaching: np.ndarray, anchor: int, continuation: float, count: int) -> float:
    n = reaching[0]
    if count <= anchor:
        return (reaching[count] + 1) / (n + 1)
    return (reaching[anchor] + 1) / (n + 1) * continuation ** (count - anchor)


def shared_geometry_cut(counts) -> int | None:
    """The lowest inlier count from which pairs are set aside as sharing geometry, or ``None``.

    For each count ``v`` reached by at most ``SET_ASIDE_MAX_SHARE`` of the pairs (from the largest down), the table
    is fitted to the pairs below ``v``; ``v`` is implausible as chance when fewer than ``SET_ASIDE_ALPHA`` of all
    ``n`` pairs would be expected to reach it: ``n * rate(v) < SET_ASIDE_ALPHA``. As in Rosner's generalised ESD
    test, the lowest such ``v`` is the cut, so that a cluster of high counts cannot mask itself.

    Parameters
    ----------
    counts : array-like of int
        Inlier counts of pairs of photos of different labels.
    """
    counts = np.asarray(counts, np.int64)
    n = len(counts)
    limit = max(1, int(SET_ASIDE_MAX_SHARE * n))
    cut = None
    values = np.unique(counts)[::-1]
    for v in values.tolist():
        if int((counts >= v).sum()) > limit:
            break
        kept = counts[counts < v]
        if len(kept) == 0:
            break
        reaching = _reaching(kept)
        anchor, continuation = _fit_tail(reaching)
        if n * _rate(reaching, anchor, continuation, v) < SET_ASIDE_ALPHA:
            cut = v
    return cut


def fit_null_table(counts, *, extractor: str, geometry: str, source: str = "", seed: int | None = None,
                   pair_fingerprint: str = "", set_aside: bool = True, unverifiable: int = 0,
                   failed: int = 0) -> NullTable:
    """Fit a null table to the inlier counts of unrelated photo pairs.

    Parameters
    ----------
    counts : array-like of int
        Inlier counts (>= 0, at most ``MAX_COUNT``) of at least ``MIN_PAIRS`` pairs of photos of different labels.
    extractor : str
        The extractor's name.
    geometry : {"affine", "homography", "fundamental"}
    source : str
        Where the pairs came from and how they were chosen (kept in the table).
    seed : int, optional
        The sampling seed, if the pairs were sampled.
    pair_fingerprint : str
        ``Verifier.settings_fingerprint`` of the settings measured, or ``""``.
    set_aside : bool
        Set aside the pairs from ``shared_geometry_cut`` on (default); ``False`` fits every count.
    unverifiable, failed : int
        Pairs left out before, recorded in the table.

    Returns
    -------
    NullTable

    Raises
    ------
    ValueError
        If ``counts`` holds fewer than ``MIN_PAIRS`` counts (after setting aside) or a count that is not a whole
        number in ``[0, MAX_COUNT]``; ``NullTableError`` (a ``ValueError``) for a bad other field.
    """
    values = np.asarray(counts)
    if values.ndim != 1:
        raise ValueError(f"counts must be one-dimensional, got shape {values.shape}")
    as_float = values.astype(np.float64) if values.size else np.zeros(0)
    if not (np.all(np.isfinite(as_float)) and np.all(as_float == np.floor(as_float))
            and np.all((as_float >= 0) & (as_float <= MAX_COUNT))):
        raise ValueError(f"counts must be whole numbers in [0, {MAX_COUNT}]")
    values = as_float.astype(np.int64)
    aside: tuple[int, ...] = ()
    if set_aside and len(values) >= MIN_PAIRS:
        cut = shared_geometry_cut(values)
        if cut is not None:
            aside = tuple(sorted(values[values >= cut].tolist()))
            values = values[values < cut]
            logger.info("set aside %d of %d pairs with %d to %d inliers as sharing geometry",
                        len(aside), len(values) + len(aside), aside[0], aside[-1])
    if len(values) < MIN_PAIRS:
        raise ValueError(f"counts: a null table needs at least {MIN_PAIRS} pairs, got {len(values)}")
    reaching = _reaching(values)
    anchor, continuation = _fit_tail(reaching)
    return NullTable(extractor, geometry, tuple(int(v) for v in reaching), anchor, continuation, source, seed,
                     pair_fingerprint, aside, unverifiable, failed)


@dataclass(frozen=True)
class CalibrationCheck:
    """Observed shares of held-out unrelated pairs against a table's false-match rates.

    Attributes
    ----------
    counts : int64 [c]
        The counts whose predicted rate is at least ``min_rate``.
    predicted : float64 [c]
        ``table.false_match_rate(counts)``.
    observed : float64 [c]
        The share of the held-out pairs reaching each count.
    pairs : int
        The held-out pairs.
    """

    counts: np.ndarray
    predicted: np.ndarray
    observed: np.ndarray
    pairs: int

    @property
    def ratio(self) -> np.ndarray:
        """``observed / predicted`` per count."""
        return self.observed / self.predicted

    def within(self, factor: float = 2.0) -> bool:
        """Whether every ratio lies in ``[1 / factor, factor]``."""
        return bool(np.all((self.ratio >= 1 / factor) & (self.ratio <= factor)))


def check_calibration(table: NullTable, counts, min_rate: float = 0.01) -> CalibrationCheck:
    """Compare a table's rates with the shares of held-out unrelated pairs reaching each count.

    Parameters
    ----------
    table : NullTable
    counts : array-like of int
        Inlier counts of unrelated pairs not used to fit ``table``.
    min_rate : float
        Counts are checked where ``table.false_match_rate`` is at least this, in (0, 1].
    """
    if not 0 < min_rate <= 1:
        raise ValueError(f"min_rate must be in (0, 1], got {min_rate!r}")
    held = np.asarray(counts, np.int64)
    if held.ndim != 1 or len(held) == 0:
        raise ValueError("counts must be a non-empty one-dimensional array")
    checked = np.arange(0, table.count_for_rate(min_rate) + 1)
    checked = checked[table.false_match_rate(checked) >= min_rate]
    observed = (held[None, :] >= checked[:, None]).mean(axis=1)
    return CalibrationCheck(checked, table.false_match_rate(checked), observed, len(held))


# ---------------------------------------------------------------------------------------------------------------
# Files


def _extractor_name(extractor: Any) -> str:
    return extractor if isinstance(extractor, str) else getattr(extractor, "name", str(extractor))
