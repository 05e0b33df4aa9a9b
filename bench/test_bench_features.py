"""pytest-benchmark timings of pyser's features; not part of the test suite.

    python -m pytest bench/test_bench_features.py --benchmark-only

The project's pytest ``testpaths`` is ``tests/`` only, so a plain ``pytest``
never collects this file. Nothing here asserts on time: the assertions check
what was computed, and pytest-benchmark reports the timings (its min/median/
IQR table; ``--benchmark-json FILE`` keeps them). The peer comparisons, p99 and
real-time factors live in ``pyser.benchmarks.features`` (``pyser bench``,
``python bench/bench_features.py``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyser import FeatureConfig, StreamingFeatures, extract_features, extract_features_batch
from pyser.benchmarks.features import (
    CHUNK,
    SAMPLE_RATE,
    batch_utterances,
    chunks_of,
    speech_like,
)

CONFIG = FeatureConfig()


def _median_seconds(benchmark) -> float | None:
    """The benchmark's median, or None under --benchmark-disable (no stats kept)."""
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats else None


@pytest.fixture(scope="module")
def signal_60s() -> np.ndarray:
    return speech_like(60 * SAMPLE_RATE, seed=0)


@pytest.fixture(scope="module")
def utterances() -> list[np.ndarray]:
    return batch_utterances(200)


def test_offline_60s(benchmark, signal_60s: np.ndarray) -> None:
    benchmark.group = "offline"
    features = benchmark.pedantic(
        extract_features, args=(signal_60s, CONFIG), rounds=20, warmup_rounds=2
    )
    assert features.shape == (CONFIG.num_frames(signal_60s.size), 128)
    benchmark.extra_info["audio_seconds"] = 60.0
    if (t := _median_seconds(benchmark)) is not None:
        benchmark.extra_info["x_real_time"] = 60.0 / t


def test_streaming_chunk_10ms(benchmark) -> None:
    benchmark.group = "streaming"
    chunks = itertools.cycle(chunks_of(speech_like(20 * SAMPLE_RATE, seed=3), CHUNK))
    stream = StreamingFeatures(CONFIG)
    for _ in range(200):  # warm-up: past the first frame, so every chunk completes one
        stream.accept_waveform(next(chunks))
    before = stream.num_frames
    benchmark(lambda: stream.accept_waveform(next(chunks)))
    calls = stream.num_samples // CHUNK - 200
    assert stream.num_frames - before == calls  # one frame per 10 ms chunk
    benchmark.extra_info["chunk_ms"] = 1000.0 * CHUNK / SAMPLE_RATE


@pytest.mark.parametrize("num_threads", [1, 2])
def test_batch(benchmark, utterances: list[np.ndarray], num_threads: int) -> None:
    benchmark.group = "batch"
    out = benchmark.pedantic(
        extract_features_batch,
        args=(utterances, CONFIG),
        kwargs={"num_threads": num_threads},
        rounds=3,
        warmup_rounds=1,
    )
    assert [f.shape[0] for f in out] == [CONFIG.num_frames(u.size) for u in utterances]
    audio = sum(u.size for u in utterances) / SAMPLE_RATE
    benchmark.extra_info["audio_seconds"] = audio
    if (t := _median_seconds(benchmark)) is not None:
        benchmark.extra_info["x_real_time"] = audio / t
