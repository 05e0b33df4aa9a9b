"""The classical baseline: openSMILE functionals + RBF SVM, in the CRNN's exact folds.

Issue 7 asks for a classical reference beside the CRNN: ComParE_2016 and eGeMAPSv02
functionals, each with an RBF SVM (balanced class weights, standardised features, C and
gamma chosen by inner speaker-grouped cross-validation), with and without per-speaker
feature normalisation. The protocol, per outer fold of ``prepare_data(cfg).folds`` (the
very folds ``pyser train`` uses for the same config):

1. the utterances are the CRNN's (``PreparedData.utts``: the task's labels, audio the
   feature store could read); every utterance is described by the functionals of the
   whole file (no centre crop: functionals are statistics over the utterance);
2. optional per-speaker normalisation, one of two kinds:

   * ``all`` (:func:`speaker_normalize`): every feature z-scored over all utterances of
     its speaker, test speakers included (their own, unlabelled statistics: the usual
     transductive protocol; an utterance's own values are in its statistics);
   * ``online`` (:func:`online_speaker_normalize`): what a stream can do, and what the
     CRNN's online speaker adaptation does. Each speaker's utterances come in the order the
     CRNN's test streams use (:func:`pyser.training.speaker_adapt.stream_orders`, the
     fold's seed), and each is z-scored by the statistics of those before it only, shrunk
     toward the training population's by a prior worth ``ONLINE_PRIOR_UTTERANCES``
     utterances; the first utterance of a speaker gets the population's. Train + dev
     speakers go through the same walk (their own random order), so the SVM is fitted on
     features normalised as its test features will be;
3. C and gamma by inner cross-validation on the fold's train + dev utterances (the CRNN
   uses dev only to pick a checkpoint; the SVM gets the same utterances for its inner
   CV): ``GroupKFold`` over the speaker keys ``(corpus, speaker)``, so no speaker is on
   both sides of an inner split; score = UA (balanced accuracy), the mean over inner
   folds; the StandardScaler is refitted on each inner training part (no leak from the
   inner validation speakers);
4. the SVM with the chosen C and gamma is fitted on all of train + dev (scaler refitted
   on it) and tested on the fold's test speakers.

Non-finite functionals (openSMILE gives NaN for a file shorter than its windows) are
ignored when means and standard deviations are fitted and set to 0 after standardisation,
i.e. to the training mean. Gamma is searched as a factor of ``1 / n_features`` (scikit-
learn's ``gamma="scale"`` on standardised features). Kernels are precomputed: squared
distances once per (inner) training part, then ``exp(-gamma * D)`` per gamma.

Results go to ``out_dir/baseline_<experiment>/`` (:mod:`pyser.training.baseline_results`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from pyser._io import json_safe
from pyser.training.config import ConfigError, TrainConfig
from pyser.training.data import PreparedData, fold_sizes_by_corpus, prepare_data
from pyser.training.metrics import classification_report, format_summary
from pyser.training.smile import FEATURE_SETS, SmileCache, feature_set
from pyser.training.splits import Fold

__all__ = [
    "FEATURE_CHOICES",
    "SPEAKER_NORM_CHOICES",
    "Selection",
    "Setting",
    "SvmGrid",
    "fit_predict",
    "fold_fingerprint",
    "inner_splits",
    "load_functionals",
    "online_speaker_normalize",
    "run_baseline",
    "run_fold",
    "run_setting",
    "select_hyperparameters",
    "settings_for",
    "smile_cache_dir",
    "speaker_ids",
    "speaker_normalize",
    "squared_distances",
    "standardize",
]

log = logging.getLogger(__name__)

#: ``--feature-set`` choices and the feature sets each runs.
FEATURE_CHOICES: dict[str, tuple[str, ...]] = {
    "compare": ("compare",),
    "egemaps": ("egemaps",),
    "all": ("compare", "egemaps"),
}
#: The per-speaker normalisations a setting can use (see the module docstring).
SPEAKER_NORMS = ("off", "all", "online")
#: ``--speaker-norm`` choices and the normalisations each runs.
SPEAKER_NORM_CHOICES: dict[str, tuple[str, ...]] = {
    "off": ("off",),
    "on": ("all",),
    "online": ("online",),
    "both": ("off", "all"),
    "all": SPEAKER_NORMS,
}
#: The online normalisation's prior, in utterances of the training population: about the
#: 3 s of speech the CRNN's adaptation prior is worth (``speaker_adapt_prior_s``).
ONLINE_PRIOR_UTTERANCES = 2.0


@dataclass(frozen=True)
class SvmGrid:
    """The hyperparameter search: ``C`` values, gamma as factors of ``1 / n_features``, and
    the number of inner speaker-grouped folds (fewer when there are fewer speakers)."""

    C: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
    gamma_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    inner_folds: int = 5

    def __post_init__(self) -> None:
        if not self.C or any(c <= 0 for c in self.C):
            raise ValueError(f"the C grid must be positive values, got {self.C}")
        if not self.gamma_factors or any(g <= 0 for g in self.gamma_factors):
            raise ValueError(f"the gamma factors must be positive, got {self.gamma_factors}")
        if self.inner_folds < 2:
            raise ValueError(f"inner_folds must be at least 2, got {self.inner_folds}")


@dataclass(frozen=True)
class Setting:
    """One row of the baseline table: a feature set and its per-speaker normalisation
    (one of ``SPEAKER_NORMS``)."""

    feature_set: str
    speaker_norm: str = "off"

    def __post_init__(self) -> None:
        if self.speaker_norm not in SPEAKER_NORMS:
            raise ValueError(f"speaker_norm must be one of {', '.join(SPEAKER_NORMS)}, "
                             f"got {self.speaker_norm!r}")

    @property
    def key(self) -> str:
        """``compare``, ``compare_spknorm``, ``compare_spknorm_online``, ...: the name in
        results.json and results.csv."""
        suffix = {"off": "", "all": "_spknorm", "online": "_spknorm_online"}
        return self.feature_set + suffix[self.speaker_norm]

    @property
    def title(self) -> str:
        """``ComParE_2016``, ``ComParE_2016 + speaker norm``, ``ComParE_2016 + online
        speaker norm``, ...: the name in results.md."""
        name = FEATURE_SETS[self.feature_set].smile_name
        suffix = {"off": "", "all": " + speaker norm", "online": " + online speaker norm"}
        return name + suffix[self.speaker_norm]


def settings_for(feature_sets: str, speaker_norm: str) -> list[Setting]:
    """The settings of the ``--feature-set`` and ``--speaker-norm`` choices, feature set
    first; ValueError naming the choices for an unknown one."""
    if feature_sets not in FEATURE_CHOICES:
        raise ValueError(
            f"feature set must be one of {', '.join(FEATURE_CHOICES)}, got {feature_sets!r}"
        )
    if speaker_norm not in SPEAKER_NORM_CHOICES:
        raise ValueError(
            f"speaker norm must be one of {', '.join(SPEAKER_NORM_CHOICES)}, got {speaker_norm!r}"
        )
    return [
        Setting(fs, norm)
        for fs in FEATURE_CHOICES[feature_sets]
        for norm in SPEAKER_NORM_CHOICES[speaker_norm]
    ]


@dataclass
class Selection:
    """The outcome of the inner CV: the chosen C and gamma and every grid point's score."""

    C: float
    gamma_factor: float
    gamma: float
    inner_ua: float
    scores: list[dict] = field(default_factory=list)  # {"C", "gamma_factor", "ua", "std"}


