"""File-writing helpers shared by pyser and its training code.

* :func:`atomic_write` (and :func:`atomic_write_bytes` / :func:`atomic_write_text`): the
  one way pyser replaces a file. The data goes to a temporary file in the destination
  folder, is flushed and fsynced, and is ``os.replace``-d over the destination (the folder
  is fsynced too where the OS allows it), so readers see the old file or the whole new one,
  never a part. On any error the temporary file is removed and the old file is untouched.
  The new file gets the permissions of any file the user creates (``0o666 & ~umask``),
  not the ``0o600`` of ``tempfile.mkstemp``.
* :func:`strict_json`: ``json.dumps`` for documents that may hold numpy values or NaN:
  non-finite floats become ``null`` (strict JSON has no NaN/Infinity), numpy scalars and
  arrays become numbers and lists, paths become strings.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "json_safe", "strict_json"]

_FILE_MODE = 0o666  # the kernel applies the umask, as for open(path, "w")


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new, exclusive temporary file next to the destination: (fd, path)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file for {folder / name}")


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; best effort (not every OS or file system can open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Replace ``path`` with what ``write(f)`` writes to a binary file object; returns the path.

    The parent folder is created if missing. See the module docstring for the guarantees.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` with ``data`` (atomic, fsynced, umask-respecting mode)."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``text`` (atomic, fsynced, umask-respecting mode)."""
    return atomic_write_bytes(path, text.encode(encoding))


def json_safe(x: Any) -> Any:
    """``x`` with numpy values as Python ones, non-finite floats as None, paths as str."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if type(x).__module__ == "numpy":
        x = x.tolist() if hasattr(x, "tolist") else x  # arrays -> lists, scalars -> Python
        if isinstance(x, list):
            return json_safe(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def strict_json(x: Any, **kwargs: Any) -> str:
    """``json.dumps(json_safe(x))`` that refuses NaN/Infinity (none are left to refuse)."""
    return json.dumps(json_safe(x), allow_nan=False, **kwargs)
