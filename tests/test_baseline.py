"""The classical baseline (openSMILE functionals + RBF SVM) on a generated two-corpus set:
features and their cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyser.training import smile
from pyser.training.config import TrainConfig
from pyser.training.smile import SmileCache

SR = 16000
# Class -> (EmoDB letter, tone in Hz, level): pitch and level both separate the classes.
CLASSES = {"angry": ("W", 330.0, 0.6), "happy": ("F", 250.0, 0.4),
           "neutral": ("N", 160.0, 0.2), "sad": ("T", 110.0, 0.08)}
EMODB_SPEAKERS = ("03", "08", "09", "10")
TESS_SPEAKERS = ("OAF", "YAF")
N_PER = 3  # utterances per speaker and class
WORDS = ("back", "bar", "base")


def _tone(rng: np.random.Generator, f0: float, level: float, speaker_shift: float) -> np.ndarray:
    """0.6-1.0 s of a harmonic tone with a little noise: f0 and level set by the class,
    pitch nudged per speaker."""
    t = np.arange(int(rng.uniform(0.6, 1.0) * SR)) / SR
    f = f0 * speaker_shift * rng.uniform(0.97, 1.03)
    x = sum(a * np.sin(2 * np.pi * h * f * t) for h, a in ((1, 1.0), (2, 0.5), (3, 0.2)))
    x = level * x / 1.7 * rng.uniform(0.85, 1.15) + 0.003 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def make_two_corpora(root: Path, seed: int = 0) -> Path:
    """An EmoDB-named (4 speakers) and a TESS-named (OAF, YAF) corpus of tones under
    ``root/emodb`` and ``root/tess``; returns ``root``."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (root / "emodb" / "wav").mkdir(parents=True)
    for si, spk in enumerate(EMODB_SPEAKERS):
        for label, (letter, f0, level) in CLASSES.items():
            for k in range(N_PER):
                sf.write(root / "emodb" / "wav" / f"{spk}a0{k + 1}{letter}a.wav",
                         _tone(rng, f0, level, 1 + 0.04 * si), SR)
    for si, spk in enumerate(TESS_SPEAKERS):
        for label, (_, f0, level) in CLASSES.items():
            folder = root / "tess" / f"{spk}_{label}"
            folder.mkdir(parents=True)
            for word in WORDS[:N_PER]:
                sf.write(folder / f"{spk}_{word}_{label}.wav",
                         _tone(rng, f0, level, 0.97 + 0.06 * si), SR)
    return root


def tiny_config(root: Path, out: Path, **changes) -> TrainConfig:
    base = {
        "experiment": "tiny",
        "corpus": ["emodb", "tess"],
        "data_root": str(root / "{corpus}"),
        "n_folds": 4,  # TESS's two speakers need at least 4 folds
        "features": {"n_mels": 32},
        "max_seconds": 1.0,
        "cache_dir": str(out / "cache" / "features"),
        "out_dir": str(out / "runs"),
        "num_threads": 1,
        "progress": False,
    }
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_two_corpora(tmp_path_factory.mktemp("corpora"))


# --------------------------------------------------------------------------- features


def test_feature_sets_have_their_sizes(corpus, tmp_path):
    wav = next((corpus / "emodb" / "wav").glob("*.wav"))
    for name, n in (("compare", 6373), ("egemaps", 88)):
        x = SmileCache(tmp_path, name).get(wav)
        assert x.shape == (n,) and x.dtype == np.float32
        assert np.isfinite(x).all()  # a 0.6 s tone is long enough for every functional
    with pytest.raises(ValueError, match="unknown openSMILE feature set 'mfcc'"):
        SmileCache(tmp_path, "mfcc")


def test_cache_is_reused_and_a_corrupt_entry_is_rebuilt(corpus, tmp_path, monkeypatch, caplog):
    wav = next((corpus / "tess").rglob("*.wav"))
    first = SmileCache(tmp_path, "egemaps").get(wav)

    def no_opensmile(*args):
        raise AssertionError("openSMILE ran although the cache holds the entry")

    monkeypatch.setattr(smile, "extract_functionals", no_opensmile)
    cache = SmileCache(tmp_path, "egemaps")
    np.testing.assert_array_equal(cache.get(wav), first)
    assert (cache.hits, cache.misses) == (1, 0)

    # Garbage bytes, then a well-formed entry of another file: both are recomputed.
    other = next((corpus / "emodb" / "wav").glob("*.wav"))
    entry = cache.entry_path(wav)
    monkeypatch.undo()
    for corrupt in (b"not an npz at all", cache.entry_path(other)):
        if isinstance(corrupt, Path):
            cache.get(other)
            corrupt = corrupt.read_bytes()
        entry.write_bytes(corrupt)
        fresh = SmileCache(tmp_path, "egemaps")
        np.testing.assert_array_equal(fresh.get(wav), first)
        assert fresh.misses == 1
        assert "corrupt openSMILE cache entry" in caplog.text
        caplog.clear()
    again = SmileCache(tmp_path, "egemaps")
    again.get(wav)
    assert (again.hits, again.misses) == (1, 0)  # the rebuilt entry is valid


def test_a_changed_file_gets_a_new_entry(corpus, tmp_path):
    import shutil

    wav = tmp_path / "a.wav"
    shutil.copy(next((corpus / "emodb" / "wav").glob("*.wav")), wav)
    cache = SmileCache(tmp_path / "cache", "egemaps")
    before = cache.entry_path(wav)
    cache.get(wav)
    shutil.copy(next((corpus / "tess").rglob("*.wav")), wav)  # other audio, other size
    assert cache.entry_path(wav) != before
    cache.get(wav)
    assert cache.misses == 2
