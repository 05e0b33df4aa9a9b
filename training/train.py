"""Train the CRNN with softmax + center loss (Dai et al., ICASSP 2019) over n-fold splits.

A readable linear script over a typed config (``training/config.py``)::

    python -m training.train training/configs/paper_mel_center.toml --set steps=2000
    pyser train paper_mel_center --device cuda --resume
    torchrun --nproc_per_node 4 -m training.train paper_mel_center     # one process per GPU

What one run does:

1. load the corpus (``training.datasets.load_corpus``) and make the folds (the paper's
   IEMOCAP protocol or speaker-independent folds, ``training.splits``);
2. get features through the feature cache (the same ``extract_features`` as inference),
   centre-crop utterances longer than ``max_seconds``;
3. per fold: fit per-bin mean/std on the training frames (stored in the model), train
   with Adam on random batches for a fixed number of steps (CE + lambda * center loss,
   lambda = 0 and alpha = 1 for the first ``warmup_steps``), evaluate dev UA every
   ``eval_every`` steps, keep the best-dev-UA weights, test them;
4. write ``out_dir/<experiment>/``: ``results.json|md|csv``, per fold ``model.pt``
   (a ``pyser.model.save_model`` file), ``result.json``, ``embeddings.npz`` (optional)
   and a resumable ``checkpoint.pt``; ``log.jsonl`` says what ran on which data.

Resuming (``resume=True``) skips finished folds and continues an interrupted fold from its
last checkpoint; on CPU a resumed run gives bit-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import random
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyser._io import atomic_write, atomic_write_text, json_safe, strict_json
from training.config import ConfigError, TrainConfig, load_experiment
from training.losses import CenterLoss, LossSchedule, class_counts, class_weights, joint_loss

__all__ = [
    "BatchSampler",
    "CheckpointError",
    "FeatureStore",
    "PreparedData",
    "TrainingStopped",
    "centre_crop",
    "collate",
    "fit_normalization",
    "load_checkpoint",
    "main",
    "predict",
    "prepare_data",
    "run",
    "train_fold",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2  # 2: RNG states as tensors and lists (loads with weights_only=True)


class TrainingStopped(Exception):
    """Raised inside a fold when ``stop_at_step`` is reached (after checkpointing)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped after step {step}")
        self.step = step


# ============================================================================ runtime


@dataclass
class Runtime:
    """Where this process runs: device and torch.distributed rank/world size."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def _select_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available")
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def setup_runtime(device: str) -> Runtime:
    """Device, and torch.distributed when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(device=_select_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _select_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world, local_rank, True)


@contextlib.contextmanager
def _torch_settings(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Thread count and determinism for the run; restored afterwards."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.deterministic:
            if device.type == "cuda":
                # cuBLAS needs this before its first call to be deterministic.
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.deterministic = True
                torch.backends.cudnn.benchmark = False
            # warn_only: an op without a deterministic kernel warns instead of failing a long run.
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn


class EventLog:
    """JSON-lines event log (rank 0 only); every event is also logged at INFO."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, **fields: Any) -> None:
        record = {
            "time": _dt.datetime.now().isoformat(timespec="seconds"),
            "event": event,
            **fields,
        }
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(strict_json(record) + "\n")


# ============================================================================ data


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

    An utterance whose audio cannot be used -- missing, undecodable, truncated, NaN/Inf
    samples (:class:`training.cache.AudioDecodeError`), or shorter than one FFT frame -- is
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
    ) -> None:
        utts = list(utts)
        self.cache = cache
        self.max_frames = max_frames
        self.keep_full = keep_full
        self._mem: list[np.ndarray] | None = None
        self.skipped: list[tuple[Any, str]] = []
        kept: list[int] = []
        lengths: list[int] = []
        full_lengths: list[int] = []
        mem: list[np.ndarray] = []
        bar = _tqdm(total=len(utts), desc="features", disable=not progress, leave=False)
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
        from training.cache import AudioDecodeError

        where = getattr(utt, "path", utt)
        try:
            return self.cache.get(utt), None, where
        except AudioDecodeError as exc:
            return None, exc.reason, exc.path
        except FileNotFoundError as exc:
            return None, f"missing audio file ({exc})", where

    def __len__(self) -> int:
        return len(self.utts)

    def get(self, i: int, crop: bool = True) -> np.ndarray:
        if not crop and not self.keep_full:
            raise ValueError("this FeatureStore keeps cropped features only (keep_full=False)")
        if self._mem is not None:
            x = self._mem[i]
        else:
            x = self.cache.get(self.utts[i])
        if crop and (self.keep_full or self._mem is None):
            x = centre_crop(x, self.max_frames)
        return x


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


class BatchSampler:
    """Fixed-size random batches from a stream of seeded epoch permutations.

    A batch may span two epochs, so every batch has exactly ``batch_size`` examples
    (unless the training set is smaller). ``state_dict`` captures everything needed to
    continue the stream exactly.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1:
            raise ValueError("empty training set")
        self.n = n
        self.batch_size = min(batch_size, n)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.perm = self.rng.permutation(n)
        self.pos = 0
        self.epoch = 0

    def next(self) -> np.ndarray:
        out = []
        need = self.batch_size
        while need:
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
            if self.pos == self.n:
                self.perm = self.rng.permutation(self.n)
                self.pos = 0
                self.epoch += 1
        return np.concatenate(out)

    def state_dict(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "perm": self.perm.tolist(),
            "pos": self.pos,
            "epoch": self.epoch,
            "n": self.n,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n or state["batch_size"] != self.batch_size:
            raise ValueError("checkpoint batch sampler does not match this training set")
        self.rng.bit_generator.state = state["rng"]
        self.perm = np.asarray(state["perm"], dtype=np.int64)
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])


