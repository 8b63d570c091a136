"""Extractor plug-ins, one module each, and the registry of extractors by name.

``from delfverify.extractors import RootSIFT, DELF`` gives the classes (each module is imported on first use, so
TensorFlow loads only when DELF is used); ``base`` holds the interface every extractor provides and its thresholds. Wherever delfverify takes a ``features=`` argument, it accepts a name
from ``EXTRACTORS`` or an extractor object (``resolve_extractor``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Extractor, Thresholds, fingerprint, measured_thresholds

#: Extractor names accepted by ``make_extractor`` and the CLI's ``--features``, with the class of each.
_CLASSES = {"rootsift": ("rootsift", "RootSIFT"), "delf": ("delf", "DELF")}
EXTRACTORS = tuple(_CLASSES)

#: The extractor used when none is named: RootSIFT needs no model download.
DEFAULT_EXTRACTOR = "rootsift"

__all__ = ["DEFAULT_EXTRACTOR", "DELF", "EXTRACTORS", "Extractor", "RootSIFT", "Thresholds", "extractor_class",
           "fingerprint", "make_extractor", "measured_thresholds", "resolve_extractor"]


def extractor_class(name: str) -> type:
    """The extractor class registered under ``name``; its class attributes (``thresholds``, ``match``) can be
    read without creating it, which for DELF would load the model.

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    if name not in _CLASSES:
        raise ValueError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def make_extractor(name: str = DEFAULT_EXTRACTOR, **options: Any):
    """Create an extractor by name; ``options`` go to its constructor (e.g. ``model="/path/to/delf"``).

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    return extractor_class(name)(**options)


def resolve_extractor(features: Any, model: str | None = None):
    """An extractor from a ``features=`` argument: a registered name (with ``model`` for DELF) or an object.

    Raises
    ------
    ValueError
        If the name is unknown, ``model`` is given with an object or with a name other than ``"delf"``, or the
        object lacks the extractor interface (``delfverify.features.Extractor``).
    """
    if isinstance(features, str):
        if model is not None and features != "delf":
            raise ValueError(f"model is only used with the delf extractor, not {features!r}")
        return make_extractor(features, **({"model": model} if model is not None else {}))
    if model is not None:
        raise ValueError("model is only used when features is given by name ('delf')")
    if not isinstance(features, Extractor):
        raise ValueError(f"features must be one of {', '.join(EXTRACTORS)} or an extractor object, got {features!r}")
    return features


def __getattr__(name: str):
    for key, (module, cls) in _CLASSES.items():
        if name == cls:
            return extractor_class(key)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
