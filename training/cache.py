"""On-disk cache of extracted features, keyed by feature config, engine and audio content.

Features are computed with the inference code path -- the audio decoded by
``pyser.audio.read_audio`` (which checks rate, length and samples) and resampled by
``pyser.audio.resample``, then
``pyser.extract_features`` -- once per (config, engine, audio content) and stored as
``.npy`` with a checksum record::

    root/
      <key>/config.json                  the FeatureConfig and engine fingerprint of the entries
      <key>/<sha[:2]>/<sha>.npy           (n_frames, n_bins) float32, sha = sha1 of the audio file
      <key>/<sha[:2]>/<sha>.json          {"sha1" of the .npy bytes, "shape", "source_sha1",
                                           "source_size"}: what a valid entry must match
      index/<k[:2]>/<k>                   JSON {file identity, "sha1" of the file, "check"},
                                           k = sha1(path, size, mtime, ctime, inode)

The key is the sha1 of ``CACHE_FORMAT``, ``config.to_dict()`` and the *engine fingerprint*:
the sha1 of the features of a fixed, integer-generated test signal under that config and
of the resampler's output for it from 8, 22.05 and 44.1 kHz, computed once per process and
config. A change to the FFT, the window, the Mel filterbank, the log or the resampler
changes the fingerprint, so stale features are never reused (a machine whose SIMD code
path rounds differently gets its own key, which is correct too).

The content hash (not the path) names the entry, so renamed or copied files share an
entry and edited files get a new one. The index only saves re-reading big files. Its key
includes the inode change time, which tools that restore mtimes (``touch -r``, ``rsync
-t``) cannot set, and an entry is written only for files whose mtime and ctime are more
than ``racy_s`` (default ``RACY_S``) seconds old, so a file rewritten within the file
system's timestamp granularity is never trusted from the index ("racy git" rule).

Every read is verified: an index entry must carry a valid ``check`` and the identity of the
file it is read for; a feature entry must match its record's checksum, shape and source,
and hold only finite values. Whatever fails is logged as a warning naming the file, then
recomputed and replaced. Every write goes through ``pyser._io.atomic_write`` (temp file,
fsync, ``os.replace``), the ``.npy`` before its record, so an interrupted run leaves at
worst an entry without a record, which is rebuilt. Concurrent writers of one entry write
identical bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pyser._io import atomic_write_bytes
from pyser.audio import AudioDecodeError
from pyser.audio import load_audio as load_audio_checked
from pyser.audio import read_audio as read_audio_checked

__all__ = [
    "CACHE_FORMAT",
    "RACY_S",
    "AudioDecodeError",
    "FeatureCache",
    "config_key",
    "engine_fingerprint",
    "file_sha1",
    "load_audio_checked",
    "read_audio_checked",
]

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump when the cached representation changes (2: checksum records)
RACY_S = 2.0
_CHUNK = 1 << 20


def file_sha1(path: str | Path) -> str:
    """sha1 hex digest of a file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


_ENGINE_FINGERPRINTS: dict[str, str] = {}  # config JSON -> fingerprint, once per process
_FINGERPRINT_LOCK = threading.Lock()


def _test_signal(sample_rate: int) -> np.ndarray:
    """1 s of a sawtooth plus LCG noise, from integer arithmetic only (bit-identical anywhere)."""
    n = np.arange(int(sample_rate), dtype=np.int64)
    saw = ((n * 441) % sample_rate) / sample_rate - 0.5  # a 441 Hz sawtooth in [-0.5, 0.5)
    noise = ((n * 1103515245 + 12345) % (1 << 31)) / float(1 << 31) - 0.5
    return (0.5 * saw + 0.2 * noise).astype(np.float32)


