"""pyser.training.metrics against scikit-learn (reference), exact to 1e-12."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
)

from pyser.training.metrics import classification_report, format_summary, summarize


@st.composite
def label_pairs(draw):
    n_classes = draw(st.integers(1, 7))
    n = draw(st.integers(1, 60))
    labels = st.integers(0, n_classes - 1)
    y_true = draw(st.lists(labels, min_size=n, max_size=n))
    y_pred = draw(st.lists(labels, min_size=n, max_size=n))
    return np.array(y_true), np.array(y_pred), n_classes


@settings(max_examples=150, deadline=None)
@given(label_pairs())
def test_matches_sklearn(pair):
    y_true, y_pred, n_classes = pair
    r = classification_report(y_true, y_pred, n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)  # balanced accuracy: class absent from y_pred
        ua = balanced_accuracy_score(y_true, y_pred)
        f1 = f1_score(y_true, y_pred, average="macro", zero_division=0)
        cm = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    assert r["ua"] == pytest.approx(ua, abs=1e-12)
    assert r["wa"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert r["macro_f1"] == pytest.approx(f1, abs=1e-12)
    np.testing.assert_array_equal(r["confusion"], cm)
    assert r["confusion"].shape == (n_classes, n_classes)
    assert r["n"] == len(y_true)


def test_seeded_large_imbalanced():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.choice(4, size=500, p=[0.5, 0.3, 0.15, 0.05])
        # A biased classifier: right 60 % of the time, else class 0.
        y_pred = np.where(rng.random(500) < 0.6, y_true, 0)
        r = classification_report(y_true, y_pred, 4)
        assert r["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
        assert r["wa"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
        assert r["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
        assert r["ua"] < r["wa"]  # class 0 is the majority and is favoured


def test_known_values():
    # Rows = true: class 0 recall 2/3, class 1 recall 1/1, class 2 absent from y_true.
    r = classification_report([0, 0, 0, 1], [0, 0, 2, 1], n_classes=3)
    assert r["ua"] == pytest.approx((2 / 3 + 1) / 2)
    assert r["wa"] == pytest.approx(3 / 4)
    np.testing.assert_array_equal(r["confusion"], [[2, 0, 1], [0, 1, 0], [0, 0, 0]])
    assert np.isnan(r["recall"][2])
    # F1: class 0 = 2*2/(3+2) = 0.8, class 1 = 1, class 2 (predicted, never true) = 0.
    assert r["macro_f1"] == pytest.approx((0.8 + 1 + 0) / 3)


@pytest.mark.parametrize(
    "y_true, y_pred, n_classes",
    [([0, 1], [0], 2), ([], [], 2), ([0, 2], [0, 1], 2), ([0, -1], [0, 0], 2), ([[0]], [[0]], 1)],
)
def test_bad_input_raises(y_true, y_pred, n_classes):
    with pytest.raises(ValueError):
        classification_report(y_true, y_pred, n_classes)


def test_summarize_mean_std():
    reports = [
        classification_report([0, 1, 1, 0], [0, 1, 0, 0], 2),
        classification_report([0, 1, 1, 0], [0, 1, 1, 0], 2),
        classification_report([0, 1, 1, 0], [1, 0, 1, 0], 2),
    ]
    s = summarize(reports)
    for m in ("ua", "wa", "macro_f1"):
        values = [r[m] for r in reports]
        assert s[m]["mean"] == pytest.approx(np.mean(values))
        assert s[m]["std"] == pytest.approx(np.std(values, ddof=1))
        assert s[m]["n"] == 3
    np.testing.assert_array_equal(s["confusion"], sum(r["confusion"] for r in reports))
    assert s["wa"]["mean"] == pytest.approx((0.75 + 1.0 + 0.5) / 3)
    text = format_summary(s)
    assert text.startswith("UA ") and "±" in text and "WA 75.00" in text


def test_summarize_single_and_empty():
    s = summarize([classification_report([0, 1], [0, 1], 2)])
    assert s["ua"] == {"mean": 1.0, "std": 0.0, "n": 1}
    with pytest.raises(ValueError):
        summarize([])
