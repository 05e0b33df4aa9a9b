"""Online speaker adaptation in training and evaluation (see pyser.adapt for the method).

Every utterance's VAD speech frames are summed once (per bin, on the stored features). A
fold's population mean comes from its training utterances. Training gives each example the
shift of a random history: with probability ``p_none`` nothing (the unadapted model, what
``Recognizer.predict`` without a speaker gives), otherwise 1 to ``max_history`` other
training utterances of the same speaker. Evaluation is what a stream would do: each test
speaker's utterances in a fixed random order, each adapted by the ones before it (the
first by nothing), never by itself. Output normalisation (``logit_mean``) needs no
training: :func:`normalize_logits` scores streams with it after the fact; with
:class:`LogitMemory` the loss reads normalised logits too.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pyser.adapt import SpeakerAdaptation
from pyser.vad import VadConfig, speech_mask

__all__ = ["LogitMemory", "SpeakerHistory", "SpeechStats", "adapt_batch", "normalize_logits",
           "speech_stats", "stream_orders"]


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

    def draw(self, batch: Sequence[int], rng: np.random.Generator) -> list[np.ndarray | None]:
        """Each training example's random history: 1 to ``max_history`` other training
        utterances of its speaker (indices), or None (``p_none`` of them, and a speaker's
        only utterance)."""
        out: list[np.ndarray | None] = []
        for i in batch:
            others = self._train_by_speaker[self.speakers[int(i)]]
            others = others[others != i]
            if len(others) == 0 or rng.random() < self.p_none:
                out.append(None)
                continue
            k = int(rng.integers(1, min(self.max_history, len(others)) + 1))
            out.append(rng.choice(others, size=k, replace=False))
        return out

    def shifts_of(self, histories: Sequence[np.ndarray | None]) -> np.ndarray:
        """(B, *shape) float32: the adjustment each of :meth:`draw`'s histories gives."""
        out = self.identity(len(histories))
        for row, history in enumerate(histories):
            if history is not None:
                out[row] = self._of(history)
        return out

    def train_shifts(self, batch: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """(B, *shape) float32: a random same-speaker history's adjustment per training
        example."""
        return self.shifts_of(self.draw(batch, rng))

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


class LogitMemory:
    """Output normalisation in training, so that the loss reads logits as the runtime serves
    them (``speaker_adapt_logit_train``).

    The runtime normalises each logit by its speaker's earlier outputs
    (:meth:`pyser.adapt.SpeakerState.score`). In training an example's earlier utterances are
    its feature history (:meth:`SpeakerHistory.draw`); scoring them anew would cost a forward
    pass each, so the memory keeps every training utterance's embedding z from the last
    batch it was in and reads their logits through the current FC2. The population's
    statistics are those of every remembered training utterance's logits. Until each training
    utterance has been in a batch once, logits pass unchanged. The normalisation's gain and
    shift are constants of the step: the gradient flows through the example's own logits.

    Args:
        adaptation: the fold's feature adaptation (its logit fields are replaced).
        n_items: the number of stored utterances (indices run over all of them).
        train_idx: the training utterances.
        dim: the embedding's size.
        prior: output normalisation's prior, in utterances (> 0).
        scale: also map each logit's spread (``speaker_adapt_logit_scale``).
    """

    def __init__(self, adaptation: SpeakerAdaptation, n_items: int, train_idx: Sequence[int],
                 dim: int, prior: float, scale: bool) -> None:
        if not prior > 0:
            raise ValueError(f"LogitMemory: prior must be > 0, got {prior!r}")
        self.adaptation, self.prior, self.scale = adaptation, float(prior), scale
        self.train_idx = np.asarray(train_idx, dtype=np.int64)
        self.z = np.zeros((n_items, dim), dtype=np.float32)
        self.seen = np.zeros(n_items, dtype=bool)

    @property
    def ready(self) -> bool:
        """Whether every training utterance has an embedding yet."""
        return bool(self.seen[self.train_idx].all())

    def remember(self, batch: Sequence[int], z: torch.Tensor) -> None:
        """Keep ``z`` (B, dim), the embeddings of ``batch``'s utterances."""
        rows = np.asarray(batch, dtype=np.int64)
        self.z[rows] = z.detach().float().cpu().numpy()
        self.seen[rows] = True

    def affines(self, histories: Sequence[np.ndarray | None], fc2: torch.nn.Linear
                ) -> np.ndarray:
        """(B, 2, C) float64 (gain, shift) per example: the runtime's
        :meth:`~pyser.adapt.SpeakerAdaptation.logit_affine` for its history's remembered
        logits (None: gain 1, shift 0)."""
        out = np.zeros((len(histories), 2, fc2.out_features))
        out[:, 0] = 1.0
        if not self.ready:
            return out
        with torch.no_grad():
            z = torch.from_numpy(self.z).to(fc2.weight.device, fc2.weight.dtype)
            logits = fc2(z).double().cpu().numpy()
        population = logits[self.train_idx]
        adaptation = dataclasses.replace(
            self.adaptation, logit_mean=population.mean(axis=0), logit_prior=self.prior,
            logit_std=np.maximum(population.std(axis=0), 1e-6) if self.scale else None)
        for row, history in enumerate(histories):
            if history is not None:
                heard = logits[history]
                out[row] = adaptation.logit_affine(heard.sum(axis=0),
                                                   np.square(heard).sum(axis=0), len(heard))
        return out

    def normaliser(self, batch: Sequence[int], histories: Sequence[np.ndarray | None],
                   fc2: torch.nn.Linear) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``(logits, z) -> logits`` for one training step on ``batch`` (its examples'
        ``histories``): the logits normalised, and the batch's embeddings remembered."""
        def apply(logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            affine = torch.from_numpy(self.affines(histories, fc2)).to(logits)
            self.remember(batch, z)
            return logits * affine[:, 0] + affine[:, 1]
        return apply

    def state_dict(self) -> dict:
        return {"z": torch.from_numpy(self.z.copy()), "seen": torch.from_numpy(self.seen.copy())}

    def load_state_dict(self, state: dict) -> None:
        z, seen = state["z"].numpy(), state["seen"].numpy()
        if z.shape != self.z.shape or seen.shape != self.seen.shape:
            raise ValueError(f"logit memory of shape {tuple(z.shape)} does not fit this fold's "
                             f"{self.z.shape}")
        self.z, self.seen = z.astype(np.float32), seen.astype(bool)


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
