"""openSMILE functionals of whole utterances, and their on-disk cache.

The classical baseline (:mod:`pyser.training.baseline`) describes every utterance by one
vector of openSMILE *functionals* (statistics of low-level descriptors over the whole
file): ``compare`` is ComParE_2016 (6,373 features), ``egemaps`` eGeMAPSv02 (88). The
``opensmile`` package ships the SMILExtract binary, so nothing else is needed.

Audio is read with :func:`pyser.audio.load_audio` (mono, resampled to 16 kHz, checked),
the same reader as the CRNN's features. Values are stored as openSMILE gives them:
openSMILE fills a segment too short for its windows with NaN, and the baseline deals with
non-finite values after standardisation, not here.

Cache layout (``root`` is usually ``.cache/opensmile``, next to the Mel feature cache)::

    root/<feature set>/<k[:2]>/<k>.npz      arrays "features" (n_features,) float32,
                                            "key" (the entry's key), "sha1" (of the
                                            feature bytes)

``k`` is the sha1 of the cache format, the feature set, the openSMILE version and the
audio file's resolved path, size and mtime, so an edited file or another openSMILE
version gets a new entry. Entries are written atomically (:func:`pyser._io.atomic_write`);
an entry that cannot be read, belongs to another key, has the wrong shape or fails its
checksum is logged as a warning and recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyser._io import atomic_write
from pyser.training.extras import missing_baseline_extras

__all__ = [
    "FEATURE_SETS",
    "SMILE_CACHE_FORMAT",
    "FeatureSet",
    "SmileCache",
    "extract_functionals",
    "feature_set",
]

log = logging.getLogger(__name__)

SMILE_CACHE_FORMAT = 1  # bump when the stored representation changes


@dataclass(frozen=True)
class FeatureSet:
    """One openSMILE functionals set: the name used here, openSMILE's name, its size."""

    name: str
    smile_name: str
    n_features: int


#: The feature sets of the baseline, by the short name the command takes.
FEATURE_SETS: dict[str, FeatureSet] = {
    "compare": FeatureSet("compare", "ComParE_2016", 6373),
    "egemaps": FeatureSet("egemaps", "eGeMAPSv02", 88),
}

def feature_set(name: str) -> FeatureSet:
    """The :class:`FeatureSet` called ``name``; ValueError naming the known ones."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown openSMILE feature set {name!r}; use one of {', '.join(FEATURE_SETS)}"
        ) from None


_SMILES: dict[str, object] = {}  # one openSMILE front end per feature set and process


def _smile(fs: FeatureSet):
    """The openSMILE front end of ``fs`` (built once: it parses the config files)."""
    if fs.name not in _SMILES:
        try:
            import opensmile
        except ImportError:
            raise ModuleNotFoundError(missing_baseline_extras() or "opensmile is missing") from None
        _SMILES[fs.name] = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, fs.smile_name),
            feature_level=opensmile.FeatureLevel.Functionals,
        )
    return _SMILES[fs.name]


def extract_functionals(waveform: np.ndarray, sample_rate: int, fs: FeatureSet) -> np.ndarray:
    """The ``fs`` functionals of one mono waveform: (n_features,) float32, NaN where
    openSMILE has none (a signal shorter than its analysis windows)."""
    with warnings.catch_warnings():
        # "Segment too short, filling with NaN": expected for tiny files, counted later.
        warnings.filterwarnings("ignore", message="Segment too short", category=UserWarning)
        frame = _smile(fs).process_signal(np.asarray(waveform, dtype=np.float32), sample_rate)
    x = np.asarray(frame.to_numpy(), dtype=np.float32).reshape(-1)
    if x.shape != (fs.n_features,):
        raise RuntimeError(
            f"openSMILE {fs.smile_name} gave {x.size} values, expected {fs.n_features}"
        )
    return x


def _opensmile_version() -> str:
    """The installed openSMILE package's version (part of every cache key)."""
    try:
        import opensmile
    except ImportError:
        raise ModuleNotFoundError(missing_baseline_extras() or "opensmile is missing") from None
    return str(opensmile.__version__)


