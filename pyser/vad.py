"""Voice activity: speech/non-speech from the log-spectrogram frames pyser already has.

An energy detector against an adaptive noise floor, with a spectral-flatness veto:

* frame level ``E_t``: 10·log10 of the mean band power (from the dB features);
* noise floor: the minimum of ``E`` over the last ``floor_window_s`` (minimum statistics:
  the pauses between syllables reach the floor even in running speech, so a stationary
  noise is absorbed into it within that window); digital silence (padding, a muted input)
  is not a noise floor and is left out;
* a frame is *voiced-like* when ``E_t`` is at least ``margin_db`` above the floor, above
  ``min_level_db``, and its spectrum is not flat (``flatness_db`` = mean of the band dB
  minus the dB of the mean band power, 0 for white noise, well below for speech with its
  tilt and formants);
* hangover: speech starts when at least ``START_FRACTION`` of the last ``min_speech_s``
  of frames are speech-like, the newest included (at the first speech-like one of them:
  a fricative or a breathy onset may look flat for a frame or two), and ends after
  ``min_silence_s`` without one (after the last of them).

Why not a neural VAD: a silero-vad call costs about as much as a cached CRNN hop per
stream, while this costs a few microseconds per 10 ms frame on features already computed;
its accuracy on corpus speech, silence and noise is measured in ``bench/bench_vad.py``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["VadConfig", "VoiceActivityDetector", "frame_levels", "mask_span", "speech_mask",
           "speech_span"]


@dataclass(frozen=True)
class VadConfig:
    """Voice-activity settings; times in seconds, levels in dB.

    Attributes:
        margin_db: a speech frame's level above the noise floor.
        min_level_db: absolute level below which nothing is speech, on the features' dB
            scale (mean Mel band power): a sine of amplitude 0.5 is about +7 dB, white noise
            of RMS 0.1 about -8 dB, speech peaks near 0 dB, quiet room noise -60 to -45 dB,
            digital silence -100 dB.
        max_flatness_db: frames whose spectral flatness is above this (flatter, noise-like)
            are not speech.
        floor_window_s: how far back the noise floor looks.
        min_speech_s: the span of mostly speech-like frames that starts a segment.
        min_silence_s: non-speech time in a row that ends one.
    """

    margin_db: float = 12.0
    min_level_db: float = -55.0
    max_flatness_db: float = -6.0
    floor_window_s: float = 2.0
    min_speech_s: float = 0.15
    min_silence_s: float = 0.5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"VadConfig.{name} must be a number, got {value!r}")
            if not np.isfinite(value):
                raise ValueError(f"VadConfig.{name} must be finite, got {value!r}")
        for name in ("floor_window_s", "min_speech_s", "min_silence_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VadConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.margin_db < 0:
            raise ValueError(f"VadConfig.margin_db must be >= 0, got {self.margin_db}")


#: Share of speech-like frames in the last ``min_speech_s`` that starts speech.
START_FRACTION = 0.8
#: Frames below this level are digital silence (padding, muted input), not a noise floor.
DIGITAL_SILENCE_DB = -90.0
#: Spectral flatness only counts bands within this range of the frame's loudest band, so
#: that band-limited input (8 kHz telephone audio has no bands above 4 kHz) is judged on the
#: bands it has.
_FLATNESS_RANGE_DB = 60.0


def frame_levels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(level_db, flatness_db), each (n,), of dB feature frames (n, n_bins)."""
    frames = np.asarray(frames, dtype=np.float64)
    power = np.exp(frames * (math.log(10.0) / 10.0))
    level = 10.0 * np.log10(np.maximum(power.mean(axis=1), 1e-30))
    floor = frames.max(axis=1, keepdims=True) - _FLATNESS_RANGE_DB
    if (frames.min(axis=1, keepdims=True) > floor).all():  # every band counts (the usual case)
        return level, frames.mean(axis=1) - level
    used = frames > floor
    count = used.sum(axis=1)
    mean_db = np.where(used, frames, 0.0).sum(axis=1) / count
    used_power = np.where(used, power, 0.0).sum(axis=1) / count
    return level, mean_db - 10.0 * np.log10(np.maximum(used_power, 1e-30))


