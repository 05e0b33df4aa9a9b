"""Losses of Dai et al. (ICASSP 2019): class-weighted softmax cross-entropy and center loss.

Exact forms, following the authors' TensorFlow code (DaiDongyang/ser_nn_spectrogram,
``cr_model_v2/cr_model.py`` and ``load_data.py``, with the paper configs'
``is_weighted_cross_entropy_loss: True`` and ``is_weighted_center_loss: True``):

* class weights: ``w_c = max_k(n_k) / (n_c + 0.5)`` from the training-label counts
  ``n`` (``LoadedData.update_inverse_sample_w``).
* cross-entropy: ``tf.losses.sparse_softmax_cross_entropy(..., weights=w_y,
  reduction=Reduction.MEAN)``. TF1's ``Reduction.MEAN`` is the *weighted mean*
  ("scalar SUM divided by sum of weights"), so

      CE = sum_i w_{y_i} * CE_i / sum_i w_{y_i}

  (not the batch mean of the weighted losses).
* center loss (``calc_center_loss``, weighted branch):
  ``sum_i w_{y_i} ||z_i - c_{y_i}||^2 / mean_i(w_{y_i}) / B``, which equals

      L_c = sum_i w_{y_i} ||z_i - c_{y_i}||^2 / sum_i w_{y_i}

  with *no* factor 1/2 (the authors' unweighted branch uses ``tf.nn.l2_loss``,
  which has the 1/2; the paper's runs use the weighted branch). With uniform
  weights it is the batch mean of squared distances.
* center update (``intra_update_center_op``): ``tf.scatter_sub(centers, y, alpha *
  (c_{y_i} - z_i) / (1 + n_{y_i}))`` where ``n_j`` counts label ``j`` in the batch;
  scatter_sub accumulates duplicate indices, so per class

      c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - z_i) / (1 + n_j).

  Centers start at zero and are not trained by gradient descent.
* joint loss ``CE + lambda * L_c``; ``lambda = 0`` and ``alpha = 1`` for the first
  20 steps (``center_loss_lambda_steps: [20, ...]``, ``center_loss_alhpas: [1, ...]``),
  then the configured values (paper: lambda 0.3, alpha 0.5).

Under torch.distributed each rank sees a shard of the batch. ``weight_sum`` lets
the caller pass the *global* sum of weights (all-reduced) times ``1/world_size`` so
that DDP's gradient averaging reproduces the full-batch weighted mean exactly, and
``CenterLoss.update`` all-reduces its per-class sums and counts before updating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CenterLoss",
    "LossSchedule",
    "center_loss",
    "class_counts",
    "class_weights",
    "distillation_loss",
    "joint_loss",
    "weighted_cross_entropy",
]


def class_counts(labels: Sequence[int] | np.ndarray | Tensor, n_classes: int) -> np.ndarray:
    """Number of examples of each class: (n_classes,) int64.

    Raises:
        ValueError: a label is outside ``[0, n_classes)``.
    """
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels, dtype=np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{y.min()}, {y.max()}]")
    return np.bincount(y.reshape(-1), minlength=n_classes).astype(np.int64)


def class_weights(counts: Sequence[int] | np.ndarray | Tensor) -> Tensor:
    """Inverse-frequency class weights ``max(n) / (n_c + 0.5)`` (the authors' form), (C,) float32.

    The +0.5 keeps a class that is absent from the training set finite
    (weight ``2 * max(n)``).
    """
    n = torch.as_tensor(np.asarray(counts, dtype=np.float64))
    if n.ndim != 1 or n.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence, got shape {tuple(n.shape)}")
    if bool((n < 0).any()):
        raise ValueError("class counts must be non-negative")
    return (n.max() / (n + 0.5)).to(torch.float32)


def _example_weights(targets: Tensor, weights: Tensor | None, like: Tensor) -> Tensor:
    if weights is None:
        return torch.ones(targets.shape[0], dtype=like.dtype, device=like.device)
    return weights.to(device=like.device, dtype=like.dtype)[targets]


def weighted_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor | None = None,
    weight_sum: Tensor | float | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Class-weighted softmax cross-entropy, ``sum_i w_{y_i} CE_i / sum_i w_{y_i}``.

    Args:
        logits: (B, C) float.
        targets: (B,) int64 class indices.
        weights: (C,) class weights, or None for the plain batch mean.
        weight_sum: the denominator to use instead of this batch's ``sum_i w_{y_i}``
            (distributed training passes the global sum divided by the world size).
        label_smoothing: CE_i against ``(1 - s) * onehot + s / C`` (0: plain).
    Returns:
        scalar tensor.
    """
    w = _example_weights(targets, weights, logits)
    ce = F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)
    denom = w.sum() if weight_sum is None else weight_sum
    return (w * ce).sum() / denom


def center_loss(
    z: Tensor,
    targets: Tensor,
    centers: Tensor,
    weights: Tensor | None = None,
    weight_sum: Tensor | float | None = None,
) -> Tensor:
    """Class-weighted center loss ``sum_i w_{y_i} ||z_i - c_{y_i}||^2 / sum_i w_{y_i}`` (no 1/2).

    Args:
        z: (B, D) embeddings.
        targets: (B,) int64.
        centers: (C, D); treated as constants (detached).
        weights: (C,) class weights, or None for uniform weights.
        weight_sum: denominator override, as in :func:`weighted_cross_entropy`.
    """
    w = _example_weights(targets, weights, z)
    d2 = (z - centers.detach()[targets]).pow(2).sum(dim=1)
    denom = w.sum() if weight_sum is None else weight_sum
    return (w * d2).sum() / denom


