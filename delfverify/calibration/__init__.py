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
last entry positive); ``pair_fingerprint`` is ``Verifier.settings_fingerprint`` of the settings measured (``""`` when
unknown); ``seed`` is ``null`` when every pair was used. Every value is checked when read; a bad file raises
``NullTableError`` naming the file and the field.

The package: ``table`` (the model, its fit and its check), ``files`` (the format, the built-in tables) and
``measure`` (a table measured on a gallery). Imports: ``delfverify.verification`` (below); the verifier is used
through its methods only (``PairVerifier``), so ``delfverify.verifier`` may import this package.
"""

from .files import builtin_table, null_table_from_dict, null_table_from_json, read_null_table, write_null_table
from .measure import (NullMeasurement, PairVerifier, check_table_for, different_label_pairs, measure_null_table,
                      sample_pairs)
from .table import (DEFAULT_PAIRS, EMPIRICAL_MIN_PAIRS, FORMAT, FORMAT_VERSION, MIN_PAIRS, MIN_RATE, CalibrationCheck,
                    CalibrationError, NullTable, NullTableError, check_calibration, fit_null_table,
                    format_rate, shared_geometry_cut)

__all__ = ["DEFAULT_PAIRS", "EMPIRICAL_MIN_PAIRS", "FORMAT", "FORMAT_VERSION", "MIN_PAIRS", "MIN_RATE",
           "CalibrationCheck", "CalibrationError", "NullMeasurement", "NullTable", "NullTableError", "PairVerifier",
           "builtin_table", "check_calibration", "check_table_for", "different_label_pairs", "fit_null_table",
           "format_rate", "measure_null_table", "null_table_from_dict", "null_table_from_json", "read_null_table",
           "sample_pairs", "shared_geometry_cut", "write_null_table"]
