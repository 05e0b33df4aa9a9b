"""pyser.training.cache.FeatureCache: same features as the inference path, computed once,
keyed by config and content, atomic and self-healing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pyser import FeatureConfig, extract_features
from pyser.audio import load_audio
from pyser.training.cache import RACY_S, FeatureCache, config_key, file_sha1
from pyser.training.datasets import Utterance

SR = 16000


class CountingExtract:
    """The real extract_features, counting calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, waveform, config):
        self.calls += 1
        return extract_features(waveform, config)


def write_audio(path: Path, seconds: float = 0.5, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32)
    sf.write(str(path), x, SR)
    return path


def utt(path: Path) -> Utterance:
    return Utterance(path, "sad", "s", 0.5, "test", {})


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_same_as_direct_extraction_and_hits(tmp_path):
    wav = write_audio(tmp_path / "a.wav")
    cfg = FeatureConfig()
    count = CountingExtract()
    cache = FeatureCache(tmp_path / "cache", cfg, extract=count)
    x = cache.get(utt(wav))
    direct = extract_features(load_audio(wav, cfg.sample_rate), cfg)
    # 0.5 s at 16 kHz, n_fft 1024, hop 160, center=False: 1 + (8000 - 1024) // 160 frames.
    assert x.dtype == np.float32 and x.shape == direct.shape == (44, 128)
    np.testing.assert_array_equal(x, direct)
    assert (count.calls, cache.hits, cache.misses) == (1, 0, 1)
    y = cache.get(utt(wav))
    np.testing.assert_array_equal(y, direct)
    assert (count.calls, cache.hits, cache.misses) == (1, 1, 1)
    # A new FeatureCache on the same folder (a new run) hits too; a path works like an Utterance.
    count2 = CountingExtract()
    z = FeatureCache(tmp_path / "cache", cfg, extract=count2).get(wav)
    np.testing.assert_array_equal(z, direct)
    assert count2.calls == 0
    assert leftovers(tmp_path) == []


def test_default_extractor_is_pyser(tmp_path):
    wav = write_audio(tmp_path / "a.flac", seconds=0.3)
    cfg = FeatureConfig(kind="stft")
    x = FeatureCache(tmp_path / "cache", cfg).get(wav)
    np.testing.assert_array_equal(x, extract_features(load_audio(wav), cfg))
    assert x.shape[1] == 513


def test_config_change_gives_new_key(tmp_path):
    wav = write_audio(tmp_path / "a.wav")
    a, b = FeatureConfig(), FeatureConfig(n_mels=64)
    assert config_key(a) == config_key(FeatureConfig.from_dict(a.to_dict()))
    assert config_key(a) != config_key(b)
    count = CountingExtract()
    ca = FeatureCache(tmp_path / "cache", a, extract=count)
    cb = FeatureCache(tmp_path / "cache", b, extract=count)
    xa, xb = ca.get(wav), cb.get(wav)
    assert count.calls == 2 and xa.shape[1] == 128 and xb.shape[1] == 64
    assert ca.entry_path(wav) != cb.entry_path(wav)
    assert (ca.dir / "config.json").is_file() and (cb.dir / "config.json").is_file()


def test_content_change_recomputes(tmp_path):
    wav = write_audio(tmp_path / "a.wav", seed=1)
    count = CountingExtract()
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), extract=count)
    x1 = cache.get(wav)
    before = wav.stat()
    # Same name, same size, new samples, and the old mtime restored: only the content
    # (and the ctime, which the racy rule keeps out of the index while fresh) differ.
    write_audio(wav, seed=2)
    os.utime(wav, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert wav.stat().st_size == before.st_size and wav.stat().st_ino == before.st_ino
    x2 = cache.get(wav)
    assert count.calls == 2
    assert not np.array_equal(x1, x2)
    np.testing.assert_array_equal(x2, extract_features(load_audio(wav), FeatureConfig()))


def test_content_is_the_key_not_the_path(tmp_path):
    wav = write_audio(tmp_path / "a.wav")
    copy = tmp_path / "copy" / "b.wav"
    copy.parent.mkdir()
    copy.write_bytes(wav.read_bytes())
    count = CountingExtract()
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), extract=count)
    cache.get(wav)
    cache.get(copy)
    assert count.calls == 1 and cache.entry_path(wav) == cache.entry_path(copy)
    assert cache.entry_path(wav).stem == file_sha1(copy)


