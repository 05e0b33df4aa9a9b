"""Benchmark of pyser's log-Mel features against peers, in one process.

    pyser bench [--quick | --full] [--out FILE.md]      # installed package
    python bench/bench_features.py [--quick] [--out FILE.md]  # from a checkout: full run
    python -m pyser.benchmarks.features [--quick]       # the script's options

Sections (the paper's features: 16 kHz, n_fft 1024, 640-sample periodic Hamming
window centred in the frame, hop 160, 128 Slaney Mel bands, 10·log10(max(P, 1e-10))):

1. Offline: one 60 s signal, median wall time after warm-up, × real time and
   each peer's time ÷ pyser's, against numpy, scipy.fft, torch.stft, librosa,
   kaldi-native-fbank and python_speech_features (every output is checked to be
   frames × 128 and compared with pyser's). Peers that are not installed are
   skipped with a note.
2. Streaming: 10 ms chunks (160 float32 samples), µs per chunk including the
   Python call, median and p99: pyser.StreamingFeatures, kaldi-native-fbank's
   OnlineFbank, and a per-frame numpy loop.
3. Batch: 500 utterances of 1-8 s through extract_features_batch on 1 and 2 threads.
4. Profile: Python-call overhead against per-frame compute, and (from a source
   checkout, with perf and g++ available) perf samples per C++ stage from
   bench/profile_frame.cpp. An installed wheel has no bench/ or csrc/: the perf
   part is then skipped with a note.

Threads. Everything runs single-threaded except the 2-thread batch (pyser's own
threads). Importing this module changes no thread setting (DESIGN rule 11) and
imports nothing beyond numpy and pyser; `main` (the script) and ``pyser bench``
wrap the run in `single_threaded`, which sets the limits for the run only:

- torch: ``torch.set_num_threads(1)``, restored afterwards.
- BLAS/OpenMP pools (numpy's OpenBLAS, used by the numpy, scipy and librosa
  peers' Mel matmul): with threadpoolctl installed, limited to 1 for the run and
  restored afterwards, whatever was imported before. Without threadpoolctl the
  only lever is OMP_NUM_THREADS & co., which a BLAS library reads once, when
  numpy loads it. ``python bench/bench_features.py`` sets them before importing
  numpy, so they hold; under ``pyser bench`` and ``python -m`` numpy is already
  loaded (``import pyser`` loads it), so they hold only if the shell exported
  them beforehand; otherwise the report says so instead of claiming one thread.

The report's "threads" line records what was in effect (the pools threadpoolctl
saw, or the variables and whether they were set in time).

Timed calls of different methods are interleaved round-robin so that load from
other processes hits all of them alike, and the garbage collector is off while
timing (as in timeit). Ratios are only meaningful within one run; the report
records the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import math
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyser import (
    FeatureConfig,
    StreamingFeatures,
    extract_features,
    extract_features_batch,
)

SAMPLE_RATE = 16000
N_FFT = 1024
WIN_LENGTH = 640
HOP = 160
N_MELS = 128
AMIN = 1e-10
CHUNK = 160  # 10 ms
CONFIG = FeatureConfig()  # the paper's parameters are pyser's defaults
DB_PER_NEPER = 10.0 / math.log(10.0)  # natural log -> dB
INT16_SCALE = 32768.0  # kaldi-native-fbank expects int16-range samples

TARGET_OFFLINE_VS_TORCH = 2.0  # pyser ≥ 2× torch.stft + matmul, single thread
TARGET_STREAM_VS_KNF = 6.0  # pyser ≤ 1/6 of kaldi-native-fbank per 10 ms chunk
TARGET_BATCH_SPEEDUP = 1.8  # 2 threads ≥ 1.8× 1 thread


@dataclass(frozen=True)
class Settings:
    """Sizes of one run. Nothing else changes between presets."""

    offline_seconds: float
    offline_warmup: int
    offline_repeats: int
    stream_warmup_seconds: float
    stream_seconds: float
    stream_rounds: int
    batch_size: int
    batch_repeats: int
    # The parallel probe hashes 2 × probe_blocks × 8 MiB: 64 blocks (512 MiB per
    # thread) last about as long as the 500-utterance batch.
    probe_blocks: int = 64
    overhead_calls: int = 20000  # calls per measurement in the profile section
    perf_seconds: int = 60  # the C++ harness's signal, repeated perf_repeats times
    perf_repeats: int = 20


# The run RESULTS.md reports (~1 min on 2 quiet cores, perf included).
FULL = Settings(60.0, 2, 15, 2.0, 20.0, 3, 500, 10)
# `pyser bench`'s default (~30 s on 2 cores): the full sizes, fewer repeats.
STANDARD = Settings(60.0, 1, 7, 2.0, 10.0, 2, 500, 4)
# A smoke run: does everything work here.
QUICK = Settings(10.0, 1, 3, 0.5, 3.0, 1, 50, 2, probe_blocks=8, perf_seconds=10, perf_repeats=5)


def find_repo() -> Path | None:
    """The source checkout this module runs from, or None for an installed package.

    A checkout (plain or editable install) has ``bench/profile_frame.cpp`` and
    ``csrc/`` two levels above this file; a wheel's ``site-packages`` has neither.
    """
    root = Path(__file__).resolve().parents[2]
    if (root / "bench" / "profile_frame.cpp").is_file() and (root / "csrc").is_dir():
        return root
    return None


# ---------------------------------------------------------------- signals


def speech_like(num_samples: int, seed: int = 0) -> np.ndarray:
    """A seeded speech substitute, float32 in [-0.5, 0.5].

    A voiced source (sawtooth at a pitch gliding over 100-220 Hz) mixed with
    noise, band-limited to 80-4000 Hz, shaped by a 4 Hz syllable envelope and a
    random phrase envelope with ~20% pauses, over a -80 dB noise floor.
    """
    from scipy import signal

    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SAMPLE_RATE
    f0 = 160.0 + 60.0 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    voiced = signal.sawtooth(2 * np.pi * np.cumsum(f0) / SAMPLE_RATE)
    source = 0.7 * voiced + 0.3 * rng.standard_normal(num_samples)
    sos = signal.butter(4, [80, 4000], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    y = signal.sosfilt(sos, source)
    syllables = (0.5 * (1 - np.cos(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)))) ** 2
    knots = np.arange(0.0, num_samples / SAMPLE_RATE + 0.25, 0.25)
    levels = rng.uniform(0.2, 1.0, knots.size) * (rng.random(knots.size) > 0.2)
    y *= syllables * np.interp(t, knots, levels)
    y *= 0.5 / max(np.max(np.abs(y)), 1e-12)
    y += 5e-5 * rng.standard_normal(num_samples)
    return y.astype(np.float32)


def batch_utterances(count: int, seed: int = 1) -> list[np.ndarray]:
    """``count`` utterances of uniform 1-8 s length cut from a seeded 120 s signal."""
    rng = np.random.default_rng(seed)
    base = speech_like(120 * SAMPLE_RATE, seed=seed)
    lengths = rng.integers(1 * SAMPLE_RATE, 8 * SAMPLE_RATE + 1, count)
    starts = rng.integers(0, base.size - lengths + 1)
    gains = rng.uniform(0.3, 1.0, count).astype(np.float32)
    return [base[s : s + n] * g for s, n, g in zip(starts, lengths, gains)]


def chunks_of(x: np.ndarray, size: int = CHUNK) -> list[np.ndarray]:
    """Contiguous copies of consecutive ``size``-sample chunks (the tail dropped)."""
    return [x[i : i + size].copy() for i in range(0, x.size - size + 1, size)]


# ---------------------------------------------------------------- timing


@contextlib.contextmanager
def gc_off() -> Iterator[None]:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def interleaved(fns: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict:
    """Seconds per call of each fn: warm-up rounds, then round-robin timed rounds."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    with gc_off():
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:  # rotate who goes first
                t0 = time.perf_counter_ns()
                fns[name]()
                times[name].append((time.perf_counter_ns() - t0) * 1e-9)
    return {name: np.asarray(v) for name, v in times.items()}


