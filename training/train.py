"""Train the CRNN with softmax + center loss (Dai et al., ICASSP 2019) over n-fold splits.

A readable linear script over a typed config (``training/config.py``, imported as
``pyser.training.config``)::

    python -m pyser.training.train training/configs/paper_mel_center.toml --set steps=2000
    pyser train paper_mel_center --device cuda --resume
    torchrun --nproc_per_node 4 -m pyser.training.train paper_mel_center     # one process per GPU

What one run does:

1. load the corpus (``pyser.training.datasets.load_corpus``) and make the folds (the paper's
   IEMOCAP protocol or speaker-independent folds, ``pyser.training.splits``);
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

import dataclasses
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyser._io import atomic_write_text, strict_json
from pyser.adapt import SpeakerAdaptation
from pyser.model import CRNN
from pyser.training.augment import Augment
from pyser.training.aux_emotions import AuxHead
from pyser.training.calibration import calibration_report
from pyser.training.checkpoint import (cpu_state, load_resumable, save_checkpoint, set_rng_state,
                                       torch_save)
from pyser.training.config import TrainConfig
from pyser.training.data import PreparedData, fold_sizes_by_corpus, prepare_data
from pyser.training.distill import Teachers, teacher_paths
from pyser.training.events import EventLog
from pyser.training.losses import CenterLoss, LossSchedule, class_counts, class_weights, joint_loss
from pyser.training.metrics import format_summary, logits_report
from pyser.training.predict import predict
from pyser.training.progress import progress_bar
from pyser.training.results import fold_identity, write_fold, write_results
from pyser.training.runtime import Runtime, autocast_dtype, setup_runtime, torch_settings
from pyser.training.sampler import BatchSampler
from pyser.training.speaker_adapt import (LogitMemory, SpeakerHistory, adapt_batch,
                                          speech_stats)
from pyser.training.store import (SERVED_VIEW, FeatureStore, collate, fit_normalization,
                                  view_store)

__all__ = [
    "FoldParts",
    "Progress",
    "TrainingStopped",
    "evaluate_dev",
    "final_model_logit_stats",
    "fold_dir",
    "fold_seed",
    "run",
    "score_fold",
    "train_fold",
    "train_step",
    "training_pool",
    "with_logit_stats",
]

log = logging.getLogger(__name__)


class TrainingStopped(Exception):
    """Raised inside a fold when ``stop_at_step`` is reached (after checkpointing)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped after step {step}")
        self.step = step


# ============================================================================ a fold's pieces


@dataclass
class FoldParts:
    """A fold's train/dev/test utterance indices and their class counts."""

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray
    counts: dict[str, list[int]]
    shifts: dict[str, np.ndarray] = field(default_factory=dict)
    """Speaker adaptation: per part, (n, n_bins) stream-order shifts; empty when off."""

    @classmethod
    def of(cls, fold: Any, y: np.ndarray, n_classes: int) -> FoldParts:
        parts = [np.asarray(p, dtype=np.int64) for p in (fold.train, fold.dev, fold.test)]
        counts = {
            name: class_counts(y[idx], n_classes).tolist()
            for name, idx in zip(("train", "dev", "test"), parts)
        }
        return cls(*parts, counts)


def _empty_window() -> dict:
    return {"loss": 0.0, "ce": 0.0, "center": 0.0, "n": 0}


@dataclass
class Progress:
    """The loop's resumable state besides the model, optimiser, centers and RNGs."""

    step: int = 0
    best: dict = field(default_factory=lambda: {"ua": -1.0, "step": -1, "state": None})
    history: dict = field(default_factory=lambda: {"train": [], "dev": []})
    window: dict = field(default_factory=_empty_window)  # running sums between log lines

    def add(self, values: list[float]) -> None:
        """Add one step's (loss, ce, center) to the running window."""
        for key, v in zip(("loss", "ce", "center"), values):
            self.window[key] += v
        self.window["n"] += 1

    def close_window(self, lam: float, alpha: float) -> dict:
        """The window's mean losses as a history record; starts a new window."""
        rec = {k: self.window[k] / self.window["n"] for k in ("loss", "ce", "center")}
        rec.update(step=self.step, lam=lam, alpha=alpha)
        self.history["train"].append(rec)
        self.window = _empty_window()
        return rec


