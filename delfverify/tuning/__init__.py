"""Tune a re-ranking policy on labelled predictions (``delfverify tune``), one job per module:

- ``scoring``: ``PolicyScorer``, the GAP of many policies on fixed inlier counts, fast;
- ``grid``: the small search space (``SmallSpace``), ``default`` and its neighbours;
- ``search``: the wide ``SearchSpace``, random candidates and coordinate ascent;
- ``crossval``: folds over queries, repeated, and the per-fold scorer;
- ``selection``: the one-standard-error rule that keeps ``default`` unless a candidate is shown to beat it;
- ``fitting``: ``measure_inliers`` (through ``delfverify.pipeline``) and ``tune``, which searches, selects with
  nested cross-validation and records what it did.
"""

from .crossval import assign_folds, repeated_folds
from .fitting import (OUTCOMES, SPACES, Curve, FoldResult, TuneConfig, TuneResult, measure_builtin_inliers,
                      measure_inliers, tune)
from .grid import SmallSpace, grid_candidates
from .scoring import CONFIDENCE_DECIMALS, PolicyScorer
from .search import SearchSpace, random_policies
from .selection import DECISIONS, RULE, Selection, confirm, corrected_se, select

__all__ = ["CONFIDENCE_DECIMALS", "Curve", "DECISIONS", "FoldResult", "OUTCOMES", "PolicyScorer", "RULE",
           "SPACES", "SearchSpace", "Selection", "SmallSpace", "TuneConfig", "TuneResult", "assign_folds", "confirm",
           "corrected_se", "grid_candidates", "measure_builtin_inliers", "measure_inliers", "random_policies",
           "repeated_folds", "select", "tune"]
