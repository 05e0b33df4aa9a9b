"""Property-based tests of the binding (issue 8, finding 7).

Whatever form a waveform takes (float32, float64 or int16 in either byte
order; contiguous, reversed, strided, a matrix column, unaligned, broadcast,
memory-mapped; writable or read-only), every call either gives exactly the
features of the same samples as a native contiguous float32 array, or raises
ValueError (for NaN, Inf or |x| > MAX_ABS_SAMPLE samples: naming the first
bad sample's index), offline, in a batch and streaming with any chunking, and
from several threads at once. A crash would kill the run, so "the process
never dies" is checked by every example.

Oracle: numpy converts the form to native float32 (``native_float32``), and
``extract_features`` of that contiguous array is the reference, compared bit
for bit. Samples are int16 values (scaled by 1/32768 for the float dtypes), so
every dtype holds them exactly.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyser import (
    FeatureConfig,
    StreamingFeatures,
    extract_features,
    extract_features_batch,
)
from pyser.features import MAX_ABS_SAMPLE

CONFIGS = {
    "plain": FeatureConfig(n_fft=256, win_length=200, hop_length=80, n_mels=32),
    "center": FeatureConfig(n_fft=256, win_length=200, hop_length=80, n_mels=32, center=True,
                            pad_mode="reflect"),
    "sparse": FeatureConfig(n_fft=128, win_length=128, hop_length=300, kind="stft"),
}
TYPES = ["f4", "f8", "i2"]
LAYOUTS = ["contiguous", "reversed", "step", "column", "unaligned", "broadcast", "memmap"]
BAD_VALUES = [np.nan, np.inf, -np.inf, 1.5e12, -3e38]
CHUNK_SIZES = st.one_of(st.sampled_from([0, 1, 2, 3, 5, 7, 13, 79, 80, 81, 257, 509, 1021]),
                        st.integers(0, 1500))
THREADED = settings(max_examples=60, deadline=None)


@dataclass(frozen=True)
class Form:
    """How a waveform is laid out; build() makes the numpy array."""

    n: int
    seed: int
    code: str  # f4, f8, i2
    order: str  # < or >
    layout: str
    param: int  # step of "step", columns of "column"
    readonly: bool
    bad: tuple[int, float] | None  # (index in the form's logical order, value)

    def build(self, folder: Path) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        ints = rng.integers(-32768, 32768, self.n).astype(np.int16)
        dtype = np.dtype(self.order + self.code)
        values = ints.astype(dtype) if self.code == "i2" else (
            (ints.astype(np.float64) / 32768).astype(dtype))
        if self.bad is not None:
            values[self.bad[0]] = self.bad[1]
        layout = self.layout if self.n > 0 else "contiguous"
        if layout == "contiguous":
            form = values
        elif layout == "reversed":
            form = np.ascontiguousarray(values[::-1])[::-1]  # same samples, stride < 0
        elif layout == "step":
            buffer = np.zeros(self.n * self.param, dtype)
            buffer[:: self.param] = values
            form = buffer[:: self.param]
        elif layout == "column":
            matrix = np.zeros((self.n, self.param), dtype)
            matrix[:, -1] = values
            form = matrix[:, -1]
        elif layout == "unaligned":
            raw = np.zeros(values.nbytes + 1, np.uint8)
            raw[1:] = values.view(np.uint8)
            form = np.frombuffer(raw.data, dtype, count=self.n, offset=1)
        elif layout == "broadcast":
            form = np.broadcast_to(values[:1], (self.n,))
        else:
            path = folder / f"form-{abs(hash(self))}.raw"
            values.tofile(path)
            form = np.memmap(path, dtype=dtype, mode="r", shape=(self.n,))
        assert form.dtype == dtype and form.shape == (self.n,)
        if self.readonly and form.flags.writeable:
            form = form.view()
            form.flags.writeable = False
        return form


@st.composite
def forms(draw, allow_bad=True, max_size=2500):
    n = draw(st.integers(0, max_size))
    code = draw(st.sampled_from(TYPES))
    layout = draw(st.sampled_from(LAYOUTS))
    bad = None
    if allow_bad and code != "i2" and n > 0 and layout != "broadcast":
        bad = draw(st.none() | st.tuples(st.integers(0, n - 1), st.sampled_from(BAD_VALUES)))
    return Form(n=n, seed=draw(st.integers(0, 2**16)), code=code,
                order=draw(st.sampled_from("<>")), layout=layout, param=draw(st.integers(2, 4)),
                readonly=draw(st.booleans()), bad=bad)


def native_float32(form: np.ndarray) -> np.ndarray:
    """The oracle's conversion, by numpy: the samples as native contiguous float32."""
    if form.dtype.kind == "i":
        return (form.astype(np.int16) / np.float32(32768)).astype(np.float32)
    return np.ascontiguousarray(form.astype(np.float32 if form.dtype.itemsize == 4 else np.float64)
                                ).astype(np.float32)


