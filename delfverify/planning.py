"""Step 1 of the pipeline: which gallery photos each prediction is checked against.

``plan_pairs`` is a pure function of the predictions, the gallery, the number of photos per prediction and the
selection settings; every prefix of a label's ``gallery_order`` is its selection for that number.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .policy import SELECTIONS
from .tables import Gallery, Predictions


def gallery_order(ids: Sequence[str], how: str, seed: int, label: str) -> list[str]:
    """The order in which a label's gallery photos are used; the first k are verified.

    ``first``: gallery order. ``random``: a permutation seeded by ``seed`` and the label. ``spread``: positions
    0, n/2, n/4, 3n/4, ... so that every prefix is spread across the class (gallery files are often sorted by
    time or viewpoint). Every prefix of the order is the selection for that k, for every method.
    """
    n = len(ids)
    if how == "first" or n <= 1:
        return list(ids)
    if how == "random":
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        return [ids[i] for i in rng.permutation(n)]
    if how == "spread":
        # The first position each t in 0, 1, 2, ... reaches is the next photo; the rest follow in gallery order.
        reached = (_van_der_corput(np.arange(4 * n)) * n).astype(np.int64)
        first = np.unique(reached, return_index=True)
        order = first[0][np.argsort(first[1], kind="stable")]
        rest = np.setdiff1d(np.arange(n), order, assume_unique=True)
        return [ids[i] for i in np.concatenate([order, rest])]
    raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {how!r}")


def _van_der_corput(t: np.ndarray) -> np.ndarray:
    """0, 1/2, 1/4, 3/4, 1/8, 5/8, ...: the bits of each t mirrored behind the binary point."""
    value = np.zeros(t.shape)
    for bit in range(int(t.max(initial=0)).bit_length()):
        value += ((t >> bit) & 1) / 2.0 ** (bit + 1)
    return value


@dataclass(frozen=True)
class PairPlan:
    """The gallery photos each prediction is verified against.

    Attributes
    ----------
    gallery_ids : list of list of str
        Per prediction, the chosen gallery ids in selection order (empty: nothing to verify).
    """

    gallery_ids: list[list[str]]

    @property
    def width(self) -> int:
        """The most gallery photos of any prediction (at least 1, the width of the inlier table)."""
        return max((len(ids) for ids in self.gallery_ids), default=0) or 1


def plan_pairs(predictions: Predictions, gallery: Gallery, k: np.ndarray, selection: str = "spread",
               seed: int = 0, *, by_label: Mapping[str, Sequence[str]] | None = None,
               orders: dict[str, list[str]] | None = None) -> PairPlan:
    """Choose, for each prediction, the first ``k[i]`` gallery photos of its label in ``gallery_order``.

    Predictions without a label, with ``k[i] == 0``, or whose label has no gallery photo get none. A caller that
    plans several batches against the same gallery can pass ``by_label`` (``gallery.ids_by_label()``) and
    ``orders``, a dict filled with each label's ``gallery_order``, to build both once: the same ``orders`` only
    with the same gallery, ``selection`` and ``seed``.
    """
    k = np.asarray(k)
    if k.shape != (len(predictions),):
        raise ValueError(f"k must hold one count per prediction ({len(predictions)}), got shape {k.shape}")
    if by_label is None:
        by_label = gallery.ids_by_label()
    if orders is None:
        orders = {}
    chosen: list[list[str]] = []
    for label, count in zip(predictions.labels, k.tolist()):
        if count <= 0 or label not in by_label:
            chosen.append([])
            continue
        if label not in orders:
            orders[label] = gallery_order(by_label[label], selection, seed, label)
        chosen.append(orders[label][:count])
    return PairPlan(chosen)
