"""Streaming emotion recognition: per-hop latency and streams per core, one thread.

Measured on the bundled model (or a random-weight CRNN of the same shape when none is
bundled; the weights do not change the cost), window 3 s, hop 0.48 s, continuous speech
(VAD off, so that every hop is scored: the worst case):

* per-hop latency: 10 ms chunks go into one stream; the calls that complete a hop return
  its ``Partial`` event, and their duration is the delay from the hop's last sample to
  its event (audio buffering adds up to one chunk on top). Cached CNN against a full
  recompute of the window, TorchScript against ONNX Runtime against eager PyTorch, in
  rotation so that drift hits all alike; median and p99 over the steady state (window
  full).
* where a hop's time goes: the CNN over the hop's new frames, the BiGRU + FC over the
  window, the rest (features, VAD, bookkeeping).
* with the VAD on, talk turns through an adapting and a non-adapting stream: every
  call's duration, grouped by the events it returns (a segment's start is where the
  adapting stream adds the last segment to its speaker history).
* streams per core: M streams of 0.16 s chunks, stream by stream or batched through
  ``Recognizer.accept_waveforms``; capacity = M x audio seconds / wall seconds, i.e. how
  many real-time streams this core sustains at that load.

``run_stream_benchmark(quick)`` returns the Markdown section; ``pyser bench`` prints it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["run_stream_benchmark"]

SR = 16000
WINDOW_S, HOP_S = 3.0, 0.48
CHUNK = 160  # 10 ms


@dataclass(frozen=True)
class _Sizes:
    hops: int  # timed hops per configuration
    streams: tuple[int, ...]  # M for the streams-per-core runs
    stream_audio_s: float  # audio per stream in those runs
    turns: int  # talk turns for the VAD-on adaptation run


_QUICK = _Sizes(hops=20, streams=(16,), stream_audio_s=4.0, turns=4)
_FULL = _Sizes(hops=200, streams=(64, 256), stream_audio_s=10.0, turns=60)


class _EagerBackend:
    """The eager ``nn.Module`` behind a TorchScript model file (for comparison only)."""

    name = "eager"

    def __init__(self, scripted_backend) -> None:
        import torch

        from pyser.model import CRNN, StreamingCNN

        module = scripted_backend.module
        self._torch = torch
        self.metadata = scripted_backend.metadata
        self.rnn_input_size = scripted_backend.rnn_input_size
        self.module = CRNN(int(module.n_bins), int(module.n_classes))
        self.module.load_state_dict(module.state_dict())
        self.module.eval()
        self.streaming_cnn = StreamingCNN(self.module)

    def cnn(self, x, lengths):
        torch = self._torch
        with torch.inference_mode():
            h, n = self.module.cnn(torch.from_numpy(x), torch.from_numpy(lengths))
        return h.numpy(), n.numpy()

    def head(self, h, lengths):
        torch = self._torch
        with torch.inference_mode():
            logits, z = self.module.head(torch.from_numpy(h), torch.from_numpy(lengths))
        return logits.numpy(), z.numpy()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _recognizers(notes: list[str]) -> dict:
    """name -> Recognizer: torchscript, onnx (when available), eager."""
    import tempfile

    from pyser.stream import Recognizer, bundled_model_path

    out = {}
    try:
        path = bundled_model_path("torchscript")
        source = f"the bundled model ({path.name})"
    except FileNotFoundError:
        from pyser.features import FeatureConfig
        from pyser.model import CRNN, ModelMetadata, save_model

        path = __import__("pathlib").Path(tempfile.mkdtemp()) / "random.pt"
        save_model(path, CRNN(), ModelMetadata(["neutral", "angry", "happy", "sad"],
                                               FeatureConfig()))
        source = "a random-weight CRNN (no bundled model)"
    out["torchscript"] = Recognizer.load(path)
    try:
        out["onnx"] = Recognizer.load(bundled_model_path("onnx"), num_threads=1)
    except (FileNotFoundError, ImportError, ValueError) as exc:
        notes.append(f"ONNX Runtime skipped: {exc}")
    out["eager"] = Recognizer(_EagerBackend(out["torchscript"].backend))
    notes.append(f"Model: {source}.")
    return out


def _speech(seconds: float, seed: int) -> np.ndarray:
    from pyser.benchmarks.features import speech_like

    return speech_like(int(seconds * SR), seed)


def _hop_latency(recognizers: dict, hops: int, block: int = 10) -> dict[str, np.ndarray]:
    """Seconds of each steady-state hop call, per configuration.

    Configurations take turns in blocks of ``block`` timed hops, each block after one
    untimed hop: a single app runs one model, so its caches hold that model's weights; the
    untimed hop lets a block start from where an app would be, while the rotation still
    spreads the machine's drift over all configurations.
    """
    configs = {f"{name} {'cached' if cache else 'full recompute'}": (rec, cache)
               for name, rec in recognizers.items() for cache in (True, False)}
    warm = int(WINDOW_S / HOP_S) + 2  # hops until the window is full, and some
    rounds = -(-hops // block)
    audio = _speech(warm * HOP_S + rounds * (block + 1) * HOP_S + 2 * WINDOW_S, seed=3)
    streams = {k: rec.create_stream(WINDOW_S, HOP_S, vad=None, cache_cnn=cache)
               for k, (rec, cache) in configs.items()}
    times: dict[str, list[float]] = {k: [] for k in configs}
    positions = dict.fromkeys(configs, 0)

    def hop(name: str) -> float:
        """Feed 10 ms chunks until one completes a hop; that call's seconds."""
        stream, pos = streams[name], positions[name]
        while True:
            chunk = audio[pos : pos + CHUNK]
            pos += CHUNK
            t0 = time.perf_counter_ns()
            events = stream.accept_waveform(chunk)
            dt = (time.perf_counter_ns() - t0) * 1e-9
            if any(e.type == "partial" for e in events):
                positions[name] = pos
                return dt

    from pyser.benchmarks.features import gc_off

    names = list(configs)
    for name in names:
        for _ in range(warm):
            hop(name)
    with gc_off():
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                hop(name)  # untimed: this model's weights back into the caches
                times[name] += [hop(name) for _ in range(block)]
    return {k: np.array(v[:hops]) for k, v in times.items()}