def first_bad(form: np.ndarray) -> int | None:
    if form.dtype.kind == "i":
        return None
    bad = ~(np.abs(form.astype(np.float64)) <= MAX_ABS_SAMPLE)
    return int(np.argmax(bad)) if bad.any() else None


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("forms")


@settings(max_examples=400, deadline=None)
@given(form=forms(), config=st.sampled_from(sorted(CONFIGS)))
def test_offline_and_batch_equal_native_or_raise(folder, form, config):
    cfg = CONFIGS[config]
    x = form.build(folder)
    bad = first_bad(x)
    if bad is not None:
        with pytest.raises(ValueError, match=rf"at index {bad}\b"):
            extract_features(x, cfg)
        with pytest.raises(ValueError, match=rf"signal 1 of the batch: .* at index {bad}\b"):
            extract_features_batch([np.zeros(10, np.float32), x], cfg, num_threads=2)
        return
    want = extract_features(native_float32(x), cfg)
    assert np.array_equal(extract_features(x, cfg), want)
    got = extract_features_batch([x, x[::-1]], cfg, num_threads=2)
    assert np.array_equal(got[0], want)
    assert np.array_equal(got[1], extract_features(native_float32(x[::-1]), cfg))


@settings(max_examples=300, deadline=None)
@given(form=forms(), sizes=st.lists(CHUNK_SIZES, min_size=1, max_size=8).filter(any),
       config=st.sampled_from(["plain", "sparse"]))
def test_streaming_any_chunking_equals_native_or_raises(folder, form, sizes, config):
    cfg = CONFIGS[config]
    x = form.build(folder)
    bad = first_bad(x)
    stream = StreamingFeatures(cfg)
    frames, pos, i = [], 0, 0
    while pos < len(x):
        end = min(len(x), pos + sizes[i % len(sizes)])
        i += 1
        if bad is not None and pos <= bad < end:
            with pytest.raises(ValueError, match=rf"at index {bad - pos}\b"):
                stream.accept_waveform(x[pos:end])
            assert stream.num_samples == pos  # the stream lost nothing
            break
        frames.append(stream.accept_waveform(x[pos:end]))
        assert frames[-1].shape == (len(frames[-1]), cfg.n_bins)
        pos = end
    got = np.concatenate(frames) if frames else np.zeros((0, cfg.n_bins), np.float32)
    assert np.array_equal(got, extract_features(native_float32(x[:pos]), cfg))
    assert stream.num_frames == len(got)


UNSUPPORTED = ["float16", "int8", "uint8", "uint16", "int32", "int64", "uint64", "complex64",
               "complex128", "bool", "object", "longdouble", "U2", "S4", "datetime64[s]"]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(UNSUPPORTED), order=st.sampled_from("<>="), n=st.integers(0, 600),
       step=st.integers(1, 3))