@torch.no_grad()
def predict(
    model: Any,
    store: FeatureStore,
    idx: Sequence[int],
    batch_size: int,
    device: torch.device,
    embeddings: bool = False,
    crop: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (n, C) (and z (n, D) when ``embeddings``) for utterances ``idx``, in order.

    Works with an eager CRNN or a TorchScript one; batches are formed by length so that
    little padding is computed (the model's outputs do not depend on padding). ``crop``:
    centre-cropped (training length) or whole utterances.
    """
    was_training = getattr(model, "training", False)
    model.eval()
    idx = np.asarray(idx, dtype=np.int64)
    lengths_all = store.lengths if crop else store.full_lengths
    order = np.argsort(-lengths_all[idx], kind="stable")
    logits_out: list[np.ndarray] = [None] * len(idx)  # type: ignore[list-item]
    z_out: list[np.ndarray] = [None] * len(idx)  # type: ignore[list-item]
    for start in range(0, len(order), batch_size):
        pos = order[start : start + batch_size]
        x, lengths = collate([store.get(int(idx[p]), crop) for p in pos])
        x, lengths = x.to(device), lengths.to(device)
        if embeddings:
            logits, z = model.forward_with_embedding(x, lengths)
            z = z.float().cpu().numpy()
        else:
            logits, z = model(x, lengths), None
        logits = logits.float().cpu().numpy()
        for j, p in enumerate(pos):
            logits_out[p] = logits[j]
            if z is not None:
                z_out[p] = z[j]
    if was_training:
        model.train()
    n_classes = logits_out[0].shape[0] if len(idx) else 0
    logits_arr = np.stack(logits_out) if len(idx) else np.zeros((0, n_classes), np.float32)
    z_arr = np.stack(z_out) if embeddings and len(idx) else None
    return logits_arr, z_arr


def _report(y_true: np.ndarray, logits: np.ndarray, n_classes: int) -> dict:
    from training.metrics import classification_report

    r = classification_report(y_true, logits.argmax(axis=1), n_classes)
    return {k: json_safe(v) for k, v in r.items()}


# ============================================================================ prepared data


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
    from training.cache import FeatureCache
    from training.datasets import TASKS, load_corpus
    from training.splits import paper_folds, speaker_folds

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
    make = paper_folds if kind == "paper" else speaker_folds
    folds = make(utts, cfg.n_folds, list(cfg.seeds))
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


# ============================================================================ one fold


class _WithEmbedding(nn.Module):
    """forward -> (logits, z), so DistributedDataParallel sees the call it must hook."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        return self.net.forward_with_embedding(x, lengths)


#: Config keys a resumed fold must share with its checkpoint (the others -- device, threads,
#: output, logging, steps -- may change between the interrupted and the resumed run).
_RESUME_KEYS = (
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
    "eval_every",
    "best_after_step",
    "seed",
)


def _fold_seed(cfg: TrainConfig, fold: Any) -> int:
    return int(cfg.seed) * 1_000_003 + int(fold.repeat) * 1009 + int(fold.fold)


def _fold_dir(cfg: TrainConfig, fold: Any) -> Path:
    return Path(cfg.out_dir) / cfg.experiment / "folds" / f"r{fold.repeat}_f{fold.fold}"


def _split_digest(fold: Any) -> str:
    h = hashlib.sha1()
    for part in (fold.train, fold.dev, fold.test):
        h.update(np.asarray(part, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def _rng_state(sampler: BatchSampler) -> dict:
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


def _set_rng_state(state: dict, sampler: BatchSampler) -> None:
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


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from: damaged, unsafe, or of other settings."""


_CHECKPOINT_KEYS = (
    "format", "model", "optimizer", "centers", "step", "best", "history", "window", "rng",
    "config", "split_digest",
)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by the training loop, loaded with ``weights_only=True``.

    Only tensors and plain data are unpickled, so a crafted file cannot run code. Raises
    :class:`CheckpointError` naming the file when it is empty, truncated, corrupt, holds
    other objects, or is of another format.
    """
    import pickle

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


def _torch_save(obj: Any, path: Path) -> None:
    """torch.save through the shared atomic write (temp file, fsync, os.replace)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _tqdm(**kwargs: Any) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"training needs the training extras ({exc.name or 'tqdm'} is not installed): "
            "pip install 'pyser[train]'"
        ) from None

    if kwargs.get("disable") is False:
        kwargs["disable"] = None  # tqdm: None = only on a terminal
    return tqdm(**kwargs)


def train_fold(
    cfg: TrainConfig,
    data: PreparedData,
    fold: Any,
    rt: Runtime,
    events: EventLog,
    resume: bool = False,
) -> dict:
    """Train and test one fold; returns its result dict (also written to ``result.json``).

    Raises:
        TrainingStopped: ``cfg.stop_at_step`` was reached (a checkpoint was written).
    """
    from pyser import __version__ as pyser_version
    from pyser.model import CRNN, ModelMetadata, save_model

    fold_dir = _fold_dir(cfg, fold)
    ckpt_path = fold_dir / "checkpoint.pt"
    device = rt.device
    n_classes = len(data.labels)
    train_idx = np.asarray(fold.train, dtype=np.int64)
    dev_idx = np.asarray(fold.dev, dtype=np.int64)
    test_idx = np.asarray(fold.test, dtype=np.int64)
    counts = {
        split: class_counts(data.y[idx], n_classes).tolist()
        for split, idx in (("train", train_idx), ("dev", dev_idx), ("test", test_idx))
    }
    if rt.is_main:
        events(
            "fold_start",
            repeat=fold.repeat,
            fold=fold.fold,
            split_seed=fold.seed,
            split=data.split_kind,
            sizes={k: int(sum(v)) for k, v in counts.items()},
            class_counts=counts,
            device=str(device),
            world_size=rt.world_size,
        )
        log.info(
            "fold r%d f%d: train %d, dev %d, test %d utterances",
            fold.repeat,
            fold.fold,
            len(train_idx),
            len(dev_idx),
            len(test_idx),
        )
    if len(dev_idx) == 0 or len(test_idx) == 0:
        raise ValueError(f"fold r{fold.repeat} f{fold.fold} has an empty dev or test set")

    # ---- model, normalisation, optimiser, centers
    seed = _fold_seed(cfg, fold)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    model = CRNN(n_bins=data.feature_config.n_bins, n_classes=n_classes)
    mean, std = fit_normalization(data.store, train_idx)
    model.set_normalization(mean, std)
    model.to(device)
    centers = CenterLoss(n_classes, model.embedding_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    weights = class_weights(counts["train"]).to(device) if cfg.class_weighted else None
    schedule = LossSchedule(cfg.center_lambda, cfg.center_alpha, cfg.warmup_steps)
    sampler = BatchSampler(len(train_idx), cfg.batch_size, seed)
    if rt.world_size > sampler.batch_size:
        raise ValueError(f"batch of {sampler.batch_size} cannot be shared by {rt.world_size} ranks")
    y_all = torch.as_tensor(data.y)

    step = 0
    best = {"ua": -1.0, "step": -1, "state": None}
    history: dict[str, list] = {"train": [], "dev": []}
    window = {"loss": 0.0, "ce": 0.0, "center": 0.0, "n": 0}  # running sums between log lines
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt["split_digest"] != _split_digest(fold):
            raise CheckpointError(
                f"{ckpt_path} belongs to a different split; delete it or run without --resume"
            )
        old = ckpt["config"]
        changed = sorted(k for k in _RESUME_KEYS if old.get(k) != getattr(cfg, k))
        if changed:
            was = ", ".join(f"{k}={old.get(k)!r}" for k in changed)
            raise CheckpointError(
                f"{ckpt_path} was written with different {', '.join(changed)} ({was}); "
                "a resumed run must use the same training settings"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        centers.load_state_dict(ckpt["centers"])
        step = int(ckpt["step"])
        best = ckpt["best"]
        history = ckpt["history"]
        window = ckpt["window"]
        _set_rng_state(ckpt["rng"], sampler)
        if rt.is_main:
            events("resume", repeat=fold.repeat, fold=fold.fold, step=step, checkpoint=ckpt_path)
            log.info("resumed r%d f%d at step %d from %s", fold.repeat, fold.fold, step, ckpt_path)

    net: nn.Module = _WithEmbedding(model)
    if rt.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )

    def save_checkpoint(done: int) -> None:
        if rt.is_main:
            _torch_save(
                {
                    "format": CHECKPOINT_FORMAT,
                    "model": _cpu_state(model),
                    "optimizer": optimizer.state_dict(),
                    "centers": _cpu_state(centers),
                    "step": done,
                    "best": best,
                    "history": history,
                    "window": window,
                    "rng": _rng_state(sampler),
                    "config": cfg.to_dict(),
                    "split_digest": _split_digest(fold),
                    "repeat": int(fold.repeat),
                    "fold": int(fold.fold),
                },
                ckpt_path,
            )
        rt.barrier()

    def evaluate_dev(done: int) -> float:
        logits, _ = predict(
            model, data.store, dev_idx, cfg.eval_batch_size, device, crop=cfg.crop_eval
        )
        r = _report(data.y[dev_idx], logits, n_classes)
        history["dev"].append({"step": done, "ua": r["ua"], "wa": r["wa"]})
        eligible = done >= cfg.best_after_step or done == cfg.steps
        if eligible and r["ua"] > best["ua"]:
            best.update(ua=r["ua"], step=done, state=_cpu_state(model))
        if rt.is_main:
            events(
                "eval",
                repeat=fold.repeat,
                fold=fold.fold,
                step=done,
                dev_ua=r["ua"],
                dev_wa=r["wa"],
                best_ua=best["ua"],
                best_step=best["step"],
            )
        return r["ua"]

    # ---- the training loop
    bar = _tqdm(
        total=cfg.steps,
        initial=step,
        desc=f"r{fold.repeat} f{fold.fold}",
        disable=not (rt.is_main and cfg.progress),
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    model.train()
    while step < cfg.steps:
        lam, alpha = schedule.at(step)
        batch = train_idx[sampler.next()]
        shard = batch[rt.rank :: rt.world_size]
        x, lengths = collate([data.store.get(int(i)) for i in shard])
        x, lengths = x.to(device, non_blocking=True), lengths.to(device, non_blocking=True)
        y = y_all[torch.from_numpy(shard)].to(device)
        weight_sum = None
        if rt.distributed:
            # the global batch's weight sum / world size: DDP's gradient average then equals
            # the full-batch weighted mean (every rank knows the global batch).
            yb = y_all[torch.from_numpy(batch)].to(device)
            w_all = weights[yb] if weights is not None else torch.ones(len(batch), device=device)
            weight_sum = w_all.sum() / rt.world_size
        logits, z = net(x, lengths)
        loss, ce, cl = joint_loss(logits, z, y, centers, weights, lam, weight_sum)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        centers.update(z, y, alpha)
        step += 1

        values = torch.stack([loss.detach(), ce.detach(), cl.detach()])
        if rt.distributed:  # each rank holds its shard's share: the mean is the batch's value
            torch.distributed.all_reduce(values)
            values /= rt.world_size
        for key, v in zip(("loss", "ce", "center"), values.tolist()):
            window[key] += v
        window["n"] += 1
        if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps):
            rec = {k: window[k] / window["n"] for k in ("loss", "ce", "center")}
            rec.update(step=step, lam=lam, alpha=alpha)
            history["train"].append(rec)
            if rt.is_main:
                events(
                    "train",
                    repeat=fold.repeat,
                    fold=fold.fold,
                    **rec,
                    steps_per_s=window["n"] / max(time.perf_counter() - t0, 1e-9),
                )
            bar.set_postfix(loss=f"{rec['loss']:.3f}", dev_ua=f"{max(best['ua'], 0):.3f}")
            window = {"loss": 0.0, "ce": 0.0, "center": 0.0, "n": 0}
            t0 = time.perf_counter()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            evaluate_dev(step)
            model.train()
        bar.update(1)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save_checkpoint(step)
        if cfg.stop_at_step and step == cfg.stop_at_step and step < cfg.steps:
            save_checkpoint(step)
            bar.close()
            raise TrainingStopped(step)
    bar.close()

    # ---- test the best-dev checkpoint
    final_state = _cpu_state(model)
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    result: dict[str, Any] = {
        "repeat": int(fold.repeat),
        "fold": int(fold.fold),
        "split_seed": fold.seed,
        "split": data.split_kind,
        "seed": seed,
        "sizes": {"train": len(train_idx), "dev": len(dev_idx), "test": len(test_idx)},
        "class_counts": counts,
        "best_step": best["step"],
        "best_dev_ua": best["ua"],
        "steps": cfg.steps,
    }
    want_z = cfg.save_embeddings
    test_logits, z_test = predict(
        model, data.store, test_idx, cfg.eval_batch_size, device, want_z, crop=cfg.crop_eval
    )
    result["test"] = _report(data.y[test_idx], test_logits, n_classes)
    dev_logits, _ = predict(
        model, data.store, dev_idx, cfg.eval_batch_size, device, crop=cfg.crop_eval
    )
    result["dev"] = _report(data.y[dev_idx], dev_logits, n_classes)
    z_train = None
    if cfg.eval_train or want_z:
        train_logits, z_train = predict(
            model, data.store, train_idx, cfg.eval_batch_size, device, want_z
        )
        if cfg.eval_train:
            result["train"] = _report(data.y[train_idx], train_logits, n_classes)
    result["history"] = history

    if rt.is_main:
        fold_dir.mkdir(parents=True, exist_ok=True)
        provenance = {
            "corpus": data.info["corpus"],
            "data_root": data.info["data_root"],
            "task": cfg.task,
            "split": data.split_kind,
            "n_folds": cfg.n_folds,
            "split_seed": fold.seed,
            "repeat": int(fold.repeat),
            "fold": int(fold.fold),
            "train_utterances": len(train_idx),
            "train_class_counts": counts["train"],
            "best_step": best["step"],
            "steps": cfg.steps,
            "metrics": {
                k: {m: result[k][m] for m in ("ua", "wa", "macro_f1")} for k in ("dev", "test")
            },
            "max_seconds": cfg.max_seconds,
            "crop_eval": cfg.crop_eval,
            "center_lambda": cfg.center_lambda,
            "center_alpha": cfg.center_alpha,
            "experiment": cfg.experiment,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "pyser_version": pyser_version,
            "trainer": "training.train",
        }
        meta = ModelMetadata(
            labels=list(data.labels),
            feature_config=data.feature_config.to_dict(),
            provenance=provenance,
        )
        save_model(fold_dir / "model.pt", model.to("cpu"), meta)
        model.to(device)
        if want_z:
            arrays = {
                "z_train": z_train,
                "y_train": data.y[train_idx],
                "z_test": z_test,
                "y_test": data.y[test_idx],
                "labels": np.array(data.labels),
                "centers": centers.centers.detach().cpu().numpy(),
            }
            atomic_write(fold_dir / "embeddings.npz", lambda f: np.savez_compressed(f, **arrays))
        _torch_save(final_state, fold_dir / "final_state.pt")
        atomic_write_text(fold_dir / "result.json", strict_json(result, indent=1))
        events(
            "fold_end",
            repeat=fold.repeat,
            fold=fold.fold,
            best_step=best["step"],
            best_dev_ua=best["ua"],
            test={m: result["test"][m] for m in ("ua", "wa", "macro_f1")},
        )
        log.info(
            "fold r%d f%d: best dev UA %.4f at step %d; test UA %.4f WA %.4f F1 %.4f",
            fold.repeat,
            fold.fold,
            best["ua"],
            best["step"],
            result["test"]["ua"],
            result["test"]["wa"],
            result["test"]["macro_f1"],
        )
        ckpt_path.unlink(missing_ok=True)  # the fold is finished; result.json marks it done
    rt.barrier()
    return result


# ============================================================================ the run


def summarize_folds(results: Sequence[dict], split: str = "test") -> dict:
    """Mean ± std of UA/WA/macro-F1 over all folds and repeats, plus per-repeat means."""
    from training.metrics import summarize

    reports = [dict(r[split], confusion=np.asarray(r[split]["confusion"])) for r in results]
    s = summarize(reports)
    out = {m: s[m] for m in ("ua", "wa", "macro_f1")}
    out["confusion"] = s["confusion"].tolist() if "confusion" in s else None
    repeats = sorted({r["repeat"] for r in results})
    if len(repeats) > 1:
        per = [
            summarize([rep for rep, r in zip(reports, results) if r["repeat"] == k])
            for k in repeats
        ]
        out["over_repeats"] = {
            m: {
                "mean": float(np.mean([p[m]["mean"] for p in per])),
                "std": float(np.std([p[m]["mean"] for p in per], ddof=1)),
                "n": len(per),
            }
            for m in ("ua", "wa", "macro_f1")
        }
    return out


def write_results(exp_dir: Path, cfg: TrainConfig, info: dict, results: Sequence[dict]) -> dict:
    """results.json, results.md and results.csv in ``exp_dir``; returns the summary dict."""
    labels = info["labels"]
    summary = {"test": summarize_folds(results, "test"), "dev": summarize_folds(results, "dev")}
    doc = {
        "experiment": cfg.experiment,
        "config": cfg.to_dict(),
        "data": info,
        "summary": summary,
        "folds": [{k: v for k, v in r.items() if k != "history"} for r in results],
    }
    atomic_write_text(exp_dir / "results.json", strict_json(doc, indent=1))

    def pct(x: float) -> str:
        return f"{100 * x:.2f}"

    rows = [
        (
            f"r{r['repeat']} f{r['fold']}",
            r["best_step"],
            r["test"]["ua"],
            r["test"]["wa"],
            r["test"]["macro_f1"],
            r["sizes"]["test"],
        )
        for r in results
    ]
    s = summary["test"]
    md = [
        f"# {cfg.experiment}",
        "",
        f"Corpus **{info['corpus']}** ({info['n_utterances']} utterances, task {cfg.task}: "
        + ", ".join(f"{k} {v}" for k, v in info["class_counts"].items())
        + f"), split **{info['split']}**, features **{cfg.feature_kind}**, "
        f"lambda {cfg.center_lambda}, alpha {cfg.center_alpha}, {cfg.steps} steps.",
        "",
    ]
    n_excluded = sum(info.get("excluded", {}).values())
    if n_excluded or info.get("n_skipped"):
        md += [
            f"{n_excluded} utterances excluded (emotions outside the task: "
            + (", ".join(f"{k} {v}" for k, v in sorted(info["excluded"].items())) or "none")
            + f"); {info.get('n_skipped', 0)} files skipped (bad names, unreadable or "
            "undecodable audio; listed in results.json under data.skipped).",
            "",
        ]
    md += [
        "| fold | best step | test UA % | test WA % | test macro-F1 % | test n |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {f} | {b} | {pct(ua)} | {pct(wa)} | {pct(f1)} | {n} |" for f, b, ua, wa, f1, n in rows
    ]
    md.append(
        f"| **mean ± std** | | **{pct(s['ua']['mean'])} ± {pct(s['ua']['std'])}** | "
        f"**{pct(s['wa']['mean'])} ± {pct(s['wa']['std'])}** | "
        f"**{pct(s['macro_f1']['mean'])} ± {pct(s['macro_f1']['std'])}** | |"
    )
    if s.get("confusion") is not None:
        md += [
            "",
            "Test confusion matrix, summed over folds (rows: true, columns: predicted):",
            "",
            "| | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(labels),
        ]
        md += [
            f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |"
            for i, row in enumerate(s["confusion"])
        ]
    atomic_write_text(exp_dir / "results.md", "\n".join(md) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["experiment", "row", "best_step", "test_ua", "test_wa", "test_macro_f1", "test_n"])
    for f, b, ua, wa, f1, n in rows:
        w.writerow([cfg.experiment, f, b, f"{ua:.6f}", f"{wa:.6f}", f"{f1:.6f}", n])
    for stat in ("mean", "std"):
        w.writerow(
            [
                cfg.experiment,
                stat,
                "",
                f"{s['ua'][stat]:.6f}",
                f"{s['wa'][stat]:.6f}",
                f"{s['macro_f1'][stat]:.6f}",
                "",
            ]
        )
    atomic_write_text(exp_dir / "results.csv", buf.getvalue())
    return summary


def run(cfg: TrainConfig, resume: bool = False, data: PreparedData | None = None) -> dict:
    """Train and test every selected fold of ``cfg``; returns the results document.

    The returned dict has ``status`` ("done" or "stopped"), ``summary`` (mean ± std),
    ``folds`` (per-fold results) and ``dir`` (the experiment folder).
    """
    rt = setup_runtime(cfg.device)
    exp_dir = Path(cfg.out_dir) / cfg.experiment
    events = EventLog(exp_dir / "log.jsonl" if rt.is_main else None)
    with _torch_settings(cfg, rt.device):
        if data is None:
            data = prepare_data(cfg, rt)
        if rt.is_main:
            exp_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(exp_dir / "config.json", strict_json(cfg.to_dict(), indent=1))
            events(
                "start",
                experiment=cfg.experiment,
                resume=resume,
                device=str(rt.device),
                world_size=rt.world_size,
                torch=torch.__version__,
                data=data.info,
                folds=[repr(f) for f in data.folds],
                config=cfg.to_dict(),
            )
            log.info(
                "%s: %d utterances of %s (%s), %s split, %d fold runs, device %s x%d",
                cfg.experiment,
                data.info["n_utterances"],
                cfg.corpus,
                data.info["class_counts"],
                data.split_kind,
                len(data.folds),
                rt.device,
                rt.world_size,
            )
        results = []
        for fold in data.folds:
            done = _fold_dir(cfg, fold) / "result.json"
            if resume and done.is_file():
                results.append(json.loads(done.read_text()))
                if rt.is_main:
                    events("fold_skip", repeat=fold.repeat, fold=fold.fold, reason="finished")
                continue
            try:
                results.append(train_fold(cfg, data, fold, rt, events, resume=resume))
            except TrainingStopped as stop:
                if rt.is_main:
                    events("stopped", repeat=fold.repeat, fold=fold.fold, step=stop.step)
                    log.info(
                        "stopped at step %d of fold r%d f%d (resume with --resume)",
                        stop.step,
                        fold.repeat,
                        fold.fold,
                    )
                return {
                    "status": "stopped",
                    "step": stop.step,
                    "dir": str(exp_dir),
                    "folds": results,
                }
        summary = write_results(exp_dir, cfg, data.info, results) if rt.is_main else None
        if rt.is_main:
            events("end", summary={k: summary["test"][k] for k in ("ua", "wa", "macro_f1")})
            from training.metrics import format_summary

            log.info("%s test: %s", cfg.experiment, format_summary(summary["test"]))
    return {
        "status": "done",
        "dir": str(exp_dir),
        "summary": summary,
        "folds": results,
        "data": data.info,
    }


# ============================================================================ command line


def config_from_args(args: argparse.Namespace) -> list[TrainConfig]:
    overrides = list(args.overrides or [])
    if getattr(args, "device", None):
        overrides.append(f"device={args.device}")
    return load_experiment(args.config, overrides).configs()


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    from training.cli import add_train_arguments

    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    add_train_arguments(p)
    args = p.parse_args(argv)
    setup_logging()
    try:
        configs = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for cfg in configs:
        out = run(cfg, resume=args.resume)
        if out["status"] != "done":
            status = 3
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
