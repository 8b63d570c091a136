"""A policy's JSON document, validated: ``policy_from_dict`` builds a ``Policy`` or raises ``PolicyError`` naming the
field that is missing, unknown, of the wrong type or out of range (the limits below)."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..calibration.table import MIN_RATE
from ..errors import DelfverifyError, shorten
from ..settings import MAX_SEED
from .model import COMBINES, MODES, SELECTIONS, Action, Band, FrequencyPenalty, Fusion, Policy

#: The most gallery photos a policy may verify per prediction (``k``): the inlier table has ``k`` columns per
#: prediction, so a larger value only exhausts memory.
MAX_K = 1000
#: The largest inlier threshold a policy may set (``min_inliers``, ``boost_inliers``, ``below_inliers``): far more
#: than any pair of photos has matches.
MAX_INLIERS = 1_000_000


class PolicyError(DelfverifyError, ValueError):
    """A policy document is invalid; the message names the field."""


def _field(doc: Mapping[str, Any], key: str, kind, where: str, default=None, *, required=False):
    if key not in doc:
        if required:
            raise PolicyError(f"{where}: missing required field {key!r}")
        return default
    value = doc[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PolicyError(f"{where}.{key}: expected an integer, got {shorten(repr(value))}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise PolicyError(f"{where}.{key}: expected a number, got {shorten(repr(value))}")
    if kind in (str, bool, dict, list) and not isinstance(value, kind):
        raise PolicyError(f"{where}.{key}: expected {kind.__name__}, got {shorten(repr(value))}")
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
        raise PolicyError(f"{where}: expected an object, got {shorten(repr(doc))}")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {shorten(', '.join(map(str, unknown)))}; allowed: "
                          f"{', '.join(sorted(allowed))}")


def _action(doc: Any, where: str) -> Action:
    _check_keys(doc, {"set", "multiply", "range"}, where)
    if len(doc) != 1:
        raise PolicyError(f"{where}: give exactly one of set, multiply, range")
    (op, value), = doc.items()
    if op == "range":
        if not (isinstance(value, list) and len(value) == 2):
            raise PolicyError(f"{where}.range: expected [low, high], got {shorten(repr(value))}")
        low, high = (_field({"v": v}, "v", float, f"{where}.range") for v in value)
    else:
        v = _field(doc, op, float, where)
        low, high = (v, v) if op == "set" else (0.0, v)
    if not (0 <= low <= 1 and 0 <= high <= 1):
        raise PolicyError(f"{where}: values must lie in [0, 1], got {shorten(repr(doc))}")
    return Action(low, high)


def _count(doc: Mapping[str, Any], key: str, where: str, null_table: Any, required: bool = False) -> int | None:
    """An inlier threshold: a count in ``[0, MAX_INLIERS]``, or ``{"false_match_rate": r}``, the smallest count that
    at most the share ``r`` of unrelated photo pairs reach (``NullTable.count_for_rate``), with ``null_table``."""
    value = doc.get(key)
    if not isinstance(value, Mapping):
        return _integer(doc, key, where, None, 0, MAX_INLIERS, required=required)
    _check_keys(value, {"false_match_rate"}, f"{where}.{key}")
    rate = _field(value, "false_match_rate", float, f"{where}.{key}", required=True)
    if not 0 < rate <= 1:
        raise PolicyError(f"{where}.{key}.false_match_rate: must be a number in (0, 1], got {rate}")
    if null_table is None:
        raise PolicyError(f"{where}.{key}: a false-match rate needs a null table for the extractor and model "
                          f"(none is shipped for them: give one with --null-table, from 'delfverify calibrate')")
    return int(null_table.count_for_rate(max(rate, MIN_RATE)))


def _band(doc: Any, where: str, null_table: Any = None) -> Band:
    _check_keys(doc, {"lower", "upper", "k", "skip", "min_inliers", "suppress", "boost_inliers", "boost"}, where)
    lower = _field(doc, "lower", float, where, required=True)
    upper = _field(doc, "upper", float, where, required=True)
    if _field(doc, "skip", bool, where, False):
        return Band(lower, upper, skip=True)
    band = Band(
        lower=lower,
        upper=upper,
        k=_integer(doc, "k", where, 2, 1, MAX_K),
        min_inliers=_count(doc, "min_inliers", where, null_table),
        suppress=_action(doc["suppress"], f"{where}.suppress") if "suppress" in doc else Action(0.0, 0.0),
        boost_inliers=_count(doc, "boost_inliers", where, null_table),
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


def policy_from_dict(doc: Mapping[str, Any], null_table: Any = None) -> Policy:
    """Validate a policy document and build the ``Policy``.

    An inlier threshold (``min_inliers``, ``boost_inliers``, ``below_inliers``) may be given as a false-match rate,
    ``{"false_match_rate": 0.1}``: the smallest count that at most that share of unrelated photo pairs reach, by
    ``null_table`` (``delfverify.calibration.NullTable``); the policy holds the count.

    Raises
    ------
    PolicyError
        Naming the field that is missing, unknown, of the wrong type or out of range, or a rate without a table.
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
            raise PolicyError(f"{where}.{key}: must be one of {', '.join(allowed)}, got {shorten(repr(value))}")
    bands: tuple[Band, ...] = ()
    fusion = Fusion()
    if mode == "bands":
        raw = _field(doc, "bands", list, where, required=True)
        bands = tuple(_band(b, f"{where}.bands[{i}]", null_table) for i, b in enumerate(raw))
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
            below_inliers=_count(raw, "below_inliers", w, null_table, required=True),
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
