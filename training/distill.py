"""Knowledge distillation: one CRNN learns from the averaged posteriors of several.

Why: averaging the posteriors of three models that never heard a speaker adds about
3 UA points as served (``scripts/fold_ensemble.py``, docs/training.md), but costs three
models' work per hop. A student trained toward the teachers' averaged, tempered posteriors
(Hinton et al., 2015) keeps one model's cost. The teachers see exactly the student's
input (the same crops, speaker shifts and augmentation), so the targets need no cache.
Measured on one split seed, the student did not reliably gain (docs/training.md,
"Distilling three models into one"); the option is off by default.

A teacher must have been trained on the student's fold of the student's split, never on
its dev or test speakers: the metadata every fold's ``model.pt`` carries is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pyser.training.evaluate import load_eager_model

__all__ = ["Teachers", "teacher_paths", "teachers_ready"]


def teacher_paths(templates: Sequence[str], out_dir: str | Path, fold: Any) -> list[Path]:
    """Each template with ``{repeat}`` and ``{fold}`` filled in; relative paths lie under
    ``out_dir``.

    Raises:
        ValueError: a template names a field other than ``{repeat}`` and ``{fold}``.
    """
    paths = []
    for t in templates:
        try:
            name = t.format(repeat=int(fold.repeat), fold=int(fold.fold))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"distill_teachers entry {t!r}: only {{repeat}} and {{fold}} may "
                             f"be filled in ({exc})") from None
        paths.append(Path(out_dir) / name)  # an absolute name replaces out_dir
    return paths


def teachers_ready(paths: Sequence[Path]) -> bool:
    """Every teacher file exists, and a fold run's ``model.pt`` has its ``result.json``
    beside it (written last: the run is finished)."""
    return all(p.is_file() and (p.name != "model.pt" or (p.parent / "result.json").is_file())
               for p in paths)


def _check_teacher(path: Path, meta: Any, labels: Sequence[str], features: dict,
                   fold: dict) -> None:
    if list(meta.labels) != list(labels):
        raise ValueError(f"teacher {path} predicts {meta.labels}, the run {list(labels)}")
    if meta.feature_config != features:
        raise ValueError(f"teacher {path} reads other features than the run "
                         f"({meta.feature_config} against {features})")
    prov = meta.provenance or {}
    other = [f"{k}={prov.get(k)!r} (run: {v!r})" for k, v in fold.items() if prov.get(k) != v]
    if other:
        raise ValueError(f"teacher {path} was not trained on this fold, so it may have heard "
                         f"the run's dev or test speakers: {', '.join(other)}")


class Teachers:
    """Frozen CRNNs whose tempered posteriors, averaged, are the distillation targets."""

    def __init__(self, models: Sequence[nn.Module], temperature: float) -> None:
        if not models:
            raise ValueError("distillation needs at least one teacher")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.models = list(models)
        self.temperature = float(temperature)
        for m in self.models:
            m.eval()
            m.requires_grad_(False)

    @classmethod
    def load(cls, paths: Sequence[Path], labels: Sequence[str], features: dict, fold: dict,
             temperature: float, device: torch.device) -> Teachers:
        """The model files ``paths`` as eager CRNNs on ``device`` (so that they run under
        the student's autocast), each checked against the run.

        ``features``: the run's ``FeatureConfig.to_dict()``; ``fold``: the run's
        ``pyser.training.results.fold_identity``, which a teacher's provenance must match.

        Raises:
            FileNotFoundError: a teacher file is missing.
            ValueError: a teacher predicts other labels, reads other features, or was
                trained on another fold or split.
        """
        models = []
        for path in paths:
            model, meta = load_eager_model(path)
            _check_teacher(path, meta, labels, features, fold)
            models.append(model.to(device))
        return cls(models, temperature)

    @torch.no_grad()
    def probs(self, x: Tensor, lengths: Tensor, autocast: torch.dtype | None = None) -> Tensor:
        """(B, C) float32: the mean over teachers of ``softmax(logits / T)`` for frames
        ``x`` (B, T, n_bins) with valid ``lengths`` (B,)."""
        total = None
        for m in self.models:
            with torch.autocast(x.device.type, dtype=autocast or torch.bfloat16,
                                enabled=autocast is not None):
                logits = m(x, lengths)
            p = torch.softmax(logits.float() / self.temperature, dim=1)
            total = p if total is None else total + p
        return total / len(self.models)
