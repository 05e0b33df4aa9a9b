"""Figures for the experiments (matplotlib, Agg backend, PNG files).

* :func:`plot_sweep`: UA and WA (mean ± std over folds) against lambda or alpha;
* :func:`plot_confusion`: a row-normalised confusion matrix with counts;
* :func:`plot_pca`: 2-D PCA of the embeddings z, panels side by side (the paper's
  figure: train and test, softmax only and softmax + center loss). Each model's PCA is
  fitted on its training embeddings and applied to its test embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["pca_fit", "plot_confusion", "plot_pca", "plot_sweep"]


def _pyplot():
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only; leave an application's own backend alone
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    from pyser._io import atomic_write

    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120, bbox_inches="tight"))
    finally:
        _pyplot().close(fig)
    return path


def plot_sweep(
    values: Sequence[float],
    summaries: Sequence[dict],
    key: str,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """UA and WA (percent, mean ± std) against a swept hyperparameter.

    ``summaries[i]`` is the test summary of ``values[i]`` (``{"ua": {"mean", "std"},
    "wa": {...}}``). The x axis is symmetric-log when the values span more than a decade
    and include 0 (the lambda sweep), linear otherwise.
    """
    plt = _pyplot()
    x = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for metric, marker in (("ua", "o"), ("wa", "s")):
        mean = np.array([100 * s[metric]["mean"] for s in summaries])
        std = np.array([100 * s[metric]["std"] for s in summaries])
        ax.errorbar(x, mean, yerr=std, marker=marker, capsize=3, label=metric.upper())
    positive = x[x > 0]
    if positive.size and positive.max() / positive.min() > 10:
        if (x <= 0).any():
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        else:
            ax.set_xscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    ax.set_xlabel(
        {"center_lambda": "λ (center-loss weight)", "center_alpha": "α (center update rate)"}.get(
            key, key
        )
    )
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_confusion(
    confusion: np.ndarray | Sequence[Sequence[int]],
    labels: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Row-normalised confusion matrix (rows true, columns predicted), cells show % and count."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 1.5, 1.1 * len(labels) + 1.0))
    ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{100 * frac[i, j]:.1f}%\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if frac[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def pca_fit(z: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components (n_components, D)) of ``z`` (N, D) by SVD; signs made deterministic."""
    z = np.asarray(z, dtype=np.float64)
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    comps = vt[:n_components]
    # make the largest-magnitude loading of each component positive
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return mean, comps * signs[:, None]


def plot_pca(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]],
    labels: Sequence[str],
    path: str | Path,
    n_cols: int = 2,
    title: str | None = None,
) -> Path:
    """Scatter plots of 2-D PCA projections.

    Args:
        panels: (title, z (N, D), y (N,), (mean, components) from :func:`pca_fit`) per panel.
        labels: class names for the legend.
    """
    plt = _pyplot()
    n_rows = (len(panels) + n_cols - 1) // n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.8 * n_rows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (name, z, y, (mean, comps)) in zip(axes.flat, panels):
        p = (np.asarray(z, dtype=np.float64) - mean) @ comps.T
        for c, label in enumerate(labels):
            sel = np.asarray(y) == c
            ax.scatter(p[sel, 0], p[sel, 1], s=6, alpha=0.6, color=colors(c), label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(loc="best", fontsize=8, markerscale=2)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