class WeightAverage:
    """The running mean of a model's weights over the steps it is updated after (stochastic
    weight averaging, Izmailov et al., 2018): the constant learning rate leaves the weights
    wandering around a wide region, and their mean sits nearer its centre than any one step.
    The model has no batch statistics, so the mean is usable as it is."""

    def __init__(self) -> None:
        self.count = 0
        self.state: dict[str, Tensor] = {}

    def update(self, model: nn.Module) -> None:
        """Add the model's current weights to the mean."""
        self.count += 1
        for k, v in model.state_dict().items():
            v = v.detach().float()
            if k not in self.state:
                self.state[k] = v.clone()
            else:
                self.state[k] += (v - self.state[k]) / self.count

    def copy_to(self, model: nn.Module) -> None:
        """Load the mean into ``model`` (in its own dtypes)."""
        current = model.state_dict()
        model.load_state_dict({k: v.to(current[k].dtype) for k, v in self.state.items()})

    def state_dict(self) -> dict:
        return {"count": self.count, "state": {k: v.cpu() for k, v in self.state.items()}}

    def load_state_dict(self, d: dict, device: torch.device) -> None:
        self.count = int(d["count"])
        self.state = {k: v.to(device) for k, v in d["state"].items()}


class _WithEmbedding(nn.Module):
    """forward -> (logits, z), so DistributedDataParallel sees the call it must hook."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        return self.net.forward_with_embedding(x, lengths)


def fold_seed(cfg: TrainConfig, fold: Any) -> int:
    """The seed of a fold's model initialisation and batch order."""
    return int(cfg.seed) * 1_000_003 + int(fold.repeat) * 1009 + int(fold.fold)


def fold_dir(cfg: TrainConfig, fold: Any) -> Path:
    """``out_dir/<experiment>/folds/r<repeat>_f<fold>``."""
    return Path(cfg.out_dir) / cfg.experiment / "folds" / f"r{fold.repeat}_f{fold.fold}"


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def new_model(
    data: PreparedData, train_idx: np.ndarray, device: torch.device, channels_last: bool = False
) -> CRNN:
    """A fresh CRNN normalised with the per-bin mean/std of the training frames."""
    model = CRNN(n_bins=data.feature_config.n_bins, n_classes=len(data.labels))
    mean, std = fit_normalization(data.store, train_idx)
    model.set_normalization(mean, std)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def fold_teachers(cfg: TrainConfig, data: PreparedData, fold: Any,
                  device: torch.device) -> Teachers | None:
    """The fold's distillation teachers (``cfg.distill_teachers``), or None."""
    if not cfg.distill_teachers:
        return None
    return Teachers.load(teacher_paths(cfg.distill_teachers, cfg.out_dir, fold), data.labels,
                         data.feature_config.to_dict(), fold_identity(cfg, data, fold),
                         cfg.distill_temperature, device)


def training_pool(data: PreparedData, parts: FoldParts) -> np.ndarray:
    """The utterances a fold's training draws from: its training utterances, and with
    auxiliary emotions their speakers' extra ones (pyser.training.aux_emotions)."""
    return parts.train if data.aux is None else data.aux.training_pool(parts.train)


def speaker_history(cfg: TrainConfig, data: PreparedData, parts: FoldParts,
                    seed: int) -> SpeakerHistory:
    """The fold's speaker adaptation (population statistics and training histories from
    :func:`training_pool`); fills ``parts.shifts`` with each part's stream-order shifts
    (the order drawn from ``seed``)."""
    if data.speech is None:
        data.speech = speech_stats(data.store, data.feature_config.frame_rate)
    speakers = [(u.corpus, u.speaker) for u in data.utts]
    history = SpeakerHistory(data.speech, speakers, training_pool(data, parts),
                             cfg.speaker_adapt_prior_s * data.feature_config.frame_rate,
                             cfg.speaker_adapt_max_history, cfg.speaker_adapt_p_none,
                             cfg.speaker_adapt_scale)
    for name in ("train", "dev", "test"):
        parts.shifts[name] = history.stream_shifts(getattr(parts, name), seed)
    return history


