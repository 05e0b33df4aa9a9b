"""Online speaker adaptation in training and evaluation (see pyser.adapt for the method).

Every utterance's VAD speech frames are summed once (per bin, on the stored features). A
fold's population mean comes from its training utterances. Training gives each example the
shift of a random history: with probability ``p_none`` nothing (the unadapted model, what
``Recognizer.predict`` without a speaker gives), otherwise 1 to ``max_history`` other
training utterances of the same speaker. Evaluation is what a stream would do: each test
speaker's utterances in a fixed random order, each adapted by the ones before it (the
first by nothing), never by itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyser.adapt import SpeakerAdaptation
from pyser.vad import VadConfig, speech_mask

__all__ = ["SpeakerHistory", "speech_sums", "stream_orders"]


def speech_sums(store: Any, frame_rate: float, vad: VadConfig | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(sums (N, n_bins) float64, counts (N,) int64) of every stored utterance's VAD speech
    frames (the detector's defaults unless ``vad``)."""
    vad = vad or VadConfig()
    sums, counts = [], []
    for i in range(len(store)):
        x = store.get(i)
        m = speech_mask(x, vad, frame_rate)
        sums.append(x[m].sum(axis=0, dtype=np.float64))
        counts.append(int(m.sum()))
    return np.stack(sums), np.asarray(counts, dtype=np.int64)


class SpeakerHistory:
    """One fold's adaptation: its constants and the shifts each utterance gets.

    Args:
        sums, counts: :func:`speech_sums` of all utterances.
        speakers: (N,) a speaker key per utterance (corpus and speaker).
        train_idx: the fold's training utterances (population mean; training histories).
        prior_frames, max_history, p_none: see TrainConfig's ``speaker_adapt_*`` keys.
    """

    def __init__(self, sums: np.ndarray, counts: np.ndarray, speakers: Sequence[Any],
                 train_idx: Sequence[int], prior_frames: float, max_history: int,
                 p_none: float) -> None:
        train_idx = np.asarray(train_idx, dtype=np.int64)
        n = int(counts[train_idx].sum())
        if n == 0:
            raise ValueError("speaker adaptation: the VAD found no speech in the training set")
        self.adaptation = SpeakerAdaptation(sums[train_idx].sum(axis=0) / n, prior_frames)
        self.sums, self.counts = sums, counts
        self.speakers = list(speakers)
        self.max_history, self.p_none = int(max_history), float(p_none)
        self._train_by_speaker: dict[Any, np.ndarray] = {
            k: np.asarray(v, dtype=np.int64)
            for k, v in _group(train_idx, self.speakers).items()
        }

    def _shift(self, history: np.ndarray) -> np.ndarray:
        return self.adaptation.shift(self.sums[history].sum(axis=0),
                                     float(self.counts[history].sum()))

    def train_shifts(self, batch: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """(B, n_bins) float32: a random same-speaker history's shift per training example."""
        out = np.zeros((len(batch), self.adaptation.n_bins), dtype=np.float32)
        for row, i in enumerate(batch):
            others = self._train_by_speaker[self.speakers[int(i)]]
            others = others[others != i]
            if len(others) == 0 or rng.random() < self.p_none:
                continue
            k = int(rng.integers(1, min(self.max_history, len(others)) + 1))
            out[row] = self._shift(rng.choice(others, size=k, replace=False))
        return out

    def stream_shifts(self, idx: Sequence[int], seed: int = 0) -> np.ndarray:
        """(len(idx), n_bins) float32: each utterance's shift when each speaker's utterances
        among ``idx`` go through one stream in a random order (``seed``), the first with
        no history."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.zeros((len(idx), self.adaptation.n_bins), dtype=np.float32)
        for order in stream_orders([self.speakers[i] for i in idx], seed):
            heard = np.cumsum(self.sums[idx[order]], axis=0)
            frames = np.cumsum(self.counts[idx[order]])
            for p in range(1, len(order)):
                out[order[p]] = self.adaptation.shift(heard[p - 1], float(frames[p - 1]))
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
