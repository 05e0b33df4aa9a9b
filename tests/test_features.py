"""Features against librosa, and the FeatureConfig contract.

Reference: librosa's melspectrogram / stft with the paper's parameters, then
10·log10(max(S, 1e-10)). Tolerance: 0.01 dB wherever the reference lies within
80 dB of the utterance's peak (below that, float32 rounding of tiny powers is
all that differs).
"""

import dataclasses
import json

import librosa
import numpy as np
import pytest
import scipy.signal

from pyser import FeatureConfig, _core, extract_features

SR = 16000


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Amplitude-modulated, low-passed noise plus a few harmonics: a test
    signal with speech-like spectral tilt and dynamics."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    noise = scipy.signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t)) ** 2
    y = envelope * (0.02 * noise + 0.3 * voiced)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def db(power: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.maximum(power, 1e-10))


def assert_db_close(ours: np.ndarray, ref_db: np.ndarray) -> None:
    assert ours.shape == ref_db.shape
    assert ours.dtype == np.float32
    relevant = ref_db >= ref_db.max() - 80.0
    assert relevant.mean() > 0.5
    err = np.abs(ours - ref_db)[relevant]
    assert err.max() <= 0.01, f"max |error| {err.max():.4f} dB"


@pytest.fixture(scope="module")
def signal():
    return speech_like(4.0, seed=1)


@pytest.mark.parametrize("center", [False, True])
def test_mel_matches_librosa(signal, center):
    ref = librosa.feature.melspectrogram(
        y=signal, sr=SR, n_fft=1024, win_length=640, hop_length=160, window="hamming",
        center=center, pad_mode="reflect", power=2.0, n_mels=128,
    )
    ours = extract_features(signal, FeatureConfig(center=center))
    assert_db_close(ours, db(ref).T)


@pytest.mark.parametrize("center", [False, True])
def test_stft_matches_librosa(signal, center):
    spec = librosa.stft(
        signal, n_fft=1024, win_length=640, hop_length=160, window="hamming",
        center=center, pad_mode="reflect",
    )
    ours = extract_features(signal, FeatureConfig(kind="stft", center=center))
    assert ours.shape[1] == 513
    assert_db_close(ours, db(np.abs(spec) ** 2).T)


def test_constant_padding_matches_librosa(signal):
    ref = librosa.feature.melspectrogram(
        y=signal, sr=SR, n_fft=1024, win_length=640, hop_length=160, window="hamming",
        center=True, pad_mode="constant", n_mels=128,
    )
    ours = extract_features(signal, FeatureConfig(center=True, pad_mode="constant"))
    assert_db_close(ours, db(ref).T)


def test_htk_scale_without_norm_matches_librosa(signal):
    ref = librosa.feature.melspectrogram(
        y=signal, sr=SR, n_fft=1024, win_length=640, hop_length=160, window="hamming",
        center=False, n_mels=64, htk=True, norm=None, fmin=50.0, fmax=7000.0,
    )
    cfg = FeatureConfig(n_mels=64, htk=True, norm=None, fmin=50.0, fmax=7000.0)
    assert_db_close(extract_features(signal, cfg), db(ref).T)


def test_symmetric_window_matches_librosa(signal):
    window = scipy.signal.windows.hamming(640, sym=True)
    ref = librosa.feature.melspectrogram(
        y=signal, sr=SR, n_fft=1024, win_length=640, hop_length=160, window=window,
        center=False, n_mels=128,
    )
    assert_db_close(extract_features(signal, FeatureConfig(periodic=False)), db(ref).T)


@pytest.mark.parametrize("window", ["hann", "rectangular"])
def test_other_windows_match_librosa(signal, window):
    ref = librosa.feature.melspectrogram(
        y=signal, sr=SR, n_fft=512, win_length=400, hop_length=160,
        window="boxcar" if window == "rectangular" else window, center=False, n_mels=40,
    )
    cfg = FeatureConfig(n_fft=512, win_length=400, window=window, n_mels=40)
    assert_db_close(extract_features(signal, cfg), db(ref).T)


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(htk=True), dict(norm=None), dict(fmin=80.0, fmax=7600.0, n_mels=80),
     dict(n_fft=512, win_length=400, n_mels=40, sample_rate=8000)],
)
def test_mel_filterbank_matches_librosa(kwargs):
    cfg = FeatureConfig(**kwargs)
    ref = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        htk=cfg.htk, norm=cfg.norm,
    )
    ours = _core.mel_filterbank(cfg._options())
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


