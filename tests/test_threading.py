"""One StreamingFeatures used from several threads at once: calls are
serialised by the stream's lock, never a crash (issue 8, finding 1).

Chunks that race each other are appended in whichever order the calls take
the lock, so the tests feed chunks whose concatenation does not depend on the
order (every thread feeds the same chunk) and compare the frames as a
multiset with offline extraction of that concatenation.
"""

import subprocess
import sys
import threading

import numpy as np
import pytest

from pyser import FeatureConfig, StreamingFeatures, extract_features

# The issue's reproducer: two threads, one stream, 5003-sample chunks. Before
# the fix it died with SIGSEGV or "free(): invalid next size". It runs in a
# child process so that a crash fails this test instead of killing pytest.
REPRODUCER = """
import numpy as np, threading, pyser
s = pyser.StreamingFeatures()
x = np.zeros(5003, np.float32)
f = lambda: [s.accept_waveform(x) for _ in range(3000)]
t = [threading.Thread(target=f) for _ in '12']
[a.start() for a in t]
[a.join() for a in t]
assert s.num_samples == 2 * 3000 * 5003, s.num_samples
print("ok")
"""


def run_isolated(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=timeout)


def test_issue_reproducer_does_not_crash():
    result = run_isolated(REPRODUCER)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        f"exit {result.returncode}\n{result.stderr[-3000:]}"
    )


def sorted_rows(frames: np.ndarray) -> np.ndarray:
    return frames[np.lexsort(frames.T[::-1])]


def hammer(stream, chunk, calls, threads):
    """Each thread feeds `chunk` `calls` times; returns every returned array."""
    results = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(i):
        start.wait()
        for _ in range(calls):
            results[i].append(stream.accept_waveform(chunk))

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return [a for r in results for a in r]


@pytest.mark.parametrize("chunk_size", [1, 160, 1031, 5003])
def test_shared_stream_gives_the_frames_of_the_concatenation(chunk_size):
    cfg = FeatureConfig(n_fft=256, win_length=200, hop_length=80, n_mels=40)
    chunk = (np.random.default_rng(chunk_size).standard_normal(chunk_size) * 0.1).astype(
        np.float32)
    threads = 4
    calls = max(2, 20_000 // chunk_size)
    stream = StreamingFeatures(cfg)
    returned = hammer(stream, chunk, calls, threads)
    total = threads * calls
    assert stream.num_samples == total * chunk_size
    got = np.concatenate(returned)
    want = extract_features(np.tile(chunk, total), cfg)
    assert got.shape == want.shape == (stream.num_frames, cfg.n_bins)
    assert np.array_equal(sorted_rows(got), sorted_rows(want))


def test_reset_and_readers_racing_accept_do_not_crash():
    cfg = FeatureConfig(n_fft=256, win_length=200, hop_length=80, n_mels=40)
    stream = StreamingFeatures(cfg)
    chunk = np.full(997, 0.25, np.float32)
    stop = threading.Event()
    errors = []

    def feed():
        try:
            while not stop.is_set():
                frames = stream.accept_waveform(chunk)
                assert frames.shape[1] == cfg.n_bins
        except Exception as e:  # noqa: BLE001 - relayed to the main thread below
            errors.append(e)

    def disturb():
        try:
            for i in range(3000):
                if i % 7 == 0:
                    stream.reset()
                assert stream.num_frames >= 0 and stream.num_samples >= 0
                assert stream.n_bins == 40
        except Exception as e:  # noqa: BLE001 - relayed to the main thread below
            errors.append(e)

    feeders = [threading.Thread(target=feed) for _ in range(2)]
    disturber = threading.Thread(target=disturb)
    for t in [*feeders, disturber]:
        t.start()
    disturber.join()
    stop.set()
    for t in feeders:
        t.join()
    assert not errors, errors
    # The stream still works: after a reset it gives exactly the offline frames.
    stream.reset()
    signal = np.random.default_rng(1).standard_normal(3000).astype(np.float32) * 0.1
    assert np.array_equal(stream.accept_waveform(signal), extract_features(signal, cfg))
