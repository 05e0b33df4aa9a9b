"""Which optional packages a training verb needs, and the message that says what to install
when they are missing (checked before the heavy imports, so the error names the extra)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

__all__ = ["missing_baseline_extras", "missing_extras", "not_installed"]

#: Modules of the ``train`` extra that each verb needs.
_TRAIN_EXTRAS = {
    "train": ("tqdm",),
    "experiment": ("tqdm",),
    "evaluate": ("tqdm",),
    "baseline": ("tqdm",),
    "onnx": ("onnx", "onnxruntime"),
}
#: Modules of the ``baseline`` extra (import name -> package name).
_BASELINE_MODULES = {"opensmile": "openSMILE", "sklearn": "scikit-learn"}


def not_installed(modules: Iterable[str]) -> list[str]:
    """The import names among ``modules`` that cannot be found."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def missing_extras(verb: str) -> str | None:
    """A message naming the missing modules of ``verb`` and the extra to install, or None."""
    missing = not_installed(_TRAIN_EXTRAS[verb])
    if not missing:
        return None
    what = "ONNX export" if verb == "onnx" else f"pyser {verb}"
    return (
        f"{what} needs the training extras ({', '.join(missing)} not installed): "
        "pip install 'pyser[train]'"
    )


def missing_baseline_extras() -> str | None:
    """A message naming the missing packages of the baseline and the extra to install, or
    None when everything is there."""
    missing = [_BASELINE_MODULES[m] for m in not_installed(_BASELINE_MODULES)]
    if not missing:
        return None
    return (
        f"pyser baseline needs the baseline extras ({', '.join(missing)} not installed): "
        "pip install 'pyser[baseline]'"
    )
