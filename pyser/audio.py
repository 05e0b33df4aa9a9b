"""Audio sources: sound files (whole or in chunks), the microphone, and resampling.

* :func:`load_audio` / :func:`read_audio`: a whole sound file (anything libsndfile reads).
* :func:`iter_file_chunks`: a sound file as a stream of blocks at its own rate, for
  :class:`pyser.stream.EmotionStream` (which resamples and downmixes itself).
* :class:`Microphone` and :func:`list_input_devices`: live input through PyAudio
  (PortAudio), imported only when used; ``pip install 'pyser[listen]'``.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioDecodeError",
    "AudioDeviceError",
    "InputDevice",
    "Microphone",
    "check_sample_rate",
    "import_pyaudio",
    "iter_file_chunks",
    "list_input_devices",
    "load_audio",
    "read_audio",
    "resample",
    "to_mono_float32",
    "wav_header_frames",
]

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


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an audio file")
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    return path


class AudioDecodeError(ValueError):
    """An audio file that cannot be used: undecodable, truncated, absurd rate, NaN/Inf samples.

    ``path`` is the file and ``reason`` what is wrong with it; the message names both.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"cannot decode audio file {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def wav_header_frames(path: str | os.PathLike) -> int | None:
    """Frames a RIFF/WAVE file's ``data`` chunk header claims, or None when it does not say.

    libsndfile shortens ``soundfile.info(path).frames`` to the bytes actually present, so a
    truncated WAV looks whole through it; the chunk header keeps the original size. None for
    other formats, RF64, and the "unknown length" sizes (0, 0xFFFFFFFF) of streamed WAVs.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        block_align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size)
                if len(fmt) >= 14:
                    block_align = struct.unpack_from(order + "H", fmt, 12)[0]
                f.seek(size & 1, os.SEEK_CUR)
            elif cid == b"data":
                if block_align <= 0 or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)


def _open_checked(path: Path) -> tuple[Any, int | None]:
    """(soundfile.info of ``path``, frames its header claims or None), rate range checked."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError) as exc:  # sf.LibsndfileError is a RuntimeError
        raise AudioDecodeError(path, f"not a sound file that libsndfile reads ({exc})") from None
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            path, f"sample rate {info.samplerate} Hz is outside [{MIN_SAMPLE_RATE}, "
            f"{MAX_SAMPLE_RATE}] Hz (a corrupt header?)")
    try:
        claimed = wav_header_frames(path)
    except OSError as exc:
        raise AudioDecodeError(path, f"cannot read the WAV header ({exc})") from None
    if claimed is None and info.frames > 0:
        claimed = int(info.frames)
    return info, claimed


def _truncated(path: Path, claimed: int, decoded: int) -> AudioDecodeError:
    return AudioDecodeError(
        path, f"truncated or corrupt: the header says {claimed} frames, {decoded} could be "
        "decoded")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a whole sound file (WAV, FLAC, OGG, MP3... whatever libsndfile reads) and check it.

    Checks, each failure an :class:`AudioDecodeError` (a ValueError) naming the file: the
    sample rate is in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] (from the header, before decoding:
    a header claiming 1 Hz would make resampling allocate gigabytes); the file decodes; the
    decoded length is the header's (the WAV ``data`` chunk size, else libsndfile's count: a
    WAV cut short otherwise decodes "fine" to fewer frames); every sample is finite.

    Returns:
        (samples (n, channels) float32 in [-1, 1], sample rate in Hz).
    Raises:
        FileNotFoundError: the file does not exist.
        AudioDecodeError: as above.
    """
    import soundfile as sf

    path = _check_file(path)
    _, claimed = _open_checked(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise AudioDecodeError(path, f"decoding failed ({exc})") from None
    if claimed is not None and data.shape[0] != claimed:
        raise _truncated(path, claimed, data.shape[0])
    finite = np.isfinite(data)
    if not finite.all():
        frame = int(np.argmin(finite.all(axis=1)))
        raise AudioDecodeError(
            path, f"non-finite sample (NaN or Inf) at frame {frame} of {data.shape[0]}")
    return data, int(rate)


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read a sound file (WAV, FLAC, OGG... via libsndfile) as mono float32 at ``sample_rate`` Hz.

    Returns:
        (n_samples,) float32 in [-1, 1).
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded.
    """
    data, rate = read_audio(path)
    return resample(to_mono_float32(data), rate, sample_rate)


