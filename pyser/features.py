"""Spectrogram features: log-Mel or log-STFT power in dB, offline or streaming.

A thin facade over the C++ engine in ``pyser._core`` (Hamming-windowed real
FFT → power → sparse Mel filterbank → 10·log10(max(power, amin))).

The log has no ``top_db`` clipping: librosa's ``power_to_db(top_db=80)`` (which
the paper's recipe used) clips relative to the maximum of the *whole*
utterance, which a stream does not know yet. Features are therefore the plain
dB power, the same offline and streaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from pyser import _core

__all__ = [
    "MAX_ABS_SAMPLE",
    "FeatureConfig",
    "StreamingFeatures",
    "extract_features",
    "extract_features_batch",
]

#: The largest accepted ``|sample|`` of float input (1e12). Far above any audio
#: (int32 PCM as floats stays below 2.2e9) and low enough that no frame's power
#: can overflow float32, so a loud signal is computed right or refused with
#: ValueError, never saturated or reported as the floor. int16 input is always
#: within it.
MAX_ABS_SAMPLE: float = _core.MAX_ABS_SAMPLE

_STRING_FIELDS = {"kind", "window", "pad_mode", "norm"}
_BOOL_FIELDS = {"periodic", "htk", "center"}
_INT_FIELDS = {"sample_rate", "n_fft", "win_length", "hop_length", "n_mels"}
_FLOAT_FIELDS = {"fmin", "fmax", "amin"}


@dataclass(frozen=True)
class FeatureConfig:
    """Feature options; names follow librosa, defaults are the paper's.

    Attributes:
        kind: ``"mel"`` (``n_mels`` log-Mel bands) or ``"stft"`` (``n_fft // 2 + 1``
            log-power bins).
        sample_rate: input sample rate in Hz.
        n_fft: DFT size in samples, a power of two in [16, 16384].
        win_length: analysis window in samples (≤ n_fft), centred in the frame.
        hop_length: frame shift in samples.
        window: ``"hamming"``, ``"hann"`` or ``"rectangular"``.
        periodic: periodic (DFT-even, librosa/torch default) or symmetric window.
        n_mels: number of Mel bands (kind ``"mel"``).
        fmin: lowest Mel band edge in Hz.
        fmax: highest Mel band edge in Hz; ``None`` = sample_rate / 2.
        htk: HTK Mel scale instead of Slaney's (librosa's default).
        norm: Mel band normalisation, ``"slaney"`` (equal area) or ``None``.
        center: offline only: pad ``n_fft // 2`` samples at both ends so frame t
            is centred on sample ``t * hop_length`` (librosa ``center=True``).
            Streaming always uses ``center=False`` framing.
        pad_mode: padding for ``center``: ``"reflect"`` or ``"constant"`` (zeros).
        amin: power floor before the log, ``10 * log10(max(power, amin))``; a normal
            float32 (about 1.2e-38 to 3.4e38), since the power is float32.
    """

    kind: str = "mel"
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 640
    hop_length: int = 160
    window: str = "hamming"
    periodic: bool = True
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | None = "slaney"
    center: bool = False
    pad_mode: str = "reflect"
    amin: float = 1e-10

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name))
        # Value checks live in C++, in one place, and run once: the extractors take
        # only the immutable ValidatedOptions.
        options = _core.ValidatedOptions(self._build_options())
        object.__setattr__(self, "_core_options", options)

    def _options(self) -> Any:
        """The ``_core.ValidatedOptions`` (built once; the config is frozen)."""
        return self._core_options

    def _build_options(self) -> Any:
        options = _core.FeatureOptions()
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "norm":
                value = "none" if value is None else value
            setattr(options, f.name, value)
        return options

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy by fields: the cached C++ options are rebuilt on load.
        return (FeatureConfig.from_dict, (self.to_dict(),))

    @property
    def n_bins(self) -> int:
        """Values per frame: ``n_mels`` for ``"mel"``, ``n_fft // 2 + 1`` for ``"stft"``."""
        return self.n_mels if self.kind == "mel" else self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames that offline extraction gives for ``num_samples`` samples."""
        return int(_core.num_frames(self._options(), int(num_samples)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (model files embed it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """The config of ``to_dict``; unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FeatureConfig field(s): {', '.join(unknown)}")
        return cls(**data)


def _check_type(name: str, value: Any) -> None:
    def bad(expected: str) -> ValueError:
        return ValueError(f"FeatureConfig.{name} must be {expected}, got {value!r}")

    if name in _STRING_FIELDS:
        if name == "norm" and value is None:
            return
        if not isinstance(value, str):
            raise bad("a string")
    elif name in _BOOL_FIELDS:
        if not isinstance(value, (bool, np.bool_)):
            raise bad("a bool")
    elif name in _INT_FIELDS:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise bad("an int")
    elif name in _FLOAT_FIELDS:
        if name == "fmax" and value is None:
            return
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise bad("a number")
        if not math.isfinite(float(value)):
            raise bad("finite")


