"""The wide policy search (``delfverify tune --search wide``): the space of candidates, seeded random candidates,
and coordinate ascent; also the pool of scored candidates that every search fills.

The space (``SearchSpace``) is defined once as data. The search scores the built-in ``default`` and the ``seed``
thresholds, then a seeded random sample of policies (band edges, per band ``k``, ``min_inliers`` and suppress
action, ``boost_inliers`` and boost action, skipped bands, the combine rule, and the additive and multiplicative
fusion modes with their weight, floor and cap), then climbs from the best one: one parameter at a time, every value
of the space, while the score improves. Invalid (non-monotone) candidates are skipped. ``Policy.apply`` reads only
the first ``k`` columns of an inlier table, so one table with ``K`` columns serves every candidate with
``k <= K``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..policy import COMBINES, MAX_K, SELECTIONS, Action, Policy, PolicyError, policy_from_dict
from ..settings import check, is_count
from .scoring import PolicyScorer

#: Fusion modes of ``Policy``.
_FUSION_MODES = ("additive", "multiplicative")


@dataclass(frozen=True)
class Space:
    """What every search space (``SearchSpace``, ``delfverify.tuning.grid.SmallSpace``) fixes: the inlier table.

    Each subclass adds its own ``ks``, the gallery photos per prediction its candidates may use.

    Attributes
    ----------
    max_k : int
        Inlier counts are measured against this many gallery photos per prediction; no candidate uses more.
    selection : {"first", "random", "spread"}
        How the gallery photos are chosen (fixed: the inlier table depends on it).
    """

    max_k: int = 5
    selection: str = "spread"

    def __post_init__(self) -> None:
        check(is_count(self.max_k), "max_k", "a positive integer", self.max_k)
        check(self.max_k <= MAX_K, "max_k", f"at most {MAX_K} (a policy's largest k)", self.max_k)
        check(self.selection in SELECTIONS, "selection", f"one of {', '.join(SELECTIONS)}", self.selection)

    @property
    def usable_ks(self) -> tuple[int, ...]:
        """``ks`` without values above ``max_k`` (``max_k`` itself when none is left)."""
        return tuple(k for k in self.ks if k <= self.max_k) or (self.max_k,)  # ks: each subclass's own field


@dataclass(frozen=True)
class SearchSpace(Space):
    """The policies the search may try; every tuple is a set of values to choose from.

    Attributes
    ----------
    max_k, selection
        As in ``Space``.
    ks : tuple of int
        Gallery photos per band (or for fusion); values above ``max_k`` are dropped.
    combines : tuple of str
        How the k counts combine (``max``, ``mean``, ``second``).
    band_edges : tuple of tuple of float
        Inner band edges: ``()`` is one band [0, 1].
    min_inliers : tuple of int
        Suppress below this many inliers; 0 never suppresses.
    boost_inliers : tuple of int or None
        Boost at or above this many (None: no boost); only values >= the band's ``min_inliers`` are used.
    suppress_actions, boost_actions : tuple of Action
        Tier maps ``c -> low + (high - low) c``; those that are not monotone in a band are not used there.
    skip_share : float
        Share of randomly drawn bands left alone (``skip``).
    fusion_share : float
        Share of random candidates in the additive or multiplicative mode.
    fusion_weights, fusion_min_inliers, fusion_caps : tuple of float
        Fusion parameters (multiplicative weights above 1 are invalid and skipped).
    random_candidates : int
        Random candidates drawn (besides the built-ins).
    coordinate_rounds : int
        At most this many passes of coordinate ascent over all parameters.
    """

    ks: tuple[int, ...] = (1, 2, 3, 5)
    combines: tuple[str, ...] = ("max", "second", "mean")
    band_edges: tuple[tuple[float, ...], ...] = ((), (0.5,), (0.4, 0.8), (0.4, 0.6, 0.8))
    min_inliers: tuple[int, ...] = tuple(range(16))
    boost_inliers: tuple[int | None, ...] = (None, 6, 8, 10, 12, 15, 20, 25, 30)
    suppress_actions: tuple[Action, ...] = (Action(0.0, 1 / 3), Action(0.0, 0.0), Action(0.0, 0.5))
    boost_actions: tuple[Action, ...] = (Action(2 / 3, 1.0), Action(0.5, 1.0), Action(0.6, 0.6))
    skip_share: float = 0.1
    fusion_share: float = 0.2
    fusion_weights: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    fusion_min_inliers: tuple[float, ...] = (0.0, 3.0, 5.0, 8.0, 10.0)
    fusion_caps: tuple[float, ...] = (10.0, 15.0, 20.0, 30.0, 50.0, 70.0)
    random_candidates: int = 1500
    coordinate_rounds: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.ks or any(not (isinstance(k, int) and k >= 1) for k in self.ks):
            raise ValueError(f"ks must be positive integers, got {self.ks!r}")
        if not self.combines or any(c not in COMBINES for c in self.combines):
            raise ValueError(f"combines must be among {', '.join(COMBINES)}, got {self.combines!r}")
        for edges in self.band_edges:
            if list(edges) != sorted(set(edges)) or any(not 0 < e < 1 for e in edges):
                raise ValueError(f"band_edges: {edges!r} must be increasing values inside (0, 1)")
        if not self.band_edges:
            raise ValueError("band_edges must hold at least one set of edges, e.g. ()")
        if not self.min_inliers or any(m < 0 for m in self.min_inliers):
            raise ValueError(f"min_inliers must be non-negative integers, got {self.min_inliers!r}")
        if not (self.suppress_actions and self.boost_actions):
            raise ValueError("suppress_actions and boost_actions must not be empty")
        for name in ("skip_share", "fusion_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.fusion_share > 0 and not (self.fusion_weights and self.fusion_min_inliers and self.fusion_caps):
            raise ValueError("fusion_weights, fusion_min_inliers and fusion_caps must not be empty")
        for name in ("random_candidates", "coordinate_rounds"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")


def candidate_key(doc: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in ("name", "info")}, sort_keys=True)


def _fits(action: Action, lower: float, upper: float, suppress: bool) -> bool:
    ends = [action(c) - c for c in (lower, upper)]
    return all(d <= 1e-12 for d in ends) if suppress else all(d >= -1e-12 for d in ends)


def _random_band(space: SearchSpace, rng: np.random.Generator, lower: float, upper: float) -> dict[str, Any]:
    band: dict[str, Any] = {"lower": lower, "upper": upper}
    if rng.random() < space.skip_share:
        band["skip"] = True
        return band
    ks = space.usable_ks
    band["k"] = int(ks[rng.integers(len(ks))])
    low = int(space.min_inliers[rng.integers(len(space.min_inliers))])
    if low > 0:
        actions = [a for a in space.suppress_actions if _fits(a, lower, upper, True)]
        if actions:
            band["min_inliers"] = low
            band["suppress"] = actions[rng.integers(len(actions))].to_json()
    boosts = [b for b in space.boost_inliers if b is None or b >= max(low, 1)]
    high = boosts[rng.integers(len(boosts))] if boosts else None
    actions = [a for a in space.boost_actions if _fits(a, lower, upper, False)]
    if high is not None and actions:
        band["boost_inliers"] = int(high)
        band["boost"] = actions[rng.integers(len(actions))].to_json()
    return band


def random_candidate(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    combine = str(space.combines[rng.integers(len(space.combines))])
    if rng.random() < space.fusion_share:
        mode = _FUSION_MODES[rng.integers(2)]
        weights = [w for w in space.fusion_weights if mode == "additive" or w <= 1] or [1.0]
        floor = float(space.fusion_min_inliers[rng.integers(len(space.fusion_min_inliers))])
        caps = [c for c in space.fusion_caps if c > floor] or [floor + 1]
        ks = space.usable_ks
        return {"name": "tuned", "mode": mode, "combine": combine, "selection": space.selection, "fusion": {
            "k": int(ks[rng.integers(len(ks))]), "weight": float(weights[rng.integers(len(weights))]),
            "min_inliers": floor, "cap": float(caps[rng.integers(len(caps))])}}
    edges = space.band_edges[rng.integers(len(space.band_edges))]
    bounds = (0.0, *map(float, edges), 1.0)
    bands = [_random_band(space, rng, lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    return {"name": "tuned", "mode": "bands", "combine": combine, "selection": space.selection, "bands": bands}


def as_candidate(policy: Policy, space: Space) -> dict[str, Any]:
    """A built-in as a candidate: the search's selection, k clipped to ``max_k``."""
    doc = policy.to_dict()
    doc.pop("extractor", None)
    doc.pop("info", None)
    doc["selection"] = space.selection
    for band in doc.get("bands", []):
        if "k" in band:
            band["k"] = min(band["k"], space.max_k)
    if "fusion" in doc:
        doc["fusion"]["k"] = min(doc["fusion"]["k"], space.max_k)
    return doc