def distillation_loss(
    logits: Tensor,
    teacher_probs: Tensor,
    targets: Tensor,
    temperature: float,
    weights: Tensor | None = None,
    weight_sum: Tensor | float | None = None,
) -> Tensor:
    """Class-weighted distillation loss (Hinton et al. 2015),
    ``T^2 * sum_i w_{y_i} KL(p_i || softmax(logits_i / T)) / sum_i w_{y_i}``.

    The ``T^2`` keeps its gradient on the scale of the cross-entropy's as ``T`` changes;
    the class weights are the cross-entropy's, so a rare class counts as much here as there.

    Args:
        logits: (B, C) the student's logits.
        teacher_probs: (B, C) the teachers' posteriors at temperature ``T`` (rows sum to 1).
        targets: (B,) int64 true classes (they only pick each example's weight).
        temperature: ``T`` > 0.
        weights, weight_sum: as in :func:`weighted_cross_entropy`.
    Returns:
        scalar tensor; 0 when the student's tempered posteriors equal the teachers'.
    """
    if teacher_probs.shape != logits.shape:
        raise ValueError(f"teacher_probs {tuple(teacher_probs.shape)} must have the logits' "
                         f"shape {tuple(logits.shape)}")
    w = _example_weights(targets, weights, logits)
    log_q = F.log_softmax(logits / temperature, dim=1)
    kl = F.kl_div(log_q, teacher_probs.to(log_q.dtype), reduction="none").sum(dim=1)
    denom = w.sum() if weight_sum is None else weight_sum
    return temperature**2 * (w * kl).sum() / denom


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class CenterLoss(nn.Module):
    """Global class centers (a buffer, never a parameter) with the authors' update rule.

    ``forward`` gives the loss (gradient flows to ``z`` only); ``update`` moves the
    centers towards the batch's embeddings after the optimiser step.
    """

    centers: Tensor

    def __init__(self, n_classes: int, dim: int = 64) -> None:
        super().__init__()
        if n_classes < 1 or dim < 1:
            raise ValueError(f"n_classes and dim must be positive, got {n_classes}, {dim}")
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.register_buffer("centers", torch.zeros(n_classes, dim))

    def forward(
        self,
        z: Tensor,
        targets: Tensor,
        weights: Tensor | None = None,
        weight_sum: Tensor | float | None = None,
    ) -> Tensor:
        return center_loss(z, targets, self.centers, weights, weight_sum)

    @torch.no_grad()
    def update(self, z: Tensor, targets: Tensor, alpha: float) -> None:
        """``c_j <- c_j - alpha * sum_{i: y_i=j} (c_j - z_i) / (1 + n_j)``; z is detached.

        Under an initialised torch.distributed process group the per-class sums of
        ``z`` and the counts ``n_j`` are summed over ranks first, so every rank applies
        the update of the full (global) batch and the centers stay identical.
        """
        z = z.detach().to(self.centers.dtype)
        targets = targets.to(self.centers.device)
        sums = torch.zeros_like(self.centers).index_add_(0, targets, z.to(self.centers.device))
        counts = torch.zeros(self.n_classes, dtype=self.centers.dtype, device=self.centers.device)
        counts.index_add_(0, targets, torch.ones_like(targets, dtype=self.centers.dtype))
        if _dist_ready():
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(counts)
        delta = (counts[:, None] * self.centers - sums) / (1.0 + counts[:, None])
        self.centers.sub_(alpha * delta)


@dataclass(frozen=True)
class LossSchedule:
    """lambda and alpha per step: (0, 1) during the first ``warmup_steps`` steps (0-based)."""

    lambda_: float = 0.3
    alpha: float = 0.5
    warmup_steps: int = 20
    warmup_lambda: float = 0.0
    warmup_alpha: float = 1.0

    def at(self, step: int) -> tuple[float, float]:
        """(lambda, alpha) for 0-based ``step``."""
        if step < self.warmup_steps:
            return self.warmup_lambda, self.warmup_alpha
        return self.lambda_, self.alpha


def joint_loss(
    logits: Tensor,
    z: Tensor,
    targets: Tensor,
    centers: CenterLoss,
    weights: Tensor | None,
    lambda_: float,
    weight_sum: Tensor | float | None = None,
    label_smoothing: float = 0.0,
    teacher_probs: Tensor | None = None,
    distill_weight: float = 0.0,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """``CE + lambda * L_c``; returns (total, ce, center), the last two for logging.

    With ``teacher_probs`` (see :func:`distillation_loss`) the classification term is
    ``(1 - distill_weight) * CE + distill_weight * KD`` and ``ce`` reports that blend."""
    ce = weighted_cross_entropy(logits, targets, weights, weight_sum, label_smoothing)
    if teacher_probs is not None:
        kd = distillation_loss(logits, teacher_probs, targets, temperature, weights, weight_sum)
        ce = (1.0 - distill_weight) * ce + distill_weight * kd
    cl = centers(z, targets, weights, weight_sum)
    return ce + lambda_ * cl, ce, cl
