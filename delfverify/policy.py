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

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import DelfverifyError
from .fileio import atomic_write

MODES = ("bands", "additive", "multiplicative")
COMBINES = ("max", "mean", "second")
SELECTIONS = ("first", "random", "spread")

# Status codes of ``Policy.apply``; rerank adds its own (no_gallery, error, no_prediction).
STATUSES = ("verified", "suppressed", "boosted", "skipped")

#: The most gallery photos a policy may verify per prediction (``k``): the inlier table has ``k`` columns per
#: prediction, so a larger value only exhausts memory.
MAX_K = 1000
#: The largest inlier threshold a policy may set (``min_inliers``, ``boost_inliers``, ``below_inliers``): far more
#: than any pair of photos has matches.
MAX_INLIERS = 1_000_000
#: The largest seed; seeds are integers in ``[0, MAX_SEED]``.
MAX_SEED = 2**63 - 1
#: An integer literal with more digits than this is out of every field's range; it is not even converted (Python
#: refuses to convert more than 4,300 digits, and converting takes quadratic time).
_MAX_DIGITS = 20
#: The default policy's tier actions weigh the geometric evidence this much against the confidence (``tier_actions``).
DEFAULT_EVIDENCE_WEIGHT = 2.0

class PolicyError(DelfverifyError, ValueError):
    """A policy document is invalid; the message names the field."""


@dataclass(frozen=True)
class Action:
    """``c -> low + (high - low) * c``."""

    low: float
    high: float

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        return self.low + (self.high - self.low) * confidence

    def to_json(self) -> dict[str, Any]:
        if self.low == self.high:
            return {"set": self.low}
        if self.low == 0:
            return {"multiply": self.high}
        return {"range": [self.low, self.high]}


@dataclass(frozen=True)
class Band:
    """A confidence band ``[lower, upper)`` (the last band includes 1.0) and what verification does in it."""

    lower: float
    upper: float
    k: int = 2
    skip: bool = False
    min_inliers: int | None = None
    suppress: Action = Action(0.0, 0.0)
    boost_inliers: int | None = None
    boost: Action = Action(1.0, 1.0)


@dataclass(frozen=True)
class Fusion:
    """Parameters of the ``additive`` and ``multiplicative`` modes."""

    k: int = 3
    weight: float = 1.0
    min_inliers: float = 0.0
    cap: float = 70.0


@dataclass(frozen=True)
class FrequencyPenalty:
    """Multiply confidences of labels predicted for more than ``max_share`` of predictions by ``factor``."""

    max_share: float
    factor: float
    below_inliers: int