def iter_file_chunks(
    path: str | os.PathLike, chunk_s: float = 0.1
) -> tuple[int, Iterator[np.ndarray]]:
    """A sound file as consecutive blocks, for streaming it.

    The file is opened and checked now (so a missing or undecodable file raises here, not
    at the first block); blocks are read lazily, ``chunk_s`` seconds at a time (the last
    one shorter), at the file's own rate and channel count.

    Args:
        path: any file libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3, ...).
        chunk_s: block length in seconds (> 0).
    Returns:
        (sample_rate, iterator of (n, channels) float32 blocks in [-1, 1]). The iterator
        closes the file when exhausted or closed.
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded (also raised by the iterator when the file
            turns out to be corrupt part-way), or ``chunk_s`` is not a positive number.
    """
    import soundfile as sf

    if (isinstance(chunk_s, bool) or not isinstance(chunk_s, (int, float))
            or not math.isfinite(chunk_s) or chunk_s <= 0):
        raise ValueError(f"chunk_s must be a positive number of seconds, got {chunk_s!r}")
    path = _check_file(path)
    _, claimed = _open_checked(path)
    try:
        handle = sf.SoundFile(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:  # type: ignore[attr-defined]
        raise ValueError(f"cannot decode audio file {path}: {exc}") from exc
    rate = int(handle.samplerate)
    blocksize = max(1, round(chunk_s * rate))

    def blocks() -> Iterator[np.ndarray]:
        with handle:
            done = 0
            while True:
                try:
                    block = handle.read(blocksize, dtype="float32", always_2d=True)
                except (RuntimeError, sf.LibsndfileError) as exc:  # type: ignore[attr-defined]
                    raise ValueError(
                        f"cannot decode audio file {path} after {done / rate:.2f} s: {exc}"
                    ) from exc
                if len(block) == 0:
                    if claimed is not None and done != claimed:
                        raise _truncated(path, claimed, done)
                    return
                done += len(block)
                yield block

    return rate, blocks()


# ------------------------------------------------------------------------ microphone


class AudioDeviceError(RuntimeError):
    """The microphone cannot be used: PyAudio is missing, there is no input device, or the
    device failed. The message says what to do."""


PYAUDIO_HINT = (
    "install it with `pip install pyaudio` (or `pip install 'pyser[listen]'`); building it "
    "needs PortAudio's headers: `apt-get install portaudio19-dev` (Debian/Ubuntu), "
    "`brew install portaudio` (macOS)"
)

NO_INPUT_DEVICE = (
    "no audio input device found: PortAudio lists no device that can record (no "
    "microphone, or no sound server such as PulseAudio running); to recognise a recording "
    "instead, use `pyser stream FILE`"
)


def import_pyaudio(module: ModuleType | None = None) -> ModuleType:
    """The PyAudio module: ``module`` when given (tests pass a fake), else ``import pyaudio``.

    Raises:
        AudioDeviceError: PyAudio (or the PortAudio library under it) is not installed;
            the message says how to install it.
    """
    if module is not None:
        return module
    try:
        import pyaudio
    except ImportError as exc:
        raise AudioDeviceError(f"the microphone needs PyAudio, which cannot be imported "
                               f"({exc}); {PYAUDIO_HINT}") from None
    return pyaudio


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Hide what C libraries write on fd 2 meanwhile (ALSA and JACK print a screenful of
    probing messages when PortAudio starts; they are not errors)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (e.g. replaced sys.stderr)
        yield
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)


@dataclass(frozen=True)
class InputDevice:
    """An audio input device as PortAudio sees it."""

    index: int
    name: str
    channels: int
    default_sample_rate: int
    is_default: bool

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "channels": self.channels,
                "default_sample_rate": self.default_sample_rate, "is_default": self.is_default}


def _device_error(what: str, exc: BaseException) -> AudioDeviceError:
    return AudioDeviceError(f"{what}: {exc}; list the devices with `pyser listen --list-devices`")