def with_logit_stats(cfg: TrainConfig, data: PreparedData, history: SpeakerHistory,
                     model: nn.Module, idx: np.ndarray, shifts: np.ndarray,
                     device: torch.device, served: FeatureStore | None = None
                     ) -> SpeakerAdaptation:
    """``history``'s adaptation, with output normalisation when the config asks for it: the
    per-class mean (and with ``speaker_adapt_logit_scale`` the standard deviation) of the
    model's logits over utterances ``idx`` (the training ones) scored as served (the
    speech span with its margin, ``shifts`` their stream-order adaptation). ``served``:
    the ``SERVED_VIEW`` store of ``data`` when the caller has one (built otherwise)."""
    if cfg.speaker_adapt_logit_prior == 0:
        return history.adaptation
    if served is None:
        served, _ = view_store(data.store, data.feature_config.frame_rate, SERVED_VIEW)
    logits, _ = predict(model, served, idx, cfg.eval_batch_size, device, crop=False,
                        shifts=shifts)
    logits = logits.astype(np.float64)
    return dataclasses.replace(
        history.adaptation, logit_mean=logits.mean(axis=0),
        logit_prior=cfg.speaker_adapt_logit_prior,
        logit_std=logits.std(axis=0) if cfg.speaker_adapt_logit_scale else None)


def final_model_logit_stats(cfg: TrainConfig, model: nn.Module,
                            adaptation: SpeakerAdaptation) -> SpeakerAdaptation:
    """``adaptation`` with output normalisation, for a model that ``cfg`` trained on every
    utterance (split "all") before output normalisation existed: its logit statistics over
    those utterances, as :func:`with_logit_stats` gives a new run (CPU).

    Raises ValueError when ``cfg`` is not such a config or its data's population mean is
    not ``adaptation``'s (another corpus, another cache)."""
    rt = setup_runtime("cpu")
    data = prepare_data(cfg, rt)
    if len(data.folds) != 1 or data.folds[0].kind != "all" or not cfg.speaker_adapt:
        raise ValueError(f"{cfg.experiment}: not one speaker-adapted split 'all' run")
    fold = data.folds[0]
    parts = FoldParts.of(fold, data.y, len(data.labels))
    with torch_settings(cfg, rt.device):
        history = speaker_history(cfg, data, parts, fold_seed(cfg, fold))
        if not np.allclose(history.adaptation.population_mean, adaptation.population_mean,
                           atol=1e-4):
            raise ValueError(f"{cfg.experiment}: its data's mean speech frame is not the "
                             "model's: not the data it was trained on")
        return with_logit_stats(cfg, data, history, model, parts.train, parts.shifts["train"],
                                rt.device)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of 0-based ``step``: ``cfg.lr``, or with ``lr_schedule = "cosine"``
    a half cosine from ``lr`` (after the loss warm-up) to ``lr * lr_final`` at the last step.
    A function of the step alone, so a resumed run follows the same curve."""
    if cfg.lr_schedule == "constant" or step < cfg.warmup_steps:
        return cfg.lr
    span = max(cfg.steps - 1 - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_augment(cfg: TrainConfig, model: CRNN, seed: int) -> Augment | None:
    """The run's batch augmentation, or None when every transform is off; masks are filled
    with the model's normalisation mean (the training mean of each bin)."""
    augment = Augment(
        fill=model.norm_mean.detach().float().cpu(),
        seed=seed,
        gain_db=cfg.aug_gain_db,
        freq_warp=cfg.aug_freq_warp,
        time_masks=cfg.aug_time_masks,
        time_mask_frames=cfg.aug_time_mask_frames,
        freq_masks=cfg.aug_freq_masks,
        freq_mask_bins=cfg.aug_freq_mask_bins,
        speed=cfg.aug_speed,
        noise_snr_db=tuple(cfg.aug_noise_snr_db),
    )
    return augment if augment.active else None


def wrap_for_training(model: CRNN, rt: Runtime) -> nn.Module:
    """``model`` as the loop calls it: ``(x, lengths) -> (logits, z)``, in DDP when distributed."""
    net: nn.Module = _WithEmbedding(model)
    if rt.distributed:
        device = rt.device
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    return net


# ============================================================================ one step