def _check_rate(config: FeatureConfig, sample_rate: int | None) -> None:
    if sample_rate is not None and int(sample_rate) != config.sample_rate:
        raise ValueError(
            f"waveform sample rate {sample_rate} Hz differs from FeatureConfig.sample_rate "
            f"{config.sample_rate} Hz; resample first (pyser.audio.resample)"
        )


def extract_features(
    waveform: np.ndarray, config: FeatureConfig = FeatureConfig(), sample_rate: int | None = None
) -> np.ndarray:
    """Log spectrogram of a whole signal.

    Thread-safe: computed with the GIL released, so calls on several threads
    run in parallel.

    Args:
        waveform: (n_samples,) mono samples, a numpy array of float32 or float64 in
            [-1, 1], or int16 (scaled by 1/32768); either byte order, any stride
            (slices, reversed, channel columns), read-only and memory-mapped arrays
            included, converted by the C++ engine (no numpy copy). Every such form gives
            exactly the features of the same samples as native contiguous float32.
            Float samples must be finite with ``|x| <= MAX_ABS_SAMPLE``.
        config: feature options.
        sample_rate: the waveform's rate in Hz, checked against ``config.sample_rate`` if given.
    Returns:
        (n_frames, config.n_bins) float32 dB, a new array. With ``center=False``
        n_frames = 1 + (n_samples - n_fft) // hop_length (0 if shorter than n_fft);
        with ``center=True``, 1 + n_samples // hop_length.
    Raises:
        ValueError: not a 1-D numpy array, another dtype (named in the message),
            a NaN/Inf sample or one beyond ``MAX_ABS_SAMPLE`` (named with its index),
            wrong rate.
    """
    _check_rate(config, sample_rate)
    return _core.extract_features(config._options(), waveform)


def extract_features_batch(
    waveforms: Sequence[np.ndarray],
    config: FeatureConfig = FeatureConfig(),
    num_threads: int | None = None,
) -> list[np.ndarray]:
    """``extract_features`` of each waveform, computed on ``num_threads`` threads.

    Args:
        waveforms: sequence of (n_i,) arrays as for ``extract_features``.
        config: feature options.
        num_threads: worker threads; ``None`` = all cores.
    Returns:
        list of (n_frames_i, n_bins) float32 arrays, in input order.
    """
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return _core.extract_features_batch(config._options(), list(waveforms), num_threads or 0)


class StreamingFeatures:
    """Frame-by-frame features of audio arriving in chunks of any size.

    Frame t covers samples [t·hop_length, t·hop_length + n_fft) from the stream
    start (librosa ``center=False``) and is returned by the call whose chunk
    completes it, so any chunking gives the same frames, bit for bit, as
    ``extract_features`` with ``center=False``. A bad chunk raises ValueError
    and leaves the stream as it was.

    Threads: a stream belongs to one thread at a time (hand it over freely, e.g.
    through a queue). Using it from several threads at once is safe but rarely
    meaningful: its calls are serialised by a per-stream lock, so each call sees
    the stream as some whole call left it and racing chunks are appended in the
    order their calls take the lock, which the caller does not control. The lock
    is taken with the GIL released, so a long chunk on one thread never stalls
    the others. Different streams share nothing and run in parallel.
    ``extract_features`` and ``extract_features_batch`` may be called from any
    number of threads at once.

    Example:
        >>> sf = StreamingFeatures(FeatureConfig())
        >>> frames = sf.accept_waveform(chunk)   # (n_new, 128) float32
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        if not isinstance(config, FeatureConfig):
            raise ValueError(f"config must be a FeatureConfig, got {type(config).__name__}")
        self.config = config
        self._stream = _core.StreamingFeatures(config._options())

    def accept_waveform(self, chunk: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Append ``chunk`` ((n,) float32/float64 in [-1, 1] or int16, at config.sample_rate).

        Args:
            chunk: the next samples, any length (0 included), in any form that
                ``extract_features`` takes (dtype, byte order, stride); chunks of
                different forms may follow each other.
            sample_rate: the chunk's rate in Hz, checked against ``config.sample_rate`` if given.
        Returns:
            (n_new, n_bins) float32, the frames this chunk completes (a new array,
            owned by the caller). The first of them has absolute index
            ``num_frames`` as read before the call (when no other thread feeds the
            stream meanwhile); frame i starts at sample ``i * hop_length``.
        Raises:
            ValueError: as ``extract_features``; the stream is left unchanged.
        """
        if sample_rate is not None:
            _check_rate(self.config, sample_rate)
        return self._stream.accept_waveform(chunk)

    def reset(self) -> None:
        """Forget all audio; the next sample starts a new stream at frame 0."""
        self._stream.reset()

    @property
    def num_frames(self) -> int:
        """Frames emitted since the start (or the last reset)."""
        return self._stream.num_frames

    @property
    def num_samples(self) -> int:
        """Samples accepted since the start (or the last reset)."""
        return self._stream.num_samples

    @property
    def n_bins(self) -> int:
        return self._stream.n_bins
