"""On-disk cache of extracted features, keyed by feature config and audio content.

Features are computed with the inference code path -- ``pyser.audio.load_audio``
then ``pyser.extract_features`` -- once per (config, audio content) and stored
as ``.npy``::

    root/
      <config key>/config.json          the FeatureConfig the entries were made with
      <config key>/<sha[:2]>/<sha>.npy   (n_frames, n_bins) float32, sha = sha1 of the file bytes
      index/<k[:2]>/<k>                  sha1 of a file, k = sha1(path, size, mtime, ctime, inode)

The config key is the sha1 of ``config.to_dict()`` as sorted JSON plus
``CACHE_FORMAT``. The content hash (not the path) is the key, so renamed or
copied files share an entry and edited files get a new one. The index only
saves re-reading big files. Its key includes the inode change time, which
tools that restore mtimes (``touch -r``, ``rsync -t``) cannot set, and an entry
is written only for files whose mtime and ctime are more than ``racy_s``
(default ``RACY_S``) seconds old, so a file rewritten within the file system's
timestamp granularity is never trusted from the index ("racy git" rule).

Every write goes to a temporary file in the destination folder, is fsynced and
``os.replace``-d into place, so an interrupted run never leaves a truncated
entry; an unreadable or wrongly shaped entry is logged, recomputed and
replaced. Concurrent writers of one entry write identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pyser._io import atomic_write, atomic_write_bytes

__all__ = [
    "CACHE_FORMAT",
    "RACY_S",
    "AudioDecodeError",
    "FeatureCache",
    "config_key",
    "file_sha1",
    "load_audio_checked",
    "read_audio_checked",
]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the cached representation changes
RACY_S = 2.0
_CHUNK = 1 << 20


class AudioDecodeError(ValueError):
    """An audio file that cannot be used: undecodable, truncated, absurd rate, NaN/Inf samples.

    ``path`` is the file and ``reason`` what is wrong with it; the message names both.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def _wav_header_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE file's ``data`` chunk header claims, or None when it does not say.

    libsndfile shortens ``soundfile.info(path).frames`` to the bytes actually present, so a
    truncated WAV looks whole through it; the chunk header keeps the original size. None for
    other formats, RF64, and the "unknown length" sizes (0, 0xFFFFFFFF) of streamed WAVs.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        block_align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size)
                if len(fmt) >= 14:
                    block_align = struct.unpack_from(order + "H", fmt, 12)[0]
                f.seek(size & 1, os.SEEK_CUR)
            elif cid == b"data":
                if block_align <= 0 or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)


