"""Evaluate a saved pyser model file on a corpus (all of it, or one fold's test part).

    python -m training.evaluate runs/paper_mel_center/folds/r0_f0/model.pt --corpus emodb
    pyser evaluate model.pt --corpus iemocap --root /data/IEMOCAP --split paper --fold 0

Features are computed with the model's own feature configuration (from its metadata)
through the feature cache; long utterances are centre-cropped as in training when the
model's provenance says so (``max_seconds`` and ``crop_eval``), unless ``max_seconds`` is
given. Utterances whose label is not one of the model's labels are left out (counted).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyser._io import strict_json
from training.train import FeatureStore, _report, predict, setup_logging

__all__ = ["evaluate_model", "load_eager_model", "main"]

log = logging.getLogger(__name__)


def load_eager_model(path: str | Path) -> tuple[Any, Any]:
    """An eager ``pyser.model.CRNN`` with the weights of a saved model file, and its metadata.

    (Export and plotting need the eager module; ``load_model`` gives TorchScript.)
    """
    from pyser.model import CRNN, load_model

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
        corpus, root: as ``training.datasets.load_corpus``.
        task: label set to load (default: the model's training task, else ``4class``).
        split, fold, repeat_seed, n_folds: with ``fold`` given, score only that fold's
            test part of the ``split`` ("paper" or "speaker") made with seed ``repeat_seed``
            into ``n_folds`` folds (defaults: the model's provenance, else speaker/paper by
            corpus, seed 0, 5 folds).
        max_seconds: centre-crop length; default from the model's provenance (no crop
            when the model was trained with ``crop_eval = false`` or has no provenance).
    Returns:
        ``{"model", "corpus", "root", "task", "labels", "n", "excluded", "ua", "wa",
        "macro_f1", "confusion", "recall", "precision", "f1", "support"}``.
    """
    from pyser import FeatureConfig
    from pyser.model import load_model
    from training.cache import FeatureCache
    from training.datasets import load_corpus
    from training.splits import paper_folds, speaker_folds

    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else ("cpu" if device == "auto" else device)
    )
    model, meta = load_model(model_path, map_location=dev)
    prov = meta.provenance or {}
    task = task or prov.get("task", "4class")
    utts = list(load_corpus(corpus, Path(root), task))
    keep = [u for u in utts if u.label in meta.labels]
    excluded = len(utts) - len(keep)
    if not keep:
        raise ValueError(f"no utterances of {corpus} carry the model's labels {meta.labels}")
    y = np.array([meta.labels.index(u.label) for u in keep], dtype=np.int64)
    idx = np.arange(len(keep))
    if fold is not None:
        kind = split or prov.get("split") or ("paper" if corpus == "iemocap" else "speaker")
        make = paper_folds if kind == "paper" else speaker_folds
        seed = repeat_seed if repeat_seed is not None else prov.get("split_seed", 0)
        n = n_folds if n_folds is not None else prov.get("n_folds", 5)
        folds = [f for f in make(keep, n, [seed]) if f.fold == fold]
        if not folds:
            raise ValueError(f"fold {fold} does not exist in the {kind} split")
        idx = np.asarray(folds[0].test, dtype=np.int64)
    fc = FeatureConfig.from_dict(meta.feature_config)
    if max_seconds is None and prov.get("crop_eval", False):
        max_seconds = prov.get("max_seconds")
    max_frames = round(max_seconds * fc.frame_rate) if max_seconds else 0
    cache = FeatureCache(cache_dir, fc)
    store = FeatureStore([keep[i] for i in idx], cache, max_frames, preload=True)
    logits, _ = predict(model, store, np.arange(len(idx)), batch_size, dev)
    report = _report(y[idx], logits, len(meta.labels))
    return {
        "model": str(model_path),
        "corpus": corpus,
        "root": str(root),
        "task": task,
        "labels": list(meta.labels),
        "excluded": excluded,
        **report,
    }


def run_from_args(args: argparse.Namespace) -> int:
    root = args.root or f"../shared/data/{args.corpus}"
    try:
        r = evaluate_model(
            args.model,
            args.corpus,
            root,
            task=args.task,
            split=args.split,
            fold=args.fold,
            repeat_seed=args.seed,
            n_folds=args.n_folds,
            cache_dir=args.cache_dir,
            device=args.device,
            max_seconds=args.max_seconds,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(strict_json(r))
        return 0
    print(f"{r['model']} on {r['corpus']} ({r['n']} utterances, {r['excluded']} excluded):")
    print(
        f"  UA {100 * r['ua']:.2f} %  WA {100 * r['wa']:.2f} %  macro-F1 {100 * r['macro_f1']:.2f} %"
    )
    labels = r["labels"]
    width = max(len(s) for s in labels) + 2
    print("  confusion (rows true, columns predicted):")
    print(" " * (width + 2) + "".join(f"{s[:7]:>8}" for s in labels))
    for name, row in zip(labels, r["confusion"]):
        print(f"  {name:<{width}}" + "".join(f"{v:>8}" for v in row))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from training.cli import add_evaluate_arguments

    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.split("\n")[0]
    )
    add_evaluate_arguments(p)
    setup_logging(logging.WARNING)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
