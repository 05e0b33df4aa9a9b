"""Score a finished run's last-step weights (each fold's final_state.pt; ``--weights best``:
its best-dev weights, model.pt; ``--weights step:N``: those after step N, kept by a run with
``keep_weights_every``) on views of every test utterance, each alone and (with
speaker adaptation) in its speaker's stream:

* ``crop``: the centre ``max_seconds`` of the file, as the cross-validation scores it;
* ``whole``: the whole file;
* ``speech``: the VAD's speech span (first onset to last end), bare;
* ``speech+SECONDS``: that span widened by a margin on each side; ``speech+0.5`` is what
  ``Recognizer.predict`` and a stream's utterance result read (``SPEECH_MARGIN_S``).

    python scripts/score_spans.py ablation_adapt_seeds --variant adapt [--set KEY=VALUE ...]

With speaker adaptation each view is scored three ways: ``alone``, ``streamed`` (feature
adaptation by the speaker's earlier utterances) and ``streamed+out`` (also output
normalisation, as the model file of a run with ``speaker_adapt_logit_prior`` > 0 serves it:
the logit statistics come from the fold's training utterances, as served, by the scored
weights).

``--part dev`` scores the dev speakers instead (to choose between views without looking
at test speakers). Prints one line per fold run and a table of mean ± std UA; nothing is
rewritten. Scoring test crops, it stops unless its score of a fold equals the UA the run
stored for those weights; a run trained on a GPU stored it in that device's arithmetic
(bf16), so there the two are printed side by side instead.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pyser._io import atomic_write_text, strict_json
from pyser.training.config import ConfigError, load_experiment
from pyser.training.data import prepare_data
from pyser.training.metrics import logits_report
from pyser.training.predict import predict
from pyser.training.results import fold_weights, weights_choice, weights_label
from pyser.training.runtime import setup_runtime, torch_settings
from pyser.training.store import SERVED_VIEW, view_store
from pyser.training.speaker_adapt import normalize_logits
from pyser.training.train import (FoldParts, fold_dir, fold_seed, new_model, speaker_history,
                                  with_logit_stats)


def _mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def summary(cfg, args, rows: list[dict], by_corpus: dict) -> dict:
    """UA mean ± std (sample std) per view, pooled and per corpus, with how it was made."""
    return {
        "experiment": cfg.experiment,
        "seeds": list(cfg.seeds),
        "part": args.part,
        "weights": weights_label(args.weights),
        "command": "python scripts/score_spans.py " + " ".join(
            [args.name] + (["--variant", args.variant] if args.variant else [])
            + ["--views", args.views, "--part", args.part, "--weights", args.weights]),
        "ua": {k: _mean_std([r[k] for r in rows]) for k in rows[0]},
        "ua_by_corpus": {k: {c: _mean_std(v) for c, v in per.items()}
                         for k, per in by_corpus.items()},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="experiment config name")
    p.add_argument("--variant", default=None, help="the [variants.NAME] to score")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--views", default="crop,whole,speech",
                   help="comma-separated: crop, whole, speech, speech+SECONDS (a margin)")
    p.add_argument("--part", choices=("test", "dev"), default="test",
                   help="score the test speakers (default) or the dev speakers (to choose)")
    p.add_argument("--weights", type=weights_choice, default="last",
                   help="last: each fold's final_state.pt (what a split 'all' model keeps); "
                        "best: its model.pt (the best-dev weights); step:N: its "
                        "weights_N.pt (kept by keep_weights_every)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the summary as JSON (scripts/bundle_model.py --spans)")
    args = p.parse_args()
    try:
        cfg = load_experiment(args.name, args.overrides).variant(args.variant)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    if not cfg.crop_eval:
        raise SystemExit("the run scored whole utterances (crop_eval = false), not centre "
                         "crops: this script checks itself against crop scores")
    rt = setup_runtime("cpu")
    data = prepare_data(cfg, rt)
    try:
        stores = {v: view_store(data.store, data.feature_config.frame_rate, v)
                  for v in args.views.split(",")}
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    rows, by_corpus = [], {}
    run_cfg = Path(cfg.out_dir) / cfg.experiment / "config.json"
    trained_on = json.loads(run_cfg.read_text()).get("device", "") if run_cfg.is_file() else ""
    with torch_settings(cfg, rt.device):
        for fold in data.folds:
            folder = fold_dir(cfg, fold)
            parts = FoldParts.of(fold, data.y, len(data.labels))
            seed = fold_seed(cfg, fold)
            history = speaker_history(cfg, data, parts, seed) if cfg.speaker_adapt else None
            model = new_model(data, parts.train, rt.device, channels_last=False)
            try:
                model.load_state_dict(fold_weights(folder, args.weights))
            except FileNotFoundError as exc:
                raise SystemExit(str(exc)) from None
            idx = getattr(parts, args.part)
            outputs = None
            if history is not None and cfg.speaker_adapt_logit_prior > 0:
                outputs = with_logit_stats(cfg, data, history, model, parts.train,
                                           parts.shifts["train"], rt.device,
                                           stores.get(SERVED_VIEW, (None,))[0])
            speakers = [(data.utts[int(i)].corpus, data.utts[int(i)].speaker) for i in idx]
            y = data.y[idx]
            corpora = np.array([data.utts[int(i)].corpus for i in idx])
            row = {}
            for view, (store, crop) in stores.items():
                for how, shifts in (("alone", None), ("streamed", parts.shifts.get(args.part))):
                    if how == "streamed" and shifts is None:
                        continue
                    logits, _ = predict(model, store, idx, cfg.eval_batch_size,
                                        rt.device, crop=crop, shifts=shifts)
                    scored = {how: logits}
                    if how == "streamed" and outputs is not None:
                        scored["streamed+out"] = normalize_logits(logits, speakers, seed, outputs)
                    for name, lg in scored.items():
                        key = f"{view} {name}"
                        row[key] = logits_report(y, lg, len(data.labels))["ua"]
                        for c in sorted(set(corpora)):
                            mine = corpora == c
                            by_corpus.setdefault(key, {}).setdefault(c, []).append(
                                logits_report(y[mine], lg[mine], len(data.labels))["ua"])
            stored_here = args.weights in ("last", "best")  # step:N has no stored score
            if args.part == "test" and "crop alone" in row and stored_here:
                key = "test_last" if args.weights == "last" else "test"
                stored = json.loads((folder / "result.json").read_text())[key]["ua"]
                own = row["crop streamed" if cfg.speaker_adapt else "crop alone"]
                if trained_on.startswith("cuda"):
                    print(f"{folder}: crop UA here {own:.4f}, on the GPU {stored:.4f}")
                elif own != stored:
                    raise SystemExit(f"{folder}: the run's own scoring gives UA {own}, its "
                                     f"result.json {stored}: not the weights or data it had")
            print(folder, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
            rows.append(row)
    print(f"\n{cfg.experiment}: {weights_label(args.weights)} {args.part} UA %, mean ± std "
          f"over {len(rows)} fold runs\n")
    print("| scored on | " + " | ".join(k for k in rows[0]) + " |")
    print("|---|" + "---:|" * len(rows[0]))
    cells = [f"{100 * np.mean(v):.1f} ± {100 * np.std(v, ddof=1):.1f}"
             for v in ([r[k] for r in rows] for k in rows[0])]
    print(f"| {args.part} | " + " | ".join(cells) + " |")
    if args.json is not None:
        atomic_write_text(args.json, strict_json(summary(cfg, args, rows, by_corpus), indent=1))
    corpora = sorted({c for v in by_corpus.values() for c in v})
    print("\nPer corpus (over the fold runs that test it; count in brackets):\n")
    print("| scored on | " + " | ".join(corpora) + " |")
    print("|---|" + "---:|" * len(corpora))
    for key, per in by_corpus.items():
        print(f"| {key} | " + " | ".join(
            f"{100 * np.mean(per[c]):.1f} ± {100 * np.std(per[c], ddof=1):.1f} ({len(per[c])})"
            if len(per.get(c, [])) > 1 else "" for c in corpora) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