@dataclass(frozen=True)
class Policy:
    """A validated re-ranking policy. Build with ``policy_from_dict`` or ``builtin_policy``."""

    name: str
    mode: str = "bands"
    bands: tuple[Band, ...] = ()
    fusion: Fusion = Fusion()
    combine: str = "max"
    selection: str = "spread"
    seed: int = 0
    frequency_penalty: FrequencyPenalty | None = None
    extractor: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def max_k(self) -> int:
        """The most gallery photos any prediction is verified against."""
        if self.mode != "bands":
            return self.fusion.k
        return max((b.k for b in self.bands if not b.skip), default=0)

    def k_for(self, confidence: np.ndarray) -> np.ndarray:
        """Gallery photos to verify per prediction (0 in skipped bands)."""
        confidence = np.asarray(confidence, float)
        if self.mode != "bands":
            return np.full(confidence.shape, self.fusion.k, int)
        k = np.zeros(confidence.shape, int)
        index = self._band_index(confidence)
        for i, band in enumerate(self.bands):
            k[index == i] = 0 if band.skip else band.k
        return k

    def band_names(self, confidence: np.ndarray) -> np.ndarray:
        """A readable band name per prediction, e.g. ``"0.4-0.6"`` (``"all"`` in fusion modes)."""
        if self.mode != "bands":
            return np.full(np.shape(confidence), "all", object)
        names = np.array([f"{b.lower:g}-{b.upper:g}" for b in self.bands], object)
        return names[self._band_index(np.asarray(confidence, float))]

    def _band_index(self, confidence: np.ndarray) -> np.ndarray:
        edges = np.array([b.lower for b in self.bands[1:]], float)
        return np.searchsorted(edges, confidence, side="right")

    def apply(
        self,
        confidence: np.ndarray,
        inliers: np.ndarray,
        label_share: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rescale confidences by inlier counts.

        Parameters
        ----------
        confidence : float [n]
            Original confidences in [0, 1].
        inliers : float [n, K]
            Inlier counts against the selected gallery photos in selection order; NaN where a photo is missing
            or failed. Column ``j`` is used when ``j < k`` of the prediction's band.
        label_share : float [n], optional
            Share of all predictions that carry the same label (for ``frequency_penalty``).

        Returns
        -------
        (new_confidence, status)
            ``status`` is one of ``STATUSES`` per prediction; predictions in a skipped band or without any
            inlier count are left unchanged with status ``skipped``.
        """
        confidence = np.asarray(confidence, float)
        inliers = np.asarray(inliers, float)
        if inliers.ndim != 2:  # one count per prediction (also for no predictions at all)
            inliers = inliers.reshape(len(confidence), -1 if len(confidence) else 1)
        k = self.k_for(confidence)
        combined = combine_inliers(inliers, k, self.combine)
        k = np.where(np.isnan(combined), 0, k)  # nothing verified: left as it is
        evidence = np.nan_to_num(combined, nan=0.0)
        if self.mode == "bands":
            new = confidence.copy()
            index = self._band_index(confidence)
            for i, band in enumerate(self.bands):
                if band.skip:
                    continue
                rows = (index == i) & (k > 0)
                if band.min_inliers is not None:
                    low = rows & (evidence < band.min_inliers)
                    new[low] = band.suppress(confidence[low])
                if band.boost_inliers is not None:
                    high = rows & (evidence >= band.boost_inliers)
                    new[high] = band.boost(confidence[high])
        else:
            f = self.fusion
            strength = np.clip((evidence - f.min_inliers) / (f.cap - f.min_inliers), 0.0, 1.0)
            if self.mode == "additive":
                new = (confidence + f.weight * strength) / (1.0 + f.weight)
            else:
                new = confidence * (1.0 - f.weight + f.weight * strength)
            new = np.where(k > 0, new, confidence)
        penalty = self.frequency_penalty
        if penalty is not None and label_share is not None:
            frequent = (np.asarray(label_share) > penalty.max_share) & (evidence < penalty.below_inliers) & (k > 0)
            new = np.where(frequent, new * penalty.factor, new)
        new = np.clip(new, 0.0, 1.0)
        status = np.where(k == 0, "skipped", np.where(new > confidence, "boosted",
                          np.where(new < confidence, "suppressed", "verified"))).astype(object)
        return new, status

    def max_confidence(self, confidence: np.ndarray) -> np.ndarray:
        """The highest confidence this policy can give a prediction of each confidence, whatever its inliers.

        Every policy is monotone in the inlier counts, so this is its confidence at infinitely many inliers (a
        prediction left unverified keeps its confidence, which is never more). ``rerank`` stops verifying a
        query's candidates once none left can reach the best rescaled confidence found.
        """
        confidence = np.asarray(confidence, float)
        most = np.full((confidence.size, 1), np.finfo(float).max)  # beyond every threshold (inf reads as missing)
        with np.errstate(over="ignore"):
            return self.apply(confidence, most)[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of this policy (``policy_from_dict(p.to_dict()) == p``)."""
        doc: dict[str, Any] = {"name": self.name, "mode": self.mode, "combine": self.combine,
                               "selection": self.selection, "seed": self.seed}
        if self.extractor:
            doc["extractor"] = self.extractor
        if self.mode == "bands":
            doc["bands"] = [_band_to_json(b) for b in self.bands]
        else:
            doc["fusion"] = asdict(self.fusion)
        if self.frequency_penalty is not None:
            doc["frequency_penalty"] = asdict(self.frequency_penalty)
        if self.info:
            doc["info"] = dict(self.info)
        return doc


def combine_inliers(inliers: np.ndarray, k: np.ndarray, how: str) -> np.ndarray:
    """Combine each row's first ``k`` inlier counts (NaN ignored): max, mean or second best.

    ``second`` is the second-highest count, or the only one when a single gallery photo was verified.
    Rows without any count give NaN.
    """
    inliers = np.asarray(inliers, float)
    columns = np.arange(inliers.shape[1])[None, :]
    used = np.where(columns < np.asarray(k)[:, None], inliers, np.nan)
    present = np.isfinite(used).sum(axis=1)
    out = np.full(len(used), np.nan)
    rows = present > 0
    if not rows.any():
        return out
    values = used[rows]
    if how == "max":
        out[rows] = np.nanmax(values, axis=1)
    elif how == "mean":
        out[rows] = np.nanmean(values, axis=1)
    elif how == "second":
        ordered = -np.sort(-np.nan_to_num(values, nan=-np.inf), axis=1)
        second = ordered[:, 1] if ordered.shape[1] > 1 else ordered[:, 0]
        out[rows] = np.where(present[rows] > 1, second, ordered[:, 0])
    else:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {how!r}")
    return out


def _band_to_json(band: Band) -> dict[str, Any]:
    doc: dict[str, Any] = {"lower": band.lower, "upper": band.upper}
    if band.skip:
        doc["skip"] = True
        return doc
    doc["k"] = band.k
    if band.min_inliers is not None:
        doc["min_inliers"] = band.min_inliers
        doc["suppress"] = band.suppress.to_json()
    if band.boost_inliers is not None:
        doc["boost_inliers"] = band.boost_inliers
        doc["boost"] = band.boost.to_json()
    return doc


def _field(doc: Mapping[str, Any], key: str, kind, where: str, default=None, *, required=False):
    if key not in doc:
        if required:
            raise PolicyError(f"{where}: missing required field {key!r}")
        return default
    value = doc[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PolicyError(f"{where}.{key}: expected an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise PolicyError(f"{where}.{key}: expected a number, got {value!r}")
    if kind in (str, bool, dict, list) and not isinstance(value, kind):
        raise PolicyError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return float(value) if kind is float else value


def _integer(doc: Mapping[str, Any], key: str, where: str, default: int | None, low: int, high: int,
             *, required: bool = False) -> int | None:
    """An integer field within ``[low, high]`` (``default`` when absent)."""
    value = _field(doc, key, int, where, default, required=required)
    if value is not None and not low <= value <= high:
        raise PolicyError(f"{where}.{key}: must be an integer in [{low}, {high}], got {value}")
    return value


def _check_keys(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{where}: expected an object, got {doc!r}")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _action(doc: Any, where: str) -> Action:
    _check_keys(doc, {"set", "multiply", "range"}, where)
    if len(doc) != 1:
        raise PolicyError(f"{where}: give exactly one of set, multiply, range")
    (op, value), = doc.items()
    if op == "range":
        if not (isinstance(value, list) and len(value) == 2):
            raise PolicyError(f"{where}.range: expected [low, high], got {value!r}")
        low, high = (_field({"v": v}, "v", float, f"{where}.range") for v in value)
    else:
        v = _field(doc, op, float, where)
        low, high = (v, v) if op == "set" else (0.0, v)
    if not (0 <= low <= 1 and 0 <= high <= 1):
        raise PolicyError(f"{where}: values must lie in [0, 1], got {doc!r}")
    return Action(low, high)


def _band(doc: Any, where: str) -> Band:
    _check_keys(doc, {"lower", "upper", "k", "skip", "min_inliers", "suppress", "boost_inliers", "boost"}, where)
    lower = _field(doc, "lower", float, where, required=True)
    upper = _field(doc, "upper", float, where, required=True)
    if _field(doc, "skip", bool, where, False):
        return Band(lower, upper, skip=True)
    band = Band(
        lower=lower,
        upper=upper,
        k=_integer(doc, "k", where, 2, 1, MAX_K),
        min_inliers=_integer(doc, "min_inliers", where, None, 0, MAX_INLIERS),
        suppress=_action(doc["suppress"], f"{where}.suppress") if "suppress" in doc else Action(0.0, 0.0),
        boost_inliers=_integer(doc, "boost_inliers", where, None, 0, MAX_INLIERS),
        boost=_action(doc["boost"], f"{where}.boost") if "boost" in doc else Action(1.0, 1.0),
    )
    if band.boost_inliers is not None and band.min_inliers is not None and band.boost_inliers < band.min_inliers:
        raise PolicyError(f"{where}: boost_inliers ({band.boost_inliers}) must be >= min_inliers ({band.min_inliers})")
    # Monotone in inliers: suppress(c) <= c <= boost(c) everywhere in the band (linear maps: check the ends).
    for c in (lower, upper):
        if band.min_inliers is not None and band.suppress(c) > c + 1e-12:
            raise PolicyError(f"{where}.suppress: would raise confidence {c:g}; suppressing must never raise it")
        if band.boost_inliers is not None and band.boost(c) < c - 1e-12:
            raise PolicyError(f"{where}.boost: would lower confidence {c:g}; boosting must never lower it")
    return band


def policy_from_dict(doc: Mapping[str, Any]) -> Policy:
    """Validate a policy document and build the ``Policy``.

    Raises
    ------
    PolicyError
        Naming the field that is missing, unknown, of the wrong type or out of range.
    """
    where = "policy"
    _check_keys(doc, {"name", "mode", "bands", "fusion", "combine", "selection", "seed", "frequency_penalty",
                      "extractor", "info"}, where)
    mode = _field(doc, "mode", str, where, "bands")
    combine = _field(doc, "combine", str, where, "max")
    selection = _field(doc, "selection", str, where, "spread")
    for key, value, allowed in (("mode", mode, MODES), ("combine", combine, COMBINES),
                                ("selection", selection, SELECTIONS)):
        if value not in allowed:
            raise PolicyError(f"{where}.{key}: must be one of {', '.join(allowed)}, got {value!r}")
    bands: tuple[Band, ...] = ()
    fusion = Fusion()
    if mode == "bands":
        raw = _field(doc, "bands", list, where, required=True)
        bands = tuple(_band(b, f"{where}.bands[{i}]") for i, b in enumerate(raw))
        if not bands:
            raise PolicyError(f"{where}.bands: give at least one band")
        if bands[0].lower != 0.0 or bands[-1].upper != 1.0:
            raise PolicyError(f"{where}.bands: must cover [0, 1] (first lower 0, last upper 1)")
        for i, (a, b) in enumerate(zip(bands, bands[1:])):
            if not a.lower < a.upper == b.lower:
                raise PolicyError(f"{where}.bands[{i + 1}]: bands must be contiguous and increasing "
                                  f"(upper {a.upper:g} of band {i} must equal lower {b.lower:g})")
        if not bands[-1].lower < bands[-1].upper:
            raise PolicyError(f"{where}.bands[{len(bands) - 1}]: lower must be below upper")
    else:
        raw = _field(doc, "fusion", dict, where, required=True)
        _check_keys(raw, {"k", "weight", "min_inliers", "cap"}, f"{where}.fusion")
        fusion = Fusion(
            k=_integer(raw, "k", f"{where}.fusion", 3, 1, MAX_K),
            weight=_field(raw, "weight", float, f"{where}.fusion", 1.0),
            min_inliers=_field(raw, "min_inliers", float, f"{where}.fusion", 0.0),
            cap=_field(raw, "cap", float, f"{where}.fusion", 70.0),
        )
        if not fusion.weight >= 0 or (mode == "multiplicative" and fusion.weight > 1):
            raise PolicyError(f"{where}.fusion.weight: must be >= 0 (and <= 1 for multiplicative), got {fusion.weight}")
        if not fusion.cap > fusion.min_inliers >= 0:
            raise PolicyError(f"{where}.fusion: need cap > min_inliers >= 0, got cap {fusion.cap}, "
                              f"min_inliers {fusion.min_inliers}")
    penalty = None
    if doc.get("frequency_penalty") is not None:
        raw = doc["frequency_penalty"]
        w = f"{where}.frequency_penalty"
        _check_keys(raw, {"max_share", "factor", "below_inliers"}, w)
        penalty = FrequencyPenalty(
            max_share=_field(raw, "max_share", float, w, required=True),
            factor=_field(raw, "factor", float, w, required=True),
            below_inliers=_integer(raw, "below_inliers", w, None, 0, MAX_INLIERS, required=True),
        )
        if not (0 < penalty.max_share < 1 and 0 <= penalty.factor <= 1):
            raise PolicyError(f"{w}: need 0 < max_share < 1 and 0 <= factor <= 1")
    info = _field(doc, "info", dict, where, {})
    return Policy(
        name=_field(doc, "name", str, where, "custom"),
        mode=mode,
        bands=bands,
        fusion=fusion,
        combine=combine,
        selection=selection,
        seed=_integer(doc, "seed", where, 0, 0, MAX_SEED),
        frequency_penalty=penalty,
        extractor=_field(doc, "extractor", str, where),
        info=info,
    )


def _seed_policy(extractor: str | Any, geometry: str | None = None) -> Policy:
    suppress = Action(0.0, 0.0)
    return Policy(
        name="seed",
        bands=(
            Band(0.0, 0.4, k=2, min_inliers=3, suppress=suppress, boost_inliers=10, boost=Action(0.6, 0.6)),
            Band(0.4, 0.6, k=2, min_inliers=3, suppress=suppress),
            Band(0.6, 0.8, k=5, min_inliers=3, suppress=suppress),
            Band(0.8, 1.0, skip=True),
        ),
        combine="max",
        selection="first",
        extractor=extractor if isinstance(extractor, str) else extractor.name,
    )


def tier_actions(weight: float) -> tuple[Action, Action]:
    """The suppress and boost actions that weigh the evidence ``s`` (0: none, 1: clear) ``weight`` times against
    the confidence, as additive fusion does: ``c -> (c + weight * s) / (1 + weight)``, that is ``c / (1 + weight)``
    and ``(c + weight) / (1 + weight)``. ``default``'s weight 2 puts the tiers in thirds."""
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"weight must be a positive number, got {weight!r}")
    return Action(0.0, 1.0 / (1.0 + weight)), Action(weight / (1.0 + weight), 1.0)


def _default_policy(extractor: str | Any, geometry: str | None = None) -> Policy:
    from .extractors import extractor_class
    from .extractors.base import measured_thresholds

    cls = extractor_class(extractor) if isinstance(extractor, str) else extractor
    try:
        thresholds = measured_thresholds(cls, geometry or cls.ransac.geometry)
    except ValueError as exc:
        raise PolicyError(f"the default policy has {exc}; give a policy file") from None
    suppress, boost = tier_actions(DEFAULT_EVIDENCE_WEIGHT)
    return Policy(
        name="default",
        bands=(
            Band(0.0, 1.0, k=3, min_inliers=thresholds.support, suppress=suppress,
                 boost_inliers=thresholds.accept, boost=boost),
        ),
        combine="max",
        selection="spread",
        extractor=cls.name,
    )


BUILTINS = {"seed": _seed_policy, "default": _default_policy}


def builtin_policy(name: str, extractor: str | Any, geometry: str | None = None) -> Policy:
    """A built-in policy for an extractor (a name or an object) and geometric model (default: the extractor's);
    thresholds differ by both."""
    if name not in BUILTINS:
        raise PolicyError(f"unknown built-in policy {name!r}; choose one of {', '.join(BUILTINS)} or give a JSON file")
    return BUILTINS[name](extractor, geometry)


def load_policy(name_or_file: str | os.PathLike, extractor: str | Any, geometry: str | None = None) -> Policy:
    """A built-in policy by name, or a policy JSON file.

    Raises
    ------
    PolicyError
        Unknown name, unreadable file, invalid JSON (with line and column; nested too deeply; an integer of more
        than 20 digits) or invalid policy; the file and the field are named.
    """
    text = str(name_or_file)
    if text in BUILTINS:
        return builtin_policy(text, extractor, geometry)
    path = Path(text)
    if not path.is_file():
        raise PolicyError(f"{text}: no such policy file and no built-in policy of that name "
                          f"(built-ins: {', '.join(BUILTINS)})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise PolicyError(f"{path}: invalid policy: JSON nested too deeply (a policy is a few levels deep)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy file ({exc})") from None
    huge = _find_huge_integer(doc)
    if huge is not None:
        raise PolicyError(f"{path}: {huge[0]}: integer of {huge[1].digits} digits is out of range")
    try:
        policy = policy_from_dict(doc)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    return policy if policy.extractor else replace(policy, extractor=extractor if isinstance(extractor, str)
                                                    else extractor.name)


@dataclass(frozen=True)
class _HugeInteger:
    """Stands, in a parsed document, for an integer literal of more than ``_MAX_DIGITS`` digits."""

    digits: int


def _parse_int(text: str) -> int | _HugeInteger:
    digits = len(text.lstrip("-"))
    return _HugeInteger(digits) if digits > _MAX_DIGITS else int(text)


def _find_huge_integer(doc: Any) -> tuple[str, _HugeInteger] | None:
    """The field (``policy.bands[0].k``) of the first huge integer literal in document order, if any."""
    stack: list[tuple[str, Any]] = [("policy", doc)]
    while stack:  # iterative: a document may be nested up to Python's recursion limit
        where, value = stack.pop()
        if isinstance(value, _HugeInteger):
            return where, value
        if isinstance(value, dict):
            stack.extend((f"{where}.{key}", item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return None


def save_policy(policy: Policy, path: str | os.PathLike) -> None:
    """Write a policy JSON document atomically (readable by ``load_policy``)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(policy.to_dict(), handle, indent=2)
        handle.write("\n")


def _action_text(action: Action) -> str:
    (op, value), = action.to_json().items()
    if op == "range":
        return f"->[{value[0]:.3g},{value[1]:.3g}]"
    return f"x{value:.3g}" if op == "multiply" else f"={value:.3g}"


def describe_policy(policy: Policy) -> str:
    """The policy in one line, e.g. ``bands (max, spread): [0-1) k3 <5 x0.333 >=10 ->[0.667,1]``."""
    if policy.mode != "bands":
        f = policy.fusion
        return (f"{policy.mode} ({policy.combine}, {policy.selection}): k{f.k} weight {f.weight:g} "
                f"min_inliers {f.min_inliers:g} cap {f.cap:g}")
    parts = []
    for band in policy.bands:
        text = f"[{band.lower:g}-{band.upper:g})"
        if band.skip:
            parts.append(f"{text} skip")
            continue
        text += f" k{band.k}"
        if band.min_inliers is not None:
            text += f" <{band.min_inliers} {_action_text(band.suppress)}"
        if band.boost_inliers is not None:
            text += f" >={band.boost_inliers} {_action_text(band.boost)}"
        parts.append(text)
    return f"bands ({policy.combine}, {policy.selection}): " + "; ".join(parts)