def _hop_profile(rec, repeats: int) -> dict[str, float]:
    """Median seconds of a cached hop's two model calls, isolated: the CNN over the hop's
    new frames (layer by layer where the backend streams its CNN, else ``cnn`` over the
    receptive fields of the hop's new steps) and the BiGRU + FC over a full window."""
    import torch

    from pyser.stream import FIELD, STRIDE, _steps

    stream = rec.create_stream(WINDOW_S, HOP_S, vad=None)
    steps = _steps(int(WINDOW_S * 100))
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 400, rec.feature_config.n_bins)) * 10 - 40).astype(np.float32)
    h = np.abs(rng.standard_normal((1, steps, rec.backend.rnn_input_size))).astype(np.float32)
    streaming = rec.backend.streaming_cnn
    if streaming is not None:
        new_frames = stream.hop_steps * STRIDE
        _, primed = streaming.step(torch.from_numpy(x[:, :FIELD]), streaming.empty_state())
        new = torch.from_numpy(x[:, FIELD : FIELD + new_frames])

        def cnn() -> None:
            streaming.step(new, primed)
    else:
        new_frames = (stream.hop_steps - 1) * STRIDE + FIELD

        def cnn() -> None:
            rec.backend.cnn(x[:, :new_frames], np.array([new_frames]))

    timings = {}
    for name, fn in (("cnn", cnn), ("head", lambda: rec.backend.head(h, np.array([steps])))):
        for _ in range(5):
            fn()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - t0) * 1e-9)
        timings[name] = float(np.median(samples))
    timings["new_frames"], timings["steps"] = new_frames, steps
    timings["layer_by_layer"] = streaming is not None
    return timings


