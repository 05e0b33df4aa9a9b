"""Online speaker adaptation: per-bin feature normalisation by the speech a stream has heard.

Emotion cues sit on top of large speaker and channel differences in the log spectrum (a
deep voice, a bright microphone). Subtracting each speaker's mean spectrum removes most of
them; the classical systems do it with all of a speaker's data at once. Here it is done
online, from what one stream (one speaker, one microphone) has said so far:

    mu_speaker = (prior_frames * mu_population + sum of heard speech frames)
                 / (prior_frames + number of heard speech frames)
    model input = frames + (mu_population - mu_speaker)

``mu_population`` is the mean speech frame of the training data and ``prior_frames`` a
pseudo-count that shrinks a short history toward it, so with nothing heard the input is
unchanged and the model behaves as without adaptation. The estimate changes only between
utterances (never inside one), so streaming stays exact and an utterance never normalises
itself. Training draws the same estimate from random sets of other utterances of the same
speaker (pyser.training.speaker_adapt), none included as often as several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MAX_GAIN", "SpeakerAdaptation", "SpeakerState"]

MAX_GAIN = 2.0
"""The most a scaling adaptation multiplies (or divides) a bin's deviations by."""


@dataclass(frozen=True)
class SpeakerAdaptation:
    """A model's adaptation constants (stored in its metadata as ``speaker_adaptation``).

    Attributes:
        population_mean: (n_bins,) dB, the mean VAD-speech frame of the training data.
        prior_frames: pseudo-count of ``population_mean`` in a speaker's estimate (frames).
    """

    population_mean: np.ndarray
    prior_frames: float
    population_std: np.ndarray | None = None
    """(n_bins,) dB, the per-bin standard deviation of the training data's speech frames;
    set, the adaptation also scales each bin to it (see :meth:`affine`)."""

    def __post_init__(self) -> None:
        mean = np.asarray(self.population_mean, dtype=np.float64).reshape(-1)
        if mean.size == 0 or not np.isfinite(mean).all():
            raise ValueError("speaker_adaptation: population_mean must be finite, non-empty")
        if not (np.isfinite(self.prior_frames) and self.prior_frames > 0):
            raise ValueError(
                f"speaker_adaptation: prior_frames must be > 0, got {self.prior_frames!r}"
            )
        object.__setattr__(self, "population_mean", mean)
        if self.population_std is not None:
            std = np.asarray(self.population_std, dtype=np.float64).reshape(-1)
            if std.shape != mean.shape or not (np.isfinite(std).all() and (std > 0).all()):
                raise ValueError("speaker_adaptation: population_std must be finite, > 0 "
                                 f"and have {mean.size} bins")
            object.__setattr__(self, "population_std", std)

    @property
    def n_bins(self) -> int:
        return int(self.population_mean.size)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"population_mean": [float(v) for v in self.population_mean],
                               "prior_frames": float(self.prior_frames)}
        if self.population_std is not None:
            out["population_std"] = [float(v) for v in self.population_std]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeakerAdaptation:
        try:
            std = d.get("population_std")
            return cls(np.asarray(d["population_mean"], dtype=np.float64),
                       float(d["prior_frames"]),
                       None if std is None else np.asarray(std, dtype=np.float64))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"speaker_adaptation metadata is malformed: {exc}") from exc

    def shift(self, speech_sum: np.ndarray, speech_frames: float) -> np.ndarray:
        """(n_bins,) float32 added to every frame, for heard speech with per-bin sum
        ``speech_sum`` (n_bins,) over ``speech_frames`` frames (0 -> zeros)."""
        n0 = self.prior_frames
        mu = (n0 * self.population_mean + speech_sum) / (n0 + speech_frames)
        return (self.population_mean - mu).astype(np.float32)

    def affine(self, speech_sum: np.ndarray, speech_sumsq: np.ndarray,
               speech_frames: float) -> np.ndarray:
        """(2, n_bins) float32 (gain, offset): frames become ``frames * gain + offset``, that
        is the speaker's per-bin mean and standard deviation mapped onto the population's,
        both estimated with the prior's pseudo-count. The gain is kept within
        [1 / MAX_GAIN, MAX_GAIN] so that a short, flat history cannot blow a bin up."""
        if self.population_std is None:
            raise ValueError("speaker_adaptation: affine needs population_std")
        n0, n = self.prior_frames, float(speech_frames)
        mu_pop, var_pop = self.population_mean, self.population_std ** 2
        mu = (n0 * mu_pop + speech_sum) / (n0 + n)
        second = (n0 * (var_pop + mu_pop ** 2) + speech_sumsq) / (n0 + n)
        std = np.sqrt(np.maximum(second - mu ** 2, 1e-6))
        gain = np.clip(self.population_std / std, 1 / MAX_GAIN, MAX_GAIN)
        return np.stack([gain, mu_pop - mu * gain]).astype(np.float32)

    def new_speaker(self) -> SpeakerState:
        return SpeakerState(self)