def random_policies(space: SearchSpace, count: int, seed: int = 0) -> list[Policy]:
    """``count`` distinct valid random policies from ``space`` (fewer if the space is smaller), seeded."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out = []
    for _ in range(20 * count + 100):
        if len(out) >= count:
            break
        doc = random_candidate(space, rng)
        key = candidate_key(doc)
        if key in seen:
            continue
        seen.add(key)
        try:
            out.append(policy_from_dict(doc))
        except PolicyError:
            continue
    return out


def doc_distance(doc: Mapping[str, Any], reference: Mapping[str, Any]) -> int:
    """How many values differ between two policy documents (fields present in only one count once each)."""
    a, b = _leaves(doc), _leaves(reference)
    return sum(a.get(path) != b.get(path) for path in set(a) | set(b) if path[0] not in ("name", "info"))


def _leaves(value: Any, path: tuple = ()) -> dict[tuple, Any]:
    if isinstance(value, Mapping):
        return {p: v for key, item in value.items() for p, v in _leaves(item, (*path, key)).items()}
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return {p: v for i, item in enumerate(value) for p, v in _leaves(item, (*path, i)).items()}
    return {path: value}


def _parameters(doc: Mapping[str, Any]) -> list[tuple[str, int | None]]:
    if doc["mode"] != "bands":
        return [("mode", None), ("combine", None), ("fusion.k", None), ("fusion.weight", None),
                ("fusion.min_inliers", None), ("fusion.cap", None)]
    names = [("combine", None), ("edges", None)]
    for i in range(len(doc["bands"])):
        names += [(p, i) for p in ("min_inliers", "boost_inliers", "k", "suppress", "boost", "skip")]
    return names



def with_min_inliers(doc: dict, band: int, min_inliers: int, space: "SearchSpace") -> dict:
    """``doc`` (modified in place) with band ``band`` suppressing below ``min_inliers`` (0: never)."""
    b = doc["bands"][band]
    if min_inliers == 0:
        b.pop("min_inliers", None)
        b.pop("suppress", None)
    else:
        b["min_inliers"] = min_inliers
        b.setdefault("suppress", space.suppress_actions[0].to_json())
    return doc

def _variants(doc: Mapping[str, Any], parameter: str, index: int | None, space: SearchSpace) -> list[dict]:
    """``doc`` with one parameter set to each value of the space (invalid ones are weeded out later)."""
    out = []

    def copy() -> dict[str, Any]:
        return json.loads(json.dumps(doc))

    if parameter == "combine":
        for c in space.combines:
            d = copy()
            d["combine"] = c
            out.append(d)
    elif parameter == "mode":
        for mode in _FUSION_MODES:
            d = copy()
            d["mode"] = mode
            out.append(d)
    elif parameter.startswith("fusion."):
        name = parameter.split(".", 1)[1]
        values = {"k": space.usable_ks, "weight": space.fusion_weights, "min_inliers": space.fusion_min_inliers,
                  "cap": space.fusion_caps}[name]
        for v in values:
            d = copy()
            d["fusion"][name] = int(v) if name == "k" else float(v)
            out.append(d)
    elif parameter == "edges":
        old = doc["bands"]
        for edges in space.band_edges:
            bounds = (0.0, *map(float, edges), 1.0)
            bands = []
            for lo, hi in zip(bounds, bounds[1:]):
                middle = (lo + hi) / 2
                source = next(b for b in old if b["lower"] <= middle < b["upper"] or b is old[-1])
                band = json.loads(json.dumps(source))
                band.update(lower=lo, upper=hi)
                bands.append(band)
            d = copy()
            d["bands"] = bands
            out.append(d)
    else:
        band = doc["bands"][index]
        if band.get("skip"):
            if parameter == "skip":
                for m in space.min_inliers:
                    d = copy()
                    d["bands"][index] = {"lower": band["lower"], "upper": band["upper"], "k": space.usable_ks[-1]}
                    if m > 0:
                        d["bands"][index].update(min_inliers=m, suppress=space.suppress_actions[0].to_json())
                    out.append(d)
            return out
        if parameter == "skip":
            d = copy()
            d["bands"][index] = {"lower": band["lower"], "upper": band["upper"], "skip": True}
            out.append(d)
        elif parameter == "k":
            for k in space.usable_ks:
                d = copy()
                d["bands"][index]["k"] = k
                out.append(d)
        elif parameter == "min_inliers":
            out += [with_min_inliers(copy(), index, m, space) for m in space.min_inliers]
        elif parameter == "boost_inliers":
            for v in space.boost_inliers:
                d = copy()
                b = d["bands"][index]
                if v is None:
                    b.pop("boost_inliers", None)
                    b.pop("boost", None)
                else:
                    b["boost_inliers"] = v
                    fits = [a for a in space.boost_actions if _fits(a, b["lower"], b["upper"], False)]
                    if "boost" not in b and fits:
                        b["boost"] = fits[0].to_json()
                out.append(d)
        elif parameter in ("suppress", "boost") and parameter in band:
            for action in space.suppress_actions if parameter == "suppress" else space.boost_actions:
                d = copy()
                d["bands"][index][parameter] = action.to_json()
                out.append(d)
    return out


class CandidatePool:
    """Every candidate scored so far: documents, policies and per-(repeat, fold) GAPs, without duplicates."""

    def __init__(self, scorer: PolicyScorer, num_files: int, repeats: int, folds: int, workers: int):
        self.scorer, self.num_files, self.repeats, self.folds, self.workers = scorer, num_files, repeats, folds, workers
        self.docs: list[dict[str, Any]] = []
        self.policies: list[Policy] = []
        self.fold_gaps: list[np.ndarray] = []  # (repeats * folds,) mean over files
        self.index: dict[str, int] = {}
        self.invalid: set[str] = set()

    def add(self, docs: Iterable[Mapping[str, Any]]) -> list[int]:
        """Score new documents; the pool indices of all valid ones, in order."""
        wanted, fresh = [], []
        for doc in docs:
            key = candidate_key(doc)
            if key in self.invalid:
                continue
            if key not in self.index:
                try:
                    policy = policy_from_dict(doc)
                except PolicyError:
                    self.invalid.add(key)
                    continue
                self.index[key] = len(self.docs)
                self.docs.append(dict(doc))
                self.policies.append(policy)
                fresh.append(policy)
            wanted.append(self.index[key])
        if fresh:
            gaps = self.scorer.gaps_many(fresh, self.workers)
            shape = (len(fresh), self.repeats, self.num_files, self.folds)
            self.fold_gaps.extend(gaps.reshape(shape).mean(axis=2).reshape(len(fresh), -1))
        return wanted

    def scores(self) -> np.ndarray:
        """(candidates, repeats * folds): mean GAP over files of each candidate on each repeat's folds."""
        return np.array(self.fold_gaps).reshape(len(self.fold_gaps), self.repeats * self.folds)


def mean_over_folds(train_on: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Mean score over the folds in ``train_on`` (bool per repeat and fold, flattened as ``CandidatePool.scores``)."""
    weights = train_on.astype(float) / train_on.sum()
    return lambda scores: scores @ weights


def climb(pool: CandidatePool, start: Sequence[int], objective: Callable[[np.ndarray], np.ndarray],
            space: SearchSpace) -> tuple[int, list[int]]:
    """Coordinate ascent from the best of ``start``; returns the best index and every index it scored."""
    seen = list(start)
    values = objective(pool.scores()[seen])
    best = seen[int(np.argmax(values))]
    best_value = float(values.max())
    for _ in range(space.coordinate_rounds):
        improved = False
        step = 0
        while step < len(_parameters(pool.docs[best])):
            parameter, index = _parameters(pool.docs[best])[step]
            step += 1
            found = pool.add(_variants(pool.docs[best], parameter, index, space))
            if not found:
                continue
            seen += found
            values = objective(pool.scores()[found])
            j = int(np.argmax(values))
            if values[j] > best_value + 1e-12:
                best, best_value, improved = found[j], float(values[j]), True
        if not improved:
            break
    return best, seen
