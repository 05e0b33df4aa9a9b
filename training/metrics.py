"""Classification metrics for speech emotion recognition (pure numpy).

* **UA** (unweighted accuracy): the mean per-class recall over the classes
  present in ``y_true`` (= scikit-learn's ``balanced_accuracy_score``).
* **WA** (weighted accuracy): plain accuracy.
* **macro F1**: the mean F1 over the classes present in ``y_true`` or
  ``y_pred`` (= scikit-learn's ``f1_score(average="macro")`` with its default
  labels); a class never predicted has precision 0.
* **confusion**: ``(n_classes, n_classes)`` int64 counts, rows = true class,
  columns = predicted class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyser._io import json_safe

__all__ = [
    "SCALAR_METRICS",
    "classification_report",
    "format_summary",
    "logits_report",
    "paired_difference",
    "summarize",
]

SCALAR_METRICS = ("ua", "wa", "macro_f1")


def _as_labels(y, name: str, n_classes: int) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer) and not np.all(np.mod(a, 1) == 0):
        raise ValueError(f"{name} must hold integer class indices")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= n_classes):
        raise ValueError(f"{name} has class indices outside [0, {n_classes})")
    return a


def classification_report(y_true, y_pred, n_classes: int) -> dict:
    """UA, WA, macro F1, per-class recall/precision/F1/support and the confusion matrix.

    Args:
        y_true: (n,) true class indices in ``[0, n_classes)``.
        y_pred: (n,) predicted class indices.
        n_classes: number of classes (fixes the confusion matrix size).
    Returns:
        ``{"ua", "wa", "macro_f1": float, "confusion": (C, C) int64 ndarray,
        "recall", "precision", "f1": (C,) float64 (NaN where undefined: recall
        of a class absent from y_true, precision of a class never predicted),
        "support": (C,) int64, "n": int}``.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}")
    t = _as_labels(y_true, "y_true", n_classes)
    p = _as_labels(y_pred, "y_pred", n_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("cannot score an empty prediction set")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        # F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (support + predicted); 0 when tp = 0.
        denom = support + predicted
        f1 = np.where(denom > 0, 2.0 * tp / denom, np.nan)
    present_true = support > 0
    present_any = denom > 0
    return {
        "ua": float(np.mean(recall[present_true])),
        "wa": float(tp.sum() / t.size),
        "macro_f1": float(np.mean(f1[present_any])),
        "confusion": confusion,
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "support": support,
        "n": int(t.size),
    }


def logits_report(y_true, logits: np.ndarray, n_classes: int) -> dict:
    """:func:`classification_report` of the arg-max of ``logits`` (n, C), ready for strict
    JSON: numpy values become Python ones and NaN (e.g. the precision of a class never
    predicted) becomes None."""
    r = classification_report(y_true, np.asarray(logits).argmax(axis=1), n_classes)
    return {k: json_safe(v) for k, v in r.items()}


def summarize(reports: Sequence[dict], metrics: Sequence[str] = SCALAR_METRICS) -> dict:
    """Mean and standard deviation of each scalar metric over several reports (folds, runs).

    ``std`` is the sample standard deviation (``ddof=1``), 0.0 for one report.
    Also returns the summed confusion matrix when every report has one of the
    same shape. Returns ``{metric: {"mean", "std", "n"}, ..., "confusion": ndarray}``.
    """
    if len(reports) == 0:
        raise ValueError("nothing to summarize")
    out: dict = {}
    for m in metrics:
        values = np.array([float(r[m]) for r in reports], dtype=np.float64)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out[m] = {"mean": float(values.mean()), "std": std, "n": int(values.size)}
    mats = [r.get("confusion") for r in reports]
    if all(m is not None for m in mats) and len({np.shape(m) for m in mats}) == 1:
        out["confusion"] = np.sum([np.asarray(m, dtype=np.int64) for m in mats], axis=0)
    return out


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """How ``b`` differs from ``a`` when both score the same folds (``a[i]`` and ``b[i]``
    one fold each): ``{"mean", "std", "n", "better"}`` of ``b - a``, where ``std`` is the
    sample standard deviation (0.0 for one pair) and ``better`` counts the folds where
    ``b`` is strictly higher.

    Raises:
        ValueError: when the sequences are empty or differ in length.
    """
    da = np.asarray(a, dtype=np.float64)
    db = np.asarray(b, dtype=np.float64)
    if da.ndim != 1 or da.shape != db.shape or da.size == 0:
        raise ValueError(f"paired scores must be two equally long, non-empty lists; got "
                         f"{da.size} and {db.size}")
    d = db - da
    return {"mean": float(d.mean()), "std": float(d.std(ddof=1)) if d.size > 1 else 0.0,
            "n": int(d.size), "better": int((d > 0).sum())}


def format_summary(summary: dict, metrics: Sequence[str] = SCALAR_METRICS) -> str:
    """``"UA 61.20 ± 1.30 | WA ... "`` in percent."""
    return " | ".join(
        f"{m.upper()} {100 * summary[m]['mean']:.2f} ± {100 * summary[m]['std']:.2f}"
        for m in metrics
    )
