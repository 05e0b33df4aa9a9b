"""The typed training configuration, loaded from TOML with ``--set key=value`` overrides.

A config file is a flat TOML table whose keys are :class:`TrainConfig` fields,
plus two optional extras:

* ``base = "other.toml"``: start from that file (path relative to this one), then
  apply this file's keys on top;
* a ``[sweep]`` table, ``key = "center_lambda"`` and ``values = [...]``, read by
  ``pyser.training.experiments`` (one run per value);
* or ``[variants.NAME]`` tables of keys, one run per variant (an ablation).

Neither a sweep nor variants are inherited through ``base``.

Overrides are ``KEY=VALUE`` strings. VALUE is parsed as a TOML value when it is one
(``3e-4``, ``true``, ``[0, 1]``, ``"text"``) and taken as a bare string otherwise
(``corpus=emodb``), then checked against the field's type. ``features.KEY=VALUE``
sets one FeatureConfig option. An unknown key is an error that names it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from pyser.training.splits import default_split

__all__ = [
    "CONFIG_DIR",
    "CSV_PREFIX",
    "DATA_ENV",
    "DEFAULT_DATA_DIR",
    "ConfigError",
    "CorpusSource",
    "ExperimentSpec",
    "TrainConfig",
    "apply_overrides",
    "find_config",
    "load_config",
    "corpus_source",
    "load_experiment",
    "parse_corpus_list",
    "resolve_data_root",
]

#: Prefix of a corpus-list entry that names a CSV manifest: ``"csv:/data/mine/manifest.csv"``.
CSV_PREFIX = "csv:"

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Environment variable naming the folder that holds the corpora (emodb/, ravdess/, ...).
DATA_ENV = "PYSER_DATA"
#: The corpora's folder when neither data_root nor $PYSER_DATA is set: ``shared/data`` next
#: to the repository (not the current directory).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def resolve_data_root(corpus: str, data_root: str | None = None) -> Path:
    """The folder (or, for csv, the manifest) of ``corpus``, found in this order:

    1. ``data_root`` when given (a config key, ``--set data_root=DIR``, ``--root``);
       ``{corpus}`` in it is replaced by the corpus name; relative to the current folder;
    2. ``$PYSER_DATA/<corpus>``, when the environment variable is set;
    3. ``DEFAULT_DATA_DIR/<corpus>``: ``shared/data`` next to the repository.

    Raises FileNotFoundError naming every place looked at when the chosen one is missing.
    """
    default = DEFAULT_DATA_DIR / corpus
    env = os.environ.get(DATA_ENV)
    if data_root:
        root = Path(data_root.format(corpus=corpus)).expanduser()
        if root.exists():
            return root
        raise FileNotFoundError(
            f"{corpus} data not found: data_root={data_root!r} (the config or --set "
            f"data_root=...) gives {root.absolute()}, which does not exist; without data_root "
            f"pyser looks in ${DATA_ENV}/{corpus} "
            f"({Path(env).expanduser() / corpus if env else 'not set'}), then {default}"
        )
    tried = []
    if env:
        root = Path(env).expanduser() / corpus
        if root.exists():
            return root
        tried.append(f"${DATA_ENV}/{corpus} = {root} does not exist")
    else:
        tried.append(f"${DATA_ENV} is not set")
    if default.exists():
        return default
    tried.append(f"the default {default} does not exist")
    raise FileNotFoundError(
        f"{corpus} data not found: data_root is not set (--set data_root=DIR, or --root for "
        f"pyser evaluate), {'; '.join(tried)}. Set data_root, or {DATA_ENV} to the folder "
        f"holding {corpus}/"
    )


class ConfigError(ValueError):
    """A bad configuration file or override (unknown key, wrong type, bad value)."""


@dataclass(frozen=True)
class CorpusSource:
    """One corpus of a run: ``name`` (what utterances, folds and metrics call it), ``kind``
    (the loader: iemocap, emodb, ravdess, tess, csv) and ``root`` (its folder or manifest)."""

    name: str
    kind: str
    root: Path


def parse_corpus_list(text: str) -> list[str] | str:
    """``"[emodb, ravdess]"`` (the bare ``--set corpus=[emodb,ravdess]`` form, which is not
    TOML) as a list of names; any other string is returned as it is."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return text
    items = [item.strip().strip("\"'").strip() for item in text[1:-1].split(",")]
    return [item for item in items if item]