class SmileCache:
    """Compute-once openSMILE functionals of audio files.

    Args:
        root: cache folder (``root/<feature set>/`` holds the entries; created if missing).
        fs: the feature set (a :class:`FeatureSet` or its name).
        sample_rate: audio is resampled to this rate before openSMILE sees it.
        extract: ``(waveform, sample_rate, fs) -> (n_features,)``; default
            :func:`extract_functionals` (looked up at each call, so tests can replace it).
        load: ``(path, sample_rate) -> (n,) float32``; default
            :func:`pyser.audio.load_audio`.
    """

    def __init__(
        self,
        root: str | Path,
        fs: FeatureSet | str,
        sample_rate: int = 16000,
        extract: Callable[[np.ndarray, int, FeatureSet], np.ndarray] | None = None,
        load: Callable[[str | Path, int], np.ndarray] | None = None,
    ) -> None:
        self.fs = feature_set(fs) if isinstance(fs, str) else fs
        self.dir = Path(root).expanduser() / self.fs.smile_name
        self.sample_rate = int(sample_rate)
        self._extract = extract
        self._load = load
        self._version = _opensmile_version()
        self.hits = 0
        self.misses = 0

    def key(self, path: str | Path) -> str:
        """The entry key of ``path`` (sha1 hex; see the module docstring)."""
        p = Path(path).resolve()
        st = p.stat()
        ident = "\0".join(
            str(v)
            for v in (SMILE_CACHE_FORMAT, self.fs.smile_name, self._version, self.sample_rate,
                      p, st.st_size, st.st_mtime_ns)
        )
        return hashlib.sha1(ident.encode()).hexdigest()

    def entry_path(self, path: str | Path) -> Path:
        """Where the functionals of ``path`` are stored."""
        k = self.key(path)
        return self.dir / k[:2] / f"{k}.npz"

    def compute(self, path: str | Path) -> np.ndarray:
        """The functionals of ``path`` without the cache."""
        from pyser.audio import load_audio

        waveform = (self._load or load_audio)(path, self.sample_rate)
        extract = self._extract or extract_functionals
        return np.asarray(extract(waveform, self.sample_rate, self.fs), dtype=np.float32)

    def get(self, path: str | Path) -> np.ndarray:
        """The functionals of ``path``: (n_features,) float32, from the cache when a valid
        entry exists, else computed and stored."""
        k = self.key(path)
        entry = self.dir / k[:2] / f"{k}.npz"
        x = self._read(entry, k, path)
        if x is not None:
            self.hits += 1
            return x
        self.misses += 1
        x = self.compute(path)
        if x.shape != (self.fs.n_features,):
            raise RuntimeError(
                f"{path}: {self.fs.smile_name} extraction gave shape {x.shape}, "
                f"expected ({self.fs.n_features},)"
            )
        sha = hashlib.sha1(x.tobytes()).hexdigest()
        atomic_write(entry, lambda f: np.savez(f, features=x, key=k, sha1=sha))
        return x

    def matrix(self, paths: Sequence[str | Path], progress: bool = False) -> np.ndarray:
        """(len(paths), n_features) float32: the functionals of every file, in order."""
        from pyser.training.progress import progress_bar

        out = np.empty((len(paths), self.fs.n_features), dtype=np.float32)
        bar = progress_bar(total=len(paths), desc=self.fs.smile_name, disable=not progress,
                           leave=False)
        for i, p in enumerate(paths):
            out[i] = self.get(p)
            bar.update(1)
        bar.close()
        return out

    def _read(self, entry: Path, key: str, source: str | Path) -> np.ndarray | None:
        """The verified features in ``entry``, or None (missing or corrupt: logged)."""
        if not entry.is_file():
            return None
        try:
            with np.load(entry, allow_pickle=False) as z:
                x, stored_key, sha = z["features"], str(z["key"]), str(z["sha1"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("corrupt openSMILE cache entry %s for %s (%s); recomputing",
                        entry, source, exc)
            return None
        why = None
        if stored_key != key:
            why = "it belongs to another file or version"
        elif x.dtype != np.float32 or x.shape != (self.fs.n_features,):
            why = f"shape {x.shape} {x.dtype}, expected ({self.fs.n_features},) float32"
        elif hashlib.sha1(x.tobytes()).hexdigest() != sha:
            why = "checksum mismatch"
        if why is not None:
            log.warning("corrupt openSMILE cache entry %s for %s (%s); recomputing",
                        entry, source, why)
            return None
        return x
