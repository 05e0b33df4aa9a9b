"""Features of a corpus held for training: the feature store, centre-cropping, batching.

:class:`FeatureStore` gets every utterance's features through the feature cache (the same
``extract_features`` as inference), leaves out the utterances whose audio cannot be used,
and hands out centre-cropped (training length) or whole utterances; ``collate`` pads a
batch of them; ``fit_normalization`` fits the per-bin mean/std stored in the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pyser.stream import SPEECH_MARGIN_S
from pyser.training.cache import AudioDecodeError
from pyser.training.progress import progress_bar
from pyser.vad import VadConfig, speech_span

__all__ = ["FeatureStore", "centre_crop", "collate", "fit_normalization", "speech_trim"]

log = logging.getLogger(__name__)


def centre_crop(x: np.ndarray, max_frames: int) -> np.ndarray:
    """The middle ``max_frames`` frames of ``x`` (a view), or ``x`` if it is not longer.

    Start index ``(n - max_frames) // 2``, as the authors' ``load_data.py``.
    """
    n = x.shape[0]
    if max_frames <= 0 or n <= max_frames:
        return x
    start = (n - max_frames) // 2
    return x[start : start + max_frames]


class FeatureStore:
    """Features of every usable utterance, held in memory or read from the cache.

    ``get(i)`` gives the centre-cropped features (at most ``max_frames``), ``get(i,
    crop=False)`` the whole utterance; with ``keep_full=False`` (the default) only the
    cropped frames are kept in memory and ``crop=False`` is not available.

    ``trim`` (optional) maps an utterance's frames to the part of them that counts (e.g.
    :func:`speech_trim`, its speech span): every view of the utterance, whole or cropped,
    is then of that part.

    An utterance whose audio cannot be used -- missing, undecodable, truncated, NaN/Inf
    samples (:class:`pyser.training.cache.AudioDecodeError`), or shorter than one FFT frame -- is
    logged with its path and left out: ``utts`` holds the kept utterances (``i`` indexes
    them), ``kept`` their positions in the input, ``skipped`` the ``(utterance, reason)``
    pairs of the others.
    """

    def __init__(
        self,
        utts: Sequence[Any],
        cache: Any,
        max_frames: int,
        preload: bool,
        progress: bool = False,
        keep_full: bool = False,
        trim: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        utts = list(utts)
        self.cache = cache
        self.trim = trim
        self.max_frames = max_frames
        self.keep_full = keep_full
        self._mem: list[np.ndarray] | None = None
        self.skipped: list[tuple[Any, str]] = []
        kept: list[int] = []
        lengths: list[int] = []
        full_lengths: list[int] = []
        mem: list[np.ndarray] = []
        bar = progress_bar(total=len(utts), desc="features", disable=not progress, leave=False)
        workers = max(1, min(8, os.cpu_count() or 1))
        chunk = 256  # bounded memory when not preloading; threads for first-time extraction
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, len(utts), chunk):
                part = utts[start : start + chunk]
                for i, (u, (x, problem, where)) in enumerate(
                    zip(part, pool.map(self._fetch, part)), start
                ):
                    if problem is None and x.shape[0] == 0:
                        problem = "shorter than one FFT frame: no feature frames"
                    if problem is not None:
                        log.warning("skipping %s: %s", where, problem)
                        self.skipped.append((u, problem))
                        continue
                    kept.append(i)
                    full_lengths.append(full := x.shape[0])
                    if preload and keep_full:
                        mem.append(x)
                    x = centre_crop(x, max_frames)
                    lengths.append(x.shape[0])
                    if preload and not keep_full:  # a cropped view keeps the whole array: copy
                        mem.append(x.copy() if x.shape[0] < full else x)
                bar.update(len(part))
        bar.close()
        self.kept = np.asarray(kept, dtype=np.int64)
        self.utts = [utts[i] for i in kept]
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.full_lengths = np.asarray(full_lengths, dtype=np.int64)
        if preload:
            self._mem = mem

    def _fetch(self, utt: Any) -> tuple[np.ndarray | None, str | None, Any]:
        """(features, None, path), or (None, why, path) for audio that cannot be used."""
        where = getattr(utt, "path", utt)
        try:
            return self._features(utt), None, where
        except AudioDecodeError as exc:
            return None, exc.reason, exc.path
        except FileNotFoundError as exc:
            return None, f"missing audio file ({exc})", where

    def _features(self, utt: Any) -> np.ndarray:
        x = self.cache.get(utt)
        return x if self.trim is None else self.trim(x)

    def __len__(self) -> int:
        return len(self.utts)

    def get(self, i: int, crop: bool = True) -> np.ndarray:
        if not crop and not self.keep_full:
            raise ValueError("this FeatureStore keeps cropped features only (keep_full=False)")
        if self._mem is not None:
            x = self._mem[i]
        else:
            x = self._features(self.utts[i])
        if crop and (self.keep_full or self._mem is None):
            x = centre_crop(x, self.max_frames)
        return x


def speech_trim(frames: np.ndarray, frame_rate: float, margin_s: float = 0.0) -> np.ndarray:
    """An utterance's frames from its first speech onset to its last speech end (the
    default voice-activity detector), widened by ``margin_s`` on each side within the
    utterance; all of them when the detector finds no speech."""
    span = speech_span(frames, VadConfig(), frame_rate, round(margin_s * frame_rate))
    return frames if span is None else frames[span]


SERVED_VIEW = f"speech+{SPEECH_MARGIN_S}"
"""The view of an utterance that ``Recognizer.predict`` and a stream's result score."""


def view_store(store: FeatureStore, frame_rate: float, view: str) -> tuple[FeatureStore, bool]:
    """A store giving ``view`` of each of ``store``'s utterances (same utterances, same
    order), and the ``crop`` flag to read it with:

    * ``crop``: ``store`` itself, centre crops of its training length;
    * ``whole``: the whole file;
    * ``speech``: the voice-activity detector's speech span, bare;
    * ``speech+SECONDS``: that span widened by a margin; ``SERVED_VIEW`` is what the
      product scores.

    Raises ValueError for another view, or when an utterance cannot be read again.
    """
    if view == "crop":
        return store, True
    trim = None
    if view.startswith("speech"):
        margin = float(view.partition("+")[2] or 0.0)
        trim = partial(speech_trim, frame_rate=frame_rate, margin_s=margin)
    elif view != "whole":
        raise ValueError(f"unknown view {view!r}: crop, whole, speech or speech+SECONDS")
    out = FeatureStore(store.utts, store.cache, store.max_frames, True, False, True, trim)
    if len(out) != len(store):
        raise ValueError("the run's utterances could not all be read again")
    return out, False


def fit_normalization(store: FeatureStore, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std over all frames of ``idx`` (float64 sums; std 0 -> 1 as sklearn)."""
    total = None
    total_sq = None
    n = 0
    for i in idx:
        x = store.get(int(i)).astype(np.float64)
        s, sq = x.sum(axis=0), np.square(x).sum(axis=0)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        n += x.shape[0]
    if total is None or n == 0:
        raise ValueError("no training frames to fit the normalisation on")
    mean = total / n
    var = np.maximum(total_sq / n - np.square(mean), 0.0)
    std = np.sqrt(var)
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def collate(arrays: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Zero-pad (T_i, F) arrays to (B, max T_i, F) float32, with lengths (B,) int64."""
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.int64)
    x = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1], dtype=torch.float32)
    for b, a in enumerate(arrays):
        x[b, : a.shape[0]] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return x, lengths