class SpeakerState:
    """What one speaker (one stream) has said so far, as the adjustment it gives the features.

    Create with :meth:`pyser.Recognizer.new_speaker`; pass to ``Recognizer.predict(...,
    speaker=state)`` utterance after utterance (or let an ``EmotionStream`` keep its own).
    """

    def __init__(self, adaptation: SpeakerAdaptation) -> None:
        self.adaptation = adaptation
        self.reset()

    def reset(self) -> None:
        """Forget the speaker: the frames are read as they are again."""
        n_bins = self.adaptation.n_bins
        self._sum = np.zeros(n_bins, dtype=np.float64)
        self._sumsq = np.zeros(n_bins, dtype=np.float64)
        self._count = 0
        self._gain: np.ndarray | None = None
        self._shift = np.zeros(n_bins, dtype=np.float32)

    @property
    def speech_frames(self) -> int:
        """Speech frames heard so far."""
        return self._count

    @property
    def shift(self) -> np.ndarray:
        """(n_bins,) float32 dB added to the frames of the next utterance (after the gain,
        for a scaling adaptation)."""
        return self._shift

    @property
    def gain(self) -> np.ndarray | None:
        """(n_bins,) float32 the frames of the next utterance are multiplied by first (None:
        a shift-only adaptation, or nothing heard yet)."""
        return self._gain

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Frames (n, n_bins) dB as the adapted model reads them (a new float32 array)."""
        frames = np.asarray(frames, dtype=np.float32)
        if self._gain is None:
            return frames + self._shift
        return frames * self._gain + self._shift

    def add(self, frames: np.ndarray) -> None:
        """Hear speech frames (n, n_bins) dB (after an utterance, never during it)."""
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 2 or frames.shape[1] != self.adaptation.n_bins:
            raise ValueError(
                f"SpeakerState.add: frames must be (n, {self.adaptation.n_bins}), "
                f"got {frames.shape}"
            )
        if not np.isfinite(frames).all():
            raise ValueError("SpeakerState.add: frames hold NaN or inf")
        scales = self.adaptation.population_std is not None  # only then are squares needed
        self.add_sums(frames.sum(axis=0), len(frames),
                      np.square(frames).sum(axis=0) if scales else None)

    def add_sums(self, speech_sum: np.ndarray, speech_frames: int,
                 speech_sumsq: np.ndarray | None = None) -> None:
        """Hear speech given as its per-bin sum (n_bins,) over ``speech_frames`` frames, and
        its per-bin sum of squares (needed by a scaling adaptation)."""
        if speech_frames <= 0:
            return
        scales = self.adaptation.population_std is not None
        if scales and speech_sumsq is None:
            raise ValueError("SpeakerState.add_sums: this model's adaptation scales the "
                             "features and needs the sum of squares")
        self._sum = self._sum + np.asarray(speech_sum, dtype=np.float64)
        if speech_sumsq is not None:
            self._sumsq = self._sumsq + np.asarray(speech_sumsq, dtype=np.float64)
        self._count += int(speech_frames)
        if scales:
            self._gain, self._shift = self.adaptation.affine(self._sum, self._sumsq, self._count)
        else:
            self._shift = self.adaptation.shift(self._sum, self._count)
