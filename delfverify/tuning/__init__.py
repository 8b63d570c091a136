"""Tune a re-ranking policy on labelled predictions (``delfverify tune``), one job per module:

- ``scoring``: ``PolicyScorer``, the GAP of many policies on fixed inlier counts, fast;
- ``search``: the ``SearchSpace``, random candidates and coordinate ascent;
- ``crossval``: folds over queries and the per-fold scorer;
- ``fitting``: ``measure_inliers`` (through ``delfverify.pipeline``) and ``tune``, which searches with nested
  cross-validation and records what it did.
"""

from .crossval import assign_folds
from .fitting import OUTCOMES, Curve, FoldResult, TuneConfig, TuneResult, measure_builtin_inliers, measure_inliers, tune
from .scoring import CONFIDENCE_DECIMALS, PolicyScorer
from .search import SearchSpace, random_policies

__all__ = ["CONFIDENCE_DECIMALS", "Curve", "FoldResult", "OUTCOMES", "PolicyScorer", "SearchSpace", "TuneConfig",
           "TuneResult", "assign_folds", "measure_builtin_inliers", "measure_inliers", "random_policies", "tune"]