def _capacity(rec, m: int, audio_s: float, batched: bool) -> float:
    """Real-time streams this core sustains: M x audio seconds / wall seconds."""
    chunk = int(0.16 * SR)
    audio = _speech(audio_s + 4.0, seed=11)
    offsets = np.random.default_rng(m).integers(0, 4 * SR, size=m)
    streams = [rec.create_stream(WINDOW_S, HOP_S, vad=None) for _ in range(m)]
    n_chunks = int(audio_s * SR) // chunk
    warm = 3  # the first chunks of every stream, before timing
    from pyser.benchmarks.features import gc_off

    with gc_off():
        for i in range(n_chunks):
            if i == warm:
                t0 = time.perf_counter()
            chunks = [audio[o + i * chunk : o + (i + 1) * chunk] for o in offsets]
            if batched:
                rec.accept_waveforms(streams, chunks)
            else:
                for s, c in zip(streams, chunks):
                    s.accept_waveform(c)
        wall = time.perf_counter() - t0
    return m * (n_chunks - warm) * chunk / SR / wall


def _turns(n: int, seed: int) -> np.ndarray:
    """``n`` talk turns: 1.5-3 s of speech-like audio, then 1 s of near silence."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(n):
        parts.append(_speech(rng.uniform(1.5, 3.0), seed=100 + k))
        parts.append((5e-5 * rng.standard_normal(SR)).astype(np.float32))
    return np.concatenate(parts)


_CALL_KINDS = ("speech_start", "partial", "utterance")


def _segment_latency(rec, turns: int) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Seconds of every 10 ms call of two VAD-on streams over the same talk turns, one
    adapting to its speaker (a closed segment joins its history when the next one starts,
    and the cached CNN restarts) and one not, fed chunk by chunk in alternation. Per
    stream: all calls, and the calls that return each event kind. Also what the adapting
    stream heard."""
    from pyser.benchmarks.features import gc_off

    audio = _turns(turns, seed=5)
    streams = {"adapting": rec.create_stream(WINDOW_S, HOP_S, adapt=True),
               "not adapting": rec.create_stream(WINDOW_S, HOP_S, adapt=False)}
    times = {k: {kind: [] for kind in ("all", *_CALL_KINDS)} for k in streams}
    segments = 0
    with gc_off():
        for i, pos in enumerate(range(0, len(audio) - CHUNK + 1, CHUNK)):
            chunk = audio[pos : pos + CHUNK]
            order = list(streams.items())
            for name, stream in order if i % 2 == 0 else order[::-1]:
                t0 = time.perf_counter_ns()
                events = stream.accept_waveform(chunk)
                dt = (time.perf_counter_ns() - t0) * 1e-9
                times[name]["all"].append(dt)
                for kind in {e.type for e in events} & set(_CALL_KINDS):
                    times[name][kind].append(dt)
                segments += name == "adapting" and any(e.type == "utterance" for e in events)
    speaker = streams["adapting"].speaker
    heard = {"segments": segments, "audio_s": len(audio) / SR,
             "speech_s": (speaker.speech_frames / rec.feature_config.frame_rate
                          if speaker is not None else None)}
    return {k: {kind: np.array(v) for kind, v in t.items()} for k, t in times.items()}, heard


