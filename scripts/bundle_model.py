"""Bundle a trained model as pyser's default: pyser/assets/default.pt and default.onnx.

    python scripts/bundle_model.py runs/interim_pooled/folds/r0_f3/model.pt --note "..."

Re-saves the weights with the current pyser code (TorchScript files carry their code),
adds what a user of the bundled model must know to its provenance (data and licences, its
role), exports ONNX, and checks both files against the eager model.
"""

import argparse
import json
from pathlib import Path

from pyser.training.evaluate import load_eager_model
from pyser.training.export import export_onnx, export_torchscript, verify_export

ASSETS = Path(__file__).resolve().parents[1] / "pyser" / "assets"
LICENCES = {
    "emodb": "Berlin Database of Emotional Speech (Burkhardt et al. 2005), CC0 1.0 "
             "(audEERING re-publication)",
    "ravdess": "RAVDESS speech (Livingstone & Russo 2018), CC BY-NC-SA 4.0",
    "tess": "Toronto Emotional Speech Set (Pichora-Fuller & Dupuis 2020), CC BY-NC-ND 4.0",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model.pt written by pyser train")
    parser.add_argument("--note", default="", help="what this model is, for its metadata")
    parser.add_argument("--corpora", nargs="+", default=["emodb", "ravdess", "tess"])
    args = parser.parse_args()

    net, meta = load_eager_model(args.model)
    meta.provenance.update(
        bundled=True,
        note=args.note,
        training_data={c: LICENCES[c] for c in args.corpora},
        licence="non-commercial use only (the RAVDESS and TESS licences)"
        if {"ravdess", "tess"} & set(args.corpora) else "CC0 data",
    )
    ASSETS.mkdir(exist_ok=True)
    report = {}
    for name, export in (("default.pt", export_torchscript), ("default.onnx", export_onnx)):
        out = export(net, meta, ASSETS / name)
        report[name] = {"bytes": out.stat().st_size, "max_abs_diff": verify_export(net, out, meta)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
