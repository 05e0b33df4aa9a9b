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


LABELS = ["neutral", "angry", "happy", "sad"]


def save_random_model(path, seed: int = 0, labels=LABELS):
    """A random-weight CRNN saved as a self-describing TorchScript model file at ``path``."""
    from pyser.features import FeatureConfig
    from pyser.model import ModelMetadata, save_model

    save_model(path, random_crnn(n_classes=len(labels), seed=seed),
               ModelMetadata(labels=list(labels), feature_config=FeatureConfig()))
    return path