def _input_devices(pa: Any) -> list[InputDevice]:
    try:
        default = int(pa.get_default_input_device_info()["index"])
    except (OSError, KeyError, TypeError, ValueError):  # PortAudio: no default input device
        default = None
    try:
        infos = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
    except OSError as exc:
        raise _device_error("cannot list audio devices", exc) from None
    return [InputDevice(int(d["index"]), str(d["name"]), int(d["maxInputChannels"]),
                        round(float(d["defaultSampleRate"])), int(d["index"]) == default)
            for d in infos if int(d.get("maxInputChannels", 0)) > 0]


def list_input_devices(pyaudio: ModuleType | None = None) -> list[InputDevice]:
    """The devices PortAudio can record from (possibly none).

    Raises:
        AudioDeviceError: PyAudio is missing, or PortAudio fails.
    """
    module = import_pyaudio(pyaudio)
    with _quiet_stderr():
        try:
            pa = module.PyAudio()
        except OSError as exc:
            raise _device_error("cannot start PortAudio", exc) from None
    try:
        return _input_devices(pa)
    finally:
        pa.terminate()


def _choose_device(devices: list[InputDevice], device: int | str | None) -> InputDevice:
    if not devices:
        raise AudioDeviceError(NO_INPUT_DEVICE)
    if device is None:
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for d in devices:
            if d.index == index:
                return d
        raise AudioDeviceError(f"no input device with index {index} (inputs: "
                               f"{', '.join(str(d.index) for d in devices)}); list them with "
                               "`pyser listen --list-devices`")
    matches = [d for d in devices if str(device).lower() in d.name.lower()]
    exact = [d for d in matches if d.name.lower() == str(device).lower()]
    if len(exact) == 1 or len(matches) == 1:
        return (exact or matches)[0]
    what = "matches several" if matches else "matches no"
    raise AudioDeviceError(f"--device {device!r} {what} input device names; pass an index "
                           "from `pyser listen --list-devices`")