def median(x: np.ndarray) -> float:
    return float(np.median(x))


def p99(x: np.ndarray) -> float:
    return float(np.percentile(x, 99))


# ---------------------------------------------------------------- peers


def skipped(peer: str, error: ImportError, what: str = "offline peer") -> str:
    """The report's note for a peer that could not be imported."""
    return f"{peer}: not installed ({error}), {what} skipped."


def mel_matrix() -> tuple[np.ndarray, str]:
    """(n_mels, n_fft/2+1) float32 Slaney Mel weights, from librosa when installed."""
    try:
        import librosa

        m = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)
        return m.astype(np.float32), "librosa.filters.mel"
    except ImportError:
        from pyser import _core

        return _core.mel_filterbank(CONFIG._options()), "pyser's own (librosa missing)"


def frame_window() -> np.ndarray:
    """Periodic Hamming of 640 samples zero-padded to 1024, centred (librosa pad_center)."""
    w = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(w, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


@dataclass
class Peer:
    name: str
    run: Callable[[np.ndarray], np.ndarray]  # waveform -> (frames, 128)
    what: str
    # For the output check: peer output -> dB, and which peer frame matches pyser's frame 0.
    to_db: Callable[[np.ndarray], np.ndarray] = lambda y: y
    frame_offset: int = 0
    same_definition: bool = True  # same window, framing, Mel and dB as pyser


def knf_options():
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    fo = opts.frame_opts
    fo.samp_freq = SAMPLE_RATE
    fo.frame_length_ms = 1000.0 * WIN_LENGTH / SAMPLE_RATE  # 40 ms
    fo.frame_shift_ms = 1000.0 * HOP / SAMPLE_RATE  # 10 ms
    fo.dither = 0.0
    fo.preemph_coeff = 0.0
    fo.remove_dc_offset = False
    fo.window_type = "hamming"
    fo.round_to_power_of_two = True  # 640 -> 1024-point FFT
    fo.snip_edges = True
    opts.mel_opts.num_bins = N_MELS
    opts.mel_opts.low_freq = 0.0
    opts.mel_opts.high_freq = 0.0  # 0 = Nyquist
    opts.mel_opts.is_librosa = True  # librosa's Slaney Mel filters
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    return opts


def offline_peers(notes: list[str]) -> list[Peer]:
    window = frame_window()
    mel, mel_source = mel_matrix()
    mel_t = np.ascontiguousarray(mel.T)
    notes.append(f"Mel matrix for the numpy/scipy/torch peers: {mel_source}, dense matmul.")

    def numpy_peer(x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
        spec = np.fft.rfft(frames * window, axis=1)  # complex64 from float32 (numpy ≥ 2)
        power = spec.real**2 + spec.imag**2
        return 10.0 * np.log10(np.maximum(power @ mel_t, AMIN))

    peers = [
        Peer("pyser", lambda x: extract_features(x, CONFIG), "extract_features (C++)"),
        Peer("numpy", numpy_peer, "strided frames · window → np.fft.rfft → |·|² @ Mel → log10"),
    ]

    try:
        import scipy.fft

        def scipy_peer(x: np.ndarray) -> np.ndarray:
            frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
            spec = scipy.fft.rfft(frames * window, axis=1, workers=1, overwrite_x=True)
            power = spec.real**2 + spec.imag**2
            return 10.0 * np.log10(np.maximum(power @ mel_t, AMIN))

        peers.append(Peer("scipy.fft", scipy_peer, "as numpy with scipy.fft.rfft(workers=1)"))
    except ImportError as e:
        notes.append(skipped("scipy", e))

    try:
        import torch

        torch_window = torch.hamming_window(WIN_LENGTH)  # periodic; stft centres it in n_fft
        torch_mel = torch.from_numpy(mel)

        def torch_peer(x: np.ndarray) -> np.ndarray:
            spec = torch.stft(
                torch.from_numpy(x),
                N_FFT,
                HOP,
                WIN_LENGTH,
                torch_window,
                center=False,
                return_complex=True,
            )
            power = spec.real.square() + spec.imag.square()  # (513, T)
            mel_power = torch.matmul(torch_mel, power)
            return mel_power.clamp_min_(AMIN).log10_().mul_(10.0).T.numpy()

        peers.append(
            Peer("torch", torch_peer, "torch.stft(center=False) → re²+im² → Mel matmul → log10")
        )
    except ImportError as e:
        notes.append(skipped("torch", e))

    try:
        import librosa

        def librosa_peer(x: np.ndarray) -> np.ndarray:
            s = librosa.feature.melspectrogram(
                y=x,
                sr=SAMPLE_RATE,
                n_fft=N_FFT,
                hop_length=HOP,
                win_length=WIN_LENGTH,
                window="hamming",
                center=False,
                n_mels=N_MELS,
                power=2.0,
            )
            return (10.0 * np.log10(np.maximum(s, AMIN))).T

        peers.append(Peer("librosa", librosa_peer, "feature.melspectrogram(center=False) → dB"))
    except ImportError as e:
        notes.append(skipped("librosa", e))

    try:
        import kaldi_native_fbank as knf

        opts = knf_options()
        db_offset = 20.0 * math.log10(INT16_SCALE)

        def knf_peer(x: np.ndarray) -> np.ndarray:
            fbank = knf.OnlineFbank(opts)
            # A list converts faster than a numpy array through its Sequence[float] binding.
            fbank.accept_waveform(SAMPLE_RATE, (x * INT16_SCALE).tolist())
            fbank.input_finished()
            return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])

        # knf frame t windows samples [160t, 160t+640) and zero-pads at the end; pyser's
        # frame t windows [160t+192, 160t+832): knf frame t+1 is 32 samples (2 ms) earlier.
        peers.append(
            Peer(
                "kaldi-native-fbank",
                knf_peer,
                "OnlineFbank, 40 ms Hamming, librosa Mel, ln energies; accept + get_frame loop",
                to_db=lambda y: y * DB_PER_NEPER - db_offset,
                frame_offset=1,
                same_definition=False,
            )
        )
    except ImportError as e:
        notes.append(skipped("kaldi-native-fbank", e))

    try:
        import python_speech_features as psf

        def psf_peer(x: np.ndarray) -> np.ndarray:
            # logfbank() has no winfunc argument; it is np.log(fbank(...)[0]).
            feat, _ = psf.fbank(
                x,
                SAMPLE_RATE,
                winlen=WIN_LENGTH / SAMPLE_RATE,
                winstep=HOP / SAMPLE_RATE,
                nfilt=N_MELS,
                nfft=N_FFT,
                lowfreq=0,
                highfreq=None,
                preemph=0.0,
                winfunc=np.hamming,
            )
            return np.log(feat)

        peers.append(
            Peer(
                "python_speech_features",
                psf_peer,
                "log(fbank(winfunc=np.hamming, preemph=0)), float64, HTK-style Mel",
                to_db=lambda y: y * DB_PER_NEPER + 10.0 * math.log10(N_FFT),
                frame_offset=1,
                same_definition=False,
            )
        )
    except ImportError as e:
        notes.append(skipped("python_speech_features", e))
    return peers