class VoiceActivityDetector:
    """Frame-by-frame speech segmentation; one per stream.

    Feed frames in order with :meth:`accept`; it returns the transitions they cause as
    ``("start", frame, known)`` (the first speech frame) and ``("end", frame, known)`` (one
    past the last speech frame), where ``known`` is the frame whose arrival decided it;
    frame indices count from the first frame accepted since a reset.
    """

    def __init__(self, config: VadConfig, frame_rate: float) -> None:
        if not isinstance(config, VadConfig):
            raise ValueError(f"config must be a VadConfig, got {type(config).__name__}")
        self.config = config
        self._window = max(1, round(config.floor_window_s * frame_rate))
        self._min_speech = max(1, round(config.min_speech_s * frame_rate))
        self._min_silence = max(1, round(config.min_silence_s * frame_rate))
        self.reset()

    def reset(self) -> None:
        self._t = 0
        self._floor: deque[tuple[int, float]] = deque()  # (frame, level), levels increasing
        self.in_speech = False
        self._recent: deque[int] = deque()  # speech-like frames among the last min_speech
        self._quiet = 0  # non-speech frames in a row while in speech

    @property
    def latency_frames(self) -> int:
        """Frames after a transition before it is reported (the longer of the hangovers)."""
        return max(self._min_speech, self._min_silence)

    def _floor_update(self, t: int, level: float) -> float:
        """Minimum level of the last ``floor_window_s`` (-inf before any sound)."""
        q = self._floor
        if level <= DIGITAL_SILENCE_DB:  # keeps the floor of real input, if any
            while q and q[0][0] <= t - self._window:
                q.popleft()
            return q[0][1] if q else -math.inf
        while q and q[-1][1] >= level:
            q.pop()
        q.append((t, level))
        while q[0][0] <= t - self._window:
            q.popleft()
        return q[0][1]

    def accept(self, frames: np.ndarray) -> list[tuple[str, int, int]]:
        """Transitions caused by ``frames`` (n, n_bins) dB, in order."""
        if len(frames) == 0:
            return []
        cfg = self.config
        level, flatness = frame_levels(frames)
        out: list[tuple[str, int, int]] = []
        for lv, fl in zip(level.tolist(), flatness.tolist()):
            t = self._t
            self._t += 1
            floor = self._floor_update(t, lv)
            speech = lv >= floor + cfg.margin_db and lv >= cfg.min_level_db
            speech = speech and fl <= cfg.max_flatness_db
            recent = self._recent
            if speech:
                recent.append(t)
            while recent and recent[0] <= t - self._min_speech:
                recent.popleft()
            if not self.in_speech:
                if speech and len(recent) >= START_FRACTION * self._min_speech:
                    self.in_speech, self._quiet = True, 0
                    out.append(("start", recent[0], t))
            elif speech:
                self._quiet = 0
            else:
                self._quiet += 1
                if self._quiet >= self._min_silence:
                    self.in_speech = False
                    out.append(("end", t + 1 - self._min_silence, t))
        return out


def speech_mask(frames: np.ndarray, config: VadConfig, frame_rate: float) -> np.ndarray:
    """(n,) bool: the frames of a whole utterance (n, n_bins) dB that ``config``'s detector
    puts inside a speech segment (a segment still open at the end runs to the last frame)."""
    mask = np.zeros(len(frames), dtype=bool)
    start = None
    for kind, t, _ in VoiceActivityDetector(config, frame_rate).accept(frames):
        if kind == "start":
            start = t
        elif start is not None:
            mask[start:t] = True
            start = None
    if start is not None:
        mask[start:] = True
    return mask


def speech_span(frames: np.ndarray, config: VadConfig, frame_rate: float,
                margin: int = 0) -> slice | None:
    """The frames of a whole utterance (n, n_bins) dB from the start of its first speech
    segment to the end of its last (the pauses between them included), widened by
    ``margin`` frames on each side: what a stream's utterance results read of it with
    that margin. None when ``config``'s detector finds no speech."""
    return mask_span(speech_mask(frames, config, frame_rate), margin)


def mask_span(mask: np.ndarray, margin: int = 0) -> slice | None:
    """The slice from the first True of ``mask`` to the last, widened by ``margin`` on each
    side within ``mask`` (None: none is True)."""
    speech = np.flatnonzero(mask)
    if not len(speech):
        return None
    return slice(max(0, int(speech[0]) - margin), min(len(mask), int(speech[-1]) + 1 + margin))