def train_step(
    net: nn.Module,
    centers: CenterLoss,
    optimizer: torch.optim.Optimizer,
    data: PreparedData,
    batch: np.ndarray,
    weights: Tensor | None,
    lam: float,
    alpha: float,
    rt: Runtime,
    autocast: torch.dtype | None = None,
    augment: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    label_smoothing: float = 0.0,
    shifts: np.ndarray | None = None,
    outputs: Callable[[Tensor, Tensor], Tensor] | None = None,
    teachers: Teachers | None = None,
    distill_weight: float = 0.0,
    aux: tuple[AuxHead, float] | None = None,
) -> list[float]:
    """One optimiser step on this rank's share of ``batch``; returns the batch's
    (loss, ce, center) averaged over the ranks. ``autocast``: the forward pass's reduced
    precision (None: float32); the losses are computed in float32 either way. ``augment``:
    ``(x, lengths) -> (x, lengths)`` applied to the collated frames (see pyser.training.augment).
    ``shifts``: each example's speaker adaptation (see
    pyser.training.speaker_adapt.adapt_batch), applied first, or None. ``outputs``: maps
    the shard's float32 ``(logits, z)`` to the logits the loss reads (see
    pyser.training.speaker_adapt.LogitMemory), or None. ``teachers``: their averaged
    posteriors on the same input make ``distill_weight`` of the classification loss (see
    pyser.training.distill), or None. ``aux``: (head, weight) of the auxiliary emotions
    (pyser.training.aux_emotions; one process): the head's loss on every example, times the
    weight, joins the loss, and the task's losses read the task's examples (label >= 0)."""
    device = rt.device
    y_all = torch.as_tensor(data.y)
    shard = batch[rt.rank :: rt.world_size]
    x, lengths = collate([data.store.get(int(i)) for i in shard])
    if shifts is not None:
        x = adapt_batch(x, shifts[rt.rank :: rt.world_size])
    if augment is not None:
        x, lengths = augment(x, lengths)
    x, lengths = x.to(device, non_blocking=True), lengths.to(device, non_blocking=True)
    y = y_all[torch.from_numpy(shard)].to(device)
    teacher_probs = teachers.probs(x, lengths, autocast) if teachers is not None else None
    weight_sum = None
    if rt.distributed:
        # the global batch's weight sum / world size: DDP's gradient average then equals
        # the full-batch weighted mean (every rank knows the global batch).
        yb = y_all[torch.from_numpy(batch)].to(device)
        w_all = weights[yb] if weights is not None else torch.ones(len(batch), device=device)
        weight_sum = w_all.sum() / rt.world_size
    with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        logits, z = net(x, lengths)
    logits, z = logits.float(), z.float()
    if outputs is not None:
        logits = outputs(logits, z)
    z_all = z
    if aux is not None:
        task = y >= 0
        logits, z, y = logits[task], z[task], y[task]
    if len(y):
        loss, ce, cl = joint_loss(logits, z, y, centers, weights, lam, weight_sum,
                                  label_smoothing, teacher_probs, distill_weight,
                                  teachers.temperature if teachers is not None else 1.0)
    else:  # a batch of extra utterances only (auxiliary emotions)
        loss = ce = cl = z_all.new_zeros(())
    if aux is not None:
        head, aux_weight = aux
        y_aux = torch.from_numpy(data.aux.y[shard]).to(device)
        loss = loss + aux_weight * head.loss(z_all, y_aux)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if len(y):
        centers.update(z, y, alpha)

    values = torch.stack([loss.detach(), ce.detach(), cl.detach()])
    if rt.distributed:  # each rank holds its shard's share: the mean is the batch's value
        torch.distributed.all_reduce(values)
        values /= rt.world_size
    return values.tolist()


def evaluate_dev(
    model: CRNN, cfg: TrainConfig, data: PreparedData, dev_idx: np.ndarray, progress: Progress,
    device: torch.device, shifts: np.ndarray | None = None,
) -> dict:
    """Dev UA/WA after ``progress.step`` steps, into the history; keeps the best weights.
    ``shifts``: the dev utterances' speaker-adaptation shifts, or None."""
    logits, _ = predict(model, data.store, dev_idx, cfg.eval_batch_size, device,
                        crop=cfg.crop_eval, shifts=shifts)
    r = logits_report(data.y[dev_idx], logits, len(data.labels))
    done, best = progress.step, progress.best
    progress.history["dev"].append({"step": done, "ua": r["ua"], "wa": r["wa"]})
    eligible = done >= cfg.best_after_step or done == cfg.steps
    if eligible and r["ua"] > best["ua"]:
        best.update(ua=r["ua"], step=done, state=cpu_state(model))
    return r


