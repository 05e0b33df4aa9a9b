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

A model may also normalise its outputs per speaker (``logit_mean`` set). The features'
mean removes the voice and the channel; the speaker's mean *output* removes what is left of
the speaker in the model's own utterance description (a voice the model hears as a little
sad whatever it says). The classical systems do this by z-scoring their utterance
functionals per speaker. With FC2 affine, centring the embedding z is centring the logits;
with ``logit_std`` set, each logit's spread is mapped onto the population's as well:

    mu_speaker  = (logit_prior * logit_mean + sum of heard logits) / (logit_prior + n_heard)
    std_speaker = the same for the second moment (``logit_std``), minus mu_speaker ** 2
    gain        = logit_std / std_speaker, within [1 / MAX_GAIN, MAX_GAIN] (1: no logit_std)
    scored logits = (logits - mu_speaker) * gain + logit_mean

``logit_mean`` and ``logit_std`` are per-class statistics of the model's logits over its
training utterances (as served) and ``logit_prior`` a pseudo-count in utterances: with
nothing heard the logits are unchanged, and a speaker's outputs move onto the population's
as it talks. It needs no training (the model is unchanged); it assumes a speaker's
utterances are not all of one emotion, as the features' mean does, but more strongly
(docs/MODEL_CARD.md).
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
    logit_mean: np.ndarray | None = None
    """(n_classes,) the model's mean logits over its training utterances, each scored as
    served (speech span with its margin, in its speaker's stream); set, a speaker's outputs
    are normalised too (see :meth:`logit_affine`)."""
    logit_prior: float = 8.0
    """Pseudo-count of the population's logit statistics in a speaker's (utterances)."""
    logit_std: np.ndarray | None = None
    """(n_classes,) the standard deviation of those logits; set (with ``logit_mean``), a
    speaker's output spread is mapped onto it too."""

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
        if self.logit_mean is not None:
            logits = np.asarray(self.logit_mean, dtype=np.float64).reshape(-1)
            if logits.size == 0 or not np.isfinite(logits).all():
                raise ValueError("speaker_adaptation: logit_mean must be finite, non-empty")
            object.__setattr__(self, "logit_mean", logits)
        if not (np.isfinite(self.logit_prior) and self.logit_prior > 0):
            raise ValueError(
                f"speaker_adaptation: logit_prior must be > 0, got {self.logit_prior!r}"
            )
        if self.logit_std is not None:
            std = np.asarray(self.logit_std, dtype=np.float64).reshape(-1)
            if (self.logit_mean is None or std.shape != self.logit_mean.shape
                    or not (np.isfinite(std).all() and (std > 0).all())):
                raise ValueError("speaker_adaptation: logit_std needs logit_mean and must be "
                                 "finite, > 0 and as long")
            object.__setattr__(self, "logit_std", std)

    @property
    def n_bins(self) -> int:
        return int(self.population_mean.size)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"population_mean": [float(v) for v in self.population_mean],
                               "prior_frames": float(self.prior_frames)}
        if self.population_std is not None:
            out["population_std"] = [float(v) for v in self.population_std]
        if self.logit_mean is not None:
            out["logit_mean"] = [float(v) for v in self.logit_mean]
            out["logit_prior"] = float(self.logit_prior)
        if self.logit_std is not None:
            out["logit_std"] = [float(v) for v in self.logit_std]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeakerAdaptation:
        try:
            std, logits, spread = (d.get("population_std"), d.get("logit_mean"),
                                   d.get("logit_std"))
            return cls(np.asarray(d["population_mean"], dtype=np.float64),
                       float(d["prior_frames"]),
                       None if std is None else np.asarray(std, dtype=np.float64),
                       None if logits is None else np.asarray(logits, dtype=np.float64),
                       float(d.get("logit_prior", cls.logit_prior)),
                       None if spread is None else np.asarray(spread, dtype=np.float64))
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

    def logit_affine(self, logit_sum: np.ndarray, logit_sumsq: np.ndarray,
                     utterances: int) -> np.ndarray:
        """(2, n_classes) float64 (gain, shift): logits become ``logits * gain + shift``, for
        heard utterances whose logits sum to ``logit_sum`` and their squares to
        ``logit_sumsq`` (each (n_classes,)). Needs ``logit_mean``."""
        if self.logit_mean is None:
            raise ValueError("speaker_adaptation: logit_affine needs logit_mean")
        n0, n, m0 = self.logit_prior, float(utterances), self.logit_mean
        mu = (n0 * m0 + logit_sum) / (n0 + n)
        gain = np.ones_like(mu)
        if self.logit_std is not None:
            second = (n0 * (self.logit_std ** 2 + m0 ** 2) + logit_sumsq) / (n0 + n)
            std = np.sqrt(np.maximum(second - mu ** 2, 1e-12))
            gain = np.clip(self.logit_std / std, 1 / MAX_GAIN, MAX_GAIN)
        return np.stack([gain, m0 - mu * gain])

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
        """Forget the speaker: frames and outputs are read as they are again."""
        n_bins = self.adaptation.n_bins
        self._sum = np.zeros(n_bins, dtype=np.float64)
        self._sumsq = np.zeros(n_bins, dtype=np.float64)
        self._count = 0
        self._gain: np.ndarray | None = None
        self._shift = np.zeros(n_bins, dtype=np.float32)
        self._logit_sum: np.ndarray | None = None
        self._logit_sumsq: np.ndarray | None = None
        self._utterances = 0
        self._logit_affine: np.ndarray | None = None

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

    @property
    def utterances(self) -> int:
        """Utterances whose outputs were heard (:meth:`add_logits`)."""
        return self._utterances

    @property
    def logit_affine(self) -> np.ndarray | None:
        """(2, n_classes) float64 (gain, shift) the next utterance's logits go through (None:
        the model does not normalise its outputs, or nothing heard yet)."""
        return self._logit_affine

    def score(self, logits: np.ndarray) -> np.ndarray:
        """Logits (..., n_classes) as this speaker's normalised outputs (float64)."""
        logits = np.asarray(logits, dtype=np.float64)
        if self._logit_affine is None:
            return logits
        return logits * self._logit_affine[0] + self._logit_affine[1]

    def add_logits(self, logits: np.ndarray) -> None:
        """Hear one utterance's logits (n_classes,) as the model gave them (not
        :meth:`score`'s), after the utterance; nothing for a model without ``logit_mean``."""
        mean = self.adaptation.logit_mean
        if mean is None:
            return
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        if logits.shape != mean.shape or not np.isfinite(logits).all():
            raise ValueError(f"SpeakerState.add_logits: logits must be {mean.size} finite "
                             f"values, got shape {logits.shape}")
        squares = np.square(logits)
        if self._logit_sum is None:
            self._logit_sum, self._logit_sumsq = logits, squares
        else:
            self._logit_sum = self._logit_sum + logits
            self._logit_sumsq = self._logit_sumsq + squares
        self._utterances += 1
        self._logit_affine = self.adaptation.logit_affine(self._logit_sum, self._logit_sumsq,
                                                          self._utterances)

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
