"""delfverify.planning: the order in which a label's gallery photos are used (first, random, spread), and
``plan_pairs``, a pure function of the predictions, the gallery, the photos per prediction and the selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from delfverify.planning import gallery_order, plan_pairs
from delfverify.tables import Predictions, read_gallery, read_predictions

DATA = Path(__file__).resolve().parents[1] / "data"
ASTRONAUT_QUERY = "da07d5ba65959f62"
DISTRACTOR_QUERY = "d1ad4725340afc15"


def test_gallery_order_first_keeps_gallery_order():
    ids = [f"g{i}" for i in range(7)]
    assert gallery_order(ids, "first", 0, "x") == ids


def test_gallery_order_spread_for_eight_photos():
    ids = [f"g{i}" for i in range(8)]
    order = gallery_order(ids, "spread", 0, "x")
    assert order == ["g0", "g4", "g2", "g6", "g1", "g5", "g3", "g7"]
    assert order[:2] == ["g0", "g4"]
    assert sorted(order[:4]) == ["g0", "g2", "g4", "g6"]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 13, 64, 100])
def test_gallery_order_spread_is_a_permutation_with_spread_prefixes(n):
    ids = [f"g{i:03d}" for i in range(n)]
    order = [ids.index(g) for g in gallery_order(ids, "spread", 0, "x")]
    assert sorted(order) == list(range(n))
    if n >= 2:
        assert order[:2] == [0, n // 2]
    for k in (2, 4, 8):
        if n >= 2 * k:  # the first k photos leave no gap larger than about two k-ths of the class
            positions = sorted(order[:k]) + [n]
            assert max(np.diff(positions)) <= -(-n // k) + 1


def _spread_by_definition(n: int) -> list[int]:
    """Positions 0, n/2, n/4, 3n/4, ...: each t's mirrored bits times n, first visits only, then the rest."""
    order: list[int] = []
    for t in range(4 * n):
        mirrored = sum(((t >> b) & 1) / 2 ** (b + 1) for b in range(t.bit_length()))
        if int(mirrored * n) not in order:
            order.append(int(mirrored * n))
    return order + [i for i in range(n) if i not in order]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 6, 7, 9, 31, 100, 257])
def test_gallery_order_spread_follows_its_definition(n):
    ids = [f"g{i:03d}" for i in range(n)]
    assert gallery_order(ids, "spread", 0, "x") == [ids[i] for i in _spread_by_definition(n)]


def test_gallery_order_random_is_seeded_and_deterministic():
    ids = [f"g{i}" for i in range(20)]
    order = gallery_order(ids, "random", 3, "eiffel")
    assert sorted(order) == sorted(ids)
    assert gallery_order(ids, "random", 3, "eiffel") == order  # same seed and label: same order
    assert gallery_order(list(ids), "random", 3, "eiffel") == order
    assert gallery_order(ids, "random", 4, "eiffel") != order  # another seed
    assert gallery_order(ids, "random", 3, "big ben") != order  # another label
    assert order != ids


def test_gallery_order_unknown_method():
    with pytest.raises(ValueError, match="selection"):
        gallery_order(["a", "b"], "best", 0, "x")


def test_plan_pairs_is_a_pure_function_of_its_inputs():
    predictions = read_predictions(DATA / "predictions.csv")
    gallery = read_gallery(DATA / "gallery.csv")
    k = np.where(predictions.has_label, 3, 0)
    k[:4] = [0, 1, 2, 5]
    first = plan_pairs(predictions, gallery, k, "random", 7)
    again = plan_pairs(read_predictions(DATA / "predictions.csv"), read_gallery(DATA / "gallery.csv"), k.copy(),
                       "random", 7)
    assert first == again
    ids_by_label = gallery.ids_by_label()
    for label, count, chosen in zip(predictions.labels, k, first.gallery_ids):
        assert chosen == gallery_order(ids_by_label[label], "random", 7, label)[:count]
    assert first.gallery_ids[0] == [] and len(first.gallery_ids[3]) == min(5, len(ids_by_label[predictions.labels[3]]))
    assert first.width == max(len(c) for c in first.gallery_ids)


def test_plan_pairs_leaves_out_labels_without_gallery_and_checks_k():
    table = read_predictions(DATA / "predictions.csv").table
    table.loc[table["id"] == ASTRONAUT_QUERY, "label"] = "atlantis"
    table.loc[table["id"] == DISTRACTOR_QUERY, ["label", "confidence"]] = ["", np.nan]
    predictions = Predictions(table)
    gallery = read_gallery(DATA / "gallery.csv")
    plan = plan_pairs(predictions, gallery, np.full(len(predictions), 2))
    rows = dict(zip(predictions.ids, plan.gallery_ids))
    assert rows[ASTRONAUT_QUERY] == [] and rows[DISTRACTOR_QUERY] == []
    with pytest.raises(ValueError, match="one count per prediction"):
        plan_pairs(predictions, gallery, np.ones(3))
