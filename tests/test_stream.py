"""Recognizer and EmotionStream on real speech: the cached CNN path equals a full recompute,
the stream equals predict over the same windows, chunking, rates, channels, threads, VAD,
bad input and the ONNX backend."""

import json
import math
import threading

import numpy as np
import pytest
import soundfile as sf
import soxr
from crnn_factory import random_crnn

from pyser.features import FeatureConfig
from pyser.model import ModelMetadata, save_model
from pyser.stream import (
    FIELD,
    SPEECH_MARGIN_S,
    STRIDE,
    BatchInputError,
    Partial,
    Recognizer,
    SpeechEnd,
    SpeechStart,
    Utterance,
    _softmax,
)
from pyser.vad import VadConfig

LABELS = ["neutral", "angry", "happy", "sad"]
SR = 16000
CLIPS = ["Actor_01/03-01-05-02-01-01-01.flac", "Actor_02/03-01-04-01-02-01-02.flac"]

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A random-weight CRNN as TorchScript and as ONNX (both self-describing)."""
    from pyser.training.export import export_onnx

    folder = tmp_path_factory.mktemp("models")
    net = random_crnn(seed=3)
    meta = ModelMetadata(labels=LABELS, feature_config=FeatureConfig())
    save_model(folder / "m.pt", net, meta)
    export_onnx(net, meta, folder / "m.onnx")
    return folder / "m.pt", folder / "m.onnx"


@pytest.fixture(scope="module")
def rec(model_files):
    return Recognizer.load(model_files[0])


@pytest.fixture(scope="module")
def speech(data_root):
    """About 11 s at 16 kHz: silence, an utterance, silence, another utterance, silence."""
    parts = [np.zeros(SR, np.float32)]
    for clip in CLIPS:
        x, rate = sf.read(data_root / "ravdess" / clip, dtype="float32")
        assert rate == SR
        parts += [x, np.zeros(SR, np.float32)]
    return np.concatenate(parts)


def run(stream, audio, chunk=None, sample_rate=None):
    events = []
    if chunk is None:
        events += stream.accept_waveform(audio, sample_rate)
    else:
        sizes = chunk if isinstance(chunk, list) else [chunk]
        pos, i = 0, 0
        while pos < len(audio):
            n = sizes[i % len(sizes)]
            events += stream.accept_waveform(audio[pos : pos + n], sample_rate)
            pos, i = pos + n, i + 1
    return events + stream.flush()


def dicts(events):
    return [e.to_dict() for e in events]


def probs(event):
    return np.array([event.probabilities[k] for k in LABELS])


# ------------------------------------------------------------------- event structure


def test_speech_gives_segments_with_partials_and_an_utterance(rec, speech):
    events = run(rec.create_stream(), speech, chunk=1600)
    kinds = [e.type for e in events]
    assert kinds.count("speech_start") == 2 and kinds.count("speech_end") == 2
    assert kinds.count("utterance") == 2 and kinds.count("partial") >= 6
    # strictly nested: start, partials, utterance, end; per segment. The windows reach up to
    # SPEECH_MARGIN_S (and the 40 ms grid) before the onset; the utterance's also after the end
    open_ = None
    margin = SPEECH_MARGIN_S + STRIDE / 100
    for e in events:
        if isinstance(e, SpeechStart):
            assert open_ is None
            open_ = e.time
        elif isinstance(e, SpeechEnd):
            assert open_ is not None
            assert utterance.start < open_ - 0.25  # at least the margin less a grid step
            assert e.time + 0.3 < utterance.end <= e.time + margin
            open_ = None
        else:
            assert open_ is not None and e.start >= open_ - margin - 1e-9 and e.end > e.start
            utterance = e
            assert abs(sum(e.probabilities.values()) - 1) < 1e-9
            assert e.label == max(e.probabilities, key=e.probabilities.get)
    # speech is where the clips are (1 s of silence first, 1 s between)
    first_start = next(e.time for e in events if isinstance(e, SpeechStart))
    assert 0.9 <= first_start <= 2.0
    for d in dicts(events):
        json.loads(json.dumps(d, allow_nan=False))


def test_partials_follow_the_hop_and_window(rec, speech):
    stream = rec.create_stream(window_s=1.5, hop_s=0.32)
    assert stream.hop_s == pytest.approx(0.32) and stream.window_s == pytest.approx(1.45)
    partials = [e for e in run(stream, speech) if isinstance(e, Partial)]
    ends = [p.end for p in partials]
    gaps = np.diff(ends)
    assert np.all(np.isclose(gaps, 0.32) | (gaps > 0.32))  # hop within a segment
    spans = np.array([p.end - p.start for p in partials])
    last_sample = (FIELD - 1) * 160 + 1024
    assert spans.max() == pytest.approx(((7 - 1) * STRIDE * 160 + last_sample) / SR)  # 7 steps


# --------------------------------------------------------------- numerical agreement


def test_cached_cnn_equals_full_recompute_on_real_speech(rec, speech):
    for vad in (VadConfig(), None):
        cached = run(rec.create_stream(vad=vad), speech, chunk=2000)
        full = run(rec.create_stream(vad=vad, cache_cnn=False), speech, chunk=2000)
        assert [e.type for e in cached] == [e.type for e in full]
        # the uncached path caps utterances at one window; compare what reads the same frames
        scored = [(a, b) for a, b in zip(cached, full)
                  if isinstance(a, (Partial, Utterance)) and (a.start, a.end) == (b.start, b.end)]
        assert sum(isinstance(a, Partial) for a, _ in scored) >= 6
        worst = max(np.abs(probs(a) - probs(b)).max() for a, b in scored)
        assert worst <= 1e-5


def test_stream_equals_predict_over_the_same_windows(rec, speech):
    events = run(rec.create_stream(), speech, chunk=512)
    scored = [e for e in events if isinstance(e, (Partial, Utterance))]
    assert len(scored) >= 6
    for e in scored:
        a, b = round(e.start * SR), round(e.end * SR)
        p = rec.predict(speech[a:b], SR, vad=None)
        np.testing.assert_allclose(probs(e), [p.probabilities[k] for k in LABELS], atol=1e-5)


def test_onnx_backend_gives_the_same_events(model_files, speech):
    ts = run(Recognizer.load(model_files[0]).create_stream(), speech, chunk=3200)
    ox = run(Recognizer.load(model_files[1]).create_stream(), speech, chunk=3200)
    assert [e.type for e in ts] == [e.type for e in ox]
    for a, b in zip(ts, ox):
        if isinstance(a, (Partial, Utterance)):
            assert (a.start, a.end) == (b.start, b.end)
            np.testing.assert_allclose(probs(a), probs(b), atol=1e-4)
    onnx_rec = Recognizer.load(model_files[1])
    assert onnx_rec.backend.name == "onnx" and onnx_rec.labels == tuple(LABELS)


# ------------------------------------------------------------------------ input forms


@pytest.mark.parametrize("chunk", [1, 7, 160, 320, 4096, "random"])
def test_chunk_size_does_not_change_events(rec, speech, chunk):
    audio = speech[: 6 * SR]  # the first segment whole; chunk 1 is 96,000 calls
    reference = dicts(run(rec.create_stream(), audio))
    if chunk == "random":
        chunk = np.random.default_rng(1).integers(0, 5000, size=50).tolist()
    assert dicts(run(rec.create_stream(), audio, chunk=chunk)) == reference
    assert len(reference) >= 4


def test_int16_and_stereo_input(rec, speech):
    x16 = np.round(speech * 32767).astype(np.int16)
    as_float = x16.astype(np.float32) / 32768
    reference = dicts(run(rec.create_stream(), as_float, chunk=777))
    assert dicts(run(rec.create_stream(), x16, chunk=777)) == reference
    stereo = np.stack([x16, x16], axis=1)
    assert dicts(run(rec.create_stream(), stereo, chunk=777)) == reference


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_input_rates_are_resampled_in_a_chunk_invariant_way(rec, speech, rate):
    audio = soxr.resample(speech, SR, rate).astype(np.float32)
    whole = run(rec.create_stream(), audio, sample_rate=rate)
    chunked = run(rec.create_stream(), audio, chunk=[1, 333, 4410, 97], sample_rate=rate)
    assert [e.type for e in whole] == [e.type for e in chunked]
    for a, b in zip(whole, chunked):
        if isinstance(a, (Partial, Utterance)):
            assert (a.start, a.end) == (b.start, b.end)
            np.testing.assert_allclose(probs(a), probs(b), atol=1e-4)
    # same speech, same timeline as at 16 kHz (no resampler delay): the segments end within
    # 0.1 s; starts may move more, since band-limiting (8 kHz) changes how the breath noise
    # before the first word looks to the VAD
    native = run(rec.create_stream(), speech)
    for kind, tolerance in ((SpeechEnd, 0.1), (SpeechStart, 0.6)):
        got = [e.time for e in whole if isinstance(e, kind)]
        want = [e.time for e in native if isinstance(e, kind)]
        assert len(got) == len(want) == 2
        assert np.abs(np.subtract(got, want)).max() <= tolerance


def test_predict_resamples_and_downmixes(rec, speech):
    p16 = rec.predict(speech, SR)
    p48 = rec.predict(np.stack([soxr.resample(speech, SR, 48000)] * 2, axis=1), 48000)
    assert p16.label is not None and p48.label == p16.label
    np.testing.assert_allclose(probs(p16), probs(p48), atol=0.05)
    assert p16.duration == pytest.approx(len(speech) / SR)
    assert 2.0 < p16.speech < p16.duration


def test_predict_reads_the_speech_span_with_its_margin_as_the_stream_does(rec, speech):
    """predict reads from SPEECH_MARGIN_S before the first onset to as much after the last
    end, and a stream's utterance result reads the same stretch of a one-utterance file
    (give or take the CNN's 0.16 s grid)."""
    from pyser.features import extract_features
    from pyser.vad import speech_span

    clip = speech[: 5 * SR]  # 1 s of silence, an utterance, silence
    frames = extract_features(clip, FeatureConfig(center=False))
    span = speech_span(frames, VadConfig(), 100.0)
    assert 80 <= span.start <= 200 and span.stop < len(frames) - 60  # silence on both sides
    m = round(SPEECH_MARGIN_S * 100)
    p = rec.predict(clip, SR)
    np.testing.assert_allclose(probs(p), _softmax(rec._logits(frames[span.start - m : span.stop + m])),
                               atol=1e-6)
    assert np.abs(probs(p) - _softmax(rec._logits(frames))).max() > 1e-4  # not every frame
    np.testing.assert_allclose(probs(rec.predict(clip, SR, vad=None)), _softmax(rec._logits(frames)),
                               atol=1e-6)  # no VAD: every frame
    (utterance,) = [e for e in run(rec.create_stream(), clip) if isinstance(e, Utterance)]
    assert abs(utterance.start - (span.start - m) / 100) <= 0.16
    assert abs(utterance.end - ((span.stop + m - 1) * 160 + 1024) / SR) <= 0.16


# ----------------------------------------------------------------- voice activity


def test_silence_and_noise_produce_no_emotion(rec):
    rng = np.random.default_rng(0)
    quiet = np.zeros(5 * SR, np.float32)
    white = (0.1 * rng.standard_normal(5 * SR)).astype(np.float32)
    hum = (0.05 * np.sin(2 * np.pi * 50 * np.arange(5 * SR) / SR)).astype(np.float32)
    for audio in (quiet, white, white + hum):
        assert run(rec.create_stream(), audio, chunk=1600) == []
        assert rec.predict(audio[:SR], SR).label is None
        assert rec.predict(audio, SR).speech == 0.0


def test_smoothing_blends_partials_with_the_time_constant(rec, speech):
    raw = [e for e in run(rec.create_stream(), speech) if isinstance(e, Partial)]
    smooth = [e for e in run(rec.create_stream(smoothing_s=1.0), speech) if isinstance(e, Partial)]
    a = math.exp(-0.48 / 1.0)
    np.testing.assert_allclose(probs(smooth[0]), probs(raw[0]), atol=1e-12)
    np.testing.assert_allclose(probs(smooth[1]), a * probs(raw[0]) + (1 - a) * probs(raw[1]),
                               atol=1e-12)


# ------------------------------------------------------------- state and threads


def test_reset_and_flush(rec, speech):
    stream = rec.create_stream()
    reference = dicts(run(stream, speech, chunk=4000))
    assert stream.flush() == []  # nothing left after the end
    stream.accept_waveform(speech[: 3 * SR])
    stream.reset()
    assert stream.time == 0.0 and not stream.in_speech
    assert dicts(run(stream, speech, chunk=4000)) == reference


def test_bad_chunks_raise_and_leave_the_stream_usable(rec, speech):
    stream = rec.create_stream()
    good = []
    bad = [np.array([0.0, np.nan], np.float32), np.zeros(10, np.int32), np.zeros((2, 2, 2)),
           "not audio"]
    for i, pos in enumerate(range(0, len(speech), 8000)):
        if i < len(bad):
            with pytest.raises(ValueError):
                stream.accept_waveform(bad[i])
        good += stream.accept_waveform(speech[pos : pos + 8000])
    good += stream.flush()
    assert dicts(good) == dicts(run(rec.create_stream(), speech))


def test_sample_rate_checks(rec, speech):
    stream = rec.create_stream()
    stream.accept_waveform(speech[:1000], 48000)
    with pytest.raises(ValueError, match="reset"):
        stream.accept_waveform(speech[:1000], 16000)
    for rate in (0, -16000, 1, 44100.5, 10**9):
        with pytest.raises(ValueError, match="sample_rate"):
            rec.create_stream().accept_waveform(speech[:100], rate)
    with pytest.raises(ValueError, match="shorter than one"):
        rec.predict(np.zeros(100, np.float32), SR)


def test_settings_are_validated(rec):
    for kwargs in ({"window_s": 0.2}, {"hop_s": 0}, {"smoothing_s": -1}, {"window_s": math.nan},
                   {"on_event": 3}):
        with pytest.raises(ValueError):
            rec.create_stream(**kwargs)


def test_callback_form_and_one_thread_at_a_time(rec, speech):
    seen, entered, release = [], threading.Event(), threading.Event()
    stream = None

    def on_event(event):
        seen.append(event)
        if len(seen) == 1:  # hold the stream busy while the main thread tries to use it
            entered.set()
            release.wait(10)

    stream = rec.create_stream(on_event=on_event)
    worker = threading.Thread(target=lambda: run(stream, speech, chunk=8000))
    worker.start()
    assert entered.wait(10)
    with pytest.raises(RuntimeError, match="one thread"):
        stream.accept_waveform(speech[:100])
    release.set()
    worker.join()
    assert dicts(seen) == dicts(run(rec.create_stream(), speech, chunk=8000))


def test_many_streams_on_many_threads_equal_serial_runs(rec, speech):
    audios = [speech, speech[::-1].copy(), speech[SR:], 0.5 * speech]
    serial = [dicts(run(rec.create_stream(), a, chunk=1234)) for a in audios]
    results = [None] * len(audios)

    def work(i):
        results[i] = dicts(run(rec.create_stream(), audios[i], chunk=1234))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(audios))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == serial


