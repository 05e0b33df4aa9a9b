"""Shared test helpers: CRNNs with random weights in every layer."""

import warnings

import torch

from pyser.model import CRNN


def random_crnn(n_bins: int = 128, n_classes: int = 4, seed: int = 0) -> CRNN:
    """An eval-mode CRNN whose every parameter and normalisation buffer is random
    (TF-style init leaves biases and PReLU slopes at constants, which would hide bugs)."""
    torch.manual_seed(seed)
    model = CRNN(n_bins=n_bins, n_classes=n_classes)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.set_normalization(-40.0 + 5.0 * torch.randn(n_bins), 10.0 + torch.rand(n_bins))
    return model.eval()


def script(model: CRNN) -> torch.jit.ScriptModule:
    """torch.jit.script without its deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(model)
