"""The ``pyser`` command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main"]


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


def _build_parser() -> argparse.ArgumentParser:
    from pyser import __version__

    parser = argparse.ArgumentParser(prog="pyser", description="Streaming speech emotion recognition.")
    parser.add_argument("--version", action="version", version=f"pyser {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("features", help="compute the log spectrogram of a sound file")
    p.add_argument("file", type=Path, help="sound file (WAV, FLAC, ...); resampled to 16 kHz")
    p.add_argument("--kind", choices=["mel", "stft"], default="mel")
    p.add_argument("--n-mels", type=int, default=128, help="Mel bands (kind mel)")
    p.add_argument("--center", action="store_true", help="librosa center=True framing")
    p.add_argument("--png", type=Path, help="save the spectrogram as a PNG image")
    p.add_argument("--save", type=Path, help="save the (frames, bins) array as .npy")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_features)

    try:
        from training.cli import register
    except ImportError:  # the training extras are not installed
        pass
    else:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyser`` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"pyser {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
