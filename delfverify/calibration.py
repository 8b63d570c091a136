"""Calibrated false-match rates: what share of unrelated photo pairs reach an inlier count.

An inlier count means little on its own: 14 fundamental-matrix inliers is strong evidence, 14 affine inliers with
DELF is weak. A ``NullTable`` states it in one number that holds across photo sets: the *false-match rate* of a
count ``k`` is the estimated share of unrelated photo pairs (two photos of different places) that reach at least
``k`` inliers with the same extractor and geometric model. It is measured once from unrelated pairs (the built-in
tables, ``builtin_table``) or on a user's own gallery (``measure_null_table``), and read and written as a small
versioned JSON file (``read_null_table``, ``write_null_table``).

The model (``NullTable.false_match_rate``)
------------------------------------------
``n`` unrelated pairs were verified; ``m_k`` of them reached at least ``k`` inliers (``NullTable.reaching``).

- **Where data are plentiful** (``m_k >= EMPIRICAL_MIN_PAIRS`` = 30, so the estimate's relative standard error is
  at most ``1/sqrt(30)`` = 18%): the empirical share with the add-one correction, ``(m_k + 1) / (n + 1)``. It is
  the rank p-value of permutation tests (Davison & Hinkley 1997; North et al. 2002): if the pair at hand is itself
  unrelated, exchangeable with the ``n`` measured, its rate is at most ``r`` with probability at most ``r``, so the
  rate is a valid p-value, never 0, and not understated by the finite sample. ``(m_0 + 1)/(n + 1) = 1``.
- **Beyond** the last plentiful count, the *anchor* ``a``: a geometric tail,
  ``rate(k) = rate(a) * q ** (k - a)`` for ``k > a``. ``q`` is the chance that an unrelated pair that reached
  ``k`` inliers also reaches ``k + 1``, taken as constant beyond the anchor: the discrete exponential, the
  peaks-over-threshold model (a generalised Pareto excess of shape 0) for counts in the Gumbel domain, which the
  best of many chance consensus sets is (a maximum of light-tailed counts). One parameter, because a few dozen
  pairs beyond the anchor cannot support a second (a shape). It is fitted on the pairs at or beyond the anchor,
  each of which took ``x - a`` steps beyond it and then stopped once: by Laplace's rule of succession,
  ``q = (steps + 1) / (steps + m_a + 2)``, the maximum-likelihood estimate ``steps / (steps + m_a)`` shrunk so that
  it is never 0 (no pair beyond the anchor still leaves a tail) nor 1. Measured (RootSIFT, fundamental matrix,
  2,949 pairs): from 10 to 11 inliers 32% of the pairs go on, from 11 to 12 20%, from 12 to 13 28% (10 of 36);
  the fitted ``q`` is 0.23. Where the true continuation falls with ``k`` (binomial-like tails), a constant ``q``
  overstates far rates: a match is then called less certain, never more (``tests/test_calibration.py``). Near the
  anchor, the sampling error of ``q`` (about ``1/sqrt(steps)`` per step) dominates.

The rate is in (0, 1], never 0 (at least ``MIN_RATE``), equal to 1 at 0 inliers, and strictly decreasing from the
anchor on. ``NullTable.count_for_rate`` is its inverse: the smallest count whose rate is at most a given rate, so
that a policy may be written with rates (``suppress below the count that 10% of unrelated pairs reach``).

Pairs that share geometry
-------------------------
Photos of two labels may show the same structures (a fountain in a castle's courtyard; in ``landmarks-dev`` the
fountain queries reach 18 to 131 fundamental-matrix inliers against the castle's gallery photos, where no other
pair of different labels reaches 14). Such pairs are not chance matches, and one of them among a thousand would
dominate a fitted tail. ``fit_null_table`` therefore sets aside the pairs whose counts the table fitted to the
other pairs makes implausible: the lowest count ``v`` such that fewer than ``SET_ASIDE_ALPHA`` (0.01) of the ``n``
pairs would be expected to reach it by chance (a Bonferroni test of the largest counts, as Rosner's generalised
ESD test, among at most ``SET_ASIDE_MAX_SHARE`` (5%) of the pairs). They are recorded in ``NullTable.set_aside``
and, by ``measure_null_table``, named pair by pair. It only catches counts far beyond chance; a label pair whose
photos overlap weakly stays in (see ``benchmarks/measure_null_tables.py`` for how the built-in tables treat the
shared scene of ``landmarks-dev``).

File format (version 1)
-----------------------
A JSON object with exactly these fields::

    {"format": "delfverify-null-table", "version": 1,
     "extractor": "rootsift", "geometry": "fundamental", "pair_fingerprint": "0123456789abcdef",
     "source": "how the pairs were chosen", "seed": 0,
     "pairs": 3000, "reaching": [3000, 2500, ...], "tail": {"anchor": 11, "continuation": 0.2},
     "set_aside": [18, 20], "unverifiable": 0, "failed": 0}

``reaching[k]`` is the number of pairs with at least ``k`` inliers (``reaching[0] == pairs``, non-increasing, the
last entry positive); ``pair_fingerprint`` is ``Verifier.pair_fingerprint`` of the settings measured (``""`` when
unknown); ``seed`` is ``null`` when every pair was used. Every value is checked when read; a bad file raises
``NullTableError`` naming the file and the field.

Imports: ``delfverify.verification`` (below); the verifier is used through its methods only
(``PairVerifier``), so ``delfverify.verifier`` may import this module.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import DelfverifyError
from .fileio import NotAFileError, atomic_write, read_regular_file
from .verification import GEOMETRIES

if TYPE_CHECKING:
    import pandas as pd

    from .images import ImageDirectory
    from .tables import Gallery

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
_MAX_SEED = 2**63 - 1
_MAX_SOURCE = 2000
_MAX_DIGITS = 20
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
        ``Verifier.pair_fingerprint`` of the settings measured (16 hex digits), or ``""`` when unknown.
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


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        ``Verifier.pair_fingerprint`` of the settings measured, or ``""``.
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


def null_table_from_dict(doc: Any, source: str = "null table") -> NullTable:
    """A table from its JSON document (``NullTable.to_dict``), every field checked.

    Raises
    ------
    NullTableError
        Naming ``source`` and the field: a missing or unknown field, a wrong type, a value out of range, counts
        that rise, a format or version this delfverify does not read.
    """
    try:
        return _from_dict(doc)
    except NullTableError as exc:
        raise NullTableError(f"{source}: {exc}") from None


def _from_dict(doc: Any) -> NullTable:
    if not isinstance(doc, dict):
        raise NullTableError(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise NullTableError(f"format: expected {FORMAT!r}, got {_short(doc.get('format'))} (not a null table)")
    version = doc.get("version")
    if not _is_int(version):
        raise NullTableError(f"version: expected an integer, got {_short(version)}")
    if version != FORMAT_VERSION:
        raise NullTableError(f"version: this delfverify reads version {FORMAT_VERSION}, the file is version "
                             f"{version}")
    missing = [name for name in _FIELDS if name not in doc]
    if missing:
        raise NullTableError(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(str(name) for name in doc if name not in _FIELDS)
    if unknown:
        raise NullTableError(f"unknown field(s) {', '.join(_short(u) for u in unknown)}; expected "
                             f"{', '.join(_FIELDS)}")
    for name in ("extractor", "geometry", "pair_fingerprint", "source"):
        if not isinstance(doc[name], str):
            raise NullTableError(f"{name}: expected a string, got {_short(doc[name])}")
    for name in ("pairs", "unverifiable", "failed"):
        if not _is_int(doc[name]):
            raise NullTableError(f"{name}: expected an integer, got {_short(doc[name])}")
    if doc["seed"] is not None and not _is_int(doc["seed"]):
        raise NullTableError(f"seed: expected null or an integer, got {_short(doc['seed'])}")
    reaching = _int_list(doc["reaching"], "reaching")
    aside = _int_list(doc["set_aside"], "set_aside")
    tail = doc["tail"]
    if not isinstance(tail, dict):
        raise NullTableError(f"tail: expected an object, got {_short(tail)}")
    if set(tail) != {"anchor", "continuation"}:
        raise NullTableError(f"tail: expected exactly the fields anchor and continuation, got "
                             f"{', '.join(_short(str(k)) for k in tail) or 'none'}")
    if not _is_int(tail["anchor"]):
        raise NullTableError(f"tail.anchor: expected an integer, got {_short(tail['anchor'])}")
    if not _is_number(tail["continuation"]):
        raise NullTableError(f"tail.continuation: expected a number, got {_short(tail['continuation'])}")
    if reaching and doc["pairs"] != reaching[0]:
        raise NullTableError(f"pairs: {doc['pairs']} differs from reaching[0], {reaching[0]} (the pairs reaching "
                             f"0 inliers: all of them)")
    return NullTable(doc["extractor"], doc["geometry"], tuple(reaching), tail["anchor"],
                     float(tail["continuation"]), doc["source"], doc["seed"], doc["pair_fingerprint"],
                     tuple(aside), doc["unverifiable"], doc["failed"])


def _int_list(value: Any, name: str) -> list[int]:
    if not isinstance(value, list):
        raise NullTableError(f"{name}: expected a list of integers, got {_short(value)}")
    if len(value) > MAX_COUNT + 1:
        raise NullTableError(f"{name}: expected at most {MAX_COUNT + 1} entries, got {len(value)}")
    for i, item in enumerate(value):
        if not _is_int(item):
            raise NullTableError(f"{name}[{i}]: expected an integer, got {_short(item)}")
    return value


def _refuse_constant(text: str):
    raise NullTableError(f"{text} is not a number a null table may hold")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise NullTableError(f"an integer of {len(text.lstrip('-'))} digits is out of every field's range")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NullTableError(f"number {_short(text)} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise NullTableError(f"field {_short(key)} appears twice")
        doc[key] = value
    return doc


def null_table_from_json(data: bytes | str, source: str = "<null table>") -> NullTable:
    """Parse and check a null table's JSON text (UTF-8 bytes or a string).

    Raises
    ------
    NullTableError
        For anything but a valid table: not UTF-8, not JSON (line and column given), NaN or infinite numbers,
        huge integers, a repeated field, nesting too deep, or an invalid document; the message names ``source``.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise NullTableError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(text, str):
        raise NullTableError(f"{source}: expected bytes or a string, got {type(data).__name__}")
    try:
        doc = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant,
                         object_pairs_hook=_unique_keys)
    except NullTableError as exc:
        raise NullTableError(f"{source}: invalid null table: {exc}") from None
    except json.JSONDecodeError as exc:
        raise NullTableError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise NullTableError(f"{source}: invalid null table: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. a float literal Python will not convert
        raise NullTableError(f"{source}: invalid JSON ({exc})") from None
    return null_table_from_dict(doc, source)


def read_null_table(path: str | os.PathLike) -> NullTable:
    """Read a null table file (``write_null_table``, ``delfverify calibrate``).

    Raises
    ------
    NullTableError
        If the file is missing, unreadable, not a regular file, larger than ``MAX_FILE_BYTES``, or not a valid
        table; the message names the file and the field.
    """
    try:
        data = read_regular_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise NullTableError(f"{path}: null table file not found") from None
    except NotAFileError as exc:
        raise NullTableError(f"{path}: {exc}") from None
    except OSError as exc:
        raise NullTableError(f"{path}: cannot read null table ({exc.strerror or exc})") from None
    return null_table_from_json(data, str(path))


def write_null_table(table: NullTable, path: str | os.PathLike) -> None:
    """Write a table as JSON, atomically (``read_null_table`` reads it back equal)."""
    doc = table.to_dict()
    text = json.dumps({k: v for k, v in doc.items() if k != "reaching"}, indent=2)
    # One line for the long list, so the file stays readable.
    text = text[:-2] + ',\n  "reaching": ' + json.dumps(doc["reaching"]) + "\n}\n"
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


# ---------------------------------------------------------------------------------------------------------------
# Built-in tables


def _extractor_name(extractor: Any) -> str:
    return extractor if isinstance(extractor, str) else getattr(extractor, "name", str(extractor))


@functools.cache
def _builtin(name: str, geometry: str) -> NullTable | None:
    resource = resources.files(__package__).joinpath("data", f"null_{name}_{geometry}.json")
    if not resource.is_file():
        return None
    return null_table_from_json(resource.read_bytes(), f"built-in null table {resource.name}")


def builtin_table(extractor: Any, geometry: str) -> NullTable | None:
    """The null table shipped for an extractor and geometric model, or ``None`` where none was measured.

    RootSIFT's tables were measured for every model (``benchmarks/measure_null_tables.py``); DELF has none: its
    weights cannot be downloaded where the tables are measured. Measure one with ``measure_null_table``.

    Parameters
    ----------
    extractor : str or Extractor
        A name (``"rootsift"``) or an object with a ``name``.
    geometry : {"affine", "homography", "fundamental"}

    Raises
    ------
    ValueError
        If ``geometry`` is unknown.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    name = _extractor_name(extractor)
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        return None
    return _builtin(name, geometry)


def check_table_for(table: NullTable, verifier: PairVerifier, source: str = "null table") -> str:
    """Check that a table describes a verifier's counts before its rates are quoted.

    Parameters
    ----------
    table : NullTable
    verifier : Verifier
    source : str
        The table's name in messages (its file, or "built-in null table").

    Returns
    -------
    str
        ``""``, or a warning to show: the table was measured with other settings (its ``pair_fingerprint`` differs
        from ``verifier.pair_fingerprint``: keypoints, photo size, matching or RANSAC settings), so its rates are
        approximate.

    Raises
    ------
    NullTableError
        If the table is for another extractor or geometric model: its rates would mean nothing for these counts.
    """
    extractor, geometry = _extractor_name(verifier.extractor), verifier.ransac.geometry
    if (table.extractor, table.geometry) != (extractor, geometry):
        raise NullTableError(f"{source}: measured for {table.extractor} features with the {table.geometry} model, "
                             f"not {extractor} with the {geometry} model")
    if table.pair_fingerprint and table.pair_fingerprint != verifier.pair_fingerprint:
        return (f"{source} was measured with other verification settings (pair fingerprint "
                f"{table.pair_fingerprint}, these are {verifier.pair_fingerprint}): its false-match rates are "
                f"approximate; measure a table with these settings")
    return ""


# ---------------------------------------------------------------------------------------------------------------
# Measuring on a gallery


class PairVerifier(Protocol):
    """What ``measure_null_table`` needs of a verifier (``delfverify.Verifier`` has it)."""

    extractor: Any
    ransac: Any
    pair_fingerprint: str

    def key(self, image: Any) -> str: ...

    def features_of(self, image: Any, key: str | None = None, *, source: str | None = None) -> Any: ...

    def verify_features(self, features_a: Any, features_b: Any) -> Any: ...


@dataclass(frozen=True)
class NullMeasurement:
    """A null table measured on a gallery, and every pair behind it.

    Attributes
    ----------
    table : NullTable
    pairs : pandas.DataFrame
        One row per sampled pair: ``id_a``, ``id_b``, ``label_a``, ``label_b``, ``inliers`` (float, NaN where not
        verified) and ``status``: ``used``, ``set_aside`` (sharing geometry), ``unverifiable`` or ``failed``
        (with the reason in ``reason``).
    """

    table: NullTable
    pairs: pd.DataFrame = field(repr=False)


def sample_pairs(labels, pairs: int, seed: int, max_photos: int | None = None) -> np.ndarray:
    """Seeded sample of pairs of photos of different labels, uniform over all such unordered pairs.

    Parameters
    ----------
    labels : sequence
        The label of each photo, in gallery order.
    pairs : int
        How many pairs (all of them when there are fewer), >= 1.
    seed : int
    max_photos : int, optional
        First draw this many photos (seeded), then pairs among them: fewer photos to extract.

    Returns
    -------
    int64 [p, 2]
        Indices into ``labels``, each row ``(i, j)`` with ``i < j``, rows sorted; the same for the same input.
    """
    if not (_is_int(pairs) and pairs >= 1):
        raise ValueError(f"pairs must be a positive integer, got {pairs!r}")
    rng = np.random.default_rng(seed)
    codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1].astype(np.int64)
    photos = np.arange(len(codes))
    if max_photos is not None and max_photos < len(photos):
        photos = np.sort(rng.choice(len(photos), max_photos, replace=False))
    order = photos[np.argsort(codes[photos], kind="stable")]  # grouped by label
    label_of = np.unique(codes[order], return_inverse=True)[1]  # 0 .. labels - 1, in block order
    sizes = np.bincount(label_of).astype(np.int64)
    ends = np.cumsum(sizes)
    s = len(order)
    total = different_label_pairs(codes[photos])
    if total == 0:
        return np.zeros((0, 2), np.int64)
    if total <= max(4 * pairs, 10_000):
        # Every pair (p, q) of positions with q beyond p's label block, then a seeded choice among them.
        partners = s - ends[label_of]
        first = np.repeat(np.arange(s), partners)
        second = ends[label_of][first] + np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
        if pairs < total:
            chosen = np.sort(rng.choice(total, pairs, replace=False))
            first, second = first[chosen], second[chosen]
        found = np.stack([order[first], order[second]], axis=1)
    else:
        # Draw a photo by its number of partners, then a partner uniformly: every pair equally likely.
        weights = (s - sizes[label_of]).astype(np.float64)
        seen: dict[tuple[int, int], None] = {}
        while len(seen) < pairs:
            batch = 2 * (pairs - len(seen)) + 16
            first = rng.choice(s, batch, p=weights / weights.sum())
            own = label_of[first]
            offset = rng.integers(0, s - sizes[own])
            block = ends[own] - sizes[own]
            second = np.where(offset < block, offset, offset + sizes[own])
            for a, b in zip(order[first].tolist(), order[second].tolist()):
                seen.setdefault((min(a, b), max(a, b)), None)
                if len(seen) == pairs:
                    break
        found = np.array(list(seen), np.int64).reshape(-1, 2)
    found = np.sort(found, axis=1)
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def different_label_pairs(labels) -> int:
    """How many unordered pairs of photos have different labels."""
    sizes = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)[1].astype(np.int64)
    n = int(sizes.sum())
    return (n * n - int((sizes ** 2).sum())) // 2


def measure_null_table(
    verifier: PairVerifier,
    gallery: Gallery | str | os.PathLike,
    gallery_images: ImageDirectory | str | os.PathLike,
    *,
    pairs: int = DEFAULT_PAIRS,
    seed: int = 0,
    max_photos: int | None = None,
    source: str | None = None,
    progress: bool = False,
) -> NullMeasurement:
    """Measure a null table on a gallery: verify seeded pairs of photos of different labels and fit the table.

    Pairs are drawn uniformly among all unordered pairs of photos of different labels (``sample_pairs``), verified
    with the verifier's settings (features reused through its store), and fitted with ``fit_null_table``. A pair
    with an unreadable photo is ``failed``, one with a photo of too few keypoints ``unverifiable`` (no evidence
    either way); both are left out of the table and counted in it.

    Parameters
    ----------
    verifier : Verifier
        Its extractor, matching and RANSAC settings are those the table is for.
    gallery : Gallery or path
        The gallery (``read_gallery``) or its CSV file: ``id,landmark_id[,path]``.
    gallery_images : ImageDirectory or path
        The folder of the gallery photos.
    pairs : int
        Pairs to verify, in ``[MIN_PAIRS, MAX_SAMPLE_PAIRS]`` (default 2,000; all pairs when the gallery has
        fewer). Cost: each pair is a match and a RANSAC fit (tens of milliseconds), each distinct photo one
        extraction.
    seed : int
        Sampling seed, >= 0: the same gallery and seed give the same pairs.
    max_photos : int, optional
        Sample pairs among this many photos drawn first (seeded), >= 2: fewer extractions for a large gallery.
    source : str, optional
        Recorded in the table (default: the gallery file's name and the sampling).
    progress : bool
        Show a progress bar.

    Returns
    -------
    NullMeasurement
        The table and every sampled pair with its count and status.

    Raises
    ------
    ValueError
        If a parameter is out of range (the message names it).
    CalibrationError
        If the gallery has fewer than ``MIN_PAIRS`` pairs of photos of different labels, or fewer than
        ``MIN_PAIRS`` pairs could be verified.
    TableError, ImageLookupError
        If the gallery file or the image folder cannot be read.
    """
    import pandas as pd
    from tqdm import tqdm

    from .images import ImageDirectory, ImageError, ImageLookupError
    from .tables import Gallery, read_gallery

    if not (_is_int(pairs) and MIN_PAIRS <= pairs <= MAX_SAMPLE_PAIRS):
        raise ValueError(f"pairs must be an integer in [{MIN_PAIRS}, {MAX_SAMPLE_PAIRS}], got {pairs!r}")
    if not (_is_int(seed) and 0 <= seed <= _MAX_SEED):
        raise ValueError(f"seed must be an integer in [0, {_MAX_SEED}], got {seed!r}")
    if max_photos is not None and not (_is_int(max_photos) and max_photos >= 2):
        raise ValueError(f"max_photos must be an integer >= 2 or None, got {max_photos!r}")
    if source is not None and not (isinstance(source, str) and len(source) <= _MAX_SOURCE):
        raise ValueError(f"source must be a string of at most {_MAX_SOURCE} characters or None")
    name = "gallery"
    if not isinstance(gallery, Gallery):
        name = Path(gallery).name
        gallery = read_gallery(gallery)
    images = gallery_images if isinstance(gallery_images, ImageDirectory) else ImageDirectory(gallery_images)
    ids = gallery.table["id"].tolist()
    labels = gallery.table["landmark_id"].tolist()
    paths = gallery.table["path"].tolist()
    photos = len(ids) if max_photos is None else min(max_photos, len(ids))
    chosen = sample_pairs(labels, pairs, seed, max_photos)
    if len(chosen) < MIN_PAIRS:
        raise CalibrationError(f"{name}: {photos} photos give {len(chosen)} pairs of photos of different labels; a "
                               f"null table needs at least {MIN_PAIRS}: use the built-in table or a larger gallery")
    sampled = photos < len(ids) or len(chosen) < different_label_pairs(labels)
    logger.info("verifying %d pairs of gallery photos of different labels", len(chosen))
    keys: dict[int, str] = {}
    broken: dict[int, str] = {}

    def features_of(i: int):
        """The photo's features (from the verifier's memory or store after the first time), or None."""
        if i in broken:
            return None
        try:
            path = images.find(ids[i], paths[i])
            if i not in keys:
                keys[i] = verifier.key(path)
            return verifier.features_of(path, keys[i], source=str(path))
        except (ImageError, ImageLookupError) as exc:
            broken[i] = str(exc)
            logger.warning("%s", exc)
            return None

    counts = np.full(len(chosen), np.nan)
    status = np.full(len(chosen), "used", dtype=object)
    reasons = [""] * len(chosen)
    for row, (i, j) in enumerate(tqdm(chosen.tolist(), disable=not progress, unit="pair", desc="calibrating")):
        a, b = features_of(i), features_of(j)
        if a is None or b is None:
            status[row], reasons[row] = "failed", broken.get(i) or broken.get(j)
            continue
        result = verifier.verify_features(a, b)
        if result.unverifiable:
            status[row], reasons[row] = "unverifiable", result.unverifiable
        else:
            counts[row] = result.num_inliers
    used = status == "used"
    failed, unverifiable = int((status == "failed").sum()), int((status == "unverifiable").sum())
    if used.sum() < MIN_PAIRS:
        raise CalibrationError(f"{name}: only {int(used.sum())} of {len(chosen)} pairs could be verified ({failed} "
                               f"with an unreadable photo, {unverifiable} with too few keypoints); a null table "
                               f"needs at least {MIN_PAIRS}")
    how = (f"{len(chosen)} pairs of gallery photos of different labels drawn uniformly (seed {seed}"
           f"{f', among {photos} photos drawn first' if photos < len(ids) else ''})" if sampled
           else f"all {len(chosen)} pairs of gallery photos of different labels")
    try:
        fitted = fit_null_table(counts[used].astype(np.int64), extractor=_extractor_name(verifier.extractor),
                                geometry=verifier.ransac.geometry,
                                source=source if source is not None else f"{name}: {how}",
                                seed=seed if sampled else None, pair_fingerprint=verifier.pair_fingerprint,
                                unverifiable=unverifiable, failed=failed)
    except NullTableError:
        raise
    except ValueError as exc:  # too few pairs left once those sharing geometry are set aside
        raise CalibrationError(f"{name}: {exc}") from None
    if fitted.set_aside:
        status[used & (counts >= fitted.set_aside[0])] = "set_aside"
    frame = pd.DataFrame({"id_a": [ids[i] for i in chosen[:, 0]], "id_b": [ids[j] for j in chosen[:, 1]],
                          "label_a": [labels[i] for i in chosen[:, 0]], "label_b": [labels[j] for j in chosen[:, 1]],
                          "inliers": counts, "status": status, "reason": reasons})
    return NullMeasurement(fitted, frame)
