"""Re-ranking policies: how inlier counts rescale a prediction's confidence.

A policy is a small JSON document (see ``docs/POLICIES.md``), validated by ``policy_from_dict`` with messages
that name the offending field, or one of the built-ins in ``BUILTINS``:

- ``seed``: exactly the research report's hand-set rules (bands < 0.4, 0.4-0.6, 0.6-0.8 verified against K = 2,
  2, 5 gallery photos; fewer than 3 inliers -> 0; the low band raised to 0.6 at 10 inliers; >= 0.8 untouched).
- ``default``: three tiers, every prediction verified against up to 3 gallery photos spread across its class.
  Clear geometric support (at least the extractor's ``accept`` inliers for its geometric model: 14 for RootSIFT
  with a fundamental matrix, 10 for DELF) moves a prediction into the top third (``c -> 2/3 + c/3``); no support
  (fewer than ``support``: 11 and 6) into the bottom third (``c -> c/3``); weak evidence in between leaves it
  unchanged. Each tier keeps the classifier's order. The thresholds are anchored on what unrelated photos reach
  (``delfverify.extractors.rootsift``). Measured (``benchmarks/bench_quality.py``, README): 0.999 of the oracle
  GAP on the dev set, 0.88 on the hard set; skipping very confident predictions or using only two tiers
  generalised worse.

Modes:

- ``bands``: per confidence band, ``k`` gallery photos, ``min_inliers`` (below: ``suppress``),
  ``boost_inliers`` (at or above: ``boost``), or ``skip``. An action maps confidence ``c`` to
  ``low + (high - low) * c``: ``{"set": v}`` is ``(v, v)``, ``{"multiply": m}`` is ``(0, m)``,
  ``{"range": [low, high]}`` is general.
- ``additive``: ``(c + w * s) / (1 + w)`` and ``multiplicative``: ``c * (1 - w + w * s)``, where
  ``s = clip((inliers - min_inliers) / (cap - min_inliers), 0, 1)`` (the Kaggle 2020 baseline used
  ``min(inliers, 70) / 70``).

Every policy is monotone: more inliers never lower a confidence (checked when a policy is built).
An optional ``frequency_penalty`` multiplies the confidence of labels predicted for more than ``max_share`` of
all predictions by ``factor``, unless they reach ``below_inliers`` (frequent labels are often non-landmark sinks).
"""

from .builtins import BUILTINS, DEFAULT_EVIDENCE_WEIGHT, builtin_policy, tier_actions
from .describe import describe_policy
from .files import load_policy, save_policy
from .model import COMBINES, MODES, SELECTIONS, Action, Band, FrequencyPenalty, Fusion, Policy, combine_inliers
from .schema import MAX_INLIERS, MAX_K, MAX_SEED, PolicyError, policy_from_dict

__all__ = ["BUILTINS", "COMBINES", "DEFAULT_EVIDENCE_WEIGHT", "MAX_INLIERS", "MAX_K", "MAX_SEED", "MODES",
           "SELECTIONS", "Action", "Band", "FrequencyPenalty", "Fusion", "Policy", "PolicyError", "builtin_policy",
           "combine_inliers", "describe_policy", "load_policy", "policy_from_dict", "save_policy", "tier_actions"]
