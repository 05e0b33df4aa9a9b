"""The input contract (issue 8, findings 2, 3 and 5): a 1-D float32, float64 or
int16 array in either byte order, with any stride, read-only or memory-mapped,
gives exactly the features of the same samples as a native contiguous array,
offline, in a batch and streaming; other dtypes raise ValueError naming the
dtype; non-finite samples raise the same error on all three paths.

Reference: ``extract_features`` of the native contiguous float32 (or int16)
array; comparisons are bit for bit.
"""

import re
import subprocess
import sys

import numpy as np
import pytest

from pyser import FeatureConfig, StreamingFeatures, extract_features, extract_features_batch

CFG = FeatureConfig(n_fft=512, win_length=400, hop_length=160, n_mels=40)
INT16 = np.round(np.random.default_rng(5).standard_normal(6000) * 3000).astype(np.int16)
FLOAT = INT16.astype(np.float32) / np.float32(32768)  # the int16 samples as float32, exactly
ORDERS = ["<", ">"]
TYPES = ["f4", "f8", "i2"]


def native(code: str) -> np.ndarray:
    return INT16 if code == "i2" else FLOAT


def stream(chunks, cfg=CFG) -> np.ndarray:
    sf = StreamingFeatures(cfg)
    return np.concatenate([sf.accept_waveform(c) for c in chunks])


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("code", TYPES)
def test_offline_any_byte_order_equals_native(order, code):
    x = native(code).astype(order + code)
    assert x.dtype.str == order + code
    assert np.array_equal(extract_features(x, CFG), extract_features(FLOAT, CFG))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("code", TYPES)
def test_streaming_any_byte_order_equals_native(order, code):
    x = native(code).astype(order + code)
    chunks = [x[i : i + 333] for i in range(0, len(x), 333)]
    assert np.array_equal(stream(chunks), extract_features(FLOAT, CFG))


def test_batch_any_byte_order_equals_native():
    signals = [native(code).astype(order + code) for code in TYPES for order in ORDERS]
    for got in extract_features_batch(signals, CFG, num_threads=2):
        assert np.array_equal(got, extract_features(FLOAT, CFG))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("code", TYPES)
def test_strided_reversed_and_read_only_views(order, code):
    x = native(code).astype(order + code)
    stereo = np.empty((len(x), 2), x.dtype)  # column views have a stride of 2 items
    stereo[:, 0], stereo[:, 1] = x, x[::-1]
    reference_rev = extract_features(np.ascontiguousarray(FLOAT[::-1]), CFG)
    cases = [(stereo[:, 0], extract_features(FLOAT, CFG)),
             (stereo[:, 1], reference_rev),
             (x[::-1], reference_rev),
             (x[::3], extract_features(np.ascontiguousarray(FLOAT[::3]), CFG))]
    for view, want in cases:
        view = view.view()
        view.flags.writeable = False
        assert np.array_equal(extract_features(view, CFG), want)
        assert np.array_equal(stream([view[:1000], view[1000:]]), want)
        assert np.array_equal(extract_features_batch([view], CFG)[0], want)


@pytest.mark.parametrize("code", TYPES)
def test_unaligned_samples(code):
    x = native(code).astype(">" + code)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    raw[1:] = np.frombuffer(x.tobytes(), np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=x.dtype, offset=1)
    assert not unaligned.flags.aligned
    assert np.array_equal(extract_features(unaligned, CFG), extract_features(FLOAT, CFG))
    assert np.array_equal(stream([unaligned[:777], unaligned[777:]]),
                          extract_features(FLOAT, CFG))


def test_broadcast_zero_stride():
    x = np.broadcast_to(np.float32(0.25), (3000,))
    assert x.strides == (0,)
    want = extract_features(np.full(3000, 0.25, np.float32), CFG)
    assert np.array_equal(extract_features(x, CFG), want)
    assert np.array_equal(stream([x[:100], x[100:]]), want)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("code", TYPES)
