"""Progress bars (tqdm, from the ``train`` extra)."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(**kwargs: Any) -> Any:
    """A ``tqdm.auto.tqdm(**kwargs)``; ``disable=False`` shows it only on a terminal.

    Raises ModuleNotFoundError saying which extra to install when tqdm is missing.
    """
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
