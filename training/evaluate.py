"""Evaluate a saved pyser model file on a corpus (all of it, or one fold's test part).

    python -m pyser.training.evaluate runs/paper_mel_center/folds/r0_f0/model.pt --corpus emodb
    pyser evaluate model.pt --corpus iemocap --root /data/IEMOCAP --split paper --fold 0

Features are computed with the model's own feature configuration (from its metadata)
through the feature cache; long utterances are centre-cropped as in training when the
model's provenance says so (``max_seconds`` and ``crop_eval``), unless ``max_seconds`` is
given. Utterances whose label is not one of the model's labels are left out (counted).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pyser import FeatureConfig
from pyser.model import CRNN, load_model
from pyser.training.cache import FeatureCache
from pyser.training.datasets import EMOTIONS, load_corpus
from pyser.training.metrics import logits_report
from pyser.training.predict import predict
from pyser.training.runtime import select_device
from pyser.training.splits import default_split, make_folds
from pyser.training.store import FeatureStore

__all__ = ["evaluate_model", "load_eager_model"]

log = logging.getLogger(__name__)


def load_eager_model(path: str | Path) -> tuple[Any, Any]:
    """An eager ``pyser.model.CRNN`` with the weights of a saved model file, and its metadata.

    (Export and plotting need the eager module; ``load_model`` gives TorchScript.)
    """
    scripted, meta = load_model(path)
    net = CRNN(n_bins=int(meta.model["n_bins"]), n_classes=len(meta.labels))
    net.load_state_dict(scripted.state_dict())
    return net.eval(), meta


def evaluate_model(
    model_path: str | Path,
    corpus: str,
    root: str | Path,
    task: str | None = None,
    split: str | None = None,
    fold: int | None = None,
    repeat_seed: int | None = None,
    n_folds: int | None = None,
    cache_dir: str | Path = ".cache/features",
    device: str = "cpu",
    batch_size: int = 64,
    max_seconds: float | None = None,
) -> dict:
    """Metrics of a model file on ``corpus``.

    Args:
        model_path: a file written by ``pyser.model.save_model``.
        corpus, root: as ``pyser.training.datasets.load_corpus``.
        task: label set to load (default: the model's training task, else ``4class``).
        split, fold, repeat_seed, n_folds: with ``fold`` given, score only that fold's
            test part of the ``split`` ("paper" or "speaker") made with seed ``repeat_seed``
            into ``n_folds`` folds (defaults: the model's provenance, else speaker/paper by
            corpus, seed 0, 5 folds).
        max_seconds: centre-crop length; default from the model's provenance (no crop
            when the model was trained with ``crop_eval = false`` or has no provenance).
    Returns:
        ``{"model", "corpus", "root", "task", "labels", "n", "excluded", "excluded_by",
        "n_skipped", "skipped", "ua", "wa", "macro_f1", "confusion", "recall", "precision",
        "f1", "support"}``: ``excluded`` counts the utterances whose emotion is not one of
        the model's labels (``excluded_by``: per emotion), ``skipped`` lists the files left
        out with the reason (names outside the corpus scheme, audio that cannot be used).
    """
    dev = select_device(device)
    model, meta = load_model(model_path, map_location=dev)
    prov = meta.provenance or {}
    task = task or prov.get("task", "4class")
    loaded = load_corpus(corpus, Path(root), task)
    names = EMOTIONS.get(corpus.lower(), {})
    excluded_by: Counter = Counter()
    for code, n in loaded.report.excluded.items():  # emotions outside the task
        excluded_by[names.get(code) or str(code)] += n
    keep = []
    for u in loaded:
        if u.label in meta.labels:
            keep.append(u)
        else:  # a task label the model does not have
            excluded_by[u.label] += 1
    if not keep:
        raise ValueError(f"no utterances of {corpus} carry the model's labels {meta.labels}")
    fc = FeatureConfig.from_dict(meta.feature_config)
    if max_seconds is None and prov.get("crop_eval", False):
        max_seconds = prov.get("max_seconds")
    max_frames = round(max_seconds * fc.frame_rate) if max_seconds else 0
    cache = FeatureCache(cache_dir, fc)
    # Features of every utterance first (as training does), so that files whose audio cannot
    # be used leave the split exactly as they left the training run's.
    store = FeatureStore(keep, cache, max_frames, preload=fold is None)
    usable = store.utts
    if not usable:
        raise ValueError(f"no usable audio among the {len(keep)} utterances of {corpus}")
    skipped = [{"path": str(p), "reason": r} for p, r in loaded.report.problems]
    skipped += [{"path": str(u.path), "reason": r} for u, r in store.skipped]
    y = np.array([meta.labels.index(u.label) for u in usable], dtype=np.int64)
    idx = np.arange(len(usable))
    if fold is not None:
        kind = split or prov.get("split") or default_split(corpus)
        seed = repeat_seed if repeat_seed is not None else prov.get("split_seed", 0)
        n = n_folds if n_folds is not None else prov.get("n_folds", 5)
        folds = [f for f in make_folds(kind, usable, n, [seed]) if f.fold == fold]
        if not folds:
            raise ValueError(f"fold {fold} does not exist in the {kind} split")
        idx = np.asarray(folds[0].test, dtype=np.int64)
    logits, _ = predict(model, store, idx, batch_size, dev)
    report = logits_report(y[idx], logits, len(meta.labels))
    return {
        "model": str(model_path),
        "corpus": corpus,
        "root": str(root),
        "task": task,
        "labels": list(meta.labels),
        "excluded": sum(excluded_by.values()),
        "excluded_by": dict(excluded_by),
        "n_skipped": len(skipped),
        "skipped": skipped,
        **report,
    }


if __name__ == "__main__":  # python -m pyser.training.evaluate
    from pyser.training.cli import main

    sys.exit(main("evaluate"))