def assert_same_events(got, want, atol=1e-5):
    assert [e.type for e in got] == [e.type for e in want]
    for a, b in zip(got, want):
        if isinstance(a, (Partial, Utterance)):
            assert (a.start, a.end, a.label) == (b.start, b.end, b.label)
            np.testing.assert_allclose(probs(a), probs(b), atol=atol)
        else:
            assert a == b


@pytest.mark.parametrize("model", [0, 1], ids=["torchscript", "onnx"])
def test_batched_streams_equal_stream_by_stream(model_files, speech, model):
    rec = Recognizer.load(model_files[model])
    # different audio and offsets, so windows and CNN spans differ in length across the batch
    audios = [speech, speech[5000:], 0.3 * speech[::-1].copy(), np.zeros(len(speech), np.float32)]
    alone = [run(rec.create_stream(), a, chunk=1600) for a in audios]
    streams = [rec.create_stream() for _ in audios]
    batched = [[] for _ in audios]
    for pos in range(0, max(len(a) for a in audios), 1600):
        for i, events in enumerate(rec.accept_waveforms(streams, [a[pos : pos + 1600]
                                                                 for a in audios])):
            batched[i] += events
    for i, s in enumerate(streams):
        batched[i] += s.flush()
    assert sum(len(e) for e in alone) > 20
    for got, want in zip(batched, alone):
        assert_same_events(got, want)


