"""Temperature scaling and expected calibration error."""

import math

import numpy as np
import pytest
import torch

from pyser.model import CRNN
from pyser.training.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    fold_temperature,
    nll,
)


def sampled(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``temperature`` times too sharp: labels drawn from softmax(logits / T)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 2.0, size=(n, 4))
    p = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    return true_logits * temperature, y


def test_fit_recovers_the_temperature_that_generated_the_labels():
    for t in (0.5, 1.0, 3.0):
        logits, y = sampled(20000, t)
        assert fit_temperature(logits, y) == pytest.approx(t, rel=0.05)


def test_fitted_temperature_minimises_nll():
    logits, y = sampled(3000, 2.5, seed=1)
    t = fit_temperature(logits, y)
    for other in (t * 0.9, t * 1.1, 1.0):
        assert nll(logits, y, t) <= nll(logits, y, other)


def test_ece_of_calibrated_and_overconfident_predictions():
    logits, y = sampled(20000, 1.0, seed=2)
    assert expected_calibration_error(logits, y) < 0.02
    assert expected_calibration_error(logits * 4, y) > 0.1  # 4x too sharp
    # by hand: 4 predictions of confidence ~1 (bin 15), half right -> |0.5 - 1| = 0.5
    sharp = np.array([[50.0, 0, 0, 0]] * 4)
    assert expected_calibration_error(sharp, np.array([0, 0, 1, 1])) == pytest.approx(0.5)


def test_report_fits_on_dev_and_improves_test_ece():
    dev, y_dev = sampled(5000, 3.0, seed=3)
    test, y_test = sampled(5000, 3.0, seed=4)
    r = calibration_report(dev, y_dev, test, y_test)
    assert r["temperature"] == pytest.approx(3.0, rel=0.1)
    assert r["test_ece_after"] < 0.5 * r["test_ece_before"]
    assert r["test_nll_after"] < r["test_nll_before"]


def test_folding_divides_the_logits_and_keeps_z():
    torch.manual_seed(0)
    model = CRNN(n_bins=64).eval()
    torch.nn.init.normal_(model.fc2.bias)
    x, lengths = torch.randn(3, 80, 64), torch.tensor([80, 60, 49])
    logits, z = model.forward_with_embedding(x, lengths)
    fold_temperature(model, 2.0)
    logits2, z2 = model.forward_with_embedding(x, lengths)
    assert torch.allclose(logits2, logits / 2.0, atol=1e-6)
    assert torch.equal(z, z2)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="temperature"):
            fold_temperature(model, bad)


@pytest.mark.parametrize(
    ("logits", "y", "match"),
    [
        (np.zeros((3, 4)), np.zeros(2, dtype=int), "must be"),
        (np.zeros((0, 4)), np.zeros(0, dtype=int), "no utterances"),
        (np.full((2, 4), np.nan), np.zeros(2, dtype=int), "non-finite"),
        (np.zeros((2, 4)), np.array([0, 4]), "outside"),
    ],
)
def test_bad_input_is_named(logits, y, match):
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, y)
