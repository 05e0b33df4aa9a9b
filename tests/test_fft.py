"""Our real FFT against numpy.fft.rfft (float64 reference)."""

import numpy as np
import pytest

from pyser import _core


@pytest.mark.parametrize("n", [2**k for k in range(4, 15)])
def test_rfft_matches_numpy_every_size(n):
    rng = np.random.default_rng(n)
    for _ in range(3):
        x = rng.standard_normal(n).astype(np.float32)
        ours = _core.rfft(x)
        ref = np.fft.rfft(x.astype(np.float64))
        assert ours.shape == (n // 2 + 1,)
        assert ours.dtype == np.complex64
        # Tolerance relative to the spectrum's peak, as float32 allows.
        assert np.max(np.abs(ours - ref)) <= 1e-5 * np.max(np.abs(ref))


def test_rfft_of_impulse_and_cosine():
    n = 64
    impulse = np.zeros(n, np.float32)
    impulse[0] = 1.0
    np.testing.assert_allclose(_core.rfft(impulse), np.ones(n // 2 + 1), atol=1e-6)
    t = np.arange(n)
    cosine = np.cos(2 * np.pi * 5 * t / n).astype(np.float32)
    spectrum = np.abs(_core.rfft(cosine))
    assert np.argmax(spectrum) == 5
    assert spectrum[5] == pytest.approx(n / 2, rel=1e-5)


@pytest.mark.parametrize("n", [0, 8, 100, 1000, 32768])
def test_rfft_rejects_bad_sizes(n):
    with pytest.raises(ValueError, match="power of two"):
        _core.rfft(np.zeros(n, np.float32))