def test_index_avoids_rehash_only_for_settled_files(tmp_path, monkeypatch):
    import pyser.training.cache as cache_mod

    hashed = []
    real = cache_mod.file_sha1
    monkeypatch.setattr(cache_mod, "file_sha1", lambda p: hashed.append(p) or real(p))
    wav = write_audio(tmp_path / "a.wav")
    # A file changed within racy_s seconds is never trusted from the index. racy_s is an
    # hour here (the default RACY_S is 2 s), so a slow machine cannot make the file "settled"
    # between the write and the reads.
    assert RACY_S > 0
    fresh = FeatureCache(tmp_path / "cache", FeatureConfig(), racy_s=3600.0)
    fresh.get(wav)
    fresh.get(wav)
    assert len(hashed) == 2
    assert not (tmp_path / "cache" / "index").exists()
    # With a negative racy_s every file counts as settled: hashed once, then indexed.
    settled = FeatureCache(tmp_path / "cache", FeatureConfig(), racy_s=-1.0)
    for _ in range(3):
        settled.get(wav)
    assert len(hashed) == 3
    assert len([p for p in (tmp_path / "cache" / "index").rglob("*") if p.is_file()]) == 1
    # A changed file misses the index and is rehashed.
    write_audio(wav, seconds=0.6)
    assert settled.get(wav).shape == (1 + (9600 - 1024) // 160, 128)
    assert len(hashed) == 4


def test_truncated_entry_recomputed(tmp_path, caplog):
    wav = write_audio(tmp_path / "a.wav")
    count = CountingExtract()
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), extract=count)
    x = cache.get(wav)
    entry = cache.entry_path(wav)
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])  # an interrupted non-atomic write
    y = cache.get(wav)
    assert count.calls == 2 and "corrupt cache entry" in caplog.text
    np.testing.assert_array_equal(x, y)
    assert entry.read_bytes() == data  # repaired on disk
    # Wrong shape (e.g. from another config) is also rejected.
    np.save(entry, np.zeros((3, 7), np.float32))
    np.testing.assert_array_equal(cache.get(wav), x)
    assert count.calls == 3
    assert leftovers(tmp_path) == []


def test_interrupted_write_leaves_no_entry_and_no_temp(tmp_path, monkeypatch):
    wav = write_audio(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "cache", FeatureConfig())
    entry = cache.entry_path(wav)

    def failing_save(f, x, allow_pickle=False):
        f.write(b"\x93NUMPY partial")
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(np, "save", failing_save)
        with pytest.raises(RuntimeError, match="disk full"):
            cache.get(wav)
    assert not entry.exists() and leftovers(tmp_path) == []
    assert cache.get(wav).shape == (44, 128) and entry.exists()


def test_get_many_matches_get(tmp_path):
    wavs = [write_audio(tmp_path / f"{i}.wav", seconds=0.2 + 0.1 * i, seed=i) for i in range(5)]
    count = CountingExtract()
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), extract=count)
    many = cache.get_many([utt(w) for w in wavs], num_workers=2)
    assert count.calls == 5
    for w, x in zip(wavs, many):
        np.testing.assert_array_equal(x, extract_features(load_audio(w), FeatureConfig()))
    again = cache.get_many(wavs)
    assert count.calls == 5 and all(np.array_equal(a, b) for a, b in zip(many, again))
    assert utt(wavs[0]) in cache and wavs[1] in cache
    assert tmp_path / "nope.wav" not in cache
    fresh = write_audio(tmp_path / "fresh.wav", seed=99)
    assert fresh not in cache and count.calls == 5
    assert leftovers(tmp_path) == []


def test_missing_file_raises(tmp_path):
    cache = FeatureCache(tmp_path / "cache", FeatureConfig())
    with pytest.raises(FileNotFoundError):
        cache.get(tmp_path / "nope.wav")


# ------------------------------------------------------------------ decoding checks


