"""pyser._io: the one atomic-write helper (fsync, clean-up, umask-respecting mode) and strict
JSON; and that every writer of model files, exports and training outputs goes through it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from crnn_factory import random_crnn

from pyser._io import atomic_write, atomic_write_bytes, atomic_write_text, strict_json


@pytest.fixture()
def umask_027():
    """Run with umask 027 (group read, no world access): the mode a user would get."""
    old = os.umask(0o027)
    try:
        yield 0o640
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_writes_respect_the_umask(tmp_path, umask_027):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "b.txt", "héllo\n")
    atomic_write(tmp_path / "c.bin", lambda f: f.write(b"abc"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "c.bin").read_bytes() == b"abc"
    for name in ("a.bin", "b.txt", "c.bin"):
        assert mode(tmp_path / name) == umask_027, name
    os.umask(0o002)
    atomic_write_text(tmp_path / "b.txt", "again")  # replacing takes the new umask too
    assert mode(tmp_path / "b.txt") == 0o664
    assert leftovers(tmp_path) == []


def test_atomic_write_fsyncs_and_cleans_up(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    atomic_write_text(tmp_path / "x.txt", "one")
    assert len(synced) >= 1  # the file (the folder too where the OS allows it)

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    (tmp_path / "keep.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "keep.bin", failing)
    assert (tmp_path / "keep.bin").read_bytes() == b"old"  # the old file survives
    assert leftovers(tmp_path) == []


def test_atomic_write_creates_the_folder(tmp_path):
    atomic_write_text(tmp_path / "a" / "b" / "c.txt", "x")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "x"


def test_strict_json_writes_null_for_non_finite_numbers():
    import numpy as np

    doc = {"p": [1.0, float("nan"), float("inf")], "a": np.array([np.nan, 2.0]),
           "n": np.float32(np.nan), "i": np.int64(3), "path": Path("/x"), "t": (1, -np.inf)}
    text = strict_json(doc)

    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    back = json.loads(text, parse_constant=refuse)
    assert back == {"p": [1.0, None, None], "a": [None, 2.0], "n": None, "i": 3,
                    "path": "/x", "t": [1, None]}


# ---------------------------------------------------------------- every writer uses it


def test_model_files_and_exports_get_the_users_permissions(tmp_path, umask_027):
    from pyser.model import ModelMetadata, save_model
    from pyser.training.export import export_onnx, export_torchscript

    model = random_crnn()
    meta = ModelMetadata(labels=["neutral", "angry", "happy", "sad"],
                         feature_config={"kind": "mel"})
    save_model(tmp_path / "m.pt", model, meta)
    export_torchscript(model, meta, tmp_path / "ts.pt")
    export_onnx(model, meta, tmp_path / "m.onnx")
    for name in ("m.pt", "ts.pt", "m.onnx"):
        assert mode(tmp_path / name) == umask_027, name
    assert leftovers(tmp_path) == []


def test_feature_cache_files_get_the_users_permissions(tmp_path, umask_027):
    import numpy as np
    import soundfile as sf

    from pyser import FeatureConfig
    from pyser.training.cache import FeatureCache

    wav = tmp_path / "a.wav"
    sf.write(str(wav), (0.1 * np.sin(np.arange(8000) * 0.1)).astype(np.float32), 16000)
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), racy_s=-1.0)
    cache.get(wav)
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(files) >= 3  # config.json, the entry, the index
    for p in files:
        assert mode(p) == umask_027, p