def score_fold(
    model: CRNN, cfg: TrainConfig, data: PreparedData, parts: FoldParts, device: torch.device
) -> tuple[dict, dict | None]:
    """Test, dev (and train) metrics of ``model``; with ``save_embeddings`` also the
    embeddings of the train and test utterances."""
    n_classes = len(data.labels)
    model.eval()
    want_z = cfg.save_embeddings
    bs = cfg.eval_batch_size
    test_logits, z_test = predict(
        model, data.store, parts.test, bs, device, want_z, crop=cfg.crop_eval,
        shifts=parts.shifts.get("test"),
    )
    metrics = {"test": logits_report(data.y[parts.test], test_logits, n_classes)}
    if "corpora" in data.info:  # several corpora: also each corpus's part of the test set
        metrics["test_by_corpus"] = reports_by_corpus(data, parts.test, test_logits)
    metrics.update(score_alone(model, cfg, data, parts, device, "test_unadapted"))
    dev_logits, _ = predict(model, data.store, parts.dev, bs, device, crop=cfg.crop_eval,
                            shifts=parts.shifts.get("dev"))
    metrics["dev"] = logits_report(data.y[parts.dev], dev_logits, n_classes)
    metrics["calibration"] = calibration_report(
        dev_logits, data.y[parts.dev], test_logits, data.y[parts.test]
    )
    z_train = None
    if cfg.eval_train or want_z:
        train_logits, z_train = predict(model, data.store, parts.train, bs, device, want_z,
                                        shifts=parts.shifts.get("train"))
        if cfg.eval_train:
            metrics["train"] = logits_report(data.y[parts.train], train_logits, n_classes)
    embeddings = None
    if want_z:
        embeddings = {
            "z_train": z_train,
            "y_train": data.y[parts.train],
            "z_test": z_test,
            "y_test": data.y[parts.test],
            "labels": np.array(data.labels),
        }
    return metrics, embeddings


def score_last(
    model: CRNN, cfg: TrainConfig, data: PreparedData, parts: FoldParts, device: torch.device
) -> dict:
    """``{"test_last": metrics, "calibration_last": ...}`` of the weights as they are (the
    last step's), with no dev selection: what a split "all" model is, and the temperature it
    should get (fitted on these weights' dev logits). With several corpora also
    ``test_last_by_corpus``; with speaker adaptation also ``test_last_unadapted`` (and by
    corpus): each test utterance alone."""
    model.eval()
    bs, crop = cfg.eval_batch_size, cfg.crop_eval
    test, _ = predict(model, data.store, parts.test, bs, device, crop=crop,
                      shifts=parts.shifts.get("test"))
    dev, _ = predict(model, data.store, parts.dev, bs, device, crop=crop,
                     shifts=parts.shifts.get("dev"))
    y_test, y_dev = data.y[parts.test], data.y[parts.dev]
    out = {
        "test_last": logits_report(y_test, test, len(data.labels)),
        "calibration_last": calibration_report(dev, y_dev, test, y_test),
    }
    if "corpora" in data.info:
        out["test_last_by_corpus"] = reports_by_corpus(data, parts.test, test)
    out.update(score_alone(model, cfg, data, parts, device, "test_last_unadapted"))
    return out


def score_alone(
    model: CRNN, cfg: TrainConfig, data: PreparedData, parts: FoldParts, device: torch.device,
    key: str,
) -> dict:
    """With speaker adaptation, ``{key: metrics, key_by_corpus: ...}`` of every test
    utterance scored alone (no history: ``Recognizer.predict`` without a speaker); {} when
    the run does not adapt."""
    if not parts.shifts:
        return {}
    alone, _ = predict(model, data.store, parts.test, cfg.eval_batch_size, device,
                       crop=cfg.crop_eval)
    out = {key: logits_report(data.y[parts.test], alone, len(data.labels))}
    if "corpora" in data.info:
        out[f"{key}_by_corpus"] = reports_by_corpus(data, parts.test, alone)
    return out


def score_train(
    model: CRNN, cfg: TrainConfig, data: PreparedData, parts: FoldParts, device: torch.device
) -> dict:
    """Metrics of ``model`` on its own training utterances (the only ones a final model has)."""
    model.eval()
    logits, _ = predict(model, data.store, parts.train, cfg.eval_batch_size, device)
    return logits_report(data.y[parts.train], logits, len(data.labels))