def test_batched_bad_chunk_keeps_the_other_streams_going(rec, speech):
    streams = [rec.create_stream() for _ in range(3)]
    with pytest.raises(BatchInputError) as info:
        rec.accept_waveforms(streams, [speech[:8000], np.array([np.nan]), speech[:8000]])
    assert info.value.indices == [1] and "NaN" in str(info.value)
    assert streams[0].time == streams[2].time == 0.5 and streams[1].time == 0.0
    with pytest.raises(ValueError, match="twice"):
        rec.accept_waveforms([streams[0], streams[0]], [speech[:10], speech[:10]])
    with pytest.raises(ValueError, match="2 chunks"):
        rec.accept_waveforms(streams, [speech[:10], speech[:10]])


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


@pytest.mark.slow
def test_soak_one_hour_through_one_stream(rec, data_root):
    """One hour of speech, silence and noise through one stream as fast as it goes: memory
    stays flat, and the events are complete and in order (none lost or duplicated)."""
    clips = sorted((data_root / "ravdess").glob("Actor_0[1-3]/*.flac"))[:24]
    clips = [sf.read(p, dtype="float32")[0] for p in clips]
    rng = np.random.default_rng(5)
    stream = rec.create_stream(smoothing_s=1.0)
    counts = {"speech_start": 0, "speech_end": 0, "partial": 0, "utterance": 0}
    last_time, open_start, last_partial_end, rss = -1.0, None, None, {}
    total, chunk = 0, 1600
    while total < 3600 * SR:
        gap = rng.uniform(0.8, 3.0)
        noise = rng.uniform(0, 0.003) * rng.standard_normal(int(gap * SR))
        piece = np.concatenate([noise.astype(np.float32), clips[rng.integers(len(clips))]])
        for pos in range(0, len(piece), chunk):
            for e in stream.accept_waveform(piece[pos : pos + chunk]):
                counts[e.type] += 1
                t = e.time if isinstance(e, (SpeechStart, SpeechEnd)) else e.end
                if isinstance(e, SpeechStart):
                    assert open_start is None and e.time > last_time
                    open_start, last_partial_end = e.time, None
                elif isinstance(e, Partial):
                    assert open_start is not None
                    assert e.start >= open_start - SPEECH_MARGIN_S - STRIDE / 100 - 1e-9
                    if last_partial_end is not None:  # exactly one hop after the previous
                        assert e.end - last_partial_end == pytest.approx(stream.hop_s)
                    last_partial_end = e.end
                elif isinstance(e, Utterance):
                    assert open_start is not None and e.start < open_start - 0.25
                else:
                    assert open_start is not None
                    open_start = None
                last_time = max(last_time, t)
        total += len(piece)
        minute = total // (60 * SR)
        if minute in (10, 59) and minute not in rss:
            rss[minute] = _rss_mb()
    counts_end = stream.flush()
    for e in counts_end:
        counts[e.type] += 1
    print(f"soak: {total / SR / 3600:.2f} h, events {counts}, RSS at 10 min "
          f"{rss[10]:.1f} MB, at 59 min {rss[59]:.1f} MB")
    assert counts["speech_start"] == counts["speech_end"] == counts["utterance"]
    assert counts["speech_start"] > 500 and counts["partial"] > counts["speech_start"]
    assert rss[59] - rss[10] < 20  # MB: flat, not growing with the hour
