"""Resumable fold checkpoints: what they hold, writing them atomically, loading them safely.

A checkpoint (``folds/r<R>_f<F>/checkpoint.pt``) holds the model, optimiser and centers,
the loop's progress (step, best-dev weights, history, running log window), every RNG
state and the config and split it was written with; it loads with
``torch.load(weights_only=True)``, so a crafted file cannot run code. A fold resumed from
it continues bit-identically on the CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyser._io import atomic_write
from pyser.training.config import TrainConfig
from pyser.training.sampler import BatchSampler

__all__ = [
    "CHECKPOINT_FORMAT",
    "RESUME_KEYS",
    "CheckpointError",
    "cpu_state",
    "load_checkpoint",
    "load_resumable",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "split_digest",
    "torch_save",
]

CHECKPOINT_FORMAT = 2  # 2: RNG states as tensors and lists (loads with weights_only=True)

#: Config keys a resumed fold must share with its checkpoint (the others -- device, threads,
#: output, logging, steps -- may change between the interrupted and the resumed run).
RESUME_KEYS = (
    "corpus",
    "task",
    "feature_kind",
    "features",
    "max_seconds",
    "crop_eval",
    "split",
    "n_folds",
    "seeds",
    "batch_size",
    "lr",
    "center_lambda",
    "center_alpha",
    "warmup_steps",
    "class_weighted",
    "label_smoothing",
    "lr_schedule",
    "lr_final",
    "aug_gain_db",
    "aug_freq_warp",
    "aug_time_masks",
    "aug_time_mask_frames",
    "aug_freq_masks",
    "aug_freq_mask_bins",
    "aug_speed",
    "aug_noise_snr_db",
    "speaker_adapt",
    "speaker_adapt_prior_s",
    "speaker_adapt_max_history",
    "speaker_adapt_p_none",
    "speaker_adapt_scale",
    "speaker_adapt_logit_train",
    "distill_teachers",
    "distill_weight",
    "distill_temperature",
    "aux_emotions",
    "aux_weight",
    "average_from_step",
    "eval_every",
    "best_after_step",
    "seed",
)

_CHECKPOINT_KEYS = (
    "format", "model", "optimizer", "centers", "step", "best", "history", "window", "rng",
    "config", "split_digest",
)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from: damaged, unsafe, or of other settings."""


def split_digest(fold: Any) -> str:
    """SHA-1 of a fold's train/dev/test indices (a checkpoint belongs to one split)."""
    h = hashlib.sha1()
    for part in (fold.train, fold.dev, fold.test):
        h.update(np.asarray(part, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def rng_state(sampler: BatchSampler) -> dict:
    """Every RNG the loop draws from, as types ``torch.load(weights_only=True)`` accepts
    (tensors, lists, dicts, str, int, float, None)."""
    version, mt, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": [version, list(mt), gauss_next],
        "numpy": {
            "name": str(name),
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),  # uint32 words
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "sampler": sampler.state_dict(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, sampler: BatchSampler) -> None:
    """Restore every RNG (and the sampler) from :func:`rng_state`'s ``state``."""
    version, mt, gauss_next = state["python"]
    random.setstate((version, tuple(mt), gauss_next))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    sampler.load_state_dict(state["sampler"])


def cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A copy of ``module``'s state dict on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def torch_save(obj: Any, path: Path) -> None:
    """torch.save through the shared atomic write (temp file, fsync, os.replace)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    centers: nn.Module,
    sampler: BatchSampler,
    step: int,
    best: dict,
    history: dict,
    window: dict,
    cfg: TrainConfig,
    fold: Any,
    average: dict | None = None,
    logit_memory: dict | None = None,
    aux_head: dict | None = None,
) -> None:
    """Write the fold's checkpoint after ``step`` steps (atomically); ``average``: the
    weight average's state, when one is kept; ``logit_memory``: the embeddings training's
    output normalisation remembers (pyser.training.speaker_adapt.LogitMemory), when used;
    ``aux_head``: the auxiliary emotions' head (pyser.training.aux_emotions), when used."""
    torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": cpu_state(model),
            "optimizer": optimizer.state_dict(),
            "centers": cpu_state(centers),
            "step": step,
            "best": best,
            "history": history,
            "window": window,
            "rng": rng_state(sampler),
            "config": cfg.to_dict(),
            "split_digest": split_digest(fold),
            "repeat": int(fold.repeat),
            "fold": int(fold.fold),
            "average": average,
            "logit_memory": logit_memory,
            "aux_head": aux_head,
        },
        path,
    )


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by the training loop, loaded with ``weights_only=True``.

    Only tensors and plain data are unpickled, so a crafted file cannot run code. Raises
    :class:`CheckpointError` naming the file when it is empty, truncated, corrupt, holds
    other objects, or is of another format.
    """
    advice = "delete it (the fold restarts) or run without --resume"
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (an interrupted copy?); {advice}")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt (not a torch.save archive); {advice}"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in first:
            raise CheckpointError(
                f"checkpoint {path} holds objects other than tensors and plain data, which "
                f"could run code when loaded; refusing it (not written by this pyser?): "
                f"{advice}"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({first}); {advice}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({first}); {advice}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"checkpoint {path} has format {found!r}, this pyser writes {CHECKPOINT_FORMAT}; "
            f"{advice}"
        )
    missing = [k for k in _CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; {advice}")
    return ckpt



def load_resumable(path: Path, cfg: TrainConfig, fold: Any) -> dict:
    """:func:`load_checkpoint`, checked to belong to ``fold``'s split and to ``cfg``'s
    training settings (:data:`RESUME_KEYS`); CheckpointError otherwise."""
    ckpt = load_checkpoint(path)
    if ckpt["split_digest"] != split_digest(fold):
        raise CheckpointError(
            f"{path} belongs to a different split; delete it or run without --resume"
        )
    old = ckpt["config"]
    keys = RESUME_KEYS + (("steps",) if cfg.lr_schedule != "constant" else ())  # sets the curve
    # A key the checkpoint's pyser did not know yet had its default then.
    defaults = {f.name: f.default if f.default_factory is dataclasses.MISSING
                else f.default_factory() for f in dataclasses.fields(TrainConfig)}
    changed = sorted(k for k in keys if old.get(k, defaults.get(k)) != getattr(cfg, k))
    if changed:
        was = ", ".join(f"{k}={old.get(k)!r}" for k in changed)
        raise CheckpointError(
            f"{path} was written with different {', '.join(changed)} ({was}); "
            "a resumed run must use the same training settings"
        )
    return ckpt