def corpus_source(entry: str, data_root: str = "") -> CorpusSource:
    """The :class:`CorpusSource` of one ``corpus`` entry.

    ``csv:PATH`` names a manifest (``~`` expanded, relative to the current folder; data_root
    is not used); any other entry is a corpus name found by :func:`resolve_data_root`.
    Raises FileNotFoundError when the folder or manifest does not exist.
    """
    if entry.lower().startswith(CSV_PREFIX):
        path = Path(entry[len(CSV_PREFIX):]).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"corpus entry {entry!r}: manifest {path.absolute()} does not exist"
            )
        return CorpusSource(entry, "csv", path)
    return CorpusSource(entry.lower(), entry.lower(), resolve_data_root(entry, data_root or None))


@dataclass
class TrainConfig:
    """Everything a training run depends on. Units are in the names where they matter."""

    # --- what to run, on which data
    experiment: str = "default"
    """Run name: results go to ``out_dir/<experiment>/``."""
    corpus: str | list[str] = "iemocap"
    """iemocap | emodb | ravdess | tess | csv (see pyser.training.datasets.load_corpus), or a
    list of several, e.g. ``["emodb", "ravdess", "tess"]``, pooled in one run (entries may
    also be ``"csv:PATH"`` manifests; see docs/training.md, "Several corpora in one run")."""
    data_root: str = ""
    """Corpus folder (csv: the manifest); ``{corpus}`` is replaced by the corpus name; relative
    paths are taken from the current directory. Empty: ``$PYSER_DATA/<corpus>``, else
    ``shared/data/<corpus>`` next to the repository (see :func:`resolve_data_root`)."""
    task: str = "4class"
    """Label set (pyser.training.datasets.TASKS)."""

    # --- features
    feature_kind: str = "mel"
    """mel (128 log-Mel bins) | stft (513 log-power bins)."""
    features: dict[str, Any] = field(default_factory=dict)
    """Extra FeatureConfig options (librosa names), e.g. ``{n_mels = 64}``."""
    max_seconds: float = 14.0
    """Longer utterances are centre-cropped to this length (the authors' 1400 frames)."""
    crop_eval: bool = True
    """Crop dev/test utterances too, as the authors' loader does; false evaluates whole ones."""
    cache_dir: str = ".cache/features"
    """Feature cache (pyser.training.cache.FeatureCache)."""
    preload: bool = True
    """Hold all (cropped) features in memory; false reads them from the cache per batch."""

    # --- split
    split: str = "auto"
    """paper (IEMOCAP session/speaker protocol) | speaker (speaker-independent) |
    auto (paper for iemocap, speaker otherwise) | all (one run on every utterance, no dev
    or test: the final model, trained for ``steps`` steps and kept at the last one)."""
    n_folds: int = 5
    seeds: list[int] = field(default_factory=lambda: [0])
    """Split seeds; one repeat of the n-fold protocol per seed."""
    folds: list[int] = field(default_factory=list)
    """Fold indices to run (empty: all)."""

    # --- optimisation (the authors' values)
    steps: int = 3520
    batch_size: int = 32
    lr: float = 3e-4
    lr_schedule: str = "constant"
    """constant (the authors') | cosine: from ``lr`` after the warm-up down to
    ``lr * lr_final`` at the last step."""
    lr_final: float = 0.05
    """The cosine schedule's last learning rate, as a fraction of ``lr``."""
    center_lambda: float = 0.3
    """Weight of the center loss (0 trains with cross-entropy only)."""
    center_alpha: float = 0.5
    """Center update rate."""
    warmup_steps: int = 20
    """Steps with lambda = 0 and alpha = 1 before the configured values apply."""
    average_from_step: int = 0
    """From this step on, keep the running mean of the weights after every step and end
    the run with it (stochastic weight averaging; the last-step results and a split "all"
    model are then the mean). 0: off."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy (0: off)."""
    class_weighted: bool = True
    """Weight both losses by max(n)/(n_c + 0.5) of the training-label counts."""

    # --- augmentation (pyser.training.augment; training batches only)
    aug_gain_db: float = 0.0
    """Random level offset per utterance, uniform in +-this many dB (0: off)."""
    aug_freq_warp: float = 0.0
    """Random stretch of the frequency axis by a factor in 1 +- this (0: off), e.g. 0.1."""
    aug_time_masks: int = 0
    """SpecAugment time masks per utterance (0: off)."""
    aug_time_mask_frames: int = 30
    """Maximum width of a time mask, in frames."""
    aug_freq_masks: int = 0
    """SpecAugment frequency masks per utterance (0: off)."""
    aug_freq_mask_bins: int = 16
    """Maximum width of a frequency mask, in bins."""
    aug_speed: float = 0.0
    """Random speed change by a factor in 1 +- this, time and frequency together (0: off)."""
    aug_noise_snr_db: list[float] = field(default_factory=list)
    """[low, high]: coloured noise added at an SNR uniform in this range, in dB (empty: off)."""

    # --- online speaker adaptation (pyser.adapt; pyser.training.speaker_adapt)
    speaker_adapt: bool = False
    """Train and evaluate with online per-speaker feature normalisation: each example is
    shifted by the mean speech spectrum of a random set of its speaker's other utterances
    (training), or of the utterances its speaker said before it in a stream (dev and test).
    The model file then carries the constants ``Recognizer`` needs to do it live."""
    speaker_adapt_prior_s: float = 3.0
    """Seconds of speech at the population mean that a speaker's estimate starts from."""
    speaker_adapt_max_history: int = 32
    """Training: at most this many same-speaker utterances make an example's history."""
    speaker_adapt_p_none: float = 0.25
    """Training: the fraction of examples given no history (as a first utterance is)."""
    speaker_adapt_scale: bool = False
    """Also scale each bin so that the speaker's spread of speech frames matches the
    population's (per-speaker mean and variance normalisation; pyser.adapt.affine)."""
    speaker_adapt_logit_prior: float = 8.0
    """Output normalisation (pyser.adapt, ``logit_mean``): the model file also gets the
    statistics of its logits over the training utterances as served, and a speaker's
    outputs are moved onto them, the speaker's own statistics shrunk by this many
    pseudo-utterances (0: off). The training is unchanged unless
    ``speaker_adapt_logit_train``."""
    speaker_adapt_logit_scale: bool = True
    """Output normalisation maps each logit's spread too (``logit_std``): a z-score of the
    speaker's outputs, as the classical systems z-score their functionals."""
    speaker_adapt_logit_train: bool = False
    """Train with output normalisation too: the loss reads each example's logits normalised
    by its feature history's logits (pyser.training.speaker_adapt.LogitMemory), as the
    runtime serves them. Needs ``speaker_adapt`` and a logit prior > 0; one process only."""

    # --- knowledge distillation (pyser.training.distill)
    distill_teachers: list[str] = field(default_factory=list)
    """Model files (``pyser.model.save_model``) whose averaged posteriors the run also
    learns from, one path template per teacher: ``{repeat}`` and ``{fold}`` name the fold,
    and a relative path lies under ``out_dir``. Every teacher must have been trained on the
    same fold of the same split (checked from its metadata). Empty: off."""
    distill_weight: float = 0.5
    """The distillation term's share of the classification loss (the cross-entropy keeps
    the rest)."""
    distill_temperature: float = 2.0
    """Temperature of the teachers' and the student's posteriors in the distillation term."""

    # --- auxiliary emotions (pyser.training.aux_emotions)
    aux_emotions: bool = False
    """Also learn from the training speakers' utterances of the emotions the task leaves
    out (e.g. fear, disgust, surprise, calm, boredom): a linear head on the embedding z
    classifies every training utterance by its own emotion, and its class-weighted
    cross-entropy joins the loss, times ``aux_weight``. FC2, the center loss, dev, test and
    the exported model see the task's utterances only (the head is not exported), and the
    folds are the task's own. One process only."""
    aux_weight: float = 0.5
    """The auxiliary emotions' cross-entropy weight in the loss."""

    # --- evaluation and model selection
    eval_every: int = 20
    """Dev UA every this many steps (and at the last step)."""
    best_after_step: int = 200
    """Only dev evaluations at or after this step compete for the best checkpoint
    (the authors' best_params_start_steps)."""
    eval_batch_size: int = 64
    eval_train: bool = True
    """Also report metrics of the selected model on the training set."""
    save_embeddings: bool = False
    """Save z (FC1 output) of the selected model on train and test, for PCA plots."""

    # --- runtime
    precision: str = "fp32"
    """fp32 | bf16 (autocast of the forward pass to bfloat16; the weights, losses and
    optimiser stay float32) | auto (bf16 where it runs natively: CUDA, or CPUs with AMX /
    AVX-512 BF16; fp32 elsewhere). bf16 changes the numbers, not the recipe."""
    channels_last: bool = True
    """Convolution weights and activations in channels-last layout (oneDNN's fast path on
    CPU; with bf16 it reaches the AMX kernels)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    num_threads: int = 0
    """torch CPU threads for the run (0: leave torch's default)."""
    seed: int = 0
    """Base seed of model initialisation and batch order (combined with repeat and fold)."""
    deterministic: bool = True
    """torch.use_deterministic_algorithms during the run (needed for exact resume)."""
    out_dir: str = "runs"
    checkpoint_every: int = 200
    """Write a resumable checkpoint every this many steps (0: only when stopping)."""
    stop_at_step: int = 0
    """Checkpoint and stop after this step (0: off); for preemption tests."""
    keep_weights_every: int = 0
    """Also keep the model's weights every this many steps as ``weights_<step>.pt`` in the
    fold's folder (0: off), so a run can be scored at earlier steps
    (``scripts/score_spans.py --weights step:N``)."""
    log_every: int = 10
    progress: bool = True
    """tqdm progress bar (rank 0, and only on a terminal)."""

    # ------------------------------------------------------------------ helpers
    def __post_init__(self) -> None:
        if isinstance(self.corpus, str):
            self.corpus = parse_corpus_list(self.corpus)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run could use."""
        if self.feature_kind not in ("mel", "stft"):
            raise ConfigError(f"feature_kind must be 'mel' or 'stft', got {self.feature_kind!r}")
        if self.split not in ("auto", "paper", "speaker", "all"):
            raise ConfigError(
                f"split must be 'auto', 'paper', 'speaker' or 'all', got {self.split!r}"
            )
        for name in ("steps", "batch_size", "n_folds", "eval_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "warmup_steps",
            "best_after_step",
            "checkpoint_every",
            "stop_at_step",
            "keep_weights_every",
            "num_threads",
            "log_every",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("aug_gain_db", "aug_time_masks", "aug_time_mask_frames",
                     "aug_freq_masks", "aug_freq_mask_bins"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.aug_freq_warp < 0.5:
            raise ConfigError(f"aug_freq_warp must be in [0, 0.5), got {self.aug_freq_warp}")
        if not 0 <= self.average_from_step <= self.steps:
            raise ConfigError(
                f"average_from_step must be in [0, steps = {self.steps}], "
                f"got {self.average_from_step}"
            )
        if not 0 <= self.aug_speed < 0.5:
            raise ConfigError(f"aug_speed must be in [0, 0.5), got {self.aug_speed}")
        snr = self.aug_noise_snr_db
        if snr and not (len(snr) == 2 and all(math.isfinite(v) for v in snr)
                        and snr[0] <= snr[1]):
            raise ConfigError(
                f"aug_noise_snr_db must be empty or [low, high] dB with low <= high, got {snr}"
            )
        if self.speaker_adapt_prior_s <= 0:
            raise ConfigError(
                f"speaker_adapt_prior_s must be > 0, got {self.speaker_adapt_prior_s}"
            )
        if self.speaker_adapt_max_history < 1:
            raise ConfigError(
                f"speaker_adapt_max_history must be >= 1, got {self.speaker_adapt_max_history}"
            )
        if not (math.isfinite(self.speaker_adapt_logit_prior)
                and self.speaker_adapt_logit_prior >= 0):
            raise ConfigError("speaker_adapt_logit_prior must be >= 0 (0: off), got "
                              f"{self.speaker_adapt_logit_prior}")
        if self.speaker_adapt_logit_train and not (self.speaker_adapt
                                                   and self.speaker_adapt_logit_prior > 0):
            raise ConfigError("speaker_adapt_logit_train needs speaker_adapt = true and "
                              "speaker_adapt_logit_prior > 0")
        if not 0 <= self.speaker_adapt_p_none <= 1:
            raise ConfigError(
                f"speaker_adapt_p_none must be in [0, 1], got {self.speaker_adapt_p_none}"
            )
        if self.distill_teachers:
            if not 0 < self.distill_weight <= 1:
                raise ConfigError(f"distill_weight must be in (0, 1], got {self.distill_weight}")
            if not (math.isfinite(self.distill_temperature) and self.distill_temperature > 0):
                raise ConfigError(
                    f"distill_temperature must be > 0, got {self.distill_temperature}"
                )
            if self.speaker_adapt_logit_train:
                raise ConfigError("distill_teachers and speaker_adapt_logit_train cannot be "
                                  "combined: the teachers' logits are not output-normalised")
        if self.aux_emotions:
            if not (math.isfinite(self.aux_weight) and self.aux_weight > 0):
                raise ConfigError(f"aux_weight must be > 0, got {self.aux_weight}")
            if self.distill_teachers or self.speaker_adapt_logit_train:
                raise ConfigError("aux_emotions cannot be combined with distill_teachers or "
                                  "speaker_adapt_logit_train: their losses read the task's "
                                  "utterances only")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(
                f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if not 0 <= self.lr_final <= 1:
            raise ConfigError(f"lr_final must be in [0, 1], got {self.lr_final}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.center_lambda < 0:
            raise ConfigError(f"center_lambda must be >= 0, got {self.center_lambda}")
        if not 0 < self.center_alpha <= 1:
            raise ConfigError(f"center_alpha must be in (0, 1], got {self.center_alpha}")
        if self.max_seconds <= 0:
            raise ConfigError(f"max_seconds must be positive, got {self.max_seconds}")
        if not self.seeds:
            raise ConfigError("seeds must name at least one split seed")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ConfigError(f"precision must be fp32, bf16 or auto, got {self.precision!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if "kind" in self.features:
            raise ConfigError("set the feature kind with feature_kind, not features.kind")
        self._validate_corpus()

    def _validate_corpus(self) -> None:
        """A corpus list: non-empty, known names or ``csv:PATH``, no repeats; several corpora
        need ``{corpus}`` in a data_root (else they would all be read from one folder)."""
        if isinstance(self.corpus, str):
            return  # a single name is checked by the loader, as always
        from pyser.training.datasets import CORPORA

        entries = self.corpus
        if not entries:
            raise ConfigError("corpus is an empty list; name at least one corpus")
        for e in entries:
            if e.lower() in ("csv", CSV_PREFIX) or (
                not e.lower().startswith(CSV_PREFIX) and e.lower() not in CORPORA
            ):
                raise ConfigError(
                    f"corpus list entry {e!r} is not a corpus; use one of "
                    f"{', '.join(sorted(set(CORPORA) - {'csv'}))} or csv:PATH (a manifest)"
                )
        repeated = sorted({e for e in entries if entries.count(e) > 1})
        if repeated:
            raise ConfigError(f"corpus list names {', '.join(repeated)} more than once")
        named = [e for e in entries if not e.lower().startswith(CSV_PREFIX)]
        if len(named) > 1 and self.data_root and "{corpus}" not in self.data_root:
            raise ConfigError(
                f"data_root={self.data_root!r} has no {{corpus}} but corpus lists "
                f"{', '.join(named)}: every corpus would be read from the same folder; use "
                "e.g. data_root=/data/{corpus}, or leave data_root empty"
            )

    def corpus_entries(self) -> list[str]:
        """The corpus entries of the run: ``[corpus]`` for a single name, else the list."""
        return [self.corpus] if isinstance(self.corpus, str) else list(self.corpus)

    def corpus_label(self) -> str:
        """The corpus, or the corpora joined by ``+``, for logs, titles and results."""
        return "+".join(self.corpus_entries())

    def corpus_sources(self) -> list[CorpusSource]:
        """Where every corpus of the run is (:func:`corpus_source`); FileNotFoundError when
        one is missing."""
        return [corpus_source(e, self.data_root) for e in self.corpus_entries()]

    def split_kind(self) -> str:
        """'paper' or 'speaker' (``auto`` resolves by corpus: :func:`default_split`)."""
        if self.split != "auto":
            return self.split
        return default_split(self.corpus_entries())

    def resolved_data_root(self) -> Path:
        """The folder of a single corpus (:func:`resolve_data_root`); FileNotFoundError when
        missing, ConfigError for a list of corpora (use :meth:`corpus_sources`)."""
        if not isinstance(self.corpus, str):
            raise ConfigError("corpus is a list; each corpus has its own folder (corpus_sources)")
        return resolve_data_root(self.corpus, self.data_root)

    def feature_config(self):  # -> pyser.FeatureConfig (imported lazily)
        from pyser import FeatureConfig

        return FeatureConfig(kind=self.feature_kind, **self.features)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict, checking every key and value type."""
        known = _field_types()
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown config key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(k) for k in unknown)} in {source}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        kwargs = {k: _coerce(k, v, known[k], source) for k, v in d.items()}
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (checked like a config file)."""
        d = self.to_dict()
        d.update(changes)
        return TrainConfig.from_dict(d, source="replace()")


@dataclass
class ExperimentSpec:
    """A config file's content: the base config and an optional one-parameter sweep or a
    set of named variants (an ablation)."""

    config: TrainConfig
    path: Path | None = None
    sweep_key: str | None = None
    sweep_values: list[Any] = field(default_factory=list)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``{name: {key: value}}``: one run per variant, the base config with those keys."""

    def configs(self) -> list[TrainConfig]:
        """One config per sweep value (experiment ``<name>/<key>=<value>``), per variant
        (``<name>/<variant>``), or just the base."""
        if self.variants:
            return [
                self.config.replace(**changes, experiment=f"{self.config.experiment}/{name}")
                for name, changes in self.variants.items()
            ]
        if not self.sweep_key:
            return [self.config]
        return [
            self.config.replace(
                **{
                    self.sweep_key: v,
                    "experiment": f"{self.config.experiment}/{self.sweep_key}={v}",
                }
            )
            for v in self.sweep_values
        ]

    def variant(self, name: str | None) -> TrainConfig:
        """The config of variant ``name`` (None: the base config); ConfigError naming the
        variants for an unknown one."""
        if name is None:
            return self.config
        if name not in self.variants:
            raise ConfigError(f"{self.config.experiment} has no variant {name!r}: "
                              f"{list(self.variants)}")
        return self.configs()[list(self.variants).index(name)]


