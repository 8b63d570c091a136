"""delfverify.rescaling: ``rescale`` gives the policy's confidences, each prediction's status and reason, and the
label shares of a frequency penalty among the classifier's first choices."""

from __future__ import annotations

import numpy as np
import pandas as pd

from delfverify.policy import builtin_policy, policy_from_dict
from delfverify.rescaling import rescale
from delfverify.tables import Predictions


def test_rescale_gives_policy_confidences_and_statuses():
    predictions = Predictions(pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "label": ["x", "x", "y", "z", ""],
                                            "confidence": [0.6, 0.3, 0.9, 0.5, np.nan]}))
    inliers = np.array([[14.0], [2.0], [np.nan], [np.nan], [np.nan]])
    policy = builtin_policy("default", "rootsift")  # boost at 14, suppress below 11
    out = rescale(predictions, inliers, policy, errors=["", "", "query image: gone", "", ""],
                  gallery_labels={"x", "y"})
    np.testing.assert_allclose(out.confidence[:4], [2 / 3 + 0.6 / 3, 0.3 / 3, 0.9, 0.5])
    assert np.isnan(out.confidence[4])
    assert list(out.status) == ["boosted", "suppressed", "error", "no_gallery", "no_prediction"]
    assert list(out.reason) == ["", "", "query image: gone", "label has no gallery photo", ""]
    suppressed = rescale(predictions, inliers, policy, errors=["", "", "query image: gone", "", ""],
                         gallery_labels={"x", "y"}, on_missing="suppress")
    np.testing.assert_allclose(suppressed.confidence[2:4], [0.9 / 3, 0.5 / 3])


def test_frequency_penalty_counts_the_classifiers_first_choices():
    """A label's share is that of the queries whose first candidate it is, so candidates do not dilute it."""
    policy = policy_from_dict({"bands": [{"lower": 0, "upper": 1, "k": 1, "min_inliers": 0}],
                               "frequency_penalty": {"max_share": 0.5, "factor": 0.5, "below_inliers": 10}})
    predictions = Predictions(pd.DataFrame({"id": ["a", "a", "b", "b", "c"], "label": ["x", "y", "x", "z", "y"],
                                            "confidence": [0.8, 0.4, 0.6, 0.2, 0.5]}))
    new = rescale(predictions, np.full((5, 1), 3.0), policy).confidence
    np.testing.assert_allclose(new, [0.4, 0.4, 0.3, 0.2, 0.5])  # x is first for 2 of 3 queries; y for 1
