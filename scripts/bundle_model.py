"""Bundle a trained model as pyser's default: pyser/assets/default.pt and default.onnx.

    python scripts/bundle_model.py runs/final_pooled/folds/r0_f0/model.pt \\
        --cv runs/ablation_pooled/aug/results.json [--spans spans.json] --note "..."

Re-saves the weights with the current pyser code (TorchScript files carry their code),
folds the cross-validation's mean dev temperature into the last layer (``--cv``; the
confidences are calibrated, the predicted class is unchanged; the logit statistics of
output normalisation are divided by it too), gives a model trained before output
normalisation existed its logit statistics (``--logit-stats-from CONFIG``, the config that
trained it), adds what a user of the bundled model must know to its provenance (data and
licences, its role, the cross-validation's metrics), exports ONNX, and checks both files
against the eager model.
"""

import argparse
import json
from pathlib import Path

from pyser.adapt import SpeakerAdaptation
from pyser.training.calibration import fold_temperature
from pyser.training.config import load_experiment
from pyser.training.evaluate import load_eager_model
from pyser.training.export import export_onnx, export_torchscript, verify_export
from pyser.training.train import final_model_logit_stats

ASSETS = Path(__file__).resolve().parents[1] / "pyser" / "assets"
LICENCES = {
    "emodb": "Berlin Database of Emotional Speech (Burkhardt et al. 2005), CC0 1.0 "
             "(audEERING re-publication)",
    "ravdess": "RAVDESS speech (Livingstone & Russo 2018), CC BY-NC-SA 4.0",
    "tess": "Toronto Emotional Speech Set (Pichora-Fuller & Dupuis 2020), CC BY-NC-ND 4.0",
}


def _mean_std(s: dict) -> dict:
    return {"mean": s["mean"], "std": s["std"], "n": s["n"]}


def cv_summary(results_json: Path) -> dict:
    """What the model file says about the cross-validation of its recipe: the protocol, the
    pooled and per-corpus test metrics (mean ± std over folds) and the calibration."""
    doc = json.loads(results_json.read_text())
    summary, cfg = doc["summary"], doc["config"]
    out = {
        "experiment": doc["experiment"],
        "protocol": f"{doc['data']['split']} split, {cfg['n_folds']} folds, seeds {cfg['seeds']}; "
                    "test metrics are the mean ± std over the fold runs",
        "folds_run": summary["test"]["ua"]["n"],
        "test": {m: _mean_std(summary["test"][m]) for m in ("ua", "wa", "macro_f1")},
        "test_by_corpus": {
            c: {m: _mean_std(s[m]) for m in ("ua", "wa", "macro_f1")}
            for c, s in summary.get("test_by_corpus", {}).items()
        },
        "confusion": summary["test"].get("confusion"),
    }
    if "test_unadapted" in summary:  # speaker adaptation: "test" streams each test speaker
        out["test_unadapted"] = {m: _mean_std(summary["test_unadapted"][m])
                                 for m in ("ua", "wa", "macro_f1")}
        out["test_unadapted_by_corpus"] = {
            c: {m: _mean_std(s[m]) for m in ("ua", "wa", "macro_f1")}
            for c, s in summary.get("test_unadapted_by_corpus", {}).items()
        }
    if "test_last" in summary:
        out["test_last_step"] = {m: _mean_std(summary["test_last"][m]) for m in ("ua", "wa",
                                                                                "macro_f1")}
    for key in ("calibration", "calibration_last"):
        if key in summary:
            out[key] = {k: _mean_std(v) for k, v in summary[key].items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model.pt written by pyser train")
    parser.add_argument("--note", default="", help="what this model is, for its metadata")
    parser.add_argument("--corpora", nargs="+", default=["emodb", "ravdess", "tess"])
    parser.add_argument("--cv", type=Path, default=None,
                        help="results.json of the recipe's cross-validation: its metrics go "
                             "into the provenance and its mean temperature into the model")
    parser.add_argument("--spans", type=Path, default=None,
                        help="scripts/score_spans.py --json output: the recipe's figures as "
                             "predict and streams read utterances (cross_validation."
                             "as_served in the provenance)")
    parser.add_argument("--logit-stats-from", default=None, metavar="CONFIG",
                        help="the split 'all' config that trained the model: its training "
                             "utterances give the model's logit statistics (output "
                             "normalisation)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a key of that config")
    args = parser.parse_args()

    net, meta = load_eager_model(args.model)
    if args.logit_stats_from is not None:
        cfg = load_experiment(args.logit_stats_from, args.overrides).variant(None)
        adaptation = final_model_logit_stats(cfg, net, SpeakerAdaptation.from_dict(
            meta.speaker_adaptation))
        meta.speaker_adaptation = adaptation.to_dict()
    extra = {}
    if args.cv is not None:
        cv = cv_summary(args.cv)
        if args.spans is not None:
            cv["as_served"] = json.loads(args.spans.read_text())
        extra["cross_validation"] = cv
        # a model trained on everything (split "all") is a last-step model: its temperature
        # is the one fitted on the folds' last-step weights
        key = "calibration_last" if meta.provenance.get("split") == "all" else "calibration"
        if key in cv:
            temperature = cv[key]["temperature"]["mean"]
            fold_temperature(net, temperature)
            extra["temperature"] = temperature
            for stat in ("logit_mean", "logit_std"):  # in the logits' new scale
                if stat in meta.speaker_adaptation:
                    meta.speaker_adaptation[stat] = [
                        v / temperature for v in meta.speaker_adaptation[stat]]
    meta.provenance.update(
        bundled=True,
        note=args.note,
        training_data={c: LICENCES[c] for c in args.corpora},
        licence="non-commercial use only (the RAVDESS and TESS licences)"
        if {"ravdess", "tess"} & set(args.corpora) else "CC0 data",
        **extra,
    )
    ASSETS.mkdir(exist_ok=True)
    report = {}
    for name, export in (("default.pt", export_torchscript), ("default.onnx", export_onnx)):
        out = export(net, meta, ASSETS / name)
        report[name] = {"bytes": out.stat().st_size, "max_abs_diff": verify_export(net, out, meta)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