def _engine_numerics(config: Any) -> str:
    """sha1 of what the feature engine and the resampler make of the test signals."""
    from pyser import extract_features
    from pyser.audio import resample

    rate = int(config.sample_rate)
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(extract_features(_test_signal(rate), config)).tobytes())
    for source_rate in (8000, 22050, 44100):
        if source_rate != rate:
            y = resample(_test_signal(source_rate), source_rate, rate)
            h.update(np.ascontiguousarray(y, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def engine_fingerprint(config: Any) -> str:
    """The feature engine's numerics under ``config`` (16 hex), computed once per process."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    with _FINGERPRINT_LOCK:
        fp = _ENGINE_FINGERPRINTS.get(text)
        if fp is None:
            fp = _ENGINE_FINGERPRINTS[text] = _engine_numerics(config)
    return fp


def config_key(config: Any) -> str:
    """The cache key of a FeatureConfig (20 hex): sha1 of ``CACHE_FORMAT``, its ``to_dict()``
    as sorted JSON and :func:`engine_fingerprint`."""
    payload = json.dumps(
        {"format": CACHE_FORMAT, "config": config.to_dict(), "engine": engine_fingerprint(config)},
        sort_keys=True,
        separators=(",", ":"),
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
            :func:`load_audio_checked` (``pyser.audio.load_audio``: decoding plus length, rate and
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
            record = {"config": config.to_dict(), "engine": engine_fingerprint(config)}
            atomic_write_bytes(cfg_json, json.dumps(record, sort_keys=True, indent=2).encode())

    # -------------------------------------------------------------- keys

    def _index_path(self, path: Path, st: os.stat_result) -> Path:
        ident = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}"
        k = hashlib.sha1(ident.encode()).hexdigest()
        return self.root / "index" / k[:2] / k

    @staticmethod
    def _identity(path: Path, st: os.stat_result) -> dict:
        return {
            "path": str(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "ino": st.st_ino,
        }

    @staticmethod
    def _check(record: dict) -> str:
        body = {k: v for k, v in record.items() if k != "check"}
        return hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def _from_index(self, idx: Path, path: Path, st: os.stat_result) -> str | None:
        """The sha1 an index entry gives for ``path``, or None (missing, or failed checks)."""
        try:
            text = idx.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("unreadable cache index entry %s for %s (%s); rehashing", idx, path, exc)
            return None
        if len(text) == 40 and text.isalnum():  # CACHE_FORMAT 1: a bare sha1, unverifiable
            return None
        try:
            record = json.loads(text)
            ok = isinstance(record, dict) and record.get("check") == self._check(record)
        except ValueError:
            ok = False
        if not ok:
            log.warning("corrupt cache index entry %s for %s (checksum mismatch); rehashing",
                        idx, path)
            return None
        if {k: record.get(k) for k in self._identity(path, st)} != self._identity(path, st):
            log.warning("cache index entry %s belongs to %s, not %s; rehashing",
                        idx, record.get("path"), path)
            return None
        sha = record.get("sha1")
        if not (isinstance(sha, str) and len(sha) == 40):
            log.warning("cache index entry %s for %s has no valid sha1; rehashing", idx, path)
            return None
        return sha

    def _content_hash(self, path: str | Path, use_index: bool = True) -> tuple[str, bool]:
        """(sha1 of the file's bytes, whether it came from the index)."""
        path = Path(path).resolve()
        st = path.stat()
        idx = self._index_path(path, st)
        if use_index:
            sha = self._from_index(idx, path, st)
            if sha is not None:
                return sha, True
        sha = file_sha1(path)
        if time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > self.racy_s:
            record = {**self._identity(path, st), "sha1": sha}
            record["check"] = self._check(record)
            try:
                atomic_write_bytes(idx, json.dumps(record, sort_keys=True).encode())
            except OSError as exc:  # the index is an optimisation only
                log.debug("cannot write index entry %s: %s", idx, exc)
        return sha, False

    def content_hash(self, path: str | Path) -> str:
        """sha1 of the file's bytes, from the (verified) index when the file is unchanged."""
        return self._content_hash(path)[0]

    def _entry(self, sha: str) -> Path:
        return self.dir / sha[:2] / f"{sha}.npy"

    def entry_path(self, path: str | Path) -> Path:
        """Where the features of ``path`` under this config live (its record: ``.json``)."""
        return self._entry(self.content_hash(path))

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

    def _read(self, entry: Path, source: Path) -> tuple[np.ndarray | None, dict | None]:
        """The verified features in ``entry`` and its record, or (None, record-or-None)."""
        try:
            data = entry.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            log.warning("unreadable cache entry %s for %s (%s); recomputing", entry, source, exc)
            return None, None

        def bad(why: str, record: dict | None = None) -> tuple[None, dict | None]:
            log.warning("corrupt cache entry %s for %s (%s); recomputing", entry, source, why)
            return None, record

        try:
            record = json.loads(entry.with_suffix(".json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return bad("no checksum record")
        except (OSError, ValueError) as exc:
            return bad(f"unreadable checksum record: {exc}")
        if not isinstance(record, dict):
            return bad("the checksum record is not a JSON object")
        if hashlib.sha1(data).hexdigest() != record.get("sha1"):
            return bad("checksum mismatch", record)
        if record.get("source_sha1") != entry.stem:
            return bad(f"made for content {record.get('source_sha1')}, not {entry.stem}", record)
        try:
            x = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # truncated / garbage file
            return bad(str(exc), record)
        n_bins = getattr(self.config, "n_bins", None)
        if (
            x.ndim != 2
            or x.dtype != np.float32
            or (n_bins is not None and x.shape[1] != n_bins)
            or list(x.shape) != record.get("shape")
        ):
            return bad(f"shape {x.shape} dtype {x.dtype}, expected (n, {n_bins}) float32", record)
        if not np.isfinite(x).all():
            return bad("non-finite values", record)
        return x, record

    def _write(self, entry: Path, x: np.ndarray, source_size: int) -> None:
        buf = io.BytesIO()
        np.save(buf, x, allow_pickle=False)
        data = buf.getvalue()
        record = {
            "sha1": hashlib.sha1(data).hexdigest(),
            "shape": list(x.shape),
            "source_sha1": entry.stem,
            "source_size": int(source_size),
        }
        atomic_write_bytes(entry, data)  # the entry first, then the record that vouches for it
        atomic_write_bytes(entry.with_suffix(".json"), json.dumps(record, sort_keys=True).encode())

    def get(self, utt: Any) -> np.ndarray:
        """``(n_frames, n_bins)`` float32 features of an Utterance (or a path).

        Raises FileNotFoundError for a missing file and :class:`AudioDecodeError` for one
        that cannot be used (see :meth:`compute`).
        """
        path = Path(getattr(utt, "path", utt))
        sha, indexed = self._content_hash(path)
        size = path.stat().st_size
        x, record = self._read(self._entry(sha), path)
        if x is not None and record.get("source_size") != size and indexed:
            # The index named content of another size: it points at another file's hash.
            log.warning(
                "cache index for %s names content %s of %s bytes, the file has %d; rehashing",
                path, sha, record.get("source_size"), size,
            )
            sha, _ = self._content_hash(path, use_index=False)
            x, record = self._read(self._entry(sha), path)
        with self._lock:
            if x is not None:
                self.hits += 1
            else:
                self.misses += 1
        if x is not None:
            return x
        x = self.compute(path)
        self._write(self._entry(sha), x, size)
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
        return self._read(self.entry_path(path), path)[0] is not None

    def __repr__(self) -> str:
        return (
            f"FeatureCache({str(self.root)!r}, key={self.key}, "
            f"hits={self.hits}, misses={self.misses})"
        )