def truncate_wav_data(src: Path, dest: Path) -> Path:
    """A copy of ``src`` with half its sample bytes cut off; the header still claims them all."""
    data = src.read_bytes()
    dest.write_bytes(data[: 44 + (len(data) - 44) // 2])
    return dest


def test_read_audio_checked_returns_what_soundfile_decodes(tmp_path):
    from pyser.training.cache import read_audio_checked

    for name, subtype in (("a.wav", "PCM_16"), ("b.flac", "PCM_16"), ("c.wav", "FLOAT")):
        path = tmp_path / name
        x = 0.1 * np.random.default_rng(0).standard_normal((3000, 2))
        sf.write(str(path), x, 22050, subtype=subtype)
        data, rate = read_audio_checked(path)
        want, want_rate = sf.read(str(path), dtype="float32", always_2d=True)
        assert rate == want_rate == 22050 and data.dtype == np.float32
        np.testing.assert_array_equal(data, want)


def test_read_audio_checked_rejects_a_truncated_wav(tmp_path):
    from pyser.training.cache import read_audio_checked

    full = write_audio(tmp_path / "full.wav", seconds=1.0)
    half = truncate_wav_data(full, tmp_path / "half.wav")
    # libsndfile reads the half silently, and its own frame count is corrected to the half.
    assert len(sf.read(str(half))[0]) == SR // 2
    with pytest.raises(ValueError, match=r"half\.wav.*header says 16000 frames.*8000"):
        read_audio_checked(half)


def test_read_audio_checked_rejects_a_truncated_flac(tmp_path):
    from pyser.training.cache import read_audio_checked

    full = write_audio(tmp_path / "full.flac", seconds=1.0)
    cut = tmp_path / "cut.flac"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert sf.info(str(cut)).frames == SR  # the header is intact
    with pytest.raises(ValueError, match=r"cut\.flac"):
        read_audio_checked(cut)


def test_read_audio_checked_rejects_absurd_rates_before_decoding(tmp_path, monkeypatch):
    import struct

    from pyser.training.cache import read_audio_checked

    wav = write_audio(tmp_path / "a.wav", seconds=1.0)
    for rate in (1, 999, 768001, 4_000_000):
        bad = tmp_path / f"rate{rate}.wav"
        header = bytearray(wav.read_bytes())
        struct.pack_into("<II", header, 24, rate, 2 * rate)  # sample rate, bytes per second
        bad.write_bytes(bytes(header))
        assert sf.info(str(bad)).samplerate == rate
        with monkeypatch.context() as m:
            m.setattr(sf, "read", lambda *a, **k: pytest.fail("decoded an absurd file"))
            with pytest.raises(ValueError, match=rf"rate{rate}\.wav.*{rate} Hz.*\[1000, 768000\]"):
                read_audio_checked(bad)
    # At 1 Hz, resampling this 32 KB file to 16 kHz would have needed 16000x its samples.
    with pytest.raises(ValueError, match=r"rate1\.wav"):
        FeatureCache(tmp_path / "cache", FeatureConfig()).get(tmp_path / "rate1.wav")


def test_read_audio_checked_rejects_non_finite_samples(tmp_path):
    from pyser.training.cache import read_audio_checked

    x = np.zeros(4000, np.float32)
    x[1234] = np.nan
    sf.write(str(tmp_path / "nan.wav"), x, SR, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav.*non-finite.*frame 1234"):
        read_audio_checked(tmp_path / "nan.wav")


def test_read_audio_checked_names_undecodable_and_missing_files(tmp_path):
    from pyser.training.cache import read_audio_checked

    (tmp_path / "junk.wav").write_bytes(b"RIFF not really audio" * 10)
    with pytest.raises(ValueError, match=r"junk\.wav"):
        read_audio_checked(tmp_path / "junk.wav")
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        read_audio_checked(tmp_path / "nope.wav")


def test_cache_names_the_file_it_cannot_decode(tmp_path):
    full = write_audio(tmp_path / "full.wav", seconds=1.0)
    half = truncate_wav_data(full, tmp_path / "half.wav")
    cache = FeatureCache(tmp_path / "cache", FeatureConfig())
    with pytest.raises(ValueError, match=r"half\.wav"):
        cache.get(half)
    x = np.zeros(4000, np.float32)
    x[7] = np.inf
    sf.write(str(tmp_path / "inf.wav"), x, SR, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"inf\.wav.*non-finite"):
        cache.get(tmp_path / "inf.wav")
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing cached for either


# ------------------------------------------------------------------ entry verification


def npy_data_offset(entry: Path) -> int:
    """Where the array data starts in a .npy file (after the magic and the header)."""
    with open(entry, "rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        return f.tell()


def test_an_entry_holding_a_nan_is_rebuilt_with_a_warning(tmp_path, caplog):
    wav = write_audio(tmp_path / "a.wav")
    count = CountingExtract()
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), extract=count)
    x = cache.get(wav)
    entry = cache.entry_path(wav)
    poisoned = x.copy()
    poisoned[10, 3] = np.nan
    np.save(entry, poisoned)  # a perfectly valid .npy
    y = cache.get(wav)
    assert count.calls == 2 and np.isfinite(y).all()
    np.testing.assert_array_equal(y, x)
    assert str(entry) in caplog.text
    np.testing.assert_array_equal(np.load(entry), x)  # repaired on disk


def test_an_entry_with_one_flipped_byte_is_rebuilt_with_a_warning(tmp_path, caplog):
    wav = write_audio(tmp_path / "a.wav")
    count = CountingExtract()
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), extract=count)
    x = cache.get(wav)
    entry = cache.entry_path(wav)
    data = bytearray(entry.read_bytes())
    at = npy_data_offset(entry) + 4 * (5 * 128 + 7) + 1  # frame 5, bin 7, a mantissa byte
    data[at] ^= 0x01
    entry.write_bytes(bytes(data))
    flipped = np.load(entry)
    assert np.isfinite(flipped).all() and flipped[5, 7] != x[5, 7]  # still plausible
    y = cache.get(wav)
    assert count.calls == 2
    np.testing.assert_array_equal(y, x)
    assert str(entry) in caplog.text and "checksum" in caplog.text


