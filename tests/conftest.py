"""Shared pytest configuration.

Corpus data: tests marked ``@pytest.mark.corpus`` read the real corpora from
``$PYSER_DATA`` if set, else ``../shared/data`` next to the repository. When
that folder is absent they are skipped with the reason; nothing else skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_data_root() -> Path:
    """``$PYSER_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("PYSER_DATA")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = corpus_data_root()
    if root.is_dir():
        return
    source = "$PYSER_DATA" if os.environ.get("PYSER_DATA") else "the default location"
    skip = pytest.mark.skip(
        reason=f"corpus data folder {root} ({source}) is absent; set PYSER_DATA to the "
        "folder holding emodb/, ravdess/, tess/"
    )
    for item in items:
        if item.get_closest_marker("corpus") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The corpus data folder (only for ``@pytest.mark.corpus`` tests)."""
    return corpus_data_root()