def compare(peer: Peer, out: np.ndarray, ref: np.ndarray) -> str:
    """Shape, and agreement with pyser's dB (max |Δ| if same definition, else Pearson r)."""
    shape = f"{out.shape[0]}×{out.shape[1]}"
    if out.ndim != 2 or out.shape[1] != N_MELS or not np.all(np.isfinite(out)):
        return f"{shape} **unexpected**"
    db = peer.to_db(np.asarray(out, dtype=np.float64))[peer.frame_offset :]
    n = min(len(db), len(ref))
    a, b = ref[:n].astype(np.float64), db[:n]
    if peer.same_definition:
        return f"{shape}, max abs Δ {np.max(np.abs(a - b)):.1e} dB"
    r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    return f"{shape}, r = {r:.3f} vs pyser (frame +{peer.frame_offset})"


def bench_offline(s: Settings, notes: list[str]) -> dict:
    x = speech_like(int(s.offline_seconds * SAMPLE_RATE), seed=0)
    peers = offline_peers(notes)
    ref = extract_features(x, CONFIG)
    checks = {p.name: compare(p, p.run(x), ref) for p in peers}
    times = interleaved(
        {p.name: (lambda p=p: p.run(x)) for p in peers}, s.offline_warmup, s.offline_repeats
    )
    t_pyser = median(times["pyser"])
    rows = []
    for p in peers:
        t = times[p.name]
        rows.append(
            {
                "name": p.name,
                "what": p.what,
                "median_ms": 1e3 * median(t),
                "p99_ms": 1e3 * p99(t),
                "x_rt": s.offline_seconds / median(t),
                "ratio": median(t) / t_pyser,
                "check": checks[p.name],
            }
        )
    return {"seconds": s.offline_seconds, "rows": rows, "repeats": s.offline_repeats}


# ---------------------------------------------------------------- streaming


class NumpyStream:
    """The hand-written streaming loop: a sample buffer of at most n_fft + chunk samples;
    per completed frame: window, np.fft.rfft, power, Mel matmul, log10."""

    def __init__(self) -> None:
        self.window = frame_window()
        self.mel = mel_matrix()[0]
        self.buf = np.zeros(2 * N_FFT, np.float32)
        self.size = 0  # valid samples in buf
        self.origin = 0  # stream index of buf[0]
        self.next_start = 0  # stream index of the next frame's first sample

    def accept_waveform(self, chunk: np.ndarray) -> np.ndarray:
        drop = min(self.next_start - self.origin, self.size)
        if drop > 0:  # samples before the next frame are never needed again
            self.buf[: self.size - drop] = self.buf[drop : self.size]
            self.size -= drop
            self.origin += drop
        n = chunk.size
        if self.size + n > self.buf.size:
            self.buf = np.concatenate([self.buf[: self.size], np.zeros(n + N_FFT, np.float32)])
        self.buf[self.size : self.size + n] = chunk
        self.size += n
        frames = []
        while self.origin + self.size >= self.next_start + N_FFT:
            start = self.next_start - self.origin
            spec = np.fft.rfft(self.buf[start : start + N_FFT] * self.window)
            power = spec.real**2 + spec.imag**2
            frames.append(10.0 * np.log10(np.maximum(self.mel @ power, AMIN)))
            self.next_start += HOP
        return np.stack(frames) if frames else np.empty((0, N_MELS), np.float32)


class KnfStream:
    """OnlineFbank fed chunk by chunk; returns the frames each chunk made ready."""

    def __init__(self, as_list: bool) -> None:
        import kaldi_native_fbank as knf

        self.fbank = knf.OnlineFbank(knf_options())
        self.as_list = as_list
        self.next_frame = 0

    def accept_waveform(self, chunk: np.ndarray) -> list:
        fbank = self.fbank
        fbank.accept_waveform(SAMPLE_RATE, chunk.tolist() if self.as_list else chunk)
        frames = []
        while self.next_frame < fbank.num_frames_ready:
            frames.append(fbank.get_frame(self.next_frame))
            self.next_frame += 1
        return frames


def time_stream(accept: Callable, warm: list[np.ndarray], timed: list[np.ndarray]):
    """ns per timed chunk (the call and its return) and the frames they produced."""
    for c in warm:
        accept(c)
    ns = np.empty(len(timed), np.int64)
    frames = 0
    clock = time.perf_counter_ns
    for i, c in enumerate(timed):
        t0 = clock()
        out = accept(c)
        ns[i] = clock() - t0
        frames += len(out)
    return ns, frames