# ---------------------------------------------------------------------- parsing


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value: Any, typ: Any, source: str) -> Any:
    """Check ``value`` against the annotation ``typ``; ints are accepted for floats."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{key} in {source} must be {expected}, got {value!r}")

    origin = typing.get_origin(typ)
    if origin in (types.UnionType, typing.Union):
        return _coerce_union(key, value, typ, source)
    if typ is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if origin is list:
        (item,) = typing.get_args(typ)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]  # seeds=3 means [3]
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return [_coerce(f"{key}[]", v, item, source) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad("a table")
        return dict(value)
    raise ConfigError(f"unsupported type {typ} for {key}")  # pragma: no cover


def _coerce_union(key: str, value: Any, typ: Any, source: str) -> Any:
    """The first arm of ``typ`` (e.g. ``str | list[str]``) that accepts ``value``."""
    for arm in typing.get_args(typ):
        if typing.get_origin(arm) is list and not isinstance(value, (list, tuple)):
            continue  # a scalar is not promoted to a list here: str takes it
        try:
            return _coerce(key, value, arm, source)
        except ConfigError:
            continue
    names = " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(typ))
    raise ConfigError(f"{key} in {source} must be {names}, got {value!r}")


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(cfg: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Apply ``KEY=VALUE`` strings (``features.KEY=VALUE`` for feature options)."""
    d = cfg.to_dict()
    known = _field_types()
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        value = _parse_value(text.strip())
        if key.startswith("features."):
            d["features"] = {**d["features"], key.split(".", 1)[1]: value}
            continue
        if key not in known:
            raise ConfigError(
                f"unknown config key {key!r} in --set {item!r}; known keys: {', '.join(sorted(known))}"
            )
        d[key] = value
    return TrainConfig.from_dict(d, source="--set overrides")


