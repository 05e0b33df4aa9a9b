"""Bad input raises ValueError naming the problem; the extractor stays usable."""

import numpy as np
import pytest

from pyser import FeatureConfig, StreamingFeatures, extract_features, extract_features_batch

GOOD = (np.random.default_rng(0).standard_normal(4000) * 0.1).astype(np.float32)


def with_nan():
    x = GOOD.copy()
    x[1234] = np.nan
    return x


def with_inf():
    x = GOOD.copy().astype(np.float64)
    x[99] = 1e300  # finite in float64, infinite in float32
    return x


BAD_WAVEFORMS = [
    (np.zeros((2, 4000), np.float32), "1-D"),
    (np.zeros((4000, 2), np.float32), "1-D"),
    (np.zeros((), np.float32), "1-D"),
    (with_nan(), "nan.*1234"),
    (with_inf(), "inf.*99"),
    (np.zeros(4000, np.int32), "dtype"),
    (np.zeros(4000, np.complex64), "dtype"),
    (np.zeros(4000, np.uint8), "dtype"),
    ([0.0] * 4000, "numpy array"),
    ("not audio", "numpy array"),
]

BAD_CONFIGS = [
    (dict(n_fft=1000), "n_fft.*power of two"),
    (dict(n_fft=8), "n_fft"),
    (dict(n_fft=32768), "n_fft"),
    (dict(win_length=2048), "win_length.*n_fft"),
    (dict(win_length=0), "win_length"),
    (dict(hop_length=0), "hop_length"),
    (dict(hop_length=-160), "hop_length"),
    (dict(fmax=9000.0), "fmax.*Nyquist"),
    (dict(fmin=5000.0, fmax=4000.0), "fmax"),
    (dict(fmin=-1.0), "fmin"),
    (dict(n_mels=512), "n_mels.*too large"),
    (dict(n_mels=0), "n_mels"),
    (dict(fmin=float("nan")), "fmin.*finite"),
    (dict(fmax=float("inf")), "fmax.*finite"),
    (dict(amin=0.0), "amin"),
    (dict(amin=float("nan")), "amin"),
    (dict(sample_rate=0), "sample_rate"),
    (dict(kind="mfcc"), "kind"),
    (dict(window="kaiser"), "window"),
    (dict(pad_mode="edge"), "pad_mode"),
    (dict(norm="l2"), "norm"),
    (dict(n_fft=1024.0), "n_fft.*int"),
    (dict(n_fft="1024"), "n_fft.*int"),
    (dict(center="yes"), "center.*bool"),
    (dict(sample_rate=True), "sample_rate.*int"),
]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("bad, message", BAD_WAVEFORMS)
def test_bad_waveform_raises_and_extract_still_works(bad, message):
    with pytest.raises(ValueError, match=message):
        extract_features(bad)
    assert extract_features(GOOD).shape == (19, 128)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("bad, message", BAD_WAVEFORMS)
def test_bad_chunk_raises_and_stream_loses_nothing(bad, message):
    stream = StreamingFeatures(FeatureConfig())
    first = stream.accept_waveform(GOOD[:2000])
    with pytest.raises(ValueError, match=message):
        stream.accept_waveform(bad)
    assert stream.num_samples == 2000
    rest = stream.accept_waveform(GOOD[2000:])
    assert np.array_equal(np.concatenate([first, rest]), extract_features(GOOD))


@pytest.mark.parametrize("kwargs, message", BAD_CONFIGS)
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureConfig(**kwargs)
    assert FeatureConfig().n_bins == 128


def test_bad_signal_in_batch_names_its_index():
    for threads in (1, 2):
        with pytest.raises(ValueError, match=r"signal 1 of the batch.*nan.*1234"):
            extract_features_batch([GOOD, with_nan(), GOOD, with_nan()], FeatureConfig(),
                                   num_threads=threads)
    with pytest.raises(ValueError, match=r"waveforms\[2\].*1-D"):
        extract_features_batch([GOOD, GOOD, GOOD[None]], FeatureConfig())
    with pytest.raises(ValueError, match="num_threads"):
        extract_features_batch([GOOD], FeatureConfig(), num_threads=0)


def test_streaming_needs_a_feature_config():
    with pytest.raises(ValueError, match="FeatureConfig"):
        StreamingFeatures({"n_fft": 1024})  # type: ignore[arg-type]
