"""A corpus made ready for training: its usable utterances, labels, folds and features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pyser.training.cache import FeatureCache
from pyser.training.config import ConfigError, TrainConfig
from pyser.training.datasets import TASKS, load_corpus
from pyser.training.losses import class_counts
from pyser.training.runtime import Runtime
from pyser.training.splits import make_folds
from pyser.training.store import FeatureStore

__all__ = ["PreparedData", "prepare_data"]


@dataclass
class PreparedData:
    """A corpus ready for training: utterances, labels, folds and features."""

    utts: list
    labels: tuple[str, ...]
    y: np.ndarray
    folds: list
    store: FeatureStore
    feature_config: Any
    split_kind: str
    info: dict = field(default_factory=dict)


def prepare_data(cfg: TrainConfig, rt: Runtime | None = None) -> PreparedData:
    """Load the corpus, make the folds and the feature store (rank 0 fills the cache first)."""
    rt = rt or Runtime(torch.device("cpu"))
    root = cfg.resolved_data_root()
    corpus = load_corpus(cfg.corpus, root, cfg.task)
    labels = TASKS[cfg.task]
    utts = [u for u in corpus if u.label in labels]
    if not utts:
        raise ValueError(f"no {cfg.task} utterances in corpus {cfg.corpus} at {root}")
    # Features first: utterances whose audio cannot be used are left out before the split.
    fc = cfg.feature_config()
    cache = FeatureCache(cfg.cache_dir, fc)
    max_frames = round(cfg.max_seconds * fc.frame_rate)
    store = None
    keep_full = not cfg.crop_eval
    if rt.is_main:
        store = FeatureStore(utts, cache, max_frames, cfg.preload, cfg.progress, keep_full)
    rt.barrier()
    if store is None:
        store = FeatureStore(utts, cache, max_frames, cfg.preload, False, keep_full)
    utts = store.utts
    if not utts:
        raise ValueError(f"no usable {cfg.task} utterances in corpus {cfg.corpus} at {root}")
    # Files left out: the loader's problems (bad names, unreadable headers, missing audio)
    # and the audio the feature store could not use.
    skipped = [{"path": str(path), "reason": reason} for path, reason in corpus.report.problems]
    skipped += [{"path": str(u.path), "reason": reason} for u, reason in store.skipped]
    y = np.array([labels.index(u.label) for u in utts], dtype=np.int64)
    kind = cfg.split_kind()
    folds = make_folds(kind, utts, cfg.n_folds, list(cfg.seeds))
    if cfg.folds:
        available = sorted({f.fold for f in folds})
        missing = sorted(set(cfg.folds) - set(available))
        if missing:
            raise ConfigError(f"folds {missing} do not exist; this split has folds {available}")
        folds = [f for f in folds if f.fold in set(cfg.folds)]
    n_cropped = int((store.full_lengths > max_frames).sum())
    info = {
        "corpus": cfg.corpus,
        "data_root": str(root),
        "task": cfg.task,
        "labels": list(labels),
        "n_utterances": len(utts),
        "class_counts": {labels[c]: int(n) for c, n in enumerate(class_counts(y, len(labels)))},
        "excluded": dict(corpus.report.excluded),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "n_speakers": len({u.speaker for u in utts}),
        "split": kind,
        "n_folds_run": len(folds),
        "feature_config": fc.to_dict(),
        "max_frames": max_frames,
        "n_cropped": n_cropped,
        "hours": float(sum(u.duration_s for u in utts) / 3600.0),
    }
    return PreparedData(utts, tuple(labels), y, folds, store, fc, kind, info)
