"""Averaging the fold models, measured. In a run with several split seeds every utterance is
tested once per seed, each time by a model that never heard its speaker. Averaging those
models' posteriors is what shipping several models would serve; this scores it against
the models alone. Every utterance is read as served (speech span + 0.5 s); with speaker
adaptation each speaker's utterances go through one stream (feature adaptation and output
normalisation by the earlier ones) in one order that every model shares.

    python scripts/fold_ensemble.py ablation_adapt_seeds --variant adapt --set seeds=[0,1,2]

Prints UA pooled over every utterance (and per corpus) for each model set size k: the mean
over every set of k seeds' models. Averaging weights is not scored: the fold models start
from different initialisations and normalise their inputs by different training sets.

With ``--member`` (twice or more) the models are instead the runs of several configs on
the same split (one split seed), e.g. the same recipe from other initialisations, or a
distilled student beside its teachers; each member and every set of members is scored:

    python scripts/fold_ensemble.py --set seeds=[0] --weights best \
        --member ablation_pooled:adapt --member ablation_distill:teacher_seed1 \
        --member ablation_distill:teacher_seed2 --member ablation_distill:student@runs_dev

A member is ``NAME[:VARIANT][@OUT_DIR]``. ``--part dev`` scores the dev speakers instead.
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from pyser.training.config import ConfigError, TrainConfig, load_experiment
from pyser.training.data import prepare_data
from pyser.training.metrics import logits_report
from pyser.training.predict import predict
from pyser.training.results import fold_weights, weights_choice
from pyser.training.runtime import setup_runtime, torch_settings
from pyser.training.speaker_adapt import normalize_logits
from pyser.training.store import SERVED_VIEW, view_store
from pyser.training.train import (FoldParts, fold_dir, fold_seed, new_model, speaker_history,
                                  with_logit_stats)

ORDER_SEED = 0
"""The stream order of each speaker's utterances, the same for every model."""


def served_posteriors(cfg, data, fold, store, crop, device, weights: str = "last",
                      part: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(idx, (n, C) posteriors as served) of one fold run's last-step (``weights="best"``:
    best-dev; ``"step:N"``: after step N) weights on its ``part`` ("test" or "dev")
    utterances."""
    parts = FoldParts.of(fold, data.y, len(data.labels))
    model = new_model(data, parts.train, device, channels_last=False)
    folder = fold_dir(cfg, fold)
    try:
        model.load_state_dict(fold_weights(folder, weights))
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    history = speaker_history(cfg, data, parts, fold_seed(cfg, fold)) if cfg.speaker_adapt \
        else None
    outputs = None
    if history is not None and cfg.speaker_adapt_logit_prior > 0:
        outputs = with_logit_stats(cfg, data, history, model, parts.train,
                                   parts.shifts["train"], device, store)
    speakers = [(u.corpus, u.speaker) for u in data.utts]
    test = np.asarray(getattr(parts, part), dtype=np.int64)
    out = np.zeros((len(test), len(data.labels)))
    for key in sorted({speakers[i] for i in test}, key=str):
        pos = np.flatnonzero([speakers[i] == key for i in test])
        idx = test[pos]
        shifts = history.stream_shifts(idx, ORDER_SEED) if history is not None else None
        logits, _ = predict(model, store, idx, cfg.eval_batch_size, device, crop=crop,
                            shifts=shifts)
        if outputs is not None:
            logits = normalize_logits(logits, [key] * len(idx), ORDER_SEED, outputs)
        logits = logits - logits.max(axis=1, keepdims=True)
        out[pos] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return test, out


def member_config(spec: str, overrides: list[str]) -> TrainConfig:
    """``NAME[:VARIANT][@OUT_DIR]`` -> that variant's config (with ``overrides``)."""
    spec, _, out_dir = spec.partition("@")
    name, _, variant = spec.partition(":")
    cfg = load_experiment(name, overrides).variant(variant or None)
    return cfg.replace(out_dir=out_dir) if out_dir else cfg


