"""Confidence calibration: temperature scaling (Guo et al., 2017) and expected calibration
error.

A temperature T divides the logits before the softmax: the predicted class is unchanged,
only the confidence moves. T is fitted on dev logits by minimising their negative
log-likelihood; :func:`fold_temperature` folds it into the model's last layer, so a model
file carries it with no runtime change (TorchScript, ONNX and streaming all see it).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "ECE_BINS",
    "calibration_report",
    "expected_calibration_error",
    "fit_temperature",
    "fold_temperature",
    "nll",
]

#: Equal-width confidence bins of the expected calibration error (the usual 15).
ECE_BINS = 15
#: Search range of log T: T in [e^-3, e^3] ~ [0.05, 20].
_LOG_T_RANGE = (-3.0, 3.0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if logits.ndim != 2 or y.shape != (logits.shape[0],):
        raise ValueError(
            f"calibration: logits must be (N, C) and labels (N,); got {logits.shape} and {y.shape}"
        )
    if logits.shape[0] == 0:
        raise ValueError("calibration: no utterances")
    if not np.isfinite(logits).all():
        raise ValueError("calibration: logits have non-finite values")
    if y.min() < 0 or y.max() >= logits.shape[1]:
        raise ValueError(f"calibration: labels outside [0, {logits.shape[1]})")
    return logits, y


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels ``y`` (N,) under softmax(logits (N, C) / T)."""
    logits, y = _check(logits, y)
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising :func:`nll` on (logits, y): golden-section search on log T (the
    NLL is convex in 1/T), deterministic, to a relative precision of about 1e-4."""
    logits, y = _check(logits, y)
    lo, hi = _LOG_T_RANGE
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, y, math.exp(a)), nll(logits, y, math.exp(b))
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def expected_calibration_error(
    logits: np.ndarray, y: np.ndarray, temperature: float = 1.0, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE: ``sum_b (n_b / N) |accuracy_b - mean confidence_b|`` over ``n_bins``
    equal-width bins of the predicted class's probability (in [0, 1])."""
    logits, y = _check(logits, y)
    p = _softmax(logits / temperature)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    # bin b holds confidences in (b / n, (b + 1) / n]; 1/C <= conf, so bin 0's lower edge is moot
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def calibration_report(
    dev_logits: np.ndarray, dev_y: np.ndarray, test_logits: np.ndarray, test_y: np.ndarray
) -> dict:
    """T fitted on dev, with the test set's ECE and NLL before (T = 1) and after."""
    t = fit_temperature(dev_logits, dev_y)
    return {
        "temperature": t,
        "test_ece_before": expected_calibration_error(test_logits, test_y),
        "test_ece_after": expected_calibration_error(test_logits, test_y, t),
        "test_nll_before": nll(test_logits, test_y),
        "test_nll_after": nll(test_logits, test_y, t),
        "dev_ece_before": expected_calibration_error(dev_logits, dev_y),
        "dev_ece_after": expected_calibration_error(dev_logits, dev_y, t),
    }


@torch.no_grad()
def fold_temperature(model: torch.nn.Module, temperature: float) -> None:
    """Divide the CRNN's logits by ``temperature`` for good: FC2's weight and bias are
    scaled by 1 / T (argmax, z and the center loss are untouched)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    model.fc2.weight.div_(temperature)
    model.fc2.bias.div_(temperature)