def test_frame_window_is_centred_like_librosa():
    cfg = FeatureConfig()
    ours = _core.frame_window(cfg._options())
    ref = librosa.util.pad_center(scipy.signal.get_window("hamming", 640, fftbins=True), size=1024)
    np.testing.assert_allclose(ours, ref, atol=1e-7)


def test_frame_counts():
    cfg = FeatureConfig()
    for n in [0, 1, 1023, 1024, 1183, 1184, 16000]:
        expected = 0 if n < 1024 else 1 + (n - 1024) // 160
        assert extract_features(np.zeros(n, np.float32), cfg).shape == (expected, 128)
        assert cfg.num_frames(n) == expected
    centred = FeatureConfig(center=True)
    for n in [1, 100, 16000]:
        assert extract_features(np.ones(n, np.float32) * 0.1, centred).shape == (1 + n // 160, 128)


def test_silence_is_floored_at_amin():
    out = extract_features(np.zeros(4000, np.float32))
    np.testing.assert_allclose(out, -100.0, atol=1e-4)


def test_int16_and_float64_inputs_agree_with_float32(signal):
    as_int16 = np.round(signal * 32767).astype(np.int16)
    scaled = as_int16.astype(np.float32) / 32768.0
    np.testing.assert_array_equal(extract_features(as_int16), extract_features(scaled))
    np.testing.assert_array_equal(
        extract_features(signal.astype(np.float64)), extract_features(signal)
    )


def test_non_contiguous_input(signal):
    stereo = np.stack([signal, -signal], axis=1)
    np.testing.assert_array_equal(extract_features(stereo[:, 0]), extract_features(signal))
    np.testing.assert_array_equal(extract_features(signal[::-1]),
                                  extract_features(np.ascontiguousarray(signal[::-1])))


def test_output_is_a_new_caller_owned_array(signal):
    a = extract_features(signal)
    b = extract_features(signal)
    assert a.flags.owndata and a.flags.writeable and a.flags.c_contiguous
    a[:] = 0
    assert not np.array_equal(a, b)


def test_config_defaults_are_the_papers():
    cfg = FeatureConfig()
    assert (cfg.sample_rate, cfg.win_length, cfg.hop_length, cfg.n_fft, cfg.n_mels) == (
        16000, 640, 160, 1024, 128)
    assert cfg.window == "hamming" and cfg.kind == "mel" and cfg.n_bins == 128
    assert FeatureConfig(kind="stft").n_bins == 513
    assert cfg.frame_rate == 100.0


def test_config_round_trips_through_json():
    cfg = FeatureConfig(kind="stft", fmax=7000.0, norm=None, center=True)
    again = FeatureConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown FeatureConfig field"):
        FeatureConfig.from_dict({**cfg.to_dict(), "dither": 1.0})


def test_config_pickles_and_copies():
    import copy
    import pickle

    cfg = FeatureConfig(kind="stft", hop_length=80)
    for again in (pickle.loads(pickle.dumps(cfg)), copy.deepcopy(cfg), copy.copy(cfg)):
        assert again == cfg and hash(again) == hash(cfg)
        signal = np.linspace(-0.5, 0.5, 3000, dtype=np.float32)
        np.testing.assert_array_equal(extract_features(signal, again),
                                      extract_features(signal, cfg))


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FeatureConfig().n_fft = 512  # type: ignore[misc]


def test_sample_rate_mismatch_is_reported(signal):
    with pytest.raises(ValueError, match="resample"):
        extract_features(signal, FeatureConfig(), sample_rate=44100)
    assert extract_features(signal, FeatureConfig(), sample_rate=16000).shape[1] == 128
