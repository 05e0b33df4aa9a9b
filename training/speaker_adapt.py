"""Online speaker adaptation in training and evaluation (see pyser.adapt for the method).

Every utterance's VAD speech frames are summed once (per bin, on the stored features). A
fold's population mean comes from its training utterances. Training gives each example the
shift of a random history: with probability ``p_none`` nothing (the unadapted model, what
``Recognizer.predict`` without a speaker gives), otherwise 1 to ``max_history`` other
training utterances of the same speaker. Evaluation is what a stream would do: each test
speaker's utterances in a fixed random order, each adapted by the ones before it (the
first by nothing), never by itself. Output normalisation (``logit_mean``) needs no
training: :func:`normalize_logits` scores streams with it after the fact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pyser.adapt import SpeakerAdaptation
from pyser.vad import VadConfig, speech_mask

__all__ = ["SpeakerHistory", "SpeechStats", "adapt_batch", "normalize_logits", "speech_stats",
           "stream_orders"]


@dataclass(frozen=True)
class SpeechStats:
    """Every stored utterance's VAD speech frames, summed per bin once.

    Attributes:
        sums: (N, n_bins) float64 per-bin sums.
        sumsqs: (N, n_bins) float64 per-bin sums of squares.
        counts: (N,) int64 speech frames.
    """

    sums: np.ndarray
    sumsqs: np.ndarray
    counts: np.ndarray


def speech_stats(store: Any, frame_rate: float, vad: VadConfig | None = None) -> SpeechStats:
    """:class:`SpeechStats` of every stored utterance (the detector's defaults unless
    ``vad``)."""
    vad = vad or VadConfig()
    sums, sumsqs, counts = [], [], []
    for i in range(len(store)):
        x = store.get(i)
        speech = x[speech_mask(x, vad, frame_rate)].astype(np.float64)
        sums.append(speech.sum(axis=0))
        sumsqs.append(np.square(speech).sum(axis=0))
        counts.append(len(speech))
    return SpeechStats(np.stack(sums), np.stack(sumsqs), np.asarray(counts, dtype=np.int64))


def adapt_batch(x: torch.Tensor, adjust: np.ndarray) -> torch.Tensor:
    """Frames ``x`` (B, T, n_bins) as the adapted model reads them: ``adjust`` is (B, n_bins)
    shifts, or (B, 2, n_bins) (gain, offset) pairs of a scaling adaptation."""
    a = torch.from_numpy(adjust).to(x.dtype)
    if a.ndim == 2:
        return x + a[:, None, :]
    return x * a[:, None, 0, :] + a[:, None, 1, :]


class SpeakerHistory:
    """One fold's adaptation: its constants and the adjustment each utterance gets.

    An utterance's adjustment is its shift (n_bins,), or with ``scale`` its (gain, offset)
    pair (2, n_bins) (:meth:`pyser.adapt.SpeakerAdaptation.affine`); :func:`adapt_batch`
    applies either.

    Args:
        stats: :func:`speech_stats` of all utterances.
        speakers: (N,) a speaker key per utterance (corpus and speaker).
        train_idx: the fold's training utterances (population statistics; training
            histories).
        prior_frames, max_history, p_none, scale: see TrainConfig's ``speaker_adapt_*`` keys.
    """

    def __init__(self, stats: SpeechStats, speakers: Sequence[Any], train_idx: Sequence[int],
                 prior_frames: float, max_history: int, p_none: float,
                 scale: bool = False) -> None:
        train_idx = np.asarray(train_idx, dtype=np.int64)
        n = int(stats.counts[train_idx].sum())
        if n == 0:
            raise ValueError("speaker adaptation: the VAD found no speech in the training set")
        mean = stats.sums[train_idx].sum(axis=0) / n
        std = None
        if scale:
            std = np.sqrt(np.maximum(stats.sumsqs[train_idx].sum(axis=0) / n - mean ** 2, 1e-6))
        self.adaptation = SpeakerAdaptation(mean, prior_frames, std)
        self.stats = stats
        self.speakers = list(speakers)
        self.max_history, self.p_none, self.scale = int(max_history), float(p_none), scale
        self._train_by_speaker: dict[Any, np.ndarray] = {
            k: np.asarray(v, dtype=np.int64)
            for k, v in _group(train_idx, self.speakers).items()
        }

    @property
    def shape(self) -> tuple[int, ...]:
        """One utterance's adjustment: (n_bins,) or (2, n_bins)."""
        n_bins = self.adaptation.n_bins
        return (2, n_bins) if self.scale else (n_bins,)

    def adjust(self, total: np.ndarray, total_sq: np.ndarray, frames: float) -> np.ndarray:
        """The adjustment after hearing speech with these per-bin sums (nothing: identity)."""
        if self.scale:
            return self.adaptation.affine(total, total_sq, frames)
        return self.adaptation.shift(total, frames)

    def identity(self, n: int) -> np.ndarray:
        """(n, *shape) float32 adjustments that leave the frames as they are."""
        out = np.zeros((n, *self.shape), dtype=np.float32)
        if self.scale:
            out[:, 0] = 1.0
        return out

    def _of(self, history: np.ndarray) -> np.ndarray:
        s = self.stats
        return self.adjust(s.sums[history].sum(axis=0), s.sumsqs[history].sum(axis=0),
                           float(s.counts[history].sum()))

    def train_shifts(self, batch: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """(B, *shape) float32: a random same-speaker history's adjustment per training
        example."""
        out = self.identity(len(batch))
        for row, i in enumerate(batch):
            others = self._train_by_speaker[self.speakers[int(i)]]
            others = others[others != i]
            if len(others) == 0 or rng.random() < self.p_none:
                continue
            k = int(rng.integers(1, min(self.max_history, len(others)) + 1))
            out[row] = self._of(rng.choice(others, size=k, replace=False))
        return out

    def stream_shifts(self, idx: Sequence[int], seed: int = 0) -> np.ndarray:
        """(len(idx), *shape) float32: each utterance's adjustment when each speaker's
        utterances among ``idx`` go through one stream in a random order (``seed``), the
        first with no history."""
        idx = np.asarray(idx, dtype=np.int64)
        out = self.identity(len(idx))
        s = self.stats
        for order in stream_orders([self.speakers[i] for i in idx], seed):
            heard = np.cumsum(s.sums[idx[order]], axis=0)
            heard_sq = np.cumsum(s.sumsqs[idx[order]], axis=0)
            frames = np.cumsum(s.counts[idx[order]])
            for p in range(1, len(order)):
                out[order[p]] = self.adjust(heard[p - 1], heard_sq[p - 1], float(frames[p - 1]))
        return out


def normalize_logits(logits: np.ndarray, speakers: Sequence[Any], seed: int,
                     adaptation: SpeakerAdaptation) -> np.ndarray:
    """(n, C) float64: ``logits`` (n, C) as speaker streams score them with output
    normalisation. Each speaker's items (``speakers[p]`` is item ``p``'s) go through one
    :class:`pyser.adapt.SpeakerState` in :func:`stream_orders` order (``seed``, the order of
    :meth:`SpeakerHistory.stream_shifts`): each is normalised by the outputs of those before
    it, never by itself. The runtime's own arithmetic, so evaluation scores what ships."""
    logits = np.asarray(logits, dtype=np.float64)
    out = logits.copy()
    for order in stream_orders(speakers, seed):
        state = adaptation.new_speaker()
        for p in order:
            out[p] = state.score(logits[p])
            state.add_logits(logits[p])
    return out


def stream_orders(keys: Sequence[Any], seed: int = 0) -> list[np.ndarray]:
    """The order in which a stream hears each speaker's items: ``keys[p]`` is item ``p``'s
    speaker; per speaker (in a fixed order of keys) a random permutation (``seed``) of its
    positions. Training scores the model's test streams in these orders, and the baseline's
    online normalisation walks the same ones."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.asarray(positions, dtype=np.int64))
            for positions in _group(np.arange(len(keys)), keys).values()]


def _group(items: Sequence[int], keys: Sequence[Any]) -> dict[Any, list[int]]:
    """``items`` by ``keys[item]`` (keys indexed by item value), in a fixed order."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for i in items:
        groups[keys[int(i)]].append(int(i))
    return dict(sorted(groups.items(), key=lambda kv: str(kv[0])))
