"""The ``pyser`` command.

Verbs here: ``listen`` (microphone), ``stream FILE`` (a file through the same streaming
path), ``predict FILE...`` (whole files, or a per-segment timeline), ``features`` and
``bench`` (:mod:`pyser.benchmarks.command`).
Other packages add verbs through the ``pyser.commands`` entry-point group: each entry is a
``register(subparsers)`` callable (the training package registers train, evaluate, export
and experiment that way), so ``pyser`` itself never imports them.

Exit status: 0 done, 2 bad input or a device/model problem (``pyser VERB: error: ...`` on
stderr), 130 ``stream`` stopped by Ctrl-C. Ctrl-C is the normal way to end ``listen``: it
flushes the stream, prints the summary and exits 0 (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "main"]

#: Entry-point group of the verbs that other packages add (``register(subparsers)``).
ENTRY_POINT_GROUP = "pyser.commands"


class CommandError(Exception):
    """Bad input to a verb: printed as ``pyser VERB: error: MESSAGE``, exit status 2."""


# ---------------------------------------------------------------------------- features


def _features(args: argparse.Namespace) -> int:
    import numpy as np

    from pyser.audio import load_audio
    from pyser.features import FeatureConfig, extract_features

    config = FeatureConfig(kind=args.kind, center=args.center, n_mels=args.n_mels)
    waveform = load_audio(args.file, config.sample_rate)
    start = time.perf_counter()
    frames = extract_features(waveform, config)
    seconds = time.perf_counter() - start
    duration = len(waveform) / config.sample_rate
    report = {
        "file": str(args.file),
        "duration_s": round(duration, 3),
        "sample_rate": config.sample_rate,
        "kind": config.kind,
        "shape": list(frames.shape),
        "time_ms": round(seconds * 1e3, 3),
        "x_real_time": round(duration / seconds, 1) if seconds > 0 else None,
    }
    if args.save:
        np.save(args.save, frames)
        report["saved"] = str(args.save)
    if args.png:
        _save_png(frames, config, args.png, title=Path(args.file).name)
        report["png"] = str(args.png)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.file}: {duration:.2f} s at {config.sample_rate} Hz -> "
              f"{frames.shape[0]} frames x {frames.shape[1]} {config.kind} bins (float32 dB) "
              f"in {seconds * 1e3:.2f} ms ({report['x_real_time']}x real time)")
        for key in ("saved", "png"):
            if key in report:
                print(f"wrote {report[key]}")
    return 0


def _save_png(frames, config, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    duration = frames.shape[0] / config.frame_rate
    image = ax.imshow(frames.T, origin="lower", aspect="auto", cmap="magma",
                      extent=(0.0, duration, 0, frames.shape[1]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Mel band" if config.kind == "mel" else "FFT bin")
    ax.set_title(f"{title}: log {config.kind} power")
    fig.colorbar(image, ax=ax, label="dB")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------- shared pieces


def _load_recognizer(args: argparse.Namespace):
    from pyser.stream import Recognizer

    try:
        return Recognizer.load(args.model, backend=args.backend)
    except FileNotFoundError as exc:
        if args.model is None:
            raise CommandError(f"no --model given and {exc}") from None
        raise


def _vad(args: argparse.Namespace):
    from pyser.vad import VadConfig

    return None if args.no_vad else VadConfig()


def _create_stream(recognizer, args: argparse.Namespace):
    return recognizer.create_stream(window_s=args.window, hop_s=args.hop, vad=_vad(args),
                                    smoothing_s=args.smoothing, adapt=not args.no_adapt)


def _json_line(obj: dict[str, Any], file=None) -> None:
    """One strict JSON object (no NaN/Inf) per line, flushed: pipes see it at once."""
    file = file or sys.stdout
    file.write(json.dumps(obj, allow_nan=False) + "\n")
    file.flush()


def _fmt_probs(probabilities: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in probabilities.items())


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _seconds_ge0(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


class _Stop:
    """Ctrl-C while a verb runs: the first one asks the loop to stop cleanly (flush, summary),
    a second one raises KeyboardInterrupt at once. Only flags are touched in the handler."""

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.requested = False
        self._on_stop = on_stop

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self._on_stop is not None:
            self._on_stop()


@contextmanager
def _sigint(stop: _Stop) -> Iterator[_Stop]:
    if threading.current_thread() is not threading.main_thread():
        yield stop  # handlers can only be set in the main thread; Ctrl-C stays default
        return
    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------- event output


class _Summary:
    """What a stream produced, for the final summary."""

    def __init__(self) -> None:
        self.utterances: list[Any] = []

    def add(self, events: Iterable[Any]) -> None:
        self.utterances += [e for e in events if e.type == "utterance"]

    def to_dict(self, duration: float, **extra: Any) -> dict[str, Any]:
        return {"type": "summary", "duration": round(duration, 3),
                "segments": len(self.utterances),
                "labels": [u.label for u in self.utterances], **extra}

    def text(self, duration: float, verb: str) -> str:
        labels = ", ".join(u.label for u in self.utterances) or "no speech"
        n = len(self.utterances)
        return (f"{verb} {duration:.2f} s of audio: {n} speech segment{'s' * (n != 1)}"
                f" ({labels})")


class _JsonOutput:
    """``--json``: every event as one JSON line, then one summary line."""

    def start(self, source: str, **_: Any) -> None:
        pass

    def update(self, events: list[Any], stream: Any, overflows: int = 0) -> None:
        for event in events:
            _json_line(event.to_dict())

    def stop(self) -> None:
        pass

    def summary(self, summary: dict[str, Any], text: str) -> None:
        _json_line(summary)


class _TextOutput:
    """A readable log, one line per event (stdout is not a terminal, or ``stream`` fast)."""

    def start(self, source: str, **_: Any) -> None:
        pass

    def update(self, events: list[Any], stream: Any, overflows: int = 0) -> None:
        for e in events:
            if e.type == "speech_start":
                line = f"{e.time:8.2f} s  speech start"
            elif e.type == "speech_end":
                line = f"{e.time:8.2f} s  speech end"
            else:
                line = (f"{e.end:8.2f} s  {e.type:9s} {e.label:10s} "
                        f"[{e.start:.2f}, {e.end:.2f}) s  {_fmt_probs(e.probabilities)}")
            print(line, flush=True)

    def stop(self) -> None:
        pass

    def summary(self, summary: dict[str, Any], text: str) -> None:
        print(text, flush=True)


class _LiveOutput:
    """A live terminal display (rich): emotion, a bar per class, speech state, time."""

    def __init__(self, labels: tuple[str, ...], title: str) -> None:
        from rich.console import Console

        self.console = Console()
        self.labels = labels
        self.title = title
        self.probabilities: dict[str, float] | None = None
        self.label: str | None = None
        self.kind = ""
        self.in_speech = False
        self.time = 0.0
        self.overflows = 0
        self.history: list[Any] = []
        self._live: Any = None

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        state = Text("● speech", style="bold green") if self.in_speech else Text(
            "○ silence", style="dim")
        head = Table.grid(padding=(0, 2))
        head.add_row(Text(self.title, style="bold"), Text(f"{self.time:7.1f} s"), state,
                     Text(f"overflows {self.overflows}",
                          style="yellow" if self.overflows else "dim"))
        label = Text(f"{self.label or '—'}", style="bold magenta")
        label.append(f"  ({self.kind})" if self.kind else "", style="dim")
        bars = Table.grid(padding=(0, 1))
        for name in self.labels:
            p = (self.probabilities or {}).get(name, 0.0)
            bars.add_row(Text(f"{name:>12s}"),
                         ProgressBar(total=1.0, completed=p, width=40,
                                     complete_style="magenta" if name == self.label else "blue"),
                         Text(f"{p:5.2f}"))
        rows = [head, label, bars]
        for u in self.history[-3:]:
            rows.append(Text(f"  [{u.start:6.2f}, {u.end:6.2f}) s  {u.label}", style="dim"))
        return Group(*rows)

    def start(self, source: str, **_: Any) -> None:
        from rich.live import Live

        self._live = Live(self._render(), console=self.console, auto_refresh=False,
                          transient=False)
        self._live.start(refresh=True)

    def update(self, events: list[Any], stream: Any, overflows: int = 0) -> None:
        for e in events:
            if e.type == "speech_start":
                self.in_speech = True
            elif e.type == "speech_end":
                self.in_speech = False
            else:
                self.label, self.probabilities, self.kind = e.label, e.probabilities, e.type
                if e.type == "utterance":
                    self.history.append(e)
        self.time, self.overflows = stream.time, overflows
        self._live.update(self._render(), refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def summary(self, summary: dict[str, Any], text: str) -> None:
        self.console.print(text, highlight=False)


def _output(args: argparse.Namespace, labels: tuple[str, ...], title: str, live: bool):
    if args.json:
        return _JsonOutput()
    if live and sys.stdout.isatty():
        return _LiveOutput(labels, title)
    return _TextOutput()


# ------------------------------------------------------------------------------ listen


def _list_devices(args: argparse.Namespace) -> int:
    from pyser.audio import NO_INPUT_DEVICE, list_input_devices

    devices = list_input_devices()
    if args.json:
        for d in devices:
            _json_line(d.to_dict())
        return 0
    if not devices:
        print(NO_INPUT_DEVICE)
        return 0
    print(f"{'':1s} {'index':>5s}  {'channels':>8s}  {'rate':>6s}  name")
    for d in devices:
        print(f"{'*' if d.is_default else '':1s} {d.index:5d}  {d.channels:8d}  "
              f"{d.default_sample_rate:6d}  {d.name}")
    return 0


def _listen(args: argparse.Namespace) -> int:
    from pyser.audio import AudioDeviceError, Microphone, import_pyaudio

    if args.list_devices:
        return _list_devices(args)
    import_pyaudio()  # a missing PyAudio is reported before the model loads
    recognizer = _load_recognizer(args)
    stream = _create_stream(recognizer, args)
    mic = Microphone(device=args.device, chunk_s=0.1)
    summary = _Summary()
    samples = 0
    failure: AudioDeviceError | None = None
    # The Ctrl-C handler goes in before the device opens, so that no Ctrl-C falls between.
    with _sigint(_Stop(mic.request_stop)) as stop, mic:
        name = mic.device_info.name if mic.device_info else "?"
        print(f"pyser listen: {name} at {mic.sample_rate} Hz; Ctrl-C to stop",
              file=sys.stderr, flush=True)
        out = _output(args, recognizer.labels, f"pyser listen · {name}", live=True)
        out.start(name)
        try:
            try:
                for chunk in mic:
                    events = stream.accept_waveform(chunk, mic.sample_rate)
                    samples += len(chunk)
                    summary.add(events)
                    out.update(events, stream, mic.overflows)
                    if args.seconds is not None and samples >= args.seconds * mic.sample_rate:
                        break
            except AudioDeviceError as exc:  # the device failed: keep what was heard
                failure = exc
            events = stream.flush()
            summary.add(events)
            out.update(events, stream, mic.overflows)
        finally:
            out.stop()
    duration = samples / mic.sample_rate
    overflow_text = (f"; {mic.overflows} input overflow{'s' * (mic.overflows != 1)}"
                     " (audio lost)" if mic.overflows else "; no input overflow")
    extra = {"error": str(failure)} if failure is not None else {}
    out.summary(summary.to_dict(duration, overflows=mic.overflows,
                                input_overflows=mic.input_overflows,
                                dropped_chunks=mic.dropped_chunks,
                                interrupted=stop.requested, device=name,
                                sample_rate=mic.sample_rate, **extra),
                summary.text(duration, "listened to") + overflow_text)
    if failure is not None:
        raise failure
    return 0


# ------------------------------------------------------------------------------ stream


def _stream(args: argparse.Namespace) -> int:
    from pyser.audio import iter_file_chunks

    recognizer = _load_recognizer(args)
    stream = _create_stream(recognizer, args)
    rate, chunks = iter_file_chunks(args.file, chunk_s=0.1)
    summary = _Summary()
    out = _output(args, recognizer.labels, f"pyser stream · {Path(args.file).name}",
                  live=args.realtime)
    samples = 0
    began = time.perf_counter()
    with _sigint(_Stop()) as stop:
        out.start(str(args.file))
        try:
            for chunk in chunks:
                if stop.requested:
                    break
                events = stream.accept_waveform(chunk, rate)
                samples += len(chunk)
                summary.add(events)
                out.update(events, stream)
                if args.realtime:
                    ahead = began + samples / rate - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
            events = stream.flush()
            summary.add(events)
            out.update(events, stream)
        finally:
            out.stop()
            chunks.close()
    seconds = time.perf_counter() - began
    duration = samples / rate
    speed = duration / seconds if seconds > 0 else None
    out.summary(summary.to_dict(duration, file=str(args.file), sample_rate=rate,
                                interrupted=stop.requested, seconds=round(seconds, 3),
                                x_real_time=None if speed is None else round(speed, 1)),
                summary.text(duration, "streamed") + (
                    f" in {seconds:.2f} s ({speed:.1f}x real time)" if speed else ""))
    return 130 if stop.requested else 0


# ----------------------------------------------------------------------------- predict


def _timeline(recognizer, path: Path, args: argparse.Namespace) -> list[Any]:
    """Utterance events of the streaming path over a whole file."""
    from pyser.audio import iter_file_chunks

    stream = recognizer.create_stream(vad=_vad(args))
    rate, chunks = iter_file_chunks(path, chunk_s=0.1)  # as `pyser stream` reads it
    events: list[Any] = []
    for chunk in chunks:
        events += stream.accept_waveform(chunk, rate)
    events += stream.flush()
    return [e for e in events if e.type == "utterance"]


def _predict(args: argparse.Namespace) -> int:
    from pyser.audio import read_audio

    fmt = args.format or ("json" if args.json else "table")
    if args.json and fmt != "json":
        raise CommandError(f"--json and --format {fmt} disagree; give one of them")
    recognizer = _load_recognizer(args)
    labels = list(recognizer.labels)
    speaker = None
    if args.same_speaker:
        if args.timeline:
            raise CommandError("--same-speaker is for whole-file predictions; with --timeline "
                               "each file is one stream, which adapts to its speaker itself")
        try:
            speaker = recognizer.new_speaker()
        except ValueError as exc:
            raise CommandError(f"--same-speaker: {exc}") from None
    if args.timeline:
        columns = ["file", "start", "end", "label", *labels]
    else:
        columns = ["file", "duration", "speech", "label", *labels]
    rows: list[dict[str, Any]] = []
    writer = csv.writer(sys.stdout, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    failed = 0

    def emit(row: dict[str, Any]) -> None:
        if fmt == "json":
            _json_line(row)
        elif writer is not None:
            probs = row["probabilities"]
            writer.writerow([_csv_value(row[c]) for c in columns[:4]] +
                            [f"{probs[name]:.6f}" for name in labels])
            sys.stdout.flush()
        else:
            rows.append(row)

    for path in args.files:
        try:
            if args.timeline:
                utterances = _timeline(recognizer, path, args)
                if not utterances:
                    raise CommandError(
                        f"{path}: no speech found (the voice-activity detector found no "
                        "segment; --no-vad takes the whole file as speech)")
                for u in utterances:
                    emit({"file": str(path), **u.to_dict()})
            else:
                data, rate = read_audio(path)
                p = recognizer.predict(data, rate, vad=_vad(args), speaker=speaker)
                emit({"file": str(path), **p.to_dict()})
        except (ValueError, OSError, CommandError) as exc:
            failed += 1
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            print(f"pyser predict: error: {message}", file=sys.stderr, flush=True)
    if fmt == "table" and rows:
        _print_table(rows, columns, labels, timeline=args.timeline)
    return 2 if failed else 0


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _print_table(rows: list[dict[str, Any]], columns: list[str], labels: list[str],
                 timeline: bool) -> None:
    cells = []
    for row in rows:
        head = [row["file"]]
        if timeline:
            head += [f"{row['start']:.2f}", f"{row['end']:.2f}"]
        else:
            head += [f"{row['duration']:.2f}", f"{row['speech']:.2f}"]
        head.append(row["label"] if row["label"] is not None else "no speech")
        cells.append(head + [f"{row['probabilities'][name]:.3f}" for name in labels])
    header = [c + (" (s)" if c in ("start", "end", "duration", "speech") else "")
              for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    left = {0, 3}  # file and label left-aligned, numbers right-aligned

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i in left else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    print(line(header))
    for r in cells:
        print(line(r))


# ------------------------------------------------------------------------------ parser


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="model file (.pt TorchScript or .onnx) from `pyser train`/`pyser "
                   "export`; default: the bundled model")
    p.add_argument("--backend", choices=["torchscript", "onnx"], default="torchscript",
                   help="runtime (a .onnx model always uses onnx)")


def _add_stream_options(p: argparse.ArgumentParser) -> None:
    _add_model_options(p)
    p.add_argument("--window", type=_positive_seconds, default=3.0, metavar="S",
                   help="seconds of audio per partial result (default 3.0; on a 0.16 s grid)")
    p.add_argument("--hop", type=_positive_seconds, default=0.48, metavar="S",
                   help="seconds between partial results (default 0.48)")
    p.add_argument("--smoothing", type=_seconds_ge0, default=0.0, metavar="S",
                   help="time constant of partial-result smoothing (default 0: none)")
    p.add_argument("--no-vad", action="store_true",
                   help="no voice-activity detection: all audio is one speech segment")
    p.add_argument("--no-adapt", action="store_true",
                   help="no speaker adaptation: score each utterance alone (for several "
                   "talkers on one input; models trained with it adapt by default)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per event and a final summary line")


def _register_plugins(sub: argparse._SubParsersAction) -> None:
    """Verbs of other packages, from the ``pyser.commands`` entry points."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()(sub)
        except Exception as exc:  # noqa: BLE001 (a broken plugin must not break pyser)
            print(f"pyser: warning: the {ep.name!r} commands ({ep.value}) are unavailable: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def _build_parser() -> argparse.ArgumentParser:
    from pyser import __version__

    parser = argparse.ArgumentParser(prog="pyser",
                                     description="Streaming speech emotion recognition.")
    parser.add_argument("--version", action="version", version=f"pyser {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "listen", help="recognise emotions live from the microphone",
        description="Recognise emotions from a microphone (PyAudio/PortAudio) in real time: a "
        "live display on a terminal, or JSON lines with --json. Ctrl-C stops: the stream is "
        "flushed, a summary is printed (with --json, a final {\"type\": \"summary\"} line) "
        "and the exit status is 0. Needs PyAudio: pip install 'pyser[listen]'.")
    _add_stream_options(p)
    p.add_argument("--device", default=None, metavar="N",
                   help="input device index or part of its name (default: the system's)")
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.add_argument("--seconds", type=_positive_seconds, default=None, metavar="S",
                   help="stop after S seconds of audio")
    p.set_defaults(func=_listen)

    p = sub.add_parser(
        "stream", help="run a sound file through the streaming recogniser",
        description="Feed a sound file (anything libsndfile reads, any rate and channels) to "
        "the streaming recogniser in 0.1 s chunks, as fast as possible or at real time; the "
        "same events as `pyser listen`. Ctrl-C stops early (exit status 130).")
    p.add_argument("file", type=Path, help="sound file")
    _add_stream_options(p)
    p.add_argument("--realtime", action="store_true",
                   help="pace the input at real time (a live display on a terminal)")
    p.set_defaults(func=_stream)

    p = sub.add_parser(
        "predict", help="the emotion of whole sound files",
        description="One prediction per file (label, or \"no speech\" when the voice-activity "
        "detector finds none), or with --timeline one row per speech segment from the "
        "streaming path.")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="sound files")
    _add_model_options(p)
    p.add_argument("--timeline", action="store_true",
                   help="one row per speech segment (start, end, label, probabilities)")
    p.add_argument("--format", choices=["table", "csv", "json"], default=None,
                   help="output format (default table; json: one object per line)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--no-vad", action="store_true",
                   help="no voice-activity detection: always name an emotion")
    p.add_argument("--same-speaker", action="store_true",
                   help="the files are one speaker's, in this order: each is normalised by "
                   "the speech of the ones before it, and its scores by theirs (models "
                   "trained with speaker adaptation, such as the bundled one)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("features", help="compute the log spectrogram of a sound file")
    p.add_argument("file", type=Path, help="sound file (WAV, FLAC, ...); resampled to 16 kHz")
    p.add_argument("--kind", choices=["mel", "stft"], default="mel")
    p.add_argument("--n-mels", type=int, default=128, help="Mel bands (kind mel)")
    p.add_argument("--center", action="store_true", help="librosa center=True framing")
    p.add_argument("--png", type=Path, help="save the spectrogram as a PNG image")
    p.add_argument("--save", type=Path, help="save the (frames, bins) array as .npy")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_features)

    from pyser.benchmarks import command as bench  # standard library only until it runs

    bench.register(sub)
    _register_plugins(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyser`` console script; returns the exit status."""
    from pyser.audio import AudioDeviceError

    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside a streaming loop
        print(f"pyser {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`pyser listen --json | head -3`): not an error of ours.
        # Point stdout at /dev/null so that the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except (CommandError, AudioDeviceError, ValueError, OSError) as exc:
        print(f"pyser {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