def test_other_dtypes_raise_value_error_naming_the_dtype(name, order, n, step):
    dtype = np.dtype(name)
    if dtype.byteorder in "<>=":
        dtype = dtype.newbyteorder(order)
    x = np.zeros(n * step, dtype)[::step]
    message = "dtype.*" + re.escape(str(x.dtype))
    with pytest.raises(ValueError, match=message):
        extract_features(x, CONFIGS["plain"])
    with pytest.raises(ValueError, match=message):
        extract_features_batch([x], CONFIGS["plain"])
    stream = StreamingFeatures(CONFIGS["plain"])
    with pytest.raises(ValueError, match=message):
        stream.accept_waveform(x)
    assert stream.num_samples == 0


def run_threads(targets):
    """Runs each target on its own thread, handing the GIL over as often as
    possible for more interleavings; re-raises the first error."""
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as e:  # noqa: BLE001 - relayed to the main thread below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    if errors:
        raise errors[0]


def sorted_rows(frames: np.ndarray) -> np.ndarray:
    return frames[np.lexsort(frames.T[::-1])] if len(frames) else frames


@THREADED
@given(chunk=forms(allow_bad=False, max_size=700).filter(lambda f: f.n > 0),
       codes=st.lists(st.tuples(st.sampled_from(TYPES), st.sampled_from("<>")), min_size=2,
                      max_size=4),
       calls=st.integers(1, 12))
def test_threads_sharing_a_stream(folder, chunk, codes, calls):
    """Each thread feeds the same chunk, each in its own dtype and byte order,
    so every interleaving appends the same signal: the frames, as a multiset,
    are those of that signal."""
    cfg = CONFIGS["plain"]
    base = native_float32(chunk.build(folder))
    ints = np.round(base.astype(np.float64) * 32768).astype(np.int16)
    chunks = [ints.astype(order + code) if code == "i2" else base.astype(order + code)
              for code, order in codes]
    stream = StreamingFeatures(cfg)
    returned = [[] for _ in chunks]

    def feeder(i):
        return lambda: returned[i].extend(stream.accept_waveform(chunks[i])
                                          for _ in range(calls))

    run_threads([feeder(i) for i in range(len(chunks))])
    total = len(chunks) * calls
    assert stream.num_samples == total * len(base)
    got = np.concatenate([a for r in returned for a in r])
    want = extract_features(np.tile(base, total), cfg)
    assert got.shape == want.shape == (stream.num_frames, cfg.n_bins)
    assert np.array_equal(sorted_rows(got), sorted_rows(want))


@THREADED
@given(work=st.lists(st.tuples(forms(max_size=1500),
                               st.lists(CHUNK_SIZES, min_size=1, max_size=5).filter(any)),
                     min_size=2, max_size=4))
def test_threads_with_their_own_streams_and_offline_calls(folder, work):
    """Streams on different threads share nothing; offline and batch calls on
    other threads meanwhile give the same results as alone."""
    cfg = CONFIGS["plain"]
    arrays = [form.build(folder) for form, _ in work]
    outcomes = [None] * len(work)

    def streamer(i):
        def run():
            x, sizes = arrays[i], work[i][1]
            stream = StreamingFeatures(cfg)
            frames, pos, k = [], 0, 0
            try:
                while pos < len(x):
                    end = min(len(x), pos + sizes[k % len(sizes)])
                    k += 1
                    frames.append(stream.accept_waveform(x[pos:end]))
                    pos = end
                outcomes[i] = np.concatenate(frames) if frames else None
            except ValueError as e:
                outcomes[i] = e
        return run

    def offline():
        for x in arrays:
            try:
                extract_features(x, cfg)
                extract_features_batch([x, x], cfg, num_threads=2)
            except ValueError:
                pass

    run_threads([streamer(i) for i in range(len(work))] + [offline])
    for x, outcome in zip(arrays, outcomes):
        if first_bad(x) is not None:
            assert isinstance(outcome, ValueError)
        elif outcome is None:
            assert len(extract_features(native_float32(x), cfg)) == 0
        else:
            assert np.array_equal(outcome, extract_features(native_float32(x), cfg))
