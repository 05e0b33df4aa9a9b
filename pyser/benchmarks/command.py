"""``pyser bench``: feature throughput and streaming latency on this machine.

The command layer for ``pyser/cli.py``; either

    from pyser.benchmarks import command as bench
    bench.register(sub)                       # adds the "bench" verb

or, for a parser built by hand,

    p = sub.add_parser("bench", ...)
    bench.add_arguments(p)
    p.set_defaults(func=bench.run)

Importing this module imports only the standard library. `run` imports the
benchmarks, limits torch and the BLAS/OpenMP pools to one thread for the feature
benchmark and restores them afterwards (see `pyser.benchmarks.features`'s
docstring for what can and cannot be limited inside a running process), prints
one Markdown report and writes it to ``--out``.

Sizes: the default is `features.STANDARD` (the full-run sizes with fewer
repeats, about 30 s for the feature sections on 2 quiet cores, so that with the
streaming section ``pyser bench`` takes about a minute); ``--quick`` is a smoke
run and skips the perf profile; ``--full`` is the run that bench/RESULTS.md
reports. The streaming-latency section comes from ``pyser.benchmarks.stream``
when that module exists: ``run_stream_benchmark(quick: bool) -> str`` (a
Markdown section with its own ``##`` heading) is put into the report, or else
``main_from_args(args) -> int`` is called and prints its own output.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

STREAM_MODULE = "pyser.benchmarks.stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pyser bench`` options to ``parser``."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: small sizes, no perf profile (timings are rough)",
    )
    size.add_argument(
        "--full",
        action="store_true",
        help="the full feature run of bench/RESULTS.md (about 1 min on 2 cores for the "
        "features alone; default: fewer repeats, about half that)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="also write the Markdown report to FILE"
    )
    parser.add_argument(
        "--no-perf",
        dest="perf",
        action="store_false",
        help="skip the per-stage C++ profile (it needs perf, g++ and a source checkout)",
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--features-only", action="store_true", help="only the feature benchmark"
    )
    only.add_argument(
        "--stream-only", action="store_true", help="only the streaming-latency benchmark"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` verb to ``pyser``'s subparsers."""
    p = subparsers.add_parser(
        "bench",
        help="feature throughput and streaming latency on this machine",
        description="Benchmark pyser's features (offline, 10 ms streaming chunks, batch) "
        "against the installed peers (numpy, scipy, torch, librosa, kaldi-native-fbank, "
        "python_speech_features; missing ones are skipped with a note) and the streaming "
        "recogniser's latency; prints a Markdown report. About a minute by default.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def _command_line() -> str:
    """How this run was started, for the report's header."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "pyser"
    if prog == "__main__.py":
        prog = "python -m pyser"
    return " ".join([prog, *map(shlex.quote, sys.argv[1:])])


def _stream_section(
    args: argparse.Namespace, notes: list[str]
) -> tuple[str | None, int | None]:
    """(Markdown section or None, exit status) of the streaming-latency benchmark; the
    status is None when it could not run (the reason is added to ``notes``)."""
    try:
        stream = importlib.import_module(STREAM_MODULE)
    except ImportError as e:
        if e.name == STREAM_MODULE:
            notes.append(
                "Streaming latency: not measured, this pyser has no "
                f"`{STREAM_MODULE}` module."
            )
        else:
            notes.append(f"Streaming latency: not measured, {STREAM_MODULE} needs {e}.")
        return None, None
    if hasattr(stream, "run_stream_benchmark"):
        return stream.run_stream_benchmark(quick=bool(args.quick)), 0
    if hasattr(stream, "main_from_args"):
        return None, int(stream.main_from_args(args) or 0)
    notes.append(
        f"Streaming latency: not measured, `{STREAM_MODULE}` has neither "
        "run_stream_benchmark nor main_from_args."
    )
    return None, None


def run(args: argparse.Namespace) -> int:
    """Run ``pyser bench`` with the options of `add_arguments`; the exit status."""
    from pyser.benchmarks import features

    quick, full = bool(getattr(args, "quick", False)), bool(getattr(args, "full", False))
    settings = features.QUICK if quick else features.FULL if full else features.STANDARD
    perf = bool(getattr(args, "perf", True)) and not quick
    stream_only = bool(getattr(args, "stream_only", False))
    features_only = bool(getattr(args, "features_only", False))
    notes: list[str] = []
    results = None
    if not stream_only:
        with features.single_threaded() as threads:
            results = features.run_features(settings, perf, notes, threads)
    sections: list[str] = []
    status = 0
    if not features_only:
        print("streaming latency …", file=sys.stderr, flush=True)
        section, stream_status = _stream_section(args, notes)
        if section:
            sections.append(section)
        if stream_status is None:  # not available: an error only if it was all we had to do
            status = 1 if stream_only else 0
        else:
            status = stream_status
    command = _command_line()
    if results is not None:
        title = "pyser feature benchmark" if features_only else "pyser benchmark"
        text = features.report(results, notes, command, tuple(sections), title=title)
    else:
        lines = ["# pyser benchmark", "", f"`{command}`", "", *features.machine(), ""]
        lines += [s.rstrip("\n") + "\n" for s in sections]
        if notes:
            lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
        text = "\n".join(lines)
    print(text)
    if getattr(args, "out", None):
        Path(args.out).write_text(text + "\n")
    return status
