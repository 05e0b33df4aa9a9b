"""Audio sources: sound files and resampling to the feature sample rate."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "check_sample_rate", "load_audio", "resample",
           "to_mono_float32"]

#: Input sample rates accepted anywhere (Hz): telephone 8 kHz down to 1 kHz, up to 768 kHz.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000


def check_sample_rate(rate: object) -> int:
    """``rate`` as an int, or ValueError unless it is a whole number of Hz in the sane range."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float, np.floating)):
        raise ValueError(f"sample_rate must be a number of Hz, got {rate!r}")
    if not float(rate).is_integer() or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate must be a whole number of Hz in [{MIN_SAMPLE_RATE}, "
            f"{MAX_SAMPLE_RATE}], got {rate!r}"
        )
    return int(rate)


def to_mono_float32(samples: np.ndarray) -> np.ndarray:
    """Return ``samples`` as a 1-D float32 array in [-1, 1).

    Accepts (n,) or (n, channels) arrays of float or int16; channels are
    averaged, int16 is scaled by 1/32768.

    Raises:
        ValueError: another dtype or shape, or NaN/Inf samples.
    """
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    elif samples.dtype.kind != "f":
        raise ValueError(f"unsupported sample dtype {samples.dtype}; expected float or int16")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    elif samples.ndim != 1:
        raise ValueError(f"expected a 1-D or (samples, channels) array, got shape {samples.shape}")
    out = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError("samples contain NaN or Inf")
    return out


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a 1-D float32 signal with a polyphase (Kaiser-windowed) filter.

    Args:
        samples: (n,) float32 signal.
        orig_rate: its sample rate in Hz.
        target_rate: the wanted sample rate in Hz.
    Returns:
        (round(n * target_rate / orig_rate),) float32.
    """
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {target_rate}")
    if orig_rate == target_rate:
        return samples
    from scipy.signal import resample_poly

    g = gcd(int(orig_rate), int(target_rate))
    out = resample_poly(samples, target_rate // g, orig_rate // g)
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read a sound file (WAV, FLAC, OGG... via libsndfile) as mono float32 at ``sample_rate`` Hz.

    Returns:
        (n_samples,) float32 in [-1, 1).
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # type: ignore[attr-defined]
        raise ValueError(f"cannot decode audio file {path}: {exc}") from exc
    return resample(to_mono_float32(data), rate, sample_rate)