def test_an_index_entry_pointing_at_another_files_hash_is_not_trusted(tmp_path, caplog):
    a = write_audio(tmp_path / "a.wav", seed=1)
    b = write_audio(tmp_path / "b.wav", seed=2)
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), racy_s=-1.0)  # index everything
    xa, xb = cache.get(a), cache.get(b)
    index = {p.read_text(): p for p in (tmp_path / "cache" / "index").rglob("*") if p.is_file()}
    (entry_a,) = [p for text, p in index.items() if file_sha1(a) in text]
    (entry_b,) = [p for text, p in index.items() if file_sha1(b) in text]
    entry_a.write_bytes(entry_b.read_bytes())  # a's index entry now names b's content
    got = FeatureCache(tmp_path / "cache", FeatureConfig(), racy_s=-1.0).get(a)
    np.testing.assert_array_equal(got, xa)
    assert not np.array_equal(got, xb)
    assert str(entry_a) in caplog.text and str(a) in caplog.text
    # and an index entry with one flipped byte is not trusted either
    caplog.clear()
    text = bytearray(entry_b.read_bytes())
    at = text.index(file_sha1(b).encode()) + 3
    text[at] = ord("0") if text[at] != ord("0") else ord("1")
    entry_b.write_bytes(bytes(text))
    np.testing.assert_array_equal(
        FeatureCache(tmp_path / "cache", FeatureConfig(), racy_s=-1.0).get(b), xb
    )
    assert str(entry_b) in caplog.text


# ------------------------------------------------------------------ the engine is in the key


class ShiftedCore:
    """pyser._core with a changed log stage: every feature value is 0.5 dB higher."""

    def __init__(self, core):
        self._core = core

    def __getattr__(self, name):
        return getattr(self._core, name)

    def extract_features(self, options, waveform):
        return self._core.extract_features(options, waveform) + np.float32(0.5)


def test_a_change_in_the_feature_engine_does_not_reuse_stale_features(tmp_path, monkeypatch):
    import pyser.features
    import pyser.training.cache as cache_mod

    wav = write_audio(tmp_path / "a.wav")
    cfg = FeatureConfig()
    first = FeatureCache(tmp_path / "cache", cfg)
    old = first.get(wav)
    with monkeypatch.context() as m:
        m.setattr(cache_mod, "_ENGINE_FINGERPRINTS", {}, raising=False)  # a new process
        m.setattr(pyser.features, "_core", ShiftedCore(pyser.features._core))
        new_engine = FeatureCache(tmp_path / "cache", cfg)
        x = new_engine.get(wav)
        np.testing.assert_array_equal(x, old + np.float32(0.5))
        assert new_engine.key != first.key and new_engine.misses == 1
    again = FeatureCache(tmp_path / "cache", cfg)  # the original engine still hits its entries
    np.testing.assert_array_equal(again.get(wav), old)
    assert again.hits == 1


def test_a_change_in_the_resampler_does_not_reuse_stale_features(tmp_path, monkeypatch):
    import pyser.audio
    import pyser.training.cache as cache_mod

    wav = tmp_path / "a44.wav"
    sf.write(str(wav), 0.1 * np.sin(np.arange(22050) * 0.07), 44100)
    cfg = FeatureConfig()
    old_key = FeatureCache(tmp_path / "cache", cfg).key
    old = FeatureCache(tmp_path / "cache", cfg).get(wav)
    real = pyser.audio.resample

    def cruder(samples, orig_rate, target_rate):  # e.g. a shorter filter: different numerics
        return (real(samples, orig_rate, target_rate) * np.float32(0.99)).astype(np.float32)

    with monkeypatch.context() as m:
        m.setattr(cache_mod, "_ENGINE_FINGERPRINTS", {}, raising=False)
        m.setattr(pyser.audio, "resample", cruder)
        cache = FeatureCache(tmp_path / "cache", cfg)
        assert cache.key != old_key
        assert not np.array_equal(cache.get(wav), old)
        assert cache.misses == 1


def test_the_engine_fingerprint_is_computed_once_per_config(monkeypatch):
    import pyser.training.cache as cache_mod

    monkeypatch.setattr(cache_mod, "_ENGINE_FINGERPRINTS", {})
    calls = []
    real = cache_mod._engine_numerics
    monkeypatch.setattr(cache_mod, "_engine_numerics", lambda c: calls.append(c) or real(c))
    a = config_key(FeatureConfig())
    assert config_key(FeatureConfig()) == a and len(calls) == 1
    assert config_key(FeatureConfig(n_mels=64)) != a and len(calls) == 2
