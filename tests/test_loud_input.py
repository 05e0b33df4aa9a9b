"""Float32 range (issue 8, finding 4): loud signals are either computed right
or refused with ValueError, never saturated or reported as the floor; config
values that float32 cannot hold are refused.

Reference for loud signals: scaling the input by k adds 20·log10(k) dB to
every value above the floor (power is quadratic in amplitude). Tolerance
0.01 dB where the unscaled value lies within 80 dB of the peak, as in
test_features.py (below that, float32 rounding of tiny powers differs).
"""

import numpy as np
import pytest

from pyser import (
    FeatureConfig,
    StreamingFeatures,
    _core,
    extract_features,
    extract_features_batch,
)

BASE = np.random.default_rng(11).standard_normal(6000).astype(np.float32)
BASE /= np.abs(BASE).max()  # peak 1.0 exactly


def test_bound_is_documented_and_far_above_int32_pcm():
    from pyser.features import MAX_ABS_SAMPLE

    assert MAX_ABS_SAMPLE == 1e12
    assert MAX_ABS_SAMPLE > 2.0**31 * 100  # int32 PCM as floats is well inside
    assert "MAX_ABS_SAMPLE" in extract_features.__doc__


@pytest.mark.parametrize(
    "cfg",
    [FeatureConfig(), FeatureConfig(kind="stft"),
     FeatureConfig(kind="stft", n_fft=16384, win_length=16384, window="rectangular",
                   hop_length=4000)],
    ids=["mel", "stft", "stft-16384-rect"],
)
@pytest.mark.parametrize("scale", [1e3, 1e6, 3e9, 1e12])
def test_loud_signals_up_to_the_bound_are_exact_shifts(cfg, scale):
    x = BASE if cfg.n_fft < 16384 else np.tile(BASE, 5)
    quiet = extract_features(x, cfg)
    loud = extract_features((x.astype(np.float64) * scale).astype(np.float32), cfg)
    assert np.isfinite(loud).all()
    relevant = quiet >= quiet.max() - 80.0
    shift = (loud - quiet)[relevant]
    np.testing.assert_allclose(shift, 20 * np.log10(scale), atol=0.01)


@pytest.mark.parametrize("value", [1.5e12, 1e15, 1e20, 1e37, 3e38, -3.4e38])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_samples_beyond_the_bound_are_refused_everywhere(value, dtype):
    x = BASE.astype(dtype)
    x[777] = value
    message = r"index 777.*\|x\| <= 1e\+12"
    with pytest.raises(ValueError, match=message):
        extract_features(x)
    with pytest.raises(ValueError, match=r"signal 0 of the batch.*" + message):
        extract_features_batch([x])
    sf = StreamingFeatures()
    with pytest.raises(ValueError, match=message):
        sf.accept_waveform(x)
    assert sf.num_samples == 0


def test_whole_loud_signal_is_refused_not_floored():
    # 3e38 everywhere used to give -100 dB (NaN power mapped to amin).
    with pytest.raises(ValueError, match="index 0"):
        extract_features(np.full(4000, 3e38, np.float32))
    for amplitude in (1e20, 1e37):  # used to saturate at 385.3 dB
        with pytest.raises(ValueError, match="index 0"):
            extract_features(np.full(4000, amplitude, np.float32))


def test_float64_beyond_float32_is_refused_with_its_value():
    x = BASE.astype(np.float64)
    x[99] = 1e300
    with pytest.raises(ValueError, match=r"1e\+300.*index 99"):
        extract_features(x)


def test_int16_full_scale_is_never_refused():
    x = np.full(4000, -32768, np.int16)
    out = extract_features(x)
    assert np.isfinite(out).all() and out.max() > 0


@pytest.mark.parametrize("amin", [1e300, 1e39, 3.5e38, 1e-50, 1e-39, 1e-45, 5e-324])
def test_amin_outside_normal_float32_is_refused(amin):
    with pytest.raises(ValueError, match="amin.*float32"):
        FeatureConfig(amin=amin)


@pytest.mark.parametrize("amin", [1.2e-38, 1e-30, 1e-10, 1.0, 1e30, 3.4e38])
def test_amin_inside_normal_float32_is_the_floor(amin):
    cfg = FeatureConfig(amin=amin)
    out = extract_features(np.zeros(2000, np.float32), cfg)
    np.testing.assert_allclose(out, 10 * np.log10(np.float32(amin)), atol=1e-4)


def narrow_band(half_width_hz: float) -> FeatureConfig:
    """One Slaney-normalised Mel band around the 1000 Hz bin of a 16384-point
    rectangular-window STFT: the narrower the band, the larger its weights."""
    return FeatureConfig(n_fft=16384, win_length=16384, hop_length=16384, window="rectangular",
                         n_mels=1, fmin=1000 - half_width_hz, fmax=1000 + half_width_hz)


@pytest.mark.parametrize("half_width_hz", [5e-7, 1e-6])
def test_mel_bands_that_could_overflow_at_the_bound_are_refused(half_width_hz):
    with pytest.raises(ValueError, match=r"n_mels.*narrow.*overflow float32"):
        narrow_band(half_width_hz)


def test_narrowest_accepted_band_stays_finite_at_the_bound():
    cfg = narrow_band(1e-5)  # band weights sum to about 1e5
    t = np.arange(16384)
    tone = (1e12 * np.cos(2 * np.pi * 1000 * t / 16000)).astype(np.float32)
    out = extract_features(tone, cfg)
    weights = _core.mel_filterbank(cfg._options())
    power = np.abs(np.fft.rfft(tone.astype(np.float64))) ** 2  # float64 reference
    want = 10 * np.log10(weights.astype(np.float64) @ power)
    assert np.isfinite(out).all() and out.max() > 300
    np.testing.assert_allclose(out[0], want, atol=0.01)