# ---------------------------------------------------------------------------- features


def smile_cache_dir(cfg: TrainConfig) -> Path:
    """``.cache/opensmile`` beside the Mel feature cache (``cfg.cache_dir``'s sibling)."""
    return Path(cfg.cache_dir).expanduser().parent / "opensmile"


def load_functionals(
    data: PreparedData, cfg: TrainConfig, name: str, progress: bool = False
) -> np.ndarray:
    """(n_utterances, n_features) float32 functionals of ``data.utts``, through the cache."""
    cache = SmileCache(smile_cache_dir(cfg), feature_set(name), data.feature_config.sample_rate)
    x = cache.matrix([u.path for u in data.utts], progress=progress)
    log.info("%s: %d utterances, %d from the cache, %d extracted", cache.fs.smile_name,
             len(x), cache.hits, cache.misses)
    return x


def speaker_ids(utts: Sequence, key: Callable[[object], Hashable] | None = None) -> np.ndarray:
    """An int per utterance naming its speaker, keyed by ``(corpus, speaker)`` as the
    splits do (EmoDB speaker 03 and RAVDESS actor 03 are two speakers)."""
    key = key or (lambda u: (u.corpus, u.speaker))
    keys = [key(u) for u in utts]
    index = {k: i for i, k in enumerate(sorted(set(keys), key=repr))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def _finite_float64(x: np.ndarray) -> np.ndarray:
    """A float64 copy with +-inf made NaN: "no value", like openSMILE's NaN."""
    out = np.array(x, dtype=np.float64)
    out[np.isinf(out)] = np.nan
    return out


def _zscore_columns(x: np.ndarray) -> np.ndarray:
    """Every column z-scored over its finite values (population std); NaN stays NaN.

    A column constant up to rounding (std <= 1e-12 * max(1, |mean|)) becomes exactly 0:
    dividing by its rounding noise would turn values of ~1e-18 into +-1 and, once the
    training part is standardised, a test speaker's ordinary values into ~1e18.
    """
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    filled = np.where(ok, x, 0.0)
    mean = np.divide(filled.sum(axis=0), n, out=np.zeros(x.shape[1]), where=n > 0)
    dev = np.where(ok, x - mean, 0.0)
    var = np.divide((dev * dev).sum(axis=0), n, out=np.zeros(x.shape[1]), where=n > 0)
    std = np.sqrt(var)
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    z = (x - mean) / np.where(constant, 1.0, std)
    z[:, constant] = 0.0
    z[~ok] = np.nan
    return z


def speaker_normalize(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Every feature z-scored per speaker over all of that speaker's rows (float64).

    Non-finite values stay NaN and are left out of the statistics; a feature constant
    within a speaker becomes 0 for that speaker.
    """
    x = _finite_float64(x)
    speakers = np.asarray(speakers)
    if speakers.shape != (x.shape[0],):
        raise ValueError(f"speakers has shape {speakers.shape}, expected ({x.shape[0]},)")
    out = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        out[rows] = _zscore_columns(x[rows])
    return out


def online_speaker_normalize(
    x: np.ndarray,
    keys: Sequence[Hashable],
    fit_idx: np.ndarray,
    parts: Sequence[np.ndarray],
    seed: int,
    prior: float = ONLINE_PRIOR_UTTERANCES,
) -> np.ndarray:
    """Rows of ``parts`` z-scored causally per speaker (float64; other rows NaN).

    Within each part, each speaker's rows are walked in :func:`stream_orders` order
    (``seed``; ``keys[i]`` is row i's speaker) and row k is z-scored by the mean and
    variance of rows 0..k-1 pooled with ``prior`` pseudo-rows of the population (the mean
    and variance of the rows ``fit_idx``): the first row gets the population's statistics,
    later ones move toward the speaker's. A row's own values never enter its statistics.
    Non-finite values stay NaN and count as the population mean in later statistics.
    """
    from pyser.training.speaker_adapt import stream_orders

    if prior <= 0:
        raise ValueError(f"the online normalisation prior must be positive, got {prior}")
    x = _finite_float64(x)
    with np.errstate(all="ignore"):  # all-NaN columns: their statistics stay NaN
        mu, var = np.nanmean(x[fit_idx], axis=0), np.nanvar(x[fit_idx], axis=0)
    filled = np.where(np.isfinite(x), x, mu)
    out = np.full_like(x, np.nan)
    for part in parts:
        part = np.asarray(part, dtype=np.int64)
        for order in stream_orders([keys[int(i)] for i in part], seed):
            rows = part[order]
            n = prior + np.arange(len(rows), dtype=np.float64)[:, None]  # rows heard + prior
            s1 = prior * mu + _exclusive_cumsum(filled[rows])
            s2 = prior * (var + mu**2) + _exclusive_cumsum(filled[rows] ** 2)
            mean = s1 / n
            std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
            with np.errstate(all="ignore"):
                z = (x[rows] - mean) / std
            z[~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 0.0  # constant so far
            z[~np.isfinite(x[rows])] = np.nan
            out[rows] = z
    return out


def _exclusive_cumsum(a: np.ndarray) -> np.ndarray:
    """Row k: the sum of rows 0..k-1 (row 0: zeros)."""
    out = np.zeros_like(a)
    np.cumsum(a[:-1], axis=0, out=out[1:])
    return out


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``train`` and ``others`` standardised with a StandardScaler fitted on ``train``
    (NaN left out of the fit), then every non-finite value set to 0 (the training mean)."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(_finite_float64(train))
    return [
        np.nan_to_num(scaler.transform(_finite_float64(a)), nan=0.0, posinf=0.0, neginf=0.0)
        for a in (train, *others)
    ]


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances, float64, clipped at 0 (rounding)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
    d -= 2.0 * (a @ b.T)
    np.maximum(d, 0.0, out=d)
    return d


# ---------------------------------------------------------------------------- the SVM


def _svm(C: float):
    from sklearn.svm import SVC

    return SVC(kernel="precomputed", C=C, class_weight="balanced")


def fit_predict(
    d_train: np.ndarray, y_train: np.ndarray, d_test: np.ndarray, C: float, gamma: float
) -> np.ndarray:
    """Predictions of an RBF SVM (balanced class weights) given squared distances: train x
    train ``d_train`` and test x train ``d_test``."""
    svm = _svm(C).fit(np.exp(-gamma * d_train), y_train)
    return svm.predict(np.exp(-gamma * d_test))


def inner_splits(
    idx: np.ndarray, speakers: np.ndarray, n_splits: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Speaker-grouped inner folds of the utterances ``idx``: ``(train, validation)`` pairs
    of utterance indices (into the whole corpus, like ``idx``); ``GroupKFold`` with
    ``min(n_splits, speakers in idx)`` folds. ValueError with fewer than two speakers."""
    from sklearn.model_selection import GroupKFold

    idx = np.asarray(idx, dtype=np.int64)
    groups = np.asarray(speakers)[idx]
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(
            f"inner cross-validation needs at least 2 speakers in the training part, got "
            f"{n_groups}"
        )
    k = min(n_splits, n_groups)
    return [(idx[tr], idx[va]) for tr, va in GroupKFold(n_splits=k).split(idx, groups=groups)]


def select_hyperparameters(
    x: np.ndarray,
    y: np.ndarray,
    speakers: np.ndarray,
    idx: np.ndarray,
    grid: SvmGrid,
    n_classes: int,
) -> Selection:
    """C and gamma with the best mean inner UA over speaker-grouped folds of ``idx``
    (rows of ``x``); ties go to the first grid point (smaller C, then smaller gamma)."""
    n_features = x.shape[1]
    per_fold = []  # one (len(C), len(gamma_factors)) array of UA per inner fold
    for tr, va in inner_splits(idx, speakers, grid.inner_folds):
        z_tr, z_va = standardize(x[tr], x[va])  # the scaler sees the inner training part only
        d_tr, d_va = squared_distances(z_tr, z_tr), squared_distances(z_va, z_tr)
        fold = np.zeros((len(grid.C), len(grid.gamma_factors)))
        for gi, factor in enumerate(grid.gamma_factors):
            k_tr, k_va = np.exp(-factor / n_features * d_tr), np.exp(-factor / n_features * d_va)
            for ci, C in enumerate(grid.C):
                pred = _svm(C).fit(k_tr, y[tr]).predict(k_va)
                fold[ci, gi] = classification_report(y[va], pred, n_classes)["ua"]
        per_fold.append(fold)
    ua = np.stack(per_fold, axis=2)  # ua[c, g, inner fold]
    mean = ua.mean(axis=2)
    ci, gi = np.unravel_index(int(np.argmax(mean)), mean.shape)  # first maximum
    scores = [
        {"C": C, "gamma_factor": g, "ua": float(mean[i, j]), "std": float(ua[i, j].std())}
        for i, C in enumerate(grid.C)
        for j, g in enumerate(grid.gamma_factors)
    ]
    factor = grid.gamma_factors[gi]
    return Selection(grid.C[ci], factor, factor / n_features, float(mean[ci, gi]), scores)


# ---------------------------------------------------------------------------- folds


def fold_fingerprint(fold: Fold) -> str:
    """sha1 (16 hex) of a fold's train, dev and test index lists: equal fingerprints mean
    the very same split (compare a baseline fold with the CRNN's)."""
    text = "|".join(",".join(str(int(i)) for i in sorted(part))
                    for part in (fold.train, fold.dev, fold.test))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _report(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """:func:`classification_report` ready for strict JSON (NaN -> None)."""
    return {k: json_safe(v) for k, v in classification_report(y_true, y_pred, n_classes).items()}


def _reports_by_corpus(
    corpora: np.ndarray, y: np.ndarray, idx: np.ndarray, pred: np.ndarray, n_classes: int
) -> dict:
    """``{corpus: report}`` of each corpus's part of the utterances ``idx``."""
    return {
        c: _report(y[idx[corpora[idx] == c]], pred[corpora[idx] == c], n_classes)
        for c in sorted(set(corpora[idx].tolist()))
    }


def run_fold(
    x: np.ndarray,
    data: PreparedData,
    speakers: np.ndarray,
    fold: Fold,
    grid: SvmGrid,
) -> dict:
    """One outer fold: inner CV on train + dev, the chosen SVM fitted on train + dev and
    tested on the fold's test part. Returns the fold's result (JSON-ready)."""
    n_classes = len(data.labels)
    y = data.y
    fit_idx = np.sort(np.concatenate([fold.train, fold.dev]).astype(np.int64))
    test_idx = np.asarray(fold.test, dtype=np.int64)
    sel = select_hyperparameters(x, y, speakers, fit_idx, grid, n_classes)
    z_fit, z_test = standardize(x[fit_idx], x[test_idx])
    d_fit = squared_distances(z_fit, z_fit)
    pred = fit_predict(d_fit, y[fit_idx], squared_distances(z_test, z_fit), sel.C, sel.gamma)
    result = {
        "repeat": int(fold.repeat),
        "fold": int(fold.fold),
        "seed": fold.seed,
        "split_sha1": fold_fingerprint(fold),
        "C": sel.C,
        "gamma": sel.gamma,
        "gamma_factor": sel.gamma_factor,
        "inner_ua": sel.inner_ua,
        "inner_scores": sel.scores,
        "sizes": {"train": len(fold.train), "dev": len(fold.dev), "test": len(fold.test)},
        "test_speakers": sorted({f"{data.utts[i].corpus}/{data.utts[i].speaker}"
                                 for i in test_idx}),
        "test": _report(y[test_idx], pred, n_classes),
    }
    if "corpora" in data.info:  # several corpora: also each corpus's part of the test set
        corpora = np.array([u.corpus for u in data.utts])
        result["test_by_corpus"] = _reports_by_corpus(corpora, y, test_idx, pred, n_classes)
        result["sizes_by_corpus"] = fold_sizes_by_corpus(data.utts, fold)
    return result


def _fold_features(x: np.ndarray, data: PreparedData, setting: Setting, fold: Fold,
                   stream_seed: Callable[[Fold], int] | None) -> np.ndarray:
    """The features a setting's SVM sees in ``fold`` before standardisation (float64, NaN =
    none)."""
    if setting.speaker_norm == "all":
        return speaker_normalize(x, speaker_ids(data.utts))
    if setting.speaker_norm == "online":
        if stream_seed is None:
            raise ValueError("online speaker normalisation needs the folds' stream seeds")
        fit = np.concatenate([fold.train, fold.dev]).astype(np.int64)
        keys = [(u.corpus, u.speaker) for u in data.utts]
        return online_speaker_normalize(x, keys, fit, [fit, np.asarray(fold.test)],
                                        stream_seed(fold))
    return _finite_float64(x)


def run_setting(x: np.ndarray, data: PreparedData, setting: Setting, grid: SvmGrid,
                stream_seed: Callable[[Fold], int] | None = None) -> dict:
    """Every fold of one setting; returns ``{"setting", ..., "folds": [...], "seconds"}``.
    ``stream_seed``: a fold's seed of its speakers' stream order (online normalisation
    only; ``run_baseline`` gives the CRNN's, so both walk the test speakers alike)."""
    start = time.perf_counter()
    speakers = speaker_ids(data.utts)
    folds = []
    feats = None
    for fold in data.folds:
        if feats is None or setting.speaker_norm == "online":  # online: per fold
            feats = _fold_features(x, data, setting, fold, stream_seed)
        r = run_fold(feats, data, speakers, fold, grid)
        log.info("%s r%d f%d: C %g, gamma %g/d, inner UA %.2f %%, test UA %.2f %%",
                 setting.title, fold.repeat, fold.fold, r["C"], r["gamma_factor"],
                 100 * r["inner_ua"], 100 * r["test"]["ua"])
        folds.append(r)
    return {
        "setting": setting.key,
        "title": setting.title,
        "feature_set": FEATURE_SETS[setting.feature_set].smile_name,
        "n_features": int(x.shape[1]),
        "speaker_norm": setting.speaker_norm,
        "n_nonfinite": int((~np.isfinite(x)).sum()),
        "n_utterances_nonfinite": int((~np.isfinite(x)).any(axis=1).sum()),
        "folds": folds,
        "seconds": time.perf_counter() - start,
    }


def _threads(n: int):
    """A context limiting BLAS/OpenMP threads to ``n`` (0: leave them)."""
    from contextlib import nullcontext

    if n <= 0:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def run_baseline(
    cfg: TrainConfig,
    settings: Sequence[Setting] | None = None,
    grid: SvmGrid | None = None,
    data: PreparedData | None = None,
) -> dict:
    """Run the baseline settings over the folds of ``cfg`` and write the results.

    Args:
        cfg: the CRNN's training config (corpus, split, folds, seeds, cache and output
            folders); the experiment folder is ``out_dir/baseline_<experiment>``.
        settings: the table's rows (default: both feature sets, each without, with all-
            utterance and with online per-speaker normalisation).
        grid: the SVM hyperparameter search (default :class:`SvmGrid`).
        data: ``prepare_data(cfg)`` when the caller has it already.
    Returns:
        ``{"dir", "settings": [per-setting results], "summary": {setting key: summary},
        "data", "timing"}``.
    """
    from pyser.training.baseline_results import write_baseline_results
    from pyser.training.train import fold_seed  # the seed of the CRNN's test streams

    settings = list(settings) if settings is not None else settings_for("all", "all")
    if not settings:
        raise ConfigError("no baseline settings to run")
    grid = grid or SvmGrid()
    timing: dict[str, float] = {}
    start = time.perf_counter()
    with _threads(cfg.num_threads):
        if data is None:  # the task's utterances: the CRNN's auxiliary emotions are not read
            data = prepare_data(dataclasses.replace(cfg, aux_emotions=False))
        elif data.aux is not None:
            raise ValueError("the baseline reads the task's utterances only; prepare its data "
                             "without aux_emotions")
        timing["prepare_data_s"] = time.perf_counter() - start
        runs = []
        for name in dict.fromkeys(s.feature_set for s in settings):
            t = time.perf_counter()
            x = load_functionals(data, cfg, name, progress=cfg.progress)
            timing[f"features_{name}_s"] = time.perf_counter() - t
            for s in (s for s in settings if s.feature_set == name):
                runs.append(run_setting(x, data, s, grid, partial(fold_seed, cfg)))
                log.info("%s: %s", s.title, format_summary(_pooled(runs[-1])))
    timing["total_s"] = time.perf_counter() - start
    exp_dir = Path(cfg.out_dir) / f"baseline_{cfg.experiment}"
    summary = write_baseline_results(exp_dir, cfg, data.info, runs, grid, timing)
    return {"dir": str(exp_dir), "settings": runs, "summary": summary, "data": data.info,
            "timing": timing}


def _pooled(run: dict) -> dict:
    """Mean ± std of the pooled test metrics of one setting's folds."""
    from pyser.training.metrics import summarize

    return summarize([f["test"] for f in run["folds"]])


if __name__ == "__main__":  # python -m pyser.training.baseline
    from pyser.training.cli import main

    sys.exit(main("baseline"))
