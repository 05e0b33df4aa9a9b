"""The training verbs of the ``pyser`` command: train, evaluate, export, experiment, baseline.

The command layer: it parses arguments, calls the training modules and turns their
results and errors into output and exit codes; no training module imports it.

``pyser/cli.py`` calls :func:`register` with its argparse subparsers; each verb sets
``func`` on its namespace, a function that takes the parsed ``argparse.Namespace`` and
returns the process exit code (0 ok, 2 bad input, 3 stopped early / export mismatch)::

    sub = parser.add_subparsers(dest="command")
    pyser.training.cli.register(sub)
    args = parser.parse_args()
    sys.exit(args.func(args))

:func:`main` runs one verb on its own, for ``python -m pyser.training.train`` (and
``torchrun -m``), ``python -m pyser.training.evaluate``,
``python -m pyser.training.experiments`` and ``python -m pyser.training.baseline``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyser.training.extras import missing_baseline_extras, missing_extras

__all__ = [
    "cmd_baseline",
    "cmd_evaluate",
    "cmd_experiment",
    "cmd_export",
    "cmd_train",
    "config_from_args",
    "main",
    "register",
    "setup_logging",
]


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr at ``level``, unless the application already configured logging."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def config_from_args(args: argparse.Namespace) -> list[Any]:
    """The TrainConfigs of ``args.config`` with ``--set`` and ``--device`` applied (one per
    sweep value). Raises ConfigError."""
    from pyser.training.config import load_experiment

    overrides = list(args.overrides or [])
    if getattr(args, "device", None):
        overrides.append(f"device={args.device}")
    return load_experiment(args.config, overrides).configs()


def cmd_train(args: argparse.Namespace) -> int:
    """``pyser train CONFIG [--set KEY=VALUE ...] [--device D] [--resume]``."""
    if message := missing_extras("train"):
        return _error(message)
    from pyser.training.checkpoint import CheckpointError
    from pyser.training.config import ConfigError
    from pyser.training.runtime import shutdown_distributed
    from pyser.training.train import run

    setup_logging()
    try:
        configs = config_from_args(args)
    except ConfigError as exc:
        return _error(str(exc))
    status = 0
    try:
        for cfg in configs:
            try:
                out = run(cfg, resume=args.resume)
            except (ConfigError, CheckpointError, FileNotFoundError) as exc:
                return _error(str(exc))
            if out["status"] != "done":
                status = 3
    finally:
        shutdown_distributed()  # a torchrun process leaves its process group
    return status


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``pyser evaluate MODEL --corpus NAME [--root DIR] ...``."""
    if message := missing_extras("evaluate"):
        return _error(message)
    from pyser._io import strict_json
    from pyser.training.config import resolve_data_root
    from pyser.training.evaluate import evaluate_model

    try:
        root = resolve_data_root(args.corpus, args.root)
        r = evaluate_model(
            args.model,
            args.corpus,
            root,
            task=args.task,
            split=args.split,
            fold=args.fold,
            repeat_seed=args.seed,
            n_folds=args.n_folds,
            cache_dir=args.cache_dir,
            device=args.device,
            max_seconds=args.max_seconds,
        )
    except (FileNotFoundError, ValueError) as exc:
        return _error(str(exc))
    if args.json:
        print(strict_json(r))
        return 0
    _print_evaluation(r)
    return 0


def _print_evaluation(r: dict) -> None:
    """``evaluate_model``'s result as text: counts, skipped files, metrics, confusion."""
    excluded = ", ".join(f"{k} {v}" for k, v in r["excluded_by"].items())
    print(
        f"{r['model']} on {r['corpus']}: {r['n']} utterances scored; "
        f"{r['excluded']} excluded (emotions outside the model's labels: {excluded or 'none'}); "
        f"{r['n_skipped']} files skipped (unusable names or audio)"
    )
    for s in r["skipped"]:
        print(f"  skipped {s['path']}: {s['reason']}")
    print(
        f"  UA {100 * r['ua']:.2f} %  WA {100 * r['wa']:.2f} %  macro-F1 {100 * r['macro_f1']:.2f} %"
    )
    labels = r["labels"]
    width = max(len(s) for s in labels) + 2
    print("  confusion (rows true, columns predicted):")
    print(" " * (width + 2) + "".join(f"{s[:7]:>8}" for s in labels))
    for name, row in zip(labels, r["confusion"]):
        print(f"  {name:<{width}}" + "".join(f"{v:>8}" for v in row))


def cmd_export(args: argparse.Namespace) -> int:
    """``pyser export MODEL [-o OUT.onnx|OUT.pt ...] [--no-verify]``."""
    from pyser._io import strict_json
    from pyser.training.evaluate import load_eager_model
    from pyser.training.export import ExportMismatchError, export_onnx, export_torchscript, verify_export

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
    from pyser.training.config import ConfigError
    from pyser.training.experiments import list_experiments, run_experiment

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