def test_memmap_any_byte_order(tmp_path, order, code):
    path = tmp_path / "x.raw"
    native(code).astype(order + code).tofile(path)
    mm = np.memmap(path, dtype=order + code, mode="r")
    want = extract_features(FLOAT, CFG)
    assert np.array_equal(extract_features(mm, CFG), want)
    assert np.array_equal(stream([mm[:2500], mm[2500:]]), want)
    assert np.array_equal(extract_features_batch([mm, mm[::-1]], CFG)[0], want)


# The crash: a 1 Mi-sample big-endian int16 memmap was read as float32
# (twice its size: SIGSEGV). A child process, so that a crash fails the test.
MEMMAP_REPRODUCER = """
import sys, numpy as np, pyser
path = sys.argv[1]
np.zeros(1 << 20, '>i2').tofile(path)  # zeros: no NaN bit patterns to stop the overrun early
z = np.memmap(path, dtype='>i2', mode='r')
assert np.array_equal(pyser.StreamingFeatures().accept_waveform(z),
                      pyser.extract_features(np.zeros(1 << 20, np.int16)))
del z
x = (np.arange(1 << 20) % 2000 - 1000).astype(np.int16)
x.astype('>i2').tofile(path)
mm = np.memmap(path, dtype='>i2', mode='r')
want = pyser.extract_features(x)
assert np.array_equal(pyser.StreamingFeatures().accept_waveform(mm), want)  # one chunk
s = pyser.StreamingFeatures()
b = np.concatenate([s.accept_waveform(mm[i:i + 100003]) for i in range(0, len(mm), 100003)])
assert np.array_equal(b, want)
assert np.array_equal(pyser.extract_features(mm), want)
print("ok")
"""


def test_big_endian_int16_memmap_of_1_mi_samples(tmp_path):
    result = subprocess.run([sys.executable, "-c", MEMMAP_REPRODUCER, str(tmp_path / "x.raw")],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        f"exit {result.returncode}\n{result.stderr[-3000:]}"
    )


@pytest.mark.parametrize(
    "dtype",
    ["float16", ">i4", "<i4", "int8", "uint16", "int64", "complex128", "bool", "object",
     [("a", "<f4")], "U3", "longdouble"],
)
def test_unsupported_dtype_names_the_dtype(dtype):
    x = np.zeros(3000, dtype=dtype)
    name = str(x.dtype)
    message = "dtype.*" + re.escape(name)
    with pytest.raises(ValueError, match=message):
        extract_features(x, CFG)
    with pytest.raises(ValueError, match=r"waveforms\[1\].*" + message):
        extract_features_batch([FLOAT, x], CFG)
    sf = StreamingFeatures(CFG)
    with pytest.raises(ValueError, match=message):
        sf.accept_waveform(x)
    assert sf.num_samples == 0


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("code", ["f4", "f8"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_sample_is_named_the_same_way_everywhere(order, code, bad):
    x = FLOAT.astype(order + code)
    x[4321] = bad
    kind = "nan" if np.isnan(bad) else "inf"
    message = rf"non-finite sample \(-?{kind}\) at index 4321"
    with pytest.raises(ValueError, match=message):
        extract_features(x, CFG)
    with pytest.raises(ValueError, match=r"signal 1 of the batch: .*" + message):
        extract_features_batch([FLOAT, x], CFG)
    with pytest.raises(ValueError, match=message):
        extract_features(np.repeat(x, 2)[1::2], CFG)  # strided
    sf = StreamingFeatures(CFG)
    first = sf.accept_waveform(x[:4000])
    with pytest.raises(ValueError, match=r"non-finite sample \(-?" + kind + r"\) at index 321"):
        sf.accept_waveform(x[4000:])
    assert sf.num_samples == 4000
    rest = sf.accept_waveform(FLOAT[4000:])
    assert np.array_equal(np.concatenate([first, rest]), extract_features(FLOAT, CFG))