def score_members(members: list[TrainConfig], weights: str, part: str) -> int:
    """Each member alone and every set of members averaged, UA pooled over the part's
    utterances (every fold of the one split seed)."""
    keys = {"seeds", "corpus", "task", "split", "n_folds", "feature_kind", "features"}
    first = members[0].to_dict()
    for m in members[1:]:
        other = [k for k in sorted(keys) if m.to_dict()[k] != first[k]]
        if other:
            raise SystemExit(f"{m.experiment} differs from {members[0].experiment} in "
                             f"{', '.join(other)}: not the same split or data")
    if len(members[0].seeds) != 1:
        raise SystemExit(f"--member scores one split seed; set seeds=[S] (has {members[0].seeds})")
    rt = setup_runtime("cpu")
    data = prepare_data(members[0], rt)
    store, crop = view_store(data.store, data.feature_config.frame_rate, SERVED_VIEW)
    n, n_classes = len(data.y), len(data.labels)
    posteriors = np.full((len(members), n, n_classes), np.nan)
    per_fold = np.full((len(members), members[0].n_folds), np.nan)
    with torch_settings(members[0], rt.device):
        for m, cfg in enumerate(members):
            for fold in data.folds:
                idx, post = served_posteriors(cfg, data, fold, store, crop, rt.device,
                                              weights, part)
                posteriors[m, idx] = post
                per_fold[m, fold.fold] = logits_report(data.y[idx], post, n_classes)["ua"]
                print(fold_dir(cfg, fold), f"UA {per_fold[m, fold.fold]:.4f}", flush=True)
    tested = ~np.isnan(posteriors).any(axis=(0, 2))
    y, corpora = data.y[tested], np.array([u.corpus for u in data.utts])[tested]
    names = ["pooled", *sorted(set(corpora))]
    print(f"\n{part} UA %, {weights} weights, as served, over the {int(tested.sum())} "
          "utterances; members' posteriors averaged\n")
    print("| members | " + " | ".join(names) + " | per fold |")
    print("|---|" + "---:|" * (len(names) + 1))
    for k in range(1, len(members) + 1):
        for subset in itertools.combinations(range(len(members)), k):
            mean = posteriors[list(subset)][:, tested].mean(axis=0)
            cells = [100 * logits_report(y[mine], mean[mine], n_classes)["ua"]
                     for mine in (np.ones(len(y), bool) if c == "pooled" else corpora == c
                                  for c in names)]
            folds = (" ".join(f"{100 * u:.1f}" for u in per_fold[subset[0]]) if k == 1 else "")
            label = " + ".join(members[i].experiment for i in subset)
            print(f"| {label} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {folds} |")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help="experiment config name")
    p.add_argument("--variant", default=None)
    p.add_argument("--member", action="append", default=[], metavar="NAME[:VARIANT][@OUT_DIR]",
                   help="a run to average with the others (twice or more; one split seed)")
    p.add_argument("--weights", type=weights_choice, default="last",
                   help="last: final_state.pt; best: model.pt (the best-dev weights); "
                        "step:N: weights_N.pt (kept by keep_weights_every)")
    p.add_argument("--part", choices=("test", "dev"), default="test")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    try:
        if args.member:
            if args.name or len(args.member) < 2:
                raise SystemExit("give two or more --member runs, and no experiment name")
            return score_members([member_config(s, args.overrides) for s in args.member],
                                 args.weights, args.part)
        if not args.name:
            raise SystemExit("name an experiment, or give --member runs")
        cfg = load_experiment(args.name, args.overrides).variant(args.variant)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    if len(cfg.seeds) < 2:
        raise SystemExit(f"{cfg.experiment}: needs at least two split seeds, has {cfg.seeds}")
    rt = setup_runtime("cpu")
    data = prepare_data(cfg, rt)
    store, crop = view_store(data.store, data.feature_config.frame_rate, SERVED_VIEW)
    n, n_classes = len(data.y), len(data.labels)
    posteriors = np.full((len(cfg.seeds), n, n_classes), np.nan)
    with torch_settings(cfg, rt.device):
        for fold in data.folds:
            test, post = served_posteriors(cfg, data, fold, store, crop, rt.device,
                                           args.weights, args.part)
            posteriors[fold.repeat, test] = post
            ua = logits_report(data.y[test], post, n_classes)["ua"]
            print(fold_dir(cfg, fold), f"UA {ua:.4f}", flush=True)
    tested = ~np.isnan(posteriors).any(axis=(0, 2))
    if not tested.any():
        raise SystemExit("no utterance was tested under every seed")
    corpora = np.array([u.corpus for u in data.utts])[tested]
    y = data.y[tested]
    names = ["pooled", *sorted(set(corpora))]
    print(f"\n{cfg.experiment}: UA % over the {int(tested.sum())} utterances each seed tests, "
          "as served; k models' posteriors averaged (mean ± std over every set of k seeds)\n")
    print("| models | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for k in range(1, len(cfg.seeds) + 1):
        cells = {name: [] for name in names}
        for subset in itertools.combinations(range(len(cfg.seeds)), k):
            mean = posteriors[list(subset)][:, tested].mean(axis=0)
            for name in names:
                mine = np.ones(len(y), bool) if name == "pooled" else corpora == name
                cells[name].append(100 * logits_report(y[mine], mean[mine], n_classes)["ua"])
        print(f"| {k} | " + " | ".join(
            f"{np.mean(v):.1f}" + (f" ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else "")
            for v in cells.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