class Microphone:
    """Live input from an audio device through PyAudio: a context manager and an iterator.

    ::

        with Microphone() as mic:                # the default input device, its own rate
            for chunk in mic:                    # int16 (n,) blocks of chunk_s seconds
                events = stream.accept_waveform(chunk, mic.sample_rate)

    Capture runs in PortAudio's callback thread into a bounded queue that the iterator
    reads. Why a callback stream and not blocking reads: PyAudio's blocking ``read`` with
    ``exception_on_overflow=False`` drops PortAudio's input-overflow status without a trace,
    and with ``True`` it raises and throws away the block it read; the callback gets the
    status flags of every block and keeps the samples. ``overflows`` counts both kinds of
    lost audio: blocks PortAudio flagged (the device's buffer overran: samples before the
    block are missing) and blocks dropped because the reader fell more than ``max_backlog_s``
    behind. Neither stops the capture.

    Args:
        device: an input device index, a unique part of its name, or None for the default.
        sample_rate: Hz to open the device at; None: the device's default rate.
        chunk_s: seconds per block (> 0).
        channels: channels to record; 1 (the default) yields (n,) blocks, more yield
            (n, channels).
        pyaudio: the PyAudio module to use (tests pass a fake); None imports ``pyaudio``.
        max_backlog_s: audio the queue holds before blocks are dropped.
        stall_timeout_s: no audio for this long from an active device is an error.
    Raises (on open):
        AudioDeviceError: PyAudio missing, no input device, or the device cannot be opened.
    Raises (while iterating):
        AudioDeviceError: the device stopped (unplugged, server gone) or stalled.
    """

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int | None = None,
        chunk_s: float = 0.1,
        channels: int = 1,
        *,
        pyaudio: ModuleType | None = None,
        max_backlog_s: float = 5.0,
        stall_timeout_s: float = 5.0,
    ) -> None:
        for name, value in (("chunk_s", chunk_s), ("max_backlog_s", max_backlog_s),
                            ("stall_timeout_s", stall_timeout_s)):
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.device = device
        self.sample_rate: int | None = (None if sample_rate is None
                                        else check_sample_rate(sample_rate))
        self.chunk_s = float(chunk_s)
        self.channels = channels
        self.max_backlog_s = float(max_backlog_s)
        self.stall_timeout_s = float(stall_timeout_s)
        self._module = pyaudio
        self._pa: Any = None
        self._stream: Any = None
        self._queue: queue.Queue[bytes] = queue.Queue()
        self._stop = False
        #: The device opened (set by :meth:`open`).
        self.device_info: InputDevice | None = None
        #: Blocks PortAudio flagged with an input overflow (samples lost before them).
        self.input_overflows = 0
        #: Blocks dropped because the reader fell more than ``max_backlog_s`` behind.
        self.dropped_chunks = 0

    @property
    def overflows(self) -> int:
        """Blocks after or in place of which audio was lost (both kinds)."""
        return self.input_overflows + self.dropped_chunks

    # ------------------------------------------------------------------ lifetime

    def open(self) -> Microphone:
        """Open the device and start capturing (``with Microphone() as mic`` calls this)."""
        if self._stream is not None:
            return self
        module = import_pyaudio(self._module)
        self._flag_overflow = int(getattr(module, "paInputOverflow", 2))
        self._continue = getattr(module, "paContinue", 0)
        with _quiet_stderr():
            try:
                self._pa = module.PyAudio()
            except OSError as exc:
                raise _device_error("cannot start PortAudio", exc) from None
        try:
            info = _choose_device(_input_devices(self._pa), self.device)
            if self.channels > info.channels:
                raise AudioDeviceError(f"input device {info.index} ({info.name}) has "
                                       f"{info.channels} channel(s), {self.channels} asked")
            rate = self.sample_rate or check_sample_rate(info.default_sample_rate)
            frames = max(1, round(self.chunk_s * rate))
            self._queue = queue.Queue(maxsize=max(2, math.ceil(self.max_backlog_s /
                                                               self.chunk_s)))
            with _quiet_stderr():
                try:
                    self._stream = self._pa.open(
                        format=module.paInt16, channels=self.channels, rate=rate, input=True,
                        input_device_index=info.index, frames_per_buffer=frames,
                        stream_callback=self._callback, start=True)
                except (OSError, ValueError) as exc:
                    raise _device_error(
                        f"cannot open input device {info.index} ({info.name}) at {rate} Hz, "
                        f"{self.channels} channel(s)", exc) from None
        except BaseException:
            self.close()
            raise
        self.device_info, self.sample_rate = info, rate
        return self

    def close(self) -> None:
        """Stop capturing and release the device (safe to call twice, or after an error)."""
        stream, pa = self._stream, self._pa
        self._stream = self._pa = None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.stop_stream()
            with contextlib.suppress(OSError):
                stream.close()
        if pa is not None:
            with contextlib.suppress(OSError):
                pa.terminate()

    def __enter__(self) -> Microphone:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request_stop(self) -> None:
        """Make the iterator end after the blocks already captured (safe in a signal
        handler: it only sets a flag)."""
        self._stop = True

    # ------------------------------------------------------------------ capture

    def _callback(self, in_data: bytes, frame_count: int, time_info: Any,
                  status: int) -> tuple[None, int]:
        # PortAudio's thread: count and enqueue, nothing that can block.
        if status & self._flag_overflow:
            self.input_overflows += 1
        try:
            self._queue.put_nowait(in_data)
        except queue.Full:
            self.dropped_chunks += 1
        return None, self._continue

    def _active(self) -> bool:
        try:
            return bool(self._stream.is_active())
        except OSError:
            return False

    def _array(self, data: bytes) -> np.ndarray:
        x = np.frombuffer(data, dtype="<i2").astype(np.int16)  # a copy, native order
        return x.reshape(-1, self.channels) if self.channels > 1 else x

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._stream is None:
            raise RuntimeError("the Microphone is not open; use `with Microphone() as mic:`")
        last = time.monotonic()
        while not self._stop:
            try:
                data = self._queue.get(timeout=min(0.1, self.chunk_s))
            except queue.Empty:
                if self._stop:
                    break
                if not self._active():
                    raise AudioDeviceError(
                        "the input device stopped delivering audio (its PortAudio stream is "
                        "no longer active: unplugged, or the sound server went away)"
                    ) from None
                if time.monotonic() - last > self.stall_timeout_s:
                    raise AudioDeviceError(
                        f"no audio from the input device for {self.stall_timeout_s:g} s"
                    ) from None
                continue
            last = time.monotonic()
            yield self._array(data)
        # Stopped: end the capture, then hand out what was already captured.
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.stop_stream()
        while True:
            try:
                data = self._queue.get_nowait()
            except queue.Empty:
                return
            yield self._array(data)
