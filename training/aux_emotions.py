"""Auxiliary emotions: the training speakers' utterances of emotions the task leaves out.

The paper's task keeps 4 emotions, so half of the pooled corpora's recordings (fear,
disgust, surprise, calm, boredom) go unused. With ``aux_emotions`` they join training
through a second, auxiliary head: a linear classifier on the embedding z that names every
training utterance's own emotion (the corpus's label, canonical name). Its class-weighted
cross-entropy is added to the loss, so z must also tell apart emotions the task does not
ask for; FC2 and the center loss still read the task's utterances only.

What stays as it was: the folds (made from the task's utterances alone, so the baseline's
and every other run's splits are unchanged), dev and test (task utterances of unseen
speakers), and the exported model (the head is not part of it). An extra utterance is used
only when its speaker is one of the fold's training speakers, so no dev or test speaker is
heard in training.

In :class:`pyser.training.data.PreparedData` the extra utterances follow the task's:
indices ``[0, n_task)`` are the task's and ``[n_task, N)`` the extras, whose task label is
``-1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pyser.training.datasets import Utterance, load_corpora, task_label
from pyser.training.losses import class_counts, class_weights, weighted_cross_entropy

__all__ = ["AuxEmotions", "AuxHead", "extra_utterances"]

# Canonical names that are not an emotion to learn (IEMOCAP's "other").
_NOT_AN_EMOTION = frozenset({"other"})


def extra_utterances(
    sources: Sequence[tuple[str, str, str | Path]], task: str, task_utts: Sequence[Utterance]
) -> list[Utterance]:
    """The utterances of ``sources`` whose emotion ``task`` excludes, labelled with their
    canonical emotion name (e.g. ``fearful``), in the loaders' order. Labels no loader
    knows (a manifest's own spellings) and utterances already in ``task_utts`` (by corpus
    and path) are left out."""
    everything, _ = load_corpora(sources, task=None)
    taken = {(u.corpus, u.path) for u in task_utts}
    out = []
    for u in everything:
        emotion = u.meta.get("emotion_name")
        if (emotion is None or emotion in _NOT_AN_EMOTION or (u.corpus, u.path) in taken
                or task_label(emotion, task) is not None):
            continue
        out.append(dataclasses.replace(u, label=emotion))
    return out


def _emotion(u: Utterance) -> str:
    """An utterance's own emotion, canonical name (the task label may be a merge)."""
    return str(u.meta.get("emotion_name") or u.label)


@dataclass(frozen=True)
class AuxEmotions:
    """The auxiliary emotions of a prepared corpus.

    Attributes:
        labels: the canonical emotions, sorted (the head's classes).
        y: (N,) int64, every stored utterance's own emotion as an index into ``labels``.
        n_task: utterances ``[0, n_task)`` are the task's, the rest extra.
        speakers: (N,) every stored utterance's ``(corpus, speaker)``.
    """

    labels: tuple[str, ...]
    y: np.ndarray
    n_task: int
    speakers: tuple

    @classmethod
    def of(cls, utts: Sequence[Utterance], n_task: int) -> AuxEmotions:
        """From the stored utterances, the task's ``n_task`` first."""
        names = [_emotion(u) for u in utts]
        labels = tuple(sorted(set(names)))
        y = np.array([labels.index(n) for n in names], dtype=np.int64)
        return cls(labels, y, int(n_task), tuple((u.corpus, u.speaker) for u in utts))

    @property
    def n_extra(self) -> int:
        return len(self.y) - self.n_task

    def training_pool(self, train_idx: np.ndarray) -> np.ndarray:
        """``train_idx`` followed by the extra utterances of its speakers (int64)."""
        heard = {self.speakers[int(i)] for i in train_idx}
        extra = [j for j in range(self.n_task, len(self.y)) if self.speakers[j] in heard]
        return np.concatenate([np.asarray(train_idx, dtype=np.int64),
                               np.asarray(extra, dtype=np.int64)])

    def counts(self, idx: np.ndarray) -> dict[str, int]:
        """``{emotion: utterances}`` among ``idx``."""
        n = class_counts(self.y[idx], len(self.labels))
        return {lab: int(k) for lab, k in zip(self.labels, n)}


class AuxHead(nn.Module):
    """The auxiliary classifier on z and its class-weighted cross-entropy.

    Args:
        dim: the embedding's size.
        n_labels: the auxiliary emotions.
        counts: (n_labels,) training utterances per auxiliary emotion; the loss weighs each
            class by ``max(n) / (n_c + 0.5)`` like the task's (None: unweighted).
    """

    def __init__(self, dim: int, n_labels: int,
                 counts: Sequence[int] | np.ndarray | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, n_labels)
        weights = class_weights(counts) if counts is not None else torch.ones(n_labels)
        self.register_buffer("class_weights", weights)

    def loss(self, z: Tensor, targets: Tensor) -> Tensor:
        """Scalar: the weighted cross-entropy of the head's logits on ``z`` (B, dim) against
        ``targets`` (B,) int64."""
        return weighted_cross_entropy(self.linear(z), targets, self.class_weights)
