"""A corpus (or several pooled) made ready for training: usable utterances, labels, folds and
features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pyser.training.aux_emotions import AuxEmotions, extra_utterances
from pyser.training.cache import FeatureCache
from pyser.training.config import ConfigError, TrainConfig
from pyser.training.datasets import EMOTIONS, TASKS, LoadReport, Utterance, load_corpora
from pyser.training.losses import class_counts
from pyser.training.runtime import Runtime
from pyser.training.splits import Fold, make_folds
from pyser.training.store import FeatureStore

__all__ = ["PreparedData", "corpus_info", "fold_sizes_by_corpus", "prepare_data", "select_folds"]


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
    speech: tuple | None = None
    """The SpeechStats of every utterance's VAD speech frames, filled on first use by
    speaker adaptation (pyser.training.speaker_adapt.speech_stats)."""
    aux: AuxEmotions | None = None
    """With ``aux_emotions``: the extra utterances (stored after the task's, label -1 in
    ``y``) and every utterance's own emotion; None otherwise."""


def prepare_data(cfg: TrainConfig, rt: Runtime | None = None) -> PreparedData:
    """Load the corpus (or corpora), make the folds and the feature store (rank 0 fills the
    cache first)."""
    rt = rt or Runtime(torch.device("cpu"))
    sources = cfg.corpus_sources()
    utts, reports = load_corpora([(s.name, s.kind, s.root) for s in sources], cfg.task)
    labels = TASKS[cfg.task]
    where = ", ".join(f"{s.name} at {s.root}" for s in sources)
    utts = [u for u in utts if u.label in labels]
    if not utts:
        raise ValueError(f"no {cfg.task} utterances in {where}")
    extras = (extra_utterances([(s.name, s.kind, s.root) for s in sources], cfg.task, utts)
              if cfg.aux_emotions else [])
    # Features first: utterances whose audio cannot be used are left out before the split.
    fc = cfg.feature_config()
    cache = FeatureCache(cfg.cache_dir, fc)
    max_frames = round(cfg.max_seconds * fc.frame_rate)
    store = None
    keep_full = not cfg.crop_eval
    if rt.is_main:
        store = FeatureStore(utts + extras, cache, max_frames, cfg.preload, cfg.progress,
                             keep_full)
    rt.barrier()
    if store is None:
        store = FeatureStore(utts + extras, cache, max_frames, cfg.preload, False, keep_full)
    # The store keeps the order: the task's usable utterances first, then the extras.
    n_task = sum(u.label in labels for u in store.utts)
    utts = store.utts[:n_task]
    if not utts:
        raise ValueError(f"no usable {cfg.task} utterances in {where}")
    # Files left out: the loaders' problems (bad names, unreadable headers, missing audio)
    # and the audio the feature store could not use.
    skipped = [
        {"path": str(path), "reason": reason}
        for report in reports.values()
        for path, reason in report.problems
    ]
    skipped += [{"path": str(u.path), "reason": reason} for u, reason in store.skipped]
    y = np.array([labels.index(u.label) for u in utts], dtype=np.int64)
    kind = cfg.split_kind()
    folds = select_folds(make_folds(kind, utts, cfg.n_folds, list(cfg.seeds)), cfg.folds)
    n_cropped = int((store.full_lengths[:n_task] > max_frames).sum())
    several = len(sources) > 1
    info = {
        "corpus": cfg.corpus_label(),
        "data_root": {s.name: str(s.root) for s in sources} if several else str(sources[0].root),
        "task": cfg.task,
        "labels": list(labels),
        "n_utterances": len(utts),
        "class_counts": {labels[c]: int(n) for c, n in enumerate(class_counts(y, len(labels)))},
        "excluded": _excluded(reports, several),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "n_speakers": len({(u.corpus, u.speaker) for u in utts}),
        "split": kind,
        "n_folds_run": len(folds),
        "feature_config": fc.to_dict(),
        "max_frames": max_frames,
        "n_cropped": n_cropped,
        "hours": float(sum(u.duration_s for u in utts) / 3600.0),
    }
    if several:
        info["corpora"] = corpus_info(utts, reports, labels)
        info["fold_sizes_by_corpus"] = {
            f"r{f.repeat}_f{f.fold}": fold_sizes_by_corpus(utts, f) for f in folds
        }
    aux = None
    if cfg.aux_emotions:
        aux = AuxEmotions.of(store.utts, n_task)
        info["aux_emotions"] = aux.counts(np.arange(n_task, len(store.utts)))
        # indices run over the store: the extras' task label is -1 (never a fold's)
        utts = store.utts
        y = np.concatenate([y, np.full(aux.n_extra, -1, dtype=np.int64)])
    return PreparedData(utts, tuple(labels), y, folds, store, fc, kind, info, aux=aux)


def select_folds(folds: list[Fold], wanted: list[int]) -> list[Fold]:
    """The folds whose index is in ``wanted`` (all when empty); ConfigError naming the
    indices that do not exist."""
    if not wanted:
        return folds
    available = sorted({f.fold for f in folds})
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise ConfigError(f"folds {missing} do not exist; this split has folds {available}")
    return [f for f in folds if f.fold in set(wanted)]


def _excluded(reports: dict[str, LoadReport], several: bool) -> dict[str, int]:
    """Utterances excluded by the task, by the corpus's own emotion code (``corpus:code``
    when several corpora are loaded)."""
    out: dict[str, int] = {}
    for name, report in reports.items():
        for code, n in report.excluded.items():
            out[f"{name}:{code}" if several else code] = int(n)
    return out


def corpus_info(
    utts: Sequence[Utterance], reports: dict[str, LoadReport], labels: Sequence[str]
) -> dict[str, dict]:
    """Per corpus: its folder, the usable utterances, their class counts, speakers, and the
    utterances the task excluded (by the corpus's own code and emotion name)."""
    out = {}
    for name, report in reports.items():
        mine = [u for u in utts if u.corpus == name]
        names = EMOTIONS.get(report.corpus, {})
        out[name] = {
            "data_root": str(report.root),
            "n_utterances": len(mine),
            "class_counts": {lab: sum(u.label == lab for u in mine) for lab in labels},
            "n_speakers": len({u.speaker for u in mine}),
            "excluded": {
                f"{code} ({names[code]})" if names.get(code) else code: int(n)
                for code, n in sorted(report.excluded.items())
            },
        }
    return out


def fold_sizes_by_corpus(utts: Sequence[Utterance], fold: Fold) -> dict[str, dict[str, int]]:
    """``{corpus: {"train": n, "dev": n, "test": n}}`` of one fold."""
    corpora = sorted({u.corpus for u in utts})
    out = {c: {"train": 0, "dev": 0, "test": 0} for c in corpora}
    for part in ("train", "dev", "test"):
        for i in getattr(fold, part):
            out[utts[i].corpus][part] += 1
    return out