def cmd_baseline(args: argparse.Namespace) -> int:
    """``pyser baseline [CONFIG] [--set KEY=VALUE ...] [--feature-set F] [--speaker-norm N]``."""

    if message := missing_extras("baseline") or missing_baseline_extras():
        return _error(message)
    from pyser.training.baseline import SvmGrid, run_baseline, settings_for
    from pyser.training.config import ConfigError

    setup_logging()
    try:
        configs = config_from_args(args)
        settings = settings_for(args.feature_set, args.speaker_norm)
        default = SvmGrid()
        grid = SvmGrid(C=args.c_values or default.C,
                       gamma_factors=args.gamma_factors or default.gamma_factors)
        if len(configs) != 1:
            raise ConfigError(f"{args.config} is a sweep; the baseline runs one config")
        out = run_baseline(configs[0], settings, grid)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        return _error(str(exc))
    print(Path(out["dir"]) / "results.md")
    print((Path(out["dir"]) / "results.md").read_text())
    return 0


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help="config file, or the name of one in training/configs (default: defaults)",
    )
    add_run_options(p)


def add_set_option(p: argparse.ArgumentParser, example: str = "steps=500") -> None:
    """--set KEY=VALUE (repeatable) into ``args.overrides``."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key (repeatable), e.g. --set {example}",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--set, --device and --resume, shared by train and experiment."""
    add_set_option(p)
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


def add_export_arguments(p: argparse.ArgumentParser) -> None:
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


def _positive_floats(text: str) -> tuple[float, ...]:
    """``"0.1,1,10"`` as ``(0.1, 1.0, 10.0)``; argparse reports a bad list."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more positive numbers")
    return values


def add_baseline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        default="pooled_speaker",
        help="the CRNN config whose folds to use: a file, or the name of one in "
        "training/configs (default: pooled_speaker)",
    )
    add_set_option(p, "folds=[0]")
    p.add_argument(
        "--feature-set",
        choices=("compare", "egemaps", "all"),
        default="all",
        help="openSMILE functionals: ComParE_2016, eGeMAPSv02 or both (default all)",
    )
    p.add_argument(
        "--speaker-norm",
        choices=("off", "on", "online", "both", "all"),
        default="all",
        help="per-speaker z-scoring of the features: on (over all of a speaker's "
        "utterances), online (over those before it), both (off and on) or all (off, on "
        "and online; the default)",
    )
    p.add_argument(
        "--c-values",
        type=_positive_floats,
        default=None,
        metavar="C,C,...",
        help="the SVM's C grid (default 0.1,1,10,100)",
    )
    p.add_argument(
        "--gamma-factors",
        type=_positive_floats,
        default=None,
        metavar="G,G,...",
        help="the RBF gamma grid in units of 1/n_features (default 0.25,0.5,1,2,4)",
    )


def add_experiment_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    add_run_options(p)


#: verb -> (help, description, add arguments, command)
_VERBS = {
    "train": (
        "train the CRNN (softmax + center loss) on a corpus over n-fold splits",
        "Train and test over the folds of a config; results in out_dir/<experiment>.",
        add_train_arguments,
        cmd_train,
    ),
    "evaluate": (
        "score a saved model file on a corpus",
        "Evaluate a saved pyser model file on a corpus (all of it, or one fold's test part).",
        add_evaluate_arguments,
        cmd_evaluate,
    ),
    "export": (
        "export a saved model to ONNX / TorchScript and check it against eager",
        "Export a model file written by training; each output is verified against "
        "the eager model unless --no-verify.",
        add_export_arguments,
        cmd_export,
    ),
    "experiment": (
        "run one of the paper's experiments (tables and figures)",
        "paper (4 settings), sweep_lambda, sweep_alpha, or any config name/path.",
        add_experiment_arguments,
        cmd_experiment,
    ),
    "baseline": (
        "openSMILE functionals + RBF SVM in the CRNN's folds (the classical baseline)",
        "ComParE_2016 and eGeMAPSv02 functionals, each with an RBF SVM (C and gamma by inner "
        "speaker-grouped CV), with and without per-speaker normalisation, in the folds of "
        "a training config; results in out_dir/baseline_<experiment>. Needs "
        "pip install 'pyser[baseline]'.",
        add_baseline_arguments,
        cmd_baseline,
    ),
}

#: The module that runs each verb as ``python -m``.
_MODULES = {
    "train": "train",
    "evaluate": "evaluate",
    "experiment": "experiments",
    "baseline": "baseline",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``evaluate``, ``export``, ``experiment`` and ``baseline`` to ``pyser``'s
    subparsers.

    Imports nothing heavy: torch and the training modules load when a verb runs.
    """
    for verb, (help_text, description, add_arguments, command) in _VERBS.items():
        p = subparsers.add_parser(verb, help=help_text, description=description)
        add_arguments(p)
        p.set_defaults(func=command)


def main(verb: str, argv: Sequence[str] | None = None) -> int:
    """Run ``verb`` as a command of its own: ``python -m pyser.training.train CONFIG ...``
    is ``pyser train CONFIG ...``."""
    _, description, add_arguments, command = _VERBS[verb]
    p = argparse.ArgumentParser(
        prog=f"python -m pyser.training.{_MODULES.get(verb, verb)}", description=description
    )
    add_arguments(p)
    args = p.parse_args(argv)
    if verb == "evaluate":
        setup_logging(logging.WARNING)
    return command(args)