def _segment_lines(times: dict[str, dict[str, np.ndarray]], heard: dict, turns: int) -> list[str]:
    """The adaptation table of the report."""
    lines = [
        "",
        (f"With the VAD on and speaker adaptation: {turns} talk turns "
         f"({heard['audio_s']:.0f} s: 1.5-3 s of speech-like audio, then 1 s of near "
         "silence) through two streams fed 10 ms chunks in alternation, one adapting to its "
         "speaker (each closed segment joins its history when the next starts, and the cached "
         "CNN restarts) and one not. Calls grouped by the events they return; a call "
         "returning two kinds counts in both."),
        "",
        "| stream | calls returning | n | median (ms) | p99 (ms) | max (ms) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, t in times.items():
        for kind in ("all", *_CALL_KINDS):
            v = t[kind]
            if len(v):
                label = "anything (every call)" if kind == "all" else f"`{kind}`"
                lines.append(f"| {name} | {label} | {len(v)} | {_ms(np.median(v))} | "
                             f"{_ms(np.percentile(v, 99))} | {_ms(v.max())} |")
    lines.append("")
    for name, t in times.items():
        lines.append(f"- {name}: {heard['audio_s'] / t['all'].sum():.0f}× real time "
                     f"({1e3 * t['all'].sum():.0f} ms of calls).")
    if heard["speech_s"] is None:
        lines.append("- This model has no speaker adaptation: both streams do the same work.")
    else:
        lines.append(f"- The adapting stream closed {heard['segments']} segments; its speaker "
                     f"history holds {heard['speech_s']:.1f} s of speech at the end.")
    return lines


def _ms(x: float) -> str:
    return f"{x * 1e3:.2f}"


def run_stream_benchmark(quick: bool = False) -> str:
    """The streaming section of ``pyser bench`` as Markdown (``## Streaming ...``)."""
    sizes = _QUICK if quick else _FULL
    notes: list[str] = []
    with _one_thread():
        recognizers = _recognizers(notes)
        latency = _hop_latency(recognizers, sizes.hops)
        profile = _hop_profile(recognizers["torchscript"], 50 if quick else 300)
        segment_times, heard = _segment_latency(recognizers["torchscript"], sizes.turns)
        capacity = []
        for m in sizes.streams:
            for batched in (False, True):
                capacity.append((m, batched, _capacity(recognizers["torchscript"], m,
                                                       sizes.stream_audio_s, batched)))
    lines = [
        "## Streaming emotion recognition (one thread)",
        "",
        (f"Window {WINDOW_S} s, hop {HOP_S} s, 10 ms chunks, continuous speech (VAD off: every"
         f" hop scored), {sizes.hops} timed hops per row after the window filled; rows take "
         "turns in blocks of 10 hops, each after one untimed hop. A hop's latency is the "
         "duration of the call that completes it, i.e. the delay from the hop's last sample "
         "to its event (audio buffering adds up to one chunk, 10 ms here)."),
        "",
        "| backend, CNN | hop median (ms) | hop p99 (ms) | vs TorchScript cached (median) |",
        "|---|---:|---:|---:|",
    ]
    base = float(np.median(latency["torchscript cached"]))
    for name, t in latency.items():
        lines.append(f"| {name} | {_ms(np.median(t))} | {_ms(np.percentile(t, 99))} | "
                     f"{np.median(t) / base:.2f}× |")
    hop = float(np.median(latency["torchscript cached"]))
    rest = hop - profile["cnn"] - profile["head"]
    lines += [
        "",
        f"Where a cached TorchScript hop goes (medians of isolated calls): CNN over the hop's "
        f"{profile['new_frames']} new frames"
        f"{' layer by layer' if profile['layer_by_layer'] else ''} {_ms(profile['cnn'])} ms,"
        " BiGRU + FC over the "
        f"{profile['steps']}-step window {_ms(profile['head'])} ms, the rest (features, VAD, "
        f"bookkeeping, Python) about {_ms(max(rest, 0.0))} ms.",
        "",
        "| streams M | model calls | real-time streams sustained (M × audio s / wall s) |",
        "|---:|---|---:|",
    ]
    for m, batched, cap in capacity:
        how = "batched (`accept_waveforms`)" if batched else "stream by stream"
        lines.append(f"| {m} | {how} | {cap:.0f} |")
    lines += _segment_lines(segment_times, heard, sizes.turns)
    lines += ["", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)