def find_config(name_or_path: str | Path) -> Path:
    """A config path: an existing file, or ``NAME`` / ``NAME.toml`` in training/configs."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / f"{name_or_path}", CONFIG_DIR / f"{name_or_path}.toml"):
        if cand.is_file():
            return cand
    names = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.toml")))
    raise ConfigError(f"no config file {str(name_or_path)!r}; bundled configs: {names}")


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(
            f"config files include each other: {' -> '.join(map(str, seen + (path,)))}"
        )
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"base in {path} must be a file name")
    merged = _read_toml(path.parent / base, seen + (path,))
    # A sweep or a set of variants belongs to its own file: neither is inherited.
    own = {k: data.pop(k) for k in ("sweep", "variants") if k in data}
    merged.pop("sweep", None)
    merged.pop("variants", None)
    if "features" in data and "features" in merged:
        data["features"] = {**merged["features"], **data["features"]}
    merged.update(data)
    merged.update(own)
    return merged


def load_experiment(
    name_or_path: str | Path | None, overrides: Sequence[str] = ()
) -> ExperimentSpec:
    """Read a config file (or defaults when None), apply overrides, return it with its sweep.

    The experiment name defaults to the file's stem.
    """
    path = find_config(name_or_path) if name_or_path is not None else None
    data = _read_toml(path) if path is not None else {}
    sweep = data.pop("sweep", None)
    variants = data.pop("variants", None)
    if sweep is not None and variants is not None:
        raise ConfigError(f"{path} has both [sweep] and [variants]; an experiment has one")
    if path is not None:
        data.setdefault("experiment", path.stem)
    cfg = TrainConfig.from_dict(data, source=str(path) if path else "defaults")
    cfg = apply_overrides(cfg, overrides)
    spec = ExperimentSpec(config=cfg, path=path)
    if sweep is not None:
        if not isinstance(sweep, dict) or set(sweep) != {"key", "values"}:
            raise ConfigError(f"[sweep] in {path} must have exactly 'key' and 'values'")
        key, values = sweep["key"], sweep["values"]
        known = _field_types()
        if key not in known:
            raise ConfigError(f"unknown config key {key!r} in [sweep] of {path}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[sweep] values in {path} must be a non-empty list")
        spec.sweep_key = key
        spec.sweep_values = [_coerce(key, v, known[key], str(path)) for v in values]
    if variants is not None:
        spec.variants = _parse_variants(variants, str(path))
    return spec


def _parse_variants(table: Any, source: str) -> dict[str, dict[str, Any]]:
    """The ``[variants.<name>]`` tables of a config file, each value checked against its key's
    type; a variant may be empty (the base config itself)."""
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"[variants] in {source} must hold at least one [variants.NAME] table")
    known = _field_types()
    out: dict[str, dict[str, Any]] = {}
    for name, changes in table.items():
        if not isinstance(changes, dict):
            raise ConfigError(f"variant {name!r} in {source} must be a table of config keys")
        for key in changes:
            if key not in known or key == "experiment":
                raise ConfigError(f"unknown config key {key!r} in variant {name!r} of {source}")
        out[name] = {k: _coerce(k, v, known[k], source) for k, v in changes.items()}
    return out


def load_config(name_or_path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The base config of a file (a sweep table, if any, is ignored)."""
    return load_experiment(name_or_path, overrides).config
