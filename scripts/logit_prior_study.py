"""Output normalisation's prior, measured: what it gives a speaker with varied speech and
what it costs one who keeps to one emotion. For a finished speaker-adapted run, from each
fold's last-step weights, every utterance read as served (speech span + 0.5 s):

* ``mixed``: UA with each speaker's utterances streamed in random order (feature
  adaptation and output normalisation by the earlier ones), per prior;
* ``one emotion``: per speaker and emotion, a history of up to ``--history`` utterances of
  that emotion only (streamed, each adapted by the ones before it), then the speaker's
  other utterances of that emotion scored after it; the recall of that emotion, averaged
  over the four, with feature adaptation only and with output normalisation per prior
  (``alone``: the same utterances with no history at all).

    python scripts/logit_prior_study.py ablation_adapt_seeds --variant adapt --part dev

Choose the prior on ``--part dev`` (the dev speakers); ``--part test`` reports it.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from pyser.training.config import ConfigError, load_experiment
from pyser.training.data import prepare_data
from pyser.training.metrics import logits_report
from pyser.training.predict import predict
from pyser.training.results import fold_weights
from pyser.training.runtime import setup_runtime, torch_settings
from pyser.training.speaker_adapt import normalize_logits
from pyser.training.store import SERVED_VIEW, view_store
from pyser.training.train import (FoldParts, fold_dir, fold_seed, new_model, speaker_history,
                                  with_logit_stats)


def one_emotion_recalls(score, history, stats, idx, y, speakers, n_classes, n_history, priors,
                        adaptation, rng) -> dict:
    """{"alone" | "features" | prior: recall of the history's emotion, mean over classes}."""
    hits: dict = {}
    for c in range(n_classes):
        counts = {k: [0, 0] for k in ["alone", "features", *priors]}
        for s in sorted(set(speakers), key=str):
            pool = idx[(y == c) & np.array([k == s for k in speakers])]
            if len(pool) < 3:
                continue
            past = rng.permutation(pool)[: min(n_history, len(pool) - 2)]
            rest = np.setdiff1d(pool, past)
            shifts = history.identity(len(past))
            for k in range(1, len(past)):  # the history streamed, each by the ones before
                shifts[k] = history.adjust(stats.sums[past[:k]].sum(0),
                                           stats.sumsqs[past[:k]].sum(0),
                                           float(stats.counts[past[:k]].sum()))
            heard = score(past, shifts)
            after = history.adjust(stats.sums[past].sum(0), stats.sumsqs[past].sum(0),
                                   float(stats.counts[past].sum()))
            adapted = score(rest, np.repeat(after[None], len(rest), axis=0))
            results = {"alone": score(rest, None), "features": adapted}
            for prior in priors:
                state = dataclasses.replace(adaptation, logit_prior=prior).new_speaker()
                for row in heard:
                    state.add_logits(row)
                results[prior] = state.score(adapted)
            for key, logits in results.items():
                counts[key][0] += int((logits.argmax(1) == c).sum())
                counts[key][1] += len(rest)
        for key, (hit, n) in counts.items():
            if n:
                hits.setdefault(key, []).append(hit / n)
    return {k: float(np.mean(v)) for k, v in hits.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="experiment config name")
    p.add_argument("--variant", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--part", choices=("test", "dev"), default="dev")
    p.add_argument("--priors", default="1,2,4,8,16", help="comma-separated, in utterances")
    p.add_argument("--history", type=int, default=8, help="one-emotion history length")
    args = p.parse_args()
    try:
        cfg = load_experiment(args.name, args.overrides).variant(args.variant)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    if not cfg.speaker_adapt:
        raise SystemExit(f"{cfg.experiment}: not a speaker-adapted run")
    priors = [float(v) for v in args.priors.split(",")]
    rt = setup_runtime("cpu")
    data = prepare_data(cfg, rt)
    store, crop = view_store(data.store, data.feature_config.frame_rate, SERVED_VIEW)
    n_classes = len(data.labels)
    rows = []
    with torch_settings(cfg, rt.device):
        for fold in data.folds:
            folder = fold_dir(cfg, fold)
            parts = FoldParts.of(fold, data.y, n_classes)
            seed = fold_seed(cfg, fold)
            history = speaker_history(cfg, data, parts, seed)
            model = new_model(data, parts.train, rt.device, channels_last=False)
            model.load_state_dict(fold_weights(folder))
            adaptation = with_logit_stats(cfg.replace(speaker_adapt_logit_prior=1.0), data,
                                          history, model, parts.train, parts.shifts["train"],
                                          rt.device, store)

            def score(items, shifts, model=model):
                return predict(model, store, items, cfg.eval_batch_size, rt.device,
                               crop=crop, shifts=shifts)[0].astype(np.float64)

            idx = np.asarray(getattr(parts, args.part))
            y = data.y[idx]
            speakers = [(data.utts[int(i)].corpus, data.utts[int(i)].speaker) for i in idx]
            streamed = score(idx, parts.shifts[args.part])
            row = {"mixed features": logits_report(y, streamed, n_classes)["ua"]}
            for prior in priors:
                out = normalize_logits(streamed, speakers, seed,
                                       dataclasses.replace(adaptation, logit_prior=prior))
                row[f"mixed {prior:g}"] = logits_report(y, out, n_classes)["ua"]
            recalls = one_emotion_recalls(score, history, data.speech, idx, y, speakers,
                                          n_classes, args.history, priors, adaptation,
                                          np.random.default_rng(seed))
            row.update({f"one {k:g}" if isinstance(k, float) else f"one {k}": v
                        for k, v in recalls.items()})
            print(folder, {k: round(v, 4) for k, v in row.items()}, flush=True)
            rows.append(row)

    def cell(key):
        v = np.array([r[key] for r in rows]) * 100
        return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"

    print(f"\n{cfg.experiment}, {args.part} speakers, {len(rows)} fold runs, as served; "
          f"one-emotion history of up to {args.history} utterances\n")
    print("| outputs | mixed speech: UA % | one emotion: recall of it % |")
    print("|---|---:|---:|")
    print(f"| no history | | {cell('one alone')} |")
    print(f"| feature adaptation only | {cell('mixed features')} | {cell('one features')} |")
    for prior in priors:
        print(f"| + output normalisation, prior {prior:g} | {cell(f'mixed {prior:g}')} | "
              f"{cell(f'one {prior:g}')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