def reports_by_corpus(data: PreparedData, idx: np.ndarray, logits: np.ndarray) -> dict:
    """``{corpus: logits_report}`` over the utterances ``idx`` (rows of ``logits``), for
    each corpus with at least one utterance among them."""
    corpora = np.array([data.utts[i].corpus for i in idx])
    out = {}
    for c in sorted(set(corpora.tolist())):
        rows = np.flatnonzero(corpora == c)
        out[c] = logits_report(data.y[idx[rows]], logits[rows], len(data.labels))
    return out


# ============================================================================ one fold


def _sizes_by_corpus(data: PreparedData, fold: Any) -> dict:
    """``{"sizes_by_corpus": {corpus: {train, dev, test}}}`` with several corpora, else {}."""
    if "corpora" not in data.info:
        return {}
    return {"sizes_by_corpus": fold_sizes_by_corpus(data.utts, fold)}


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
    out_dir = fold_dir(cfg, fold)
    ckpt_path = out_dir / "checkpoint.pt"
    device = rt.device
    n_classes = len(data.labels)
    parts = FoldParts.of(fold, data.y, n_classes)
    where = {"repeat": fold.repeat, "fold": fold.fold}
    if rt.is_main:
        events("fold_start", **where, split_seed=fold.seed, split=data.split_kind,
               sizes={k: int(sum(v)) for k, v in parts.counts.items()},
               class_counts=parts.counts, device=str(device), world_size=rt.world_size)
        log.info("fold r%d f%d: train %d, dev %d, test %d utterances", fold.repeat, fold.fold,
                 len(parts.train), len(parts.dev), len(parts.test))
        for c, n in _sizes_by_corpus(data, fold).get("sizes_by_corpus", {}).items():
            log.info("fold r%d f%d: %s train %d, dev %d, test %d", fold.repeat, fold.fold, c,
                     n["train"], n["dev"], n["test"])
    final = fold.kind == "all"  # trains on everything: no dev to select by, no test
    if not final and (len(parts.dev) == 0 or len(parts.test) == 0):
        raise ValueError(f"fold r{fold.repeat} f{fold.fold} has an empty dev or test set")

    # ---- model, normalisation, optimiser, centers
    seed = fold_seed(cfg, fold)
    seed_everything(seed)
    pool = training_pool(data, parts)
    model = new_model(data, pool, device, cfg.channels_last)
    autocast = autocast_dtype(cfg.precision, device)
    centers = CenterLoss(n_classes, model.embedding_dim).to(device)
    aux_head = None
    if data.aux is not None:
        if rt.world_size > 1:
            raise ValueError("aux_emotions runs in one process only: its head is not shared "
                             "between ranks")
        counts = list(data.aux.counts(pool).values()) if cfg.class_weighted else None
        aux_head = AuxHead(model.embedding_dim, len(data.aux.labels), counts).to(device)
    params = list(model.parameters()) + (list(aux_head.parameters()) if aux_head else [])
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    weights = class_weights(parts.counts["train"]).to(device) if cfg.class_weighted else None
    schedule = LossSchedule(cfg.center_lambda, cfg.center_alpha, cfg.warmup_steps)
    sampler = BatchSampler(len(pool), cfg.batch_size, seed)
    augment = make_augment(cfg, model, seed)
    history = speaker_history(cfg, data, parts, seed) if cfg.speaker_adapt else None
    teachers = fold_teachers(cfg, data, fold, device)
    memory = None
    if cfg.speaker_adapt_logit_train:
        if rt.world_size > 1:
            raise ValueError("speaker_adapt_logit_train runs in one process only: its memory "
                             "of embeddings is not shared between ranks")
        memory = LogitMemory(history.adaptation, len(data.y), parts.train,
                             model.embedding_dim, cfg.speaker_adapt_logit_prior,
                             cfg.speaker_adapt_logit_scale)
    if rt.world_size > sampler.batch_size:
        raise ValueError(f"batch of {sampler.batch_size} cannot be shared by {rt.world_size} ranks")

    progress = Progress()
    average = WeightAverage()
    if resume and ckpt_path.is_file():
        ckpt = load_resumable(ckpt_path, cfg, fold)
        model.load_state_dict(ckpt["model"])
        if ckpt.get("average"):
            average.load_state_dict(ckpt["average"], device)
        if memory is not None:
            memory.load_state_dict(ckpt["logit_memory"])
        if aux_head is not None:
            aux_head.load_state_dict(ckpt["aux_head"])
        optimizer.load_state_dict(ckpt["optimizer"])
        centers.load_state_dict(ckpt["centers"])
        progress = Progress(int(ckpt["step"]), ckpt["best"], ckpt["history"], ckpt["window"])
        set_rng_state(ckpt["rng"], sampler)
        if rt.is_main:
            events("resume", **where, step=progress.step, checkpoint=ckpt_path)
            log.info("resumed r%d f%d at step %d from %s", fold.repeat, fold.fold,
                     progress.step, ckpt_path)
    net = wrap_for_training(model, rt)

    def checkpoint() -> None:
        if rt.is_main:
            save_checkpoint(ckpt_path, model=model, optimizer=optimizer, centers=centers,
                            sampler=sampler, step=progress.step, best=progress.best,
                            history=progress.history, window=progress.window, cfg=cfg, fold=fold,
                            average=average.state_dict() if average.count else None,
                            logit_memory=memory.state_dict() if memory else None,
                            aux_head=cpu_state(aux_head) if aux_head else None)
        rt.barrier()

    # ---- the training loop
    bar = progress_bar(total=cfg.steps, initial=progress.step, desc=f"r{fold.repeat} f{fold.fold}",
                       disable=not (rt.is_main and cfg.progress), dynamic_ncols=True)
    t0 = time.perf_counter()
    model.train()
    while progress.step < cfg.steps:
        lam, alpha = schedule.at(progress.step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, progress.step)
        batch = pool[sampler.next()]
        step_augment = partial(augment.apply, step=progress.step) if augment else None
        # a function of (seed, step), like the augmentation: a resumed run draws the same
        histories = (history.draw(batch, np.random.default_rng([seed, progress.step, 7]))
                     if history else None)
        shifts = history.shifts_of(histories) if history else None
        outputs = memory.normaliser(batch, histories, model.fc2) if memory else None
        progress.add(train_step(net, centers, optimizer, data, batch, weights, lam, alpha, rt,
                                autocast, step_augment, cfg.label_smoothing, shifts, outputs,
                                teachers, cfg.distill_weight,
                                (aux_head, cfg.aux_weight) if aux_head else None))
        progress.step += 1
        step = progress.step
        if cfg.average_from_step and step >= cfg.average_from_step:
            average.update(model)

        if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps):
            steps_per_s = progress.window["n"] / max(time.perf_counter() - t0, 1e-9)
            rec = progress.close_window(lam, alpha)
            if rt.is_main:
                events("train", **where, **rec, steps_per_s=steps_per_s)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", dev_ua=f"{max(progress.best['ua'], 0):.3f}")
            t0 = time.perf_counter()
        if not final and (step % cfg.eval_every == 0 or step == cfg.steps):
            r = evaluate_dev(model, cfg, data, parts.dev, progress, device,
                             parts.shifts.get("dev"))
            if rt.is_main:
                events("eval", **where, step=step, dev_ua=r["ua"], dev_wa=r["wa"],
                       best_ua=progress.best["ua"], best_step=progress.best["step"])
            model.train()
        bar.update(1)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint()
        if cfg.keep_weights_every and step % cfg.keep_weights_every == 0 and rt.is_main:
            torch_save(cpu_state(model), out_dir / f"weights_{step}.pt")
        if cfg.stop_at_step and step == cfg.stop_at_step and step < cfg.steps:
            checkpoint()
            bar.close()
            raise TrainingStopped(step)
    bar.close()

    # ---- test the best-dev weights (and the last ones: what a split "all" model keeps;
    # with averaging, the mean weights are the last ones)
    if average.count:
        average.copy_to(model)
    final_state = cpu_state(model)
    last = None if final else score_last(model, cfg, data, parts, device)
    if progress.best["state"] is not None:
        model.load_state_dict(progress.best["state"])
    if final:
        metrics, embeddings = {"train": score_train(model, cfg, data, parts, device)}, None
    else:
        metrics, embeddings = score_fold(model, cfg, data, parts, device)
        metrics.update(last)
    result: dict[str, Any] = {
        "repeat": int(fold.repeat),
        "fold": int(fold.fold),
        "split_seed": fold.seed,
        "split": data.split_kind,
        "seed": seed,
        "sizes": {"train": len(parts.train), "dev": len(parts.dev), "test": len(parts.test)},
        **_sizes_by_corpus(data, fold),
        "class_counts": parts.counts,
        **({"aux_train": data.aux.counts(pool[len(parts.train):])} if data.aux else {}),
        "best_step": progress.best["step"] if not final else cfg.steps,
        "best_dev_ua": progress.best["ua"],
        "steps": cfg.steps,
        **metrics,
        "history": progress.history,
    }
    if rt.is_main:
        if embeddings is not None:
            embeddings["centers"] = centers.centers.detach().cpu().numpy()
        adaptation = None if history is None else with_logit_stats(
            cfg, data, history, model, parts.train, parts.shifts["train"], device).to_dict()
        write_fold(out_dir, cfg, data, fold, result, model, final_state, embeddings,
                   adaptation)
        scored = "train" if final else "test"
        events("fold_end", **where, best_step=result["best_step"],
               best_dev_ua=result["best_dev_ua"],
               **{scored: {m: result[scored][m] for m in ("ua", "wa", "macro_f1")}})
        log.info("fold r%d f%d: best dev UA %.4f at step %d; %s UA %.4f WA %.4f F1 %.4f",
                 fold.repeat, fold.fold, result["best_dev_ua"], result["best_step"], scored,
                 result[scored]["ua"], result[scored]["wa"], result[scored]["macro_f1"])
        ckpt_path.unlink(missing_ok=True)  # the fold is finished; result.json marks it done
    model.to(device)
    rt.barrier()
    return result


