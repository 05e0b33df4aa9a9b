"""Voice activity: speech/non-speech from the log-spectrogram frames pyser already has.

An energy detector against an adaptive noise floor, with a spectral-flatness veto:

* frame level ``E_t``: 10·log10 of the mean band power (from the dB features);
* noise floor: the minimum of ``E`` over the last ``floor_window_s`` (minimum statistics:
  the pauses between syllables reach the floor even in running speech, so a stationary
  noise is absorbed into it within that window);
* a frame is *voiced-like* when ``E_t`` is at least ``margin_db`` above the floor, above
  ``min_level_db``, and its spectrum is not flat (``flatness_db`` = mean of the band dB
  minus the dB of the mean band power, 0 for white noise, well below for speech with its
  tilt and formants);
* hangover: speech starts after ``min_speech_s`` of such frames in a row (at the first of
  them) and ends after ``min_silence_s`` without one (after the last of them).

Why not a neural VAD: a silero-vad call costs about as much as a cached CRNN hop per
stream, while this costs a few microseconds per 10 ms frame on features already computed;
its accuracy on corpus speech, silence and noise is measured in ``bench/bench_vad.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["VadConfig", "VoiceActivityDetector", "frame_levels"]


@dataclass(frozen=True)
class VadConfig:
    """Voice-activity settings; times in seconds, levels in dB.

    Attributes:
        margin_db: a speech frame's level above the noise floor.
        min_level_db: absolute level below which nothing is speech (the features' dB scale:
            a full-scale 1 kHz sine is about -14 dB, digital silence -100 dB).
        max_flatness_db: frames whose spectral flatness is above this (flatter, noise-like)
            are not speech.
        floor_window_s: how far back the noise floor looks.
        min_speech_s: speech-like time in a row that starts a segment.
        min_silence_s: non-speech time in a row that ends one.
    """

    margin_db: float = 12.0
    min_level_db: float = -75.0
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


def frame_levels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(level_db, flatness_db), each (n,), of dB feature frames (n, n_bins)."""
    frames = np.asarray(frames, dtype=np.float64)
    mean_power = np.mean(np.power(10.0, frames / 10.0), axis=1)
    level = 10.0 * np.log10(np.maximum(mean_power, 1e-30))
    flatness = np.mean(frames, axis=1) - level
    return level, flatness


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
        self._run = 0  # frames in a row that disagree with the current state

    @property
    def latency_frames(self) -> int:
        """Frames after a transition before it is reported (the longer of the hangovers)."""
        return max(self._min_speech, self._min_silence)

    def _floor_update(self, t: int, level: float) -> float:
        q = self._floor
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
            if speech == self.in_speech:
                self._run = 0
                continue
            self._run += 1
            if not self.in_speech and self._run >= self._min_speech:
                self.in_speech, self._run = True, 0
                out.append(("start", t + 1 - self._min_speech, t))
            elif self.in_speech and self._run >= self._min_silence:
                self.in_speech, self._run = False, 0
                out.append(("end", t + 1 - self._min_silence, t))
        return out
