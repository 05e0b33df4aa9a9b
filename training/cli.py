"""The training verbs of the ``pyser`` command: train, evaluate, export, experiment.

``pyser/cli.py`` calls :func:`register` with its argparse subparsers; each verb sets
``func`` on its namespace, a function that takes the parsed ``argparse.Namespace`` and
returns the process exit code (0 ok, 2 bad input, 3 stopped early / export mismatch)::

    sub = parser.add_subparsers(dest="command")
    training.cli.register(sub)
    args = parser.parse_args()
    sys.exit(args.func(args))
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["cmd_evaluate", "cmd_experiment", "cmd_export", "cmd_train", "register"]


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


#: Modules of the ``train`` extra that each verb needs.
_TRAIN_EXTRAS = {
    "train": ("tqdm",),
    "experiment": ("tqdm",),
    "evaluate": ("tqdm",),
    "onnx": ("onnx", "onnxruntime"),
}


def missing_extras(verb: str) -> str | None:
    """A message naming the missing modules of ``verb`` and the extra to install, or None."""
    import importlib.util

    missing = []
    for name in _TRAIN_EXTRAS[verb]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if not missing:
        return None
    what = "ONNX export" if verb == "onnx" else f"pyser {verb}"
    return (
        f"{what} needs the training extras ({', '.join(missing)} not installed): "
        "pip install 'pyser[train]'"
    )


def cmd_train(args: argparse.Namespace) -> int:
    """``pyser train CONFIG [--set KEY=VALUE ...] [--device D] [--resume]``."""
    if message := missing_extras("train"):
        return _error(message)
    from training.config import ConfigError
    from training.train import CheckpointError, config_from_args, run, setup_logging

    setup_logging()
    try:
        configs = config_from_args(args)
    except ConfigError as exc:
        return _error(str(exc))
    status = 0
    for cfg in configs:
        try:
            out = run(cfg, resume=args.resume)
        except (ConfigError, CheckpointError, FileNotFoundError) as exc:
            return _error(str(exc))
        if out["status"] != "done":
            status = 3
    return status


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``pyser evaluate MODEL --corpus NAME [--root DIR] ...``."""
    if message := missing_extras("evaluate"):
        return _error(message)
    from training.evaluate import run_from_args

    return run_from_args(args)


def cmd_export(args: argparse.Namespace) -> int:
    """``pyser export MODEL [-o OUT.onnx|OUT.pt ...] [--no-verify]``."""
    from pyser._io import strict_json
    from training.evaluate import load_eager_model
    from training.export import ExportMismatchError, export_onnx, export_torchscript, verify_export

    src = Path(args.model)
    try:
        net, meta = load_eager_model(src)
    except (FileNotFoundError, ValueError) as exc:
        return _error(str(exc))
    outputs = [Path(o) for o in (args.output or [src.with_suffix(".onnx")])]
    status = 0
    for out in outputs:
        suffix = out.suffix.lower()
        if suffix not in (".onnx", ".pt"):
            return _error(f"{out}: the output must end in .onnx (ONNX) or .pt (TorchScript)")
        if out.resolve() == src.resolve():
            return _error(f"{out} is the input model; choose another output name")
        if suffix == ".onnx" and (message := missing_extras("onnx")):
            return _error(message)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if suffix == ".onnx":
                export_onnx(net, meta, out)
            else:
                export_torchscript(net, meta, out)
        except ValueError as exc:
            return _error(f"{out}: {exc}")
        line = {"output": str(out), "format": suffix[1:]}
        if not args.no_verify:
            try:
                line["max_abs_diff"] = verify_export(net, out, meta)
                line["verified"] = True
            except ExportMismatchError as exc:
                line["verified"] = False
                line["error"] = str(exc)
                status = 3
        print(strict_json(line))
    return status


def cmd_experiment(args: argparse.Namespace) -> int:
    """``pyser experiment NAME [--set KEY=VALUE ...] [--device D] [--resume]``; ``--list``."""
    from training.config import ConfigError
    from training.experiments import list_experiments, run_experiment
    from training.train import setup_logging

    if args.list or not args.name:
        for name, text in list_experiments().items():
            print(f"{name:20s} {text}")
        return 0 if args.list else 2
    if message := missing_extras("experiment"):
        return _error(message)
    setup_logging()
    overrides = list(args.overrides or [])
    if args.device:
        overrides.append(f"device={args.device}")
    try:
        out = run_experiment(args.name, overrides, resume=args.resume)
    except ConfigError as exc:
        return _error(str(exc))
    if out:
        print(Path(out["dir"]) / "summary.md")
        print((Path(out["dir"]) / "summary.md").read_text())
    return 0


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help="config file, or the name of one in training/configs (default: defaults)",
    )
    add_run_options(p)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--set, --device and --resume, shared by train and experiment."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set steps=500",
    )
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip finished folds and continue interrupted ones from their checkpoint",
    )


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file written by training (model.pt)")
    p.add_argument("--corpus", required=True, help="iemocap | emodb | ravdess | tess | csv")
    p.add_argument(
        "--root",
        default=None,
        help="corpus folder (csv: the manifest); default $PYSER_DATA/<corpus>, else "
        "shared/data/<corpus> next to the repository",
    )
    p.add_argument("--task", default=None, help="label set (default: the model's)")
    p.add_argument("--split", choices=("paper", "speaker"), default=None)
    p.add_argument("--fold", type=int, default=None, help="score only this fold's test part")
    p.add_argument(
        "--seed", type=int, default=None, help="split seed for --fold (default: the model's)"
    )
    p.add_argument(
        "--n-folds", type=int, default=None, help="folds of the split (default: the model's)"
    )
    p.add_argument("--cache-dir", default=".cache/features")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="centre-crop length (default: as in training)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``evaluate``, ``export`` and ``experiment`` to ``pyser``'s subparsers.

    Imports nothing heavy: torch and the training modules load when a verb runs.
    """
    p = subparsers.add_parser(
        "train",
        help="train the CRNN (softmax + center loss) on a corpus over n-fold splits",
        description="Train and test over the folds of a config; results in out_dir/<experiment>.",
    )
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "evaluate",
        help="score a saved model file on a corpus",
        description="Evaluate a saved pyser model file on a corpus (all of it, or one fold's "
        "test part).",
    )
    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser(
        "export",
        help="export a saved model to ONNX / TorchScript and check it against eager",
        description="Export a model file written by training; each output is verified against "
        "the eager model unless --no-verify.",
    )
    p.add_argument("model", help="model file written by training (model.pt)")
    p.add_argument(
        "-o",
        "--output",
        action="append",
        default=None,
        metavar="OUT",
        help="output file, .onnx or .pt (repeatable; default: MODEL with .onnx)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the eager-vs-export check")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "experiment",
        help="run one of the paper's experiments (tables and figures)",
        description="paper (4 settings), sweep_lambda, sweep_alpha, or any config name/path.",
    )
    p.add_argument("name", nargs="?", default=None, help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    add_run_options(p)
    p.set_defaults(func=cmd_experiment)
