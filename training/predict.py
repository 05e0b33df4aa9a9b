"""Model outputs over a feature store: logits (and embeddings) for a list of utterances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pyser.training.speaker_adapt import adapt_batch
from pyser.training.store import FeatureStore, collate

__all__ = ["predict"]


@torch.no_grad()
def predict(
    model: Any,
    store: FeatureStore,
    idx: Sequence[int],
    batch_size: int,
    device: torch.device,
    embeddings: bool = False,
    crop: bool = True,
    shifts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (n, C) (and z (n, D) when ``embeddings``) for utterances ``idx``, in order.

    Works with an eager CRNN or a TorchScript one; batches are formed by length so that
    little padding is computed (the model's outputs do not depend on padding). ``crop``:
    centre-cropped (training length) or whole utterances. ``shifts``: each utterance's
    online speaker adaptation (pyser.training.speaker_adapt.adapt_batch), or None.
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
        if shifts is not None:
            x = adapt_batch(x, shifts[pos])
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