def bench_streaming(s: Settings, notes: list[str]) -> dict:
    n_warm = int(s.stream_warmup_seconds * SAMPLE_RATE)
    n_timed = int(s.stream_seconds * SAMPLE_RATE)
    x = speech_like(n_warm + n_timed, seed=3)
    warm, timed = chunks_of(x[:n_warm]), chunks_of(x[n_warm:])
    warm_i16 = [c * np.float32(INT16_SCALE) for c in warm]  # knf's sample scale
    timed_i16 = [c * np.float32(INT16_SCALE) for c in timed]

    methods: dict[str, tuple[Callable[[], Callable], bool]] = {
        "pyser": (lambda: StreamingFeatures(CONFIG).accept_waveform, False),
        "numpy loop": (lambda: NumpyStream().accept_waveform, False),
    }
    try:
        import kaldi_native_fbank  # noqa: F401

        methods["kaldi-native-fbank"] = (lambda: KnfStream(False).accept_waveform, True)
        methods["kaldi-native-fbank (list input)"] = (
            lambda: KnfStream(True).accept_waveform,
            True,
        )
    except ImportError as e:
        notes.append(skipped("kaldi-native-fbank", e, "streaming peer"))

    # Correctness, untimed: pyser's stream equals its offline output bit for bit.
    sf = StreamingFeatures(CONFIG)
    streamed = np.concatenate([sf.accept_waveform(c) for c in warm + timed])
    offline = extract_features(np.concatenate(warm + timed), CONFIG)
    stream_check = "identical" if np.array_equal(streamed, offline) else "**differs**"
    numpy_stream = NumpyStream()
    numpy_streamed = np.concatenate([numpy_stream.accept_waveform(c) for c in warm + timed])
    numpy_err = float(np.max(np.abs(numpy_streamed - offline)))

    ns: dict[str, list[np.ndarray]] = {name: [] for name in methods}
    frames = dict.fromkeys(methods, 0)
    names = list(methods)
    with gc_off():
        for r in range(s.stream_rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                make, scaled = methods[name]
                t, f = time_stream(
                    make(), warm_i16 if scaled else warm, timed_i16 if scaled else timed
                )
                ns[name].append(t)
                frames[name] += f
    rows = []
    pooled = {name: np.concatenate(v) * 1e-3 for name, v in ns.items()}  # µs
    chunk_us = 1e6 * CHUNK / SAMPLE_RATE
    for name in names:
        us = pooled[name]
        rows.append(
            {
                "name": name,
                "median_us": median(us),
                "p99_us": p99(us),
                "mean_us": float(np.mean(us)),
                "x_rt": chunk_us / median(us),
                "ratio": median(us) / median(pooled["pyser"]),
                "ratio_p99": p99(us) / p99(pooled["pyser"]),
                "frames_per_chunk": frames[name] / us.size,
            }
        )
    return {
        "rows": rows,
        "chunks": len(timed) * s.stream_rounds,
        "rounds": s.stream_rounds,
        "seconds": s.stream_seconds,
        "stream_check": stream_check,
        "numpy_err": numpy_err,
        "pooled": pooled,
    }


# ---------------------------------------------------------------- batch


BATCH_1 = "extract_features_batch, 1 thread"
BATCH_2 = "extract_features_batch, 2 threads"


def probe_name(num_threads: int, blocks: int) -> str:
    plural = "s" if num_threads > 1 else ""
    return f"probe: sha256 of 2 × {8 * blocks} MB, {num_threads} thread{plural}"


def probe(num_threads: int, blocks: int = 64) -> None:
    """A perfectly parallel reference load (hashlib releases the GIL): what 2 threads can
    gain on this machine right now, whatever else it is running. With the default 64
    blocks of 8 MiB it lasts about as long as the 500-utterance batch (~0.4 s per
    thread), so both see similar load."""
    import hashlib
    import threading

    block = bytes(8 << 20)

    def hash_blocks() -> None:
        h = hashlib.sha256()
        for _ in range(blocks):
            h.update(block)
        h.digest()

    if num_threads == 1:
        hash_blocks()
        hash_blocks()
        return
    threads = [threading.Thread(target=hash_blocks) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def bench_batch(s: Settings) -> dict:
    utts = batch_utterances(s.batch_size)
    audio_s = sum(u.size for u in utts) / SAMPLE_RATE
    one = extract_features_batch(utts[:20], CONFIG, num_threads=2)
    same = all(np.array_equal(a, extract_features(u, CONFIG)) for a, u in zip(one, utts[:20]))
    probe_1, probe_2 = probe_name(1, s.probe_blocks), probe_name(2, s.probe_blocks)
    fns = {
        BATCH_1: lambda: extract_features_batch(utts, CONFIG, num_threads=1),
        BATCH_2: lambda: extract_features_batch(utts, CONFIG, num_threads=2),
        probe_1: lambda: probe(1, s.probe_blocks),
        probe_2: lambda: probe(2, s.probe_blocks),
    }
    # Contention diagnostics per call: process CPU seconds (all threads) and involuntary
    # context switches (a thread preempted because another process wanted its core).
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    preempted: dict[str, list[int]] = {name: [] for name in fns}

    def measured(name: str, fn: Callable[[], object]) -> Callable[[], None]:
        def call() -> None:
            c0, u0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
            fn()
            cpu[name].append(time.process_time() - c0)
            preempted[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - u0)

        return call

    times = interleaved({n: measured(n, f) for n, f in fns.items()}, 1, s.batch_repeats)
    b1, b2 = times[BATCH_1], times[BATCH_2]
    t1 = median(b1)
    probe1 = median(times[probe_1])
    # Per round (the four calls of a round run back to back, so they see similar load).
    paired = b1 / b2
    probe_paired = times[probe_1] / times[probe_2]
    rows = [
        {
            "name": name,
            "median_s": median(t),
            "p99_s": p99(t),
            "x_rt": float("nan") if name.startswith("probe") else audio_s / median(t),
            "speedup": (probe1 if name.startswith("probe") else t1) / median(t),
            "cpu_per_wall": float(np.median(np.asarray(cpu[name][1:]) / t)),
            "preempted": float(np.median(preempted[name][1:])),
        }
        for name, t in times.items()
    ]
    return {
        "rows": rows,
        "audio_s": audio_s,
        "count": len(utts),
        "repeats": s.batch_repeats,
        "same": same,
        "speedup": t1 / median(b2),
        "probe_speedup": median(times[probe_1]) / median(times[probe_2]),
        "paired": paired,
        "probe_paired": probe_paired,
    }


# ---------------------------------------------------------------- profile


def bench_call_overhead(stream_pooled_us: np.ndarray, offline: dict, reps: int = 20000) -> dict:
    """Python-level split of a streaming call: overhead, copy-in, per-frame compute."""
    x = speech_like(40 * CHUNK + N_FFT, seed=4)
    chunks = chunks_of(x)
    empty = np.empty(0, np.float32)
    sf = StreamingFeatures(CONFIG)
    core = getattr(sf, "_stream", None)  # the pybind11 object under the facade
    n_zero = (N_FFT - 1) // CHUNK  # chunks of a fresh stream that complete no frame
    clock = time.perf_counter_ns

    def loop(fn, arg, count):
        t = np.empty(count, np.int64)
        for i in range(count):
            t0 = clock()
            fn(arg)
            t[i] = clock() - t0
        return t * 1e-3

    with gc_off():
        for _ in range(2):  # warm-up pass, then the kept one
            facade_empty = loop(sf.accept_waveform, empty, reps)
            core_empty = loop(core.accept_waveform, empty, reps) if core is not None else None
            zero = []
            for _ in range(reps // n_zero):
                sf.reset()
                for c in chunks[:n_zero]:
                    t0 = clock()
                    sf.accept_waveform(c)
                    zero.append(clock() - t0)
            zero_us = np.asarray(zero) * 1e-3
            sf.reset()
            for c in chunks[: n_zero + 1]:
                sf.accept_waveform(c)
            one = []
            for i in range(reps):
                c = chunks[n_zero + 1 + i % (len(chunks) - n_zero - 1)]
                t0 = clock()
                sf.accept_waveform(c)
                one.append(clock() - t0)
            one_us = np.asarray(one) * 1e-3
    pyser_row = next(r for r in offline["rows"] if r["name"] == "pyser")
    n_frames = CONFIG.num_frames(int(offline["seconds"] * SAMPLE_RATE))
    return {
        "facade_empty": median(facade_empty),
        "core_empty": median(core_empty) if core_empty is not None else float("nan"),
        "zero_frames": median(zero_us),
        "one_frame": median(one_us),
        "one_frame_stream_section": median(stream_pooled_us),
        "offline_per_frame": 1e3 * pyser_row["median_ms"] / n_frames,
        "offline_seconds": offline["seconds"],
        "calls": reps,
    }


_STAGES = [  # perf symbol pattern -> stage
    (r"RealFft::forward|load_first_stages",
     "window × samples, bit-reversed load + first 3 FFT stages (radix-8)"),
    (r"complex_fft_stages", "complex FFT stages of spans 16..512 (radix-4/2)"),
    (r"split_real_spectrum", "real-FFT split step"),
    (r"power_spectrum", "power re² + im²"),
    (r"apply_bands|MelFilterbank::apply", "Mel (sparse bands)"),
    (r"power_to_db", "10·log10 (vectorised log)"),
]


def _perf_report(data: Path, sort: str) -> list[tuple[float, str]]:
    out = subprocess.run(
        [
            "perf",
            "report",
            "-i",
            str(data),
            "--stdio",
            "--no-children",
            "-g",
            "none",
            "--sort",
            sort,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(.*\S)", line)
        if m:
            rows.append((float(m.group(1)), m.group(2)))
    return rows


def perf_unavailable(repo: Path | None) -> str | None:
    """Why the perf profile cannot run here, or None when it can."""
    if repo is None:
        return (
            "no per-stage C++ profile: bench/profile_frame.cpp and csrc/ are not here "
            "(an installed package, not a source checkout)."
        )
    missing = [
        tool for tool in ("perf", os.environ.get("CXX", "g++")) if shutil.which(tool) is None
    ]
    if missing:
        return f"no per-stage C++ profile: {' and '.join(missing)} not found."
    return None


def bench_perf(s: Settings, repo: Path) -> dict:
    """perf samples per C++ stage (harness built from the checkout's csrc/ with symbols)
    and per DSO of a Python streaming loop. The caller checks for perf, g++ and the
    checkout (``perf_unavailable``)."""
    perf, cxx = shutil.which("perf"), shutil.which(os.environ.get("CXX", "g++"))
    if perf is None or cxx is None:
        raise FileNotFoundError("perf or g++ not found")
    tmp = Path(tempfile.mkdtemp(prefix="pyser_perf_"))
    sources = [
        repo / "bench" / "profile_frame.cpp",
        *(
            repo / "csrc" / f
            for f in (
                "fft.cpp",
                "window.cpp",
                "mel.cpp",
                "feature_config.cpp",
                "frame_features.cpp",
                "samples.cpp",
            )
        ),
    ]
    exe = tmp / "profile_frame"
    # The project's flags (CMakeLists.txt) plus symbols and frame pointers.
    flags = ["-std=c++17", "-O3", "-fno-math-errno", "-g", "-fno-omit-frame-pointer"]
    build = [cxx, *flags, f"-I{repo / 'csrc'}", *map(str, sources), "-o", str(exe), "-pthread"]
    subprocess.run(build, check=True, capture_output=True, text=True)
    seconds, repeats = str(s.perf_seconds), str(s.perf_repeats)
    data = tmp / "frame.data"
    run = subprocess.run(
        [perf, "record", "-F", "4000", "-g", "-o", str(data), str(exe), seconds, repeats],
        capture_output=True,
        text=True,
        check=True,
    )
    harness = dict(line.split() for line in run.stdout.splitlines() if line.strip())
    by_sym = _perf_report(data, "sym")
    stages = []
    for pattern, label in _STAGES:
        pct = sum(p for p, sym in by_sym if re.search(pattern, sym))
        stages.append((label, pct))
    stage_total = sum(p for _, p in stages)

    # A Python streaming loop (10 ms chunks), sampled only while the loop runs.
    ctl, ack = tmp / "ctl", tmp / "ack"
    os.mkfifo(ctl)
    os.mkfifo(ack)
    sdata = tmp / "stream.data"
    env = dict(os.environ, PYSER_PERF_CTL=str(ctl), PYSER_PERF_ACK=str(ack))
    env.update(dict.fromkeys(THREAD_ENV_VARS, "1"))  # a fresh process: the variables hold
    subprocess.run(
        [
            perf,
            "record",
            "-F",
            "4000",
            "-D",
            "-1",
            "--control",
            f"fifo:{ctl},{ack}",
            "-o",
            str(sdata),
            sys.executable,
            "-m",
            "pyser.benchmarks.features",
            "--workload",
            "stream",
            "--workload-seconds",
            str(5 * s.perf_seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    by_dso = _perf_report(sdata, "dso")
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "command": " ".join(shlex.quote(a) for a in build[:6]) + " … (csrc/*.cpp)",
        "harness": harness,
        "stages": stages,
        "stage_total": stage_total,
        "top_symbols": by_sym[:10],
        "by_dso": by_dso[:8],
    }


def workload_stream(seconds: float) -> None:
    """The Python streaming loop that bench_perf samples (perf enabled around the loop)."""
    rng = np.random.default_rng(5)
    chunks = chunks_of((0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32))
    sf = StreamingFeatures(CONFIG)
    for c in chunks[:200]:
        sf.accept_waveform(c)
    ctl, ack = os.environ.get("PYSER_PERF_CTL"), os.environ.get("PYSER_PERF_ACK")

    def perf_control(cmd: str) -> None:
        if ctl and ack:
            with open(ctl, "w") as f:
                f.write(cmd + "\n")
            with open(ack) as f:
                f.readline()

    perf_control("enable")
    for c in chunks[200:]:
        sf.accept_waveform(c)
    perf_control("disable")


# ---------------------------------------------------------------- report


def provenance(so_mtime_at_start: float, repo: Path | None) -> list[str]:
    """Which build was timed: the extension's mtime against the newest csrc/ source
    and the git HEAD, when running from a checkout."""
    from pyser import _core

    so = Path(_core.__file__)

    def stamp(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    sources = list((repo / "csrc").glob("*.*")) if repo is not None else []
    if sources:
        newest = max(sources, key=lambda p: p.stat().st_mtime)
        built = f"; newest csrc/ source `{newest.name}` modified {stamp(newest.stat().st_mtime)}"
    else:
        built = f" (pyser {version('pyser')} installed from a package, no csrc/ to compare)"
    lines = [f"- timed extension: `{so.name}` built {stamp(so_mtime_at_start)}{built}"]
    if so.stat().st_mtime != so_mtime_at_start:
        lines.append(
            f"- **the extension was rebuilt during the run** ({stamp(so.stat().st_mtime)}); "
            "the timed code is the one loaded at the start"
        )
    if repo is None:
        return lines
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(repo), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "csrc"],
            check=False,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
        lines.append(f"- git HEAD {head}; uncommitted csrc/ changes: {', '.join(dirty) or 'none'}")
    return lines


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(threads: str | None = None) -> list[str]:
    """The report's machine lines; ``threads`` is what `single_threaded` put in effect."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        model = m.group(1).strip() if m else model
    flags = ""
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        have = set(re.search(r"flags\s*:\s*(.*)", cpuinfo).group(1).split())
        flags = ", ".join(f for f in ("avx2", "fma", "avx512f") if f in have)
    if threads is None:
        env = {v: os.environ.get(v, "unset") for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        torch_threads = "n/a"
        if "torch" in sys.modules:
            torch_threads = str(sys.modules["torch"].get_num_threads())
        threads = f"{env}, torch.get_num_threads() = {torch_threads}"
    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores ({flags})",
        f"- OS: {platform.platform()}",
        (
            f"- Python {platform.python_version()}; numpy {version('numpy')}, scipy "
            f"{version('scipy')}, torch {version('torch')}, librosa {version('librosa')}, "
            f"kaldi-native-fbank {version('kaldi-native-fbank')}, python_speech_features "
            f"{version('python_speech_features')}, pyser {version('pyser')}"
        ),
        f"- threads: {threads}",
    ]


def fmt(x: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def report(
    results: dict,
    notes: list[str],
    command: str | None = None,
    extra_sections: tuple[str, ...] = (),
    title: str = "pyser feature benchmark",
) -> str:
    """The Markdown report of `run_features`' results. ``extra_sections`` (Markdown
    with their own ``##`` headings) go after the feature sections, before the notes."""
    offline, stream, batch = results["offline"], results["stream"], results["batch"]
    overhead, perf, loads = results["overhead"], results["perf"], results["loads"]
    load0, load1, wall = loads[0], results["load_end"], results["wall"]
    if command is None:
        command = shlex.join([Path(sys.executable).name, *sys.argv])
    out: list[str] = [f"# {title}", "", f"`{command}`", ""]
    out += machine(results["threads"])
    out += provenance(results["so_mtime"], results["repo"])
    out += [
        (
            f"- load average (1 min) at start {load0:.2f}, at end {load1:.2f}; before the "
            f"sections (offline, streaming, batch, profile): "
            f"{', '.join(f'{x:.2f}' for x in loads)}; run took {wall:.0f} s"
        ),
        "",
    ]

    out += [
        f"## 1. Offline: one {offline['seconds']:.0f} s signal, 128-band log-Mel, 1 thread",
        "",
        (
            f"Median (and p99) of {offline['repeats']} interleaved calls after warm-up. "
            "× real time = audio seconds per wall second; ratio = peer time ÷ pyser time."
        ),
        "",
        "| method | median ms | p99 ms | × real time | peer ÷ pyser | output check | computes |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in offline["rows"]:
        out.append(
            f"| {r['name']} | {fmt(r['median_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['x_rt'])} "
            f"| {r['ratio']:.2f} | {r['check']} | {r['what']} |"
        )
    out.append("")

    out += [
        "## 2. Streaming: 10 ms chunks (160 float32 samples), 1 thread",
        "",
        (
            f"µs per `accept_waveform` call including the Python call and the returned frames, "
            f"{stream['chunks']} chunks ({stream['rounds']} interleaved rounds of "
            f"{stream['seconds']:.0f} s after a warm-up on each fresh stream). Every timed chunk "
            "completes one frame. ratio = method ÷ pyser."
        ),
        "",
        (
            "| method | median µs | p99 µs | mean µs | × real time | ratio (median) "
            "| ratio (p99) | frames/chunk |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in stream["rows"]:
        out.append(
            f"| {r['name']} | {r['median_us']:.2f} | {r['p99_us']:.1f} | {r['mean_us']:.2f} "
            f"| {fmt(r['x_rt'])} | {r['ratio']:.2f} | {r['ratio_p99']:.2f} "
            f"| {r['frames_per_chunk']:.2f} |"
        )
    out += [
        "",
        (
            f"pyser streamed frames vs offline `extract_features`: {stream['stream_check']}; "
            f"numpy loop vs pyser offline: max abs Δ {stream['numpy_err']:.1e} dB. "
            "kaldi-native-fbank gets int16-scaled samples (its convention), scaled before timing; "
            "its rows call `accept_waveform` then `get_frame` for each newly ready frame "
            "(`get_frame` returns a view, no copy)."
        ),
        "",
    ]

    out += [
        f"## 3. Batch: {batch['count']} utterances of 1-8 s ({batch['audio_s']:.0f} s of audio)",
        "",
        (
            f"Median (p99) wall time of {batch['repeats']} interleaved calls after one warm-up; "
            f"speed-up = 1-thread time ÷ this time (for the probe rows, of the 1-thread probe). "
            f"Batch output equals per-utterance "
            f"`extract_features`: {'yes' if batch['same'] else '**no**'}."
        ),
        "",
        (
            "CPU/wall = process CPU seconds (all threads) ÷ wall seconds, the parallelism the "
            "call got; preemptions = involuntary context switches during the call (another "
            "process took the core)."
        ),
        "",
        "| method | median s | p99 s | × real time | speed-up | CPU/wall | preemptions |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in batch["rows"]:
        out.append(
            f"| {r['name']} | {r['median_s']:.3f} | {r['p99_s']:.3f} | {fmt(r['x_rt'])} "
            f"| {r['speedup']:.2f} | {r['cpu_per_wall']:.2f} | {r['preempted']:.0f} |"
        )
    pp, qq = batch["paired"], batch["probe_paired"]
    out += [
        "",
        (
            "Per round (1-thread ÷ 2-thread time of calls run back to back): pyser "
            f"{', '.join(f'{v:.2f}' for v in pp)}; probe {', '.join(f'{v:.2f}' for v in qq)}; "
            f"medians {median(pp):.2f} and {median(qq):.2f}."
        ),
        "",
    ]

    # Targets.
    rows_off = {r["name"]: r for r in offline["rows"]}
    rows_st = {r["name"]: r for r in stream["rows"]}
    out += [
        "## Targets (ratios from this run)",
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
    ]

    def verdict(value: float, target: float) -> str:
        if not math.isfinite(value):
            return "not measured"
        if value >= target:
            return f"**met** ({value / target:.2f}× the target)"
        return f"**missed**: {value:.2f} vs {target:g}, short by {100 * (1 - value / target):.0f}%"

    v = rows_off["torch"]["ratio"] if "torch" in rows_off else float("nan")
    out.append(
        f"| offline, 1 thread: pyser ≥ {TARGET_OFFLINE_VS_TORCH:g}× torch.stft + matmul "
        f"| {v:.2f}× | {verdict(v, TARGET_OFFLINE_VS_TORCH)} |"
    )
    for name in ("kaldi-native-fbank", "kaldi-native-fbank (list input)"):
        if name in rows_st:
            v = rows_st[name]["ratio"]
            out.append(
                f"| streaming, median per 10 ms chunk: pyser ≤ 1/{TARGET_STREAM_VS_KNF:g} of "
                f"{name} | knf ÷ pyser = {v:.2f} (p99: {rows_st[name]['ratio_p99']:.2f}) "
                f"| {verdict(v, TARGET_STREAM_VS_KNF)} |"
            )
    v, cap = batch["speedup"], batch["probe_speedup"]
    out.append(
        f"| batch: 2 threads ≥ {TARGET_BATCH_SPEEDUP:g}× 1 thread | {v:.2f}× (the parallel "
        f"probe got {cap:.2f}×; pyser/probe = {v / cap:.2f}) "
        f"| {verdict(v, TARGET_BATCH_SPEEDUP)}"
        + (
            "; **not assessable in this run**: the machine gave the probe less than the target"
            if cap < TARGET_BATCH_SPEEDUP
            else ""
        )
        + " |"
    )
    out.append("")

    # Profile.
    o = overhead
    compute = o["one_frame"] - o["zero_frames"]
    out += [
        "## 4. Profile: where a streaming call's time goes",
        "",
        f"Medians of {o['calls']:_} calls each, same process:".replace("_", " "),
        "",
        "| call | median µs |",
        "|---|---:|",
        (
            f"| `accept_waveform` of an empty chunk (facade + pybind11 + output allocation) "
            f"| {o['facade_empty']:.2f} |"
        ),
        f"| same on the pybind11 object directly (no Python facade) | {o['core_empty']:.2f} |",
        (
            f"| 160-sample chunk completing 0 frames (+ sample copy, finiteness check) "
            f"| {o['zero_frames']:.2f} |"
        ),
        f"| 160-sample chunk completing 1 frame | {o['one_frame']:.2f} |",
        (
            f"| offline `extract_features` per frame ({o['offline_seconds']:.0f} s signal) "
            f"| {o['offline_per_frame']:.2f} |"
        ),
        "",
        (
            f"So a 10 ms chunk costs about {o['zero_frames']:.2f} µs of call overhead "
            f"({100 * o['zero_frames'] / o['one_frame']:.0f}%; of which the Python facade "
            f"{o['facade_empty'] - o['core_empty']:.2f} µs) and {compute:.2f} µs of frame compute "
            f"({100 * compute / o['one_frame']:.0f}%), against {o['offline_per_frame']:.2f} µs "
            "per frame offline."
        ),
        "",
    ]
    if perf is None:
        out += [f"{results['perf_skipped']}", ""]
    else:
        # One 10 ms chunk (one frame), end to end: the measured Python-level parts, and the
        # measured frame compute split by the perf shares of the C++ stages.
        out += [
            "### One 10 ms streaming chunk, end to end",
            "",
            (
                "Call-overhead rows are the Python-level measurements above; the frame compute "
                f"({compute:.2f} µs = 1-frame chunk − 0-frame chunk) is split by the C++ stages' "
                "perf shares below (renormalised over the stages)."
            ),
            "",
            "| part | µs | share |",
            "|---|---:|---:|",
        ]
        parts = [
            (
                "Python facade (`StreamingFeatures.accept_waveform` → `_core`)",
                o["facade_empty"] - o["core_empty"],
            ),
            ("pybind11 call: argument check, output array, GIL release", o["core_empty"]),
            (
                "copy-in of 160 samples, finiteness check, buffer",
                o["zero_frames"] - o["facade_empty"],
            ),
        ]
        total_pct = perf["stage_total"] or 1.0
        parts += [(label, compute * pct / total_pct) for label, pct in perf["stages"]]
        for label, us in parts:
            out.append(f"| {label} | {us:.2f} | {100 * us / o['one_frame']:.0f}% |")
        out += [f"| **total (1-frame chunk)** | **{o['one_frame']:.2f}** | 100% |", ""]
        h = perf["harness"]
        whole = float(h["whole_ns_per_frame"])
        out += [
            "### C++ stages (perf record, cpu-clock sampling)",
            "",
            (
                "`bench/profile_frame.cpp` built from `csrc/` with the project's flags plus "
                f"`-g` (`{perf['command']}`; the installed extension is stripped), run under "
                f"`perf record -F 4000 -g`: {float(h['whole_ns_per_frame']) / 1e3:.2f} µs per "
                f"frame, {h['x_real_time']}× real time. Self-time shares of the samples; ns per "
                "frame = share × whole-pipeline time."
            ),
            "",
            "| stage | share of samples | ≈ ns/frame |",
            "|---|---:|---:|",
        ]
        for label, pct in perf["stages"]:
            out.append(f"| {label} | {pct:.1f}% | {pct / 100 * whole:.0f} |")
        out += [
            (
                f"| rest (driver loop, libm, kernel, setup) | {100 - perf['stage_total']:.1f}% "
                f"| {(100 - perf['stage_total']) / 100 * whole:.0f} |"
            ),
            "",
            (
                "Stage timings of the harness's own loops (std::chrono, median): "
                f"RealFft::forward {h['forward_ns_per_frame']} ns, Mel {h['mel_ns_per_frame']} ns, "
                f"dB {h['db_ns_per_frame']} ns per frame."
            ),
            "",
            "Hottest symbols as perf reports them:",
            "",
            "| share | symbol |",
            "|---:|---|",
            *(f"| {pct:.1f}% | `{sym}` |" for pct, sym in perf["top_symbols"]),
            "",
            (
                "Python streaming loop (10 ms chunks), samples by shared object "
                "(perf enabled only around the loop):"
            ),
            "",
            "| share | shared object |",
            "|---:|---|",
        ]
        for pct, dso in perf["by_dso"]:
            out.append(f"| {pct:.1f}% | {dso} |")
        out.append("")
    for section in extra_sections:
        out += [section.rstrip("\n"), ""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


# ---------------------------------------------------------------- running


# Read by BLAS/OpenMP libraries once, when they load: only a fresh process can set them
# in time (bench/bench_features.py does; it keeps its own copy of this list).
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@contextlib.contextmanager
def single_threaded(env_pinned: bool = False) -> Iterator[str]:
    """One thread for torch and the BLAS/OpenMP pools inside the block, restored after.

    Yields a line for the report saying what is in effect. ``env_pinned``: the caller
    set THREAD_ENV_VARS to 1 before numpy was imported (only a fresh process can).
    """
    import scipy.signal  # noqa: F401  (load scipy's BLAS now, so the limits reach it)

    torch = None
    with contextlib.suppress(ImportError):
        import torch
    torch_before = torch.get_num_threads() if torch is not None else None
    with contextlib.ExitStack() as stack:
        if torch is not None:
            torch.set_num_threads(1)
            stack.callback(torch.set_num_threads, torch_before)
        torch_line = (
            f"torch.get_num_threads() = {torch.get_num_threads()} (was {torch_before})"
            if torch is not None
            else "torch not installed"
        )
        try:
            from threadpoolctl import threadpool_info, threadpool_limits
        except ImportError:
            env = {v: os.environ.get(v, "unset") for v in THREAD_ENV_VARS[:3]}
            # Values inherited from the shell were there before numpy loaded, too.
            if env_pinned or all(value == "1" for value in env.values()):
                pools = f"BLAS/OpenMP variables {env}, set before numpy was imported"
            else:
                pools = (
                    f"BLAS/OpenMP variables {env} at the start: threadpoolctl is not "
                    "installed and numpy was imported before they could be set, so "
                    "**BLAS may use several threads** in the numpy/scipy/librosa peers' "
                    "Mel matmul (install threadpoolctl, export OMP_NUM_THREADS=1 "
                    "OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 first, or run "
                    "`python bench/bench_features.py` from a checkout)"
                )
        else:
            stack.enter_context(threadpool_limits(limits=1))
            found = ", ".join(  # e.g. "libscipy_openblas64_.so 1" (numpy's OpenBLAS)
                f"{re.sub(r'-[0-9a-f]{8,}', '', Path(p.get('filepath', '?')).name)} "
                f"{p.get('num_threads', '?')}"
                for p in threadpool_info()
            )
            pools = f"BLAS/OpenMP pools limited by threadpoolctl: {found or 'none loaded'}"
        yield f"{pools}; {torch_line}"


def run_features(
    s: Settings, perf: bool, notes: list[str], threads: str, progress: bool = True
) -> dict:
    """Sections 1-4 with settings ``s``; the results for `report`. Notes (peers skipped,
    perf failures) are appended to ``notes``. The caller sets the threads
    (`single_threaded`) and passes its line as ``threads``."""
    from pyser import _core

    def say(what: str) -> None:
        if progress:
            print(f"{what} …", file=sys.stderr, flush=True)

    repo = find_repo()
    so_mtime = Path(_core.__file__).stat().st_mtime
    loads, start = [os.getloadavg()[0]], time.perf_counter()
    say("offline")
    offline = bench_offline(s, notes)
    loads.append(os.getloadavg()[0])
    say("streaming")
    stream = bench_streaming(s, notes)
    loads.append(os.getloadavg()[0])
    say("batch")
    batch = bench_batch(s)
    loads.append(os.getloadavg()[0])
    say("profile")
    overhead = bench_call_overhead(stream["pooled"]["pyser"], offline, s.overhead_calls)
    perf_result, perf_skipped = None, "perf profile not run (--quick or --no-perf)."
    if perf:
        perf_skipped = perf_unavailable(repo)
        if perf_skipped is None:
            try:
                perf_result = bench_perf(s, repo)
            except (subprocess.CalledProcessError, OSError) as e:
                detail = getattr(e, "stderr", "") or ""
                perf_skipped = "perf profile failed (see the notes)."
                notes.append(f"perf profile failed: {e} {detail[-300:]}")
    return {
        "offline": offline,
        "stream": stream,
        "batch": batch,
        "overhead": overhead,
        "perf": perf_result,
        "perf_skipped": perf_skipped,
        "loads": loads,
        "load_end": os.getloadavg()[0],
        "wall": time.perf_counter() - start,
        "so_mtime": so_mtime,
        "repo": repo,
        "threads": threads,
    }


def main(argv: list[str] | None = None, *, env_pinned: bool = False) -> int:
    """The script's command line (``python bench/bench_features.py``): a full run by
    default. ``env_pinned``: THREAD_ENV_VARS were set to 1 before numpy was imported."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    perf_group = parser.add_mutually_exclusive_group()
    perf_group.add_argument(
        "--perf",
        dest="perf",
        action="store_true",
        default=None,
        help="run the perf profile (default: on for full runs, from a source checkout)",
    )
    perf_group.add_argument("--no-perf", dest="perf", action="store_false")
    parser.add_argument("--workload", choices=["stream"], help=argparse.SUPPRESS)
    parser.add_argument("--workload-seconds", type=float, default=300.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.workload == "stream":
        workload_stream(args.workload_seconds)
        return 0

    s = QUICK if args.quick else FULL
    notes: list[str] = []
    with single_threaded(env_pinned) as threads:
        results = run_features(
            s, (not args.quick) if args.perf is None else args.perf, notes, threads
        )
    text = report(results, notes)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