def read_audio_checked(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a sound file completely and check it: ``(samples (n, channels) float32, rate)``.

    Checks, each failure an :class:`AudioDecodeError` (a ValueError) naming the file:

    * the sample rate is in ``[pyser.audio.MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` (1 kHz to
      768 kHz), checked from the header *before* decoding (a header claiming 1 Hz would
      make resampling to 16 kHz allocate gigabytes);
    * the file decodes (a FLAC cut after an intact header fails here);
    * the decoded length equals the header's: the WAV ``data`` chunk size, else
      ``soundfile.info(path).frames`` (a WAV cut short decodes "fine" to fewer frames);
    * every sample is finite.

    Raises FileNotFoundError (naming the file) for a missing one.
    """
    import soundfile as sf

    from pyser.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError) as exc:  # sf.LibsndfileError is a RuntimeError
        raise AudioDecodeError(path, f"cannot read the audio header ({exc})") from None
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            path,
            f"sample rate {info.samplerate} Hz is outside [{MIN_SAMPLE_RATE}, "
            f"{MAX_SAMPLE_RATE}] Hz (a corrupt header?)",
        )
    try:
        claimed = _wav_header_frames(path)
    except OSError as exc:
        raise AudioDecodeError(path, f"cannot read the WAV header ({exc})") from None
    if claimed is None:
        claimed = info.frames if info.frames > 0 else None
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise AudioDecodeError(path, f"cannot decode the audio ({exc})") from None
    if claimed is not None and data.shape[0] != claimed:
        raise AudioDecodeError(
            path,
            f"truncated or corrupt: the header says {claimed} frames, "
            f"{data.shape[0]} could be decoded",
        )
    finite = np.isfinite(data)
    if not finite.all():
        frame = int(np.argmin(finite.all(axis=1)))
        raise AudioDecodeError(
            path, f"non-finite sample (NaN or Inf) at frame {frame} of {data.shape[0]}"
        )
    return data, int(rate)


def load_audio_checked(path: str | Path, sample_rate: int) -> np.ndarray:
    """:func:`read_audio_checked`, then mono float32 at ``sample_rate`` (the inference path's
    ``pyser.audio.to_mono_float32`` and ``resample``)."""
    from pyser.audio import resample, to_mono_float32

    data, rate = read_audio_checked(path)
    return resample(to_mono_float32(data), rate, sample_rate)


def file_sha1(path: str | Path) -> str:
    """sha1 hex digest of a file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def config_key(config: Any) -> str:
    """A stable key for a FeatureConfig: sha1 of its ``to_dict()`` as sorted JSON (20 hex)."""
    payload = json.dumps(
        {"format": CACHE_FORMAT, "config": config.to_dict()}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:20]


class FeatureCache:
    """Compute-once feature store for training.

    Args:
        root: cache folder (created if missing).
        config: a ``pyser.FeatureConfig`` (anything with ``to_dict()``,
            ``sample_rate`` and ``n_bins``).
        extract: ``(waveform, config) -> (n_frames, n_bins)``; default
            ``pyser.extract_features``.
        load: ``(path, sample_rate) -> (n,) float32``; default
            :func:`load_audio_checked` (``pyser.audio``'s decoding plus length, rate and
            finiteness checks).
        racy_s: files changed less than this many seconds ago are hashed on
            every call instead of being recorded in the index.
    """

    def __init__(
        self,
        root: str | Path,
        config: Any,
        extract: Callable[[np.ndarray, Any], np.ndarray] | None = None,
        load: Callable[[str | Path, int], np.ndarray] | None = None,
        racy_s: float = RACY_S,
    ):
        self.root = Path(root).expanduser()
        self.config = config
        self.key = config_key(config)
        self.dir = self.root / self.key
        self._extract = extract
        self._load = load
        self.racy_s = float(racy_s)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg_json = self.dir / "config.json"
        if not cfg_json.is_file():
            text = json.dumps(config.to_dict(), sort_keys=True, indent=2).encode()
            atomic_write_bytes(cfg_json, text)

    # -------------------------------------------------------------- keys

    def _index_path(self, path: Path, st: os.stat_result) -> Path:
        ident = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}"
        k = hashlib.sha1(ident.encode()).hexdigest()
        return self.root / "index" / k[:2] / k

    def content_hash(self, path: str | Path) -> str:
        """sha1 of the file's bytes, from the index when the file is unchanged."""
        path = Path(path).resolve()
        st = path.stat()
        idx = self._index_path(path, st)
        try:
            sha = idx.read_text().strip()
            if len(sha) == 40:
                return sha
        except OSError:
            pass
        sha = file_sha1(path)
        if time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > self.racy_s:
            try:
                atomic_write_bytes(idx, sha.encode())
            except OSError as exc:  # the index is an optimisation only
                log.debug("cannot write index entry %s: %s", idx, exc)
        return sha

    def entry_path(self, path: str | Path) -> Path:
        """Where the features of ``path`` under this config live."""
        sha = self.content_hash(path)
        return self.dir / sha[:2] / f"{sha}.npy"

    # -------------------------------------------------------------- access

    def compute(self, path: str | Path) -> np.ndarray:
        """Features of ``path`` without the cache (the inference code path).

        Raises :class:`AudioDecodeError` (naming the file) when the file cannot be decoded,
        fails :func:`read_audio_checked`'s checks, or gives non-finite features.
        """
        load = self._load or load_audio_checked
        extract = self._extract
        if extract is None:
            from pyser import extract_features as extract
        try:
            waveform = load(path, self.config.sample_rate)
            x = np.ascontiguousarray(extract(waveform, self.config), dtype=np.float32)
        except AudioDecodeError:
            raise
        except (ValueError, RuntimeError) as exc:  # a custom loader's or the extractor's
            raise AudioDecodeError(path, str(exc)) from exc
        if not np.isfinite(x).all():
            raise AudioDecodeError(path, "the features hold non-finite values")
        return x

    def _read(self, entry: Path) -> np.ndarray | None:
        try:
            x = np.load(entry, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError) as exc:  # truncated / garbage file
            log.warning("corrupt cache entry %s (%s); recomputing", entry, exc)
            return None
        n_bins = getattr(self.config, "n_bins", None)
        if x.ndim != 2 or x.dtype != np.float32 or (n_bins is not None and x.shape[1] != n_bins):
            log.warning(
                "cache entry %s has shape %s dtype %s, expected (n, %s) float32; recomputing",
                entry, x.shape, x.dtype, n_bins,
            )
            return None
        return x

    def get(self, utt: Any) -> np.ndarray:
        """``(n_frames, n_bins)`` float32 features of an Utterance (or a path)."""
        path = Path(getattr(utt, "path", utt))
        entry = self.entry_path(path)
        x = self._read(entry)
        with self._lock:
            if x is not None:
                self.hits += 1
            else:
                self.misses += 1
        if x is not None:
            return x
        x = self.compute(path)
        atomic_write(entry, lambda f: np.save(f, x, allow_pickle=False))
        return x

    def get_many(self, utts: Iterable[Any], num_workers: int = 0) -> list[np.ndarray]:
        """``get`` for many utterances, in order; ``num_workers > 1`` uses threads
        (decoding and the C++ extractor release the GIL)."""
        utts = list(utts)
        if num_workers <= 1:
            return [self.get(u) for u in utts]
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            return list(pool.map(self.get, utts))

    def __contains__(self, utt: Any) -> bool:
        """Whether a valid entry exists (False for a missing audio file)."""
        path = Path(getattr(utt, "path", utt))
        if not path.is_file():
            return False
        return self._read(self.entry_path(path)) is not None

    def __repr__(self) -> str:
        return (
            f"FeatureCache({str(self.root)!r}, key={self.key}, "
            f"hits={self.hits}, misses={self.misses})"
        )
