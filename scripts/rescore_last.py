"""Re-score the last-step weights of a finished run's folds (each fold's final_state.pt)
with the current scoring code, adding what older runs lack (per-corpus last-step metrics;
with speaker adaptation, each test utterance alone), then rewrite the run's results.

    python scripts/rescore_last.py ablation_pooled --variant adapt [--set KEY=VALUE ...]

The recomputed ``test_last`` must equal the stored one (same weights, same stream order):
the script stops if it does not, so nothing is rewritten from a run it cannot reproduce.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pyser._io import atomic_write_text, strict_json
from pyser.training.config import ConfigError, load_experiment
from pyser.training.data import prepare_data
from pyser.training.results import fold_weights, write_results
from pyser.training.runtime import setup_runtime, torch_settings
from pyser.training.train import (
    FoldParts,
    fold_dir,
    fold_seed,
    new_model,
    score_last,
    speaker_history,
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="experiment config name")
    p.add_argument("--variant", default=None, help="the [variants.NAME] to re-score")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        cfg = load_experiment(args.name, args.overrides).variant(args.variant)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    rt = setup_runtime("cpu")
    data = prepare_data(cfg, rt)
    results = []
    with torch_settings(cfg, rt.device):
        for fold in data.folds:
            folder = fold_dir(cfg, fold)
            result = json.loads((folder / "result.json").read_text())
            parts = FoldParts.of(fold, data.y, len(data.labels))
            if cfg.speaker_adapt:
                speaker_history(cfg, data, parts, fold_seed(cfg, fold))
            model = new_model(data, parts.train, rt.device, channels_last=False)
            model.load_state_dict(fold_weights(folder))
            scored = score_last(model, cfg, data, parts, rt.device)
            if scored["test_last"]["ua"] != result["test_last"]["ua"]:
                raise SystemExit(f"{folder}: re-scored last-step UA {scored['test_last']['ua']} "
                                 f"differs from the stored {result['test_last']['ua']}")
            result.update(scored)
            atomic_write_text(folder / "result.json", strict_json(result, indent=1))
            results.append(result)
            print(folder, {k: round(v["ua"], 4) for k, v in scored.items() if "ua" in v})
    summary = write_results(Path(cfg.out_dir) / cfg.experiment, cfg, data.info, results)
    print(json.dumps({k: v["ua"] for k, v in summary.items() if isinstance(v, dict) and "ua" in v},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