# ============================================================================ the run


def run(cfg: TrainConfig, resume: bool = False, data: PreparedData | None = None) -> dict:
    """Train and test every selected fold of ``cfg``; returns the results document.

    The returned dict has ``status`` ("done" or "stopped"), ``summary`` (mean ± std),
    ``folds`` (per-fold results) and ``dir`` (the experiment folder).
    """
    rt = setup_runtime(cfg.device)
    exp_dir = Path(cfg.out_dir) / cfg.experiment
    events = EventLog(exp_dir / "log.jsonl" if rt.is_main else None)
    with torch_settings(cfg, rt.device):
        if data is None:
            data = prepare_data(cfg, rt)
        if rt.is_main:
            exp_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(exp_dir / "config.json", strict_json(cfg.to_dict(), indent=1))
            events("start", experiment=cfg.experiment, resume=resume, device=str(rt.device),
                   world_size=rt.world_size, torch=torch.__version__, data=data.info,
                   folds=[repr(f) for f in data.folds], config=cfg.to_dict())
            log.info("%s: %d utterances of %s (%s), %s split, %d fold runs, device %s x%d",
                     cfg.experiment, data.info["n_utterances"], cfg.corpus_label(),
                     data.info["class_counts"], data.split_kind, len(data.folds), rt.device,
                     rt.world_size)
        results = []
        for fold in data.folds:
            done = fold_dir(cfg, fold) / "result.json"
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
                    log.info("stopped at step %d of fold r%d f%d (resume with --resume)",
                             stop.step, fold.repeat, fold.fold)
                return {"status": "stopped", "step": stop.step, "dir": str(exp_dir),
                        "folds": results}
        summary = write_results(exp_dir, cfg, data.info, results) if rt.is_main else None
        if rt.is_main:
            scored = "test" if "test" in summary else "train"
            events("end", summary={k: summary[scored][k] for k in ("ua", "wa", "macro_f1")})
            log.info("%s %s: %s", cfg.experiment, scored, format_summary(summary[scored]))
            for c, sc in summary.get("test_by_corpus", {}).items():
                log.info("%s test, %s: %s", cfg.experiment, c, format_summary(sc))
    return {
        "status": "done",
        "dir": str(exp_dir),
        "summary": summary,
        "folds": results,
        "data": data.info,
    }


if __name__ == "__main__":  # python -m pyser.training.train / torchrun -m pyser.training.train
    from pyser.training.cli import main

    sys.exit(main("train"))
