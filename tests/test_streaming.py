"""Streaming extraction: any chunking equals one-shot extraction, bit for bit;
threads and batches give the same frames as a serial run."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyser import FeatureConfig, StreamingFeatures, extract_features, extract_features_batch

CONFIGS = {
    "mel": FeatureConfig(),
    "stft": FeatureConfig(kind="stft"),
    # hop larger than the frame: samples between frames are skipped
    "sparse": FeatureConfig(n_fft=256, win_length=200, hop_length=300, n_mels=32),
}

SIGNAL = (np.random.default_rng(7).standard_normal(9000) * 0.2).astype(np.float32)
SIGNAL_INT16 = np.round(SIGNAL * 32767).astype(np.int16)
SIGNAL_FROM_INT16 = SIGNAL_INT16.astype(np.float32) / np.float32(32768)

CHUNK_SIZES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31, 127, 160, 1021, 1024, 2053]),
    st.integers(min_value=0, max_value=3000),
)


def stream_in_chunks(stream, sizes, dtypes):
    """Feeds SIGNAL in chunks of the given sizes (cycled) and dtypes."""
    out, pos, i = [], 0, 0
    while pos < len(SIGNAL):
        size = sizes[i % len(sizes)]
        dtype = dtypes[i % len(dtypes)]
        end = min(len(SIGNAL), pos + size)
        if dtype == "int16":
            chunk = SIGNAL_INT16[pos:end]
        elif dtype == "float64":
            chunk = SIGNAL_FROM_INT16[pos:end].astype(np.float64)
        else:
            chunk = SIGNAL_FROM_INT16[pos:end]
        before = stream.num_frames
        frames = stream.accept_waveform(chunk)
        assert frames.shape == (stream.num_frames - before, stream.n_bins)
        out.append(frames)
        pos = end
        i += 1
        if i > 50_000:
            pytest.fail("chunk sizes made no progress")
    return np.concatenate(out)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(CHUNK_SIZES, min_size=1, max_size=12).filter(lambda s: any(s)),
    dtypes=st.lists(st.sampled_from(["float32", "float64", "int16"]), min_size=1, max_size=4),
)
def test_any_chunking_is_bit_identical_to_one_shot(name, sizes, dtypes):
    cfg = CONFIGS[name]
    reference = extract_features(SIGNAL_FROM_INT16, cfg)
    streamed = stream_in_chunks(StreamingFeatures(cfg), sizes, dtypes)
    assert streamed.shape == reference.shape
    assert np.array_equal(streamed, reference)


def test_frame_is_emitted_when_its_last_sample_arrives():
    stream = StreamingFeatures(FeatureConfig())
    assert stream.accept_waveform(SIGNAL[:1023]).shape == (0, 128)
    assert stream.accept_waveform(SIGNAL[1023:1024]).shape == (1, 128)
    assert stream.accept_waveform(SIGNAL[1024:1183]).shape == (0, 128)
    assert stream.accept_waveform(SIGNAL[1183:1184]).shape == (1, 128)
    assert (stream.num_frames, stream.num_samples) == (2, 1184)


def test_reset_starts_a_new_stream():
    stream = StreamingFeatures(FeatureConfig())
    first = stream.accept_waveform(SIGNAL[:5000])
    stream.accept_waveform(SIGNAL[5000:5555])
    stream.reset()
    assert stream.num_frames == 0 and stream.num_samples == 0
    again = stream.accept_waveform(SIGNAL[:5000])
    assert np.array_equal(first, again)


def test_returned_frames_are_not_invalidated_by_later_calls():
    stream = StreamingFeatures(FeatureConfig())
    first = stream.accept_waveform(SIGNAL[:3000])
    kept = first.copy()
    stream.accept_waveform(SIGNAL[3000:6000])
    stream.reset()
    stream.accept_waveform(-SIGNAL[:3000])
    assert np.array_equal(first, kept)


def test_threads_with_own_extractors_match_serial():
    cfg = FeatureConfig()
    signals = [np.roll(SIGNAL, k * 97) for k in range(4)]
    serial = [extract_features(s, cfg) for s in signals]
    results = [None] * len(signals)

    def work(i):
        stream = StreamingFeatures(cfg)
        frames = [stream.accept_waveform(signals[i][p : p + 333]) for p in range(0, 9000, 333)]
        results[i] = np.concatenate(frames)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(signals))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, serial):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("num_threads", [1, 2, 3, None])
def test_batch_equals_per_signal(num_threads):
    rng = np.random.default_rng(3)
    lengths = [0, 500, 1024, 4000, 16000, 1234, 7777]
    signals = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in lengths]
    signals.append(SIGNAL_INT16)
    for cfg in (FeatureConfig(), FeatureConfig(kind="stft", center=True)):
        batch = extract_features_batch(signals, cfg, num_threads=num_threads)
        assert len(batch) == len(signals)
        for got, signal in zip(batch, signals):
            assert np.array_equal(got, extract_features(signal, cfg))


def test_empty_batch():
    assert extract_features_batch([], FeatureConfig(), num_threads=2) == []


def test_sample_rate_is_checked_when_given():
    stream = StreamingFeatures(FeatureConfig())
    stream.accept_waveform(SIGNAL[:500], sample_rate=16000)
    with pytest.raises(ValueError, match="resample"):
        stream.accept_waveform(SIGNAL[500:1500], sample_rate=48000)
    assert stream.num_samples == 500
