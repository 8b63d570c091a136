"""Tune a re-ranking policy on labelled predictions (``delfverify tune``), one job per module:

- ``scoring``: ``PolicyScorer``, the GAP of many policies on fixed inlier counts, fast;
- ``grid``: the small search space (``SmallSpace``), ``default`` and its neighbours;
- ``search``: the wide ``SearchSpace``, random candidates and coordinate ascent;
- ``crossval``: folds over queries, repeated, and the per-fold scorer;
- ``selection``: the one-standard-error rule that keeps ``default`` unless a candidate is shown to beat it;
- ``fitting``: ``fit_policy``, which searches, selects with nested cross-validation and records what it did, on
  inlier counts already measured;
- ``run``: ``tune``, the whole job in one call from files or tables (measuring the counts through
  ``delfverify.measuring``), as ``delfverify tune`` runs it;
- ``plot``: ``plot_tuning``, what the search found as a picture.
"""

from .crossval import assign_folds, repeated_folds
from .fitting import SPACES, Curve, FoldResult, TuneConfig, TuneResult, fit_policy
from .grid import SmallSpace, grid_candidates
from .run import measure_builtin_inliers, measure_inliers, tune
from .scoring import PolicyScorer
from .search import SearchSpace, random_policies
from .selection import DECISIONS, RULE, Selection, confirm, corrected_se, select

__all__ = ["Curve", "DECISIONS", "FoldResult", "PolicyScorer", "RULE", "SPACES", "SearchSpace", "Selection",
           "SmallSpace", "TuneConfig", "TuneResult", "assign_folds", "confirm", "corrected_se", "fit_policy",
           "grid_candidates", "measure_builtin_inliers", "measure_inliers", "random_policies", "repeated_folds",
           "select", "tune"]
