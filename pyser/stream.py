"""Emotion recognition: :class:`Recognizer` (the model, shared) and :class:`EmotionStream`.

Data flow of one stream::

    chunk (any size, int16 or float, mono or (n, channels), any rate)
      -> soxr streaming resampler (when the rate is not the model's)
      -> StreamingFeatures (C++) -> frames (n, n_bins) with absolute indices -> FrameRing
      -> VoiceActivityDetector: speech_start / speech_end
      -> every hop while in speech: CNN over the new frames only (outputs cached in a
         second FrameRing), BiGRU + FC over the cached window -> ``Partial`` event
      -> at speech end: BiGRU + FC over the whole segment -> ``Utterance`` event

CNN cache: the CNN (valid convolutions and pools) has a time stride of ``STRIDE`` = 16
frames and a receptive field of ``FIELD`` = 49 frames, so its output step k depends on
frames ``[16k, 16k + 49)`` only. Segments and windows start on that 16-frame grid and hops
are multiples of it, so a step computed once stays valid for every later window that holds
it, and each hop puts only the frames of its new steps through the CNN. The BiGRU must
run over the whole window every hop: its final states depend on where the window starts.

Times in events are seconds of input audio from the stream start (or the last reset).
A window of frames ``[a, b)`` covers samples ``[a·hop, (b-1)·hop + n_fft)``, so an event's
``start`` is ``a·hop / sr`` and its ``end`` is the time of the last sample it read.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pyser.adapt import SpeakerAdaptation, SpeakerState
from pyser.audio import check_sample_rate, to_mono_float32
from pyser.backend import load_backend
from pyser.features import FeatureConfig, StreamingFeatures, extract_features
from pyser.model import CNN_LAYERS, ModelFileError
from pyser.ring import FrameRing
from pyser.vad import VadConfig, VoiceActivityDetector, mask_span, speech_mask

__all__ = [
    "DEFAULT_VAD",
    "SPEECH_MARGIN_S",
    "FIELD",
    "STRIDE",
    "BatchInputError",
    "EmotionStream",
    "Event",
    "Partial",
    "Prediction",
    "Recognizer",
    "SpeechEnd",
    "SpeechStart",
    "Utterance",
    "bundled_model_path",
]


#: The voice-activity settings streams and predict use unless told otherwise (frozen).
DEFAULT_VAD = VadConfig()
#: Audio around each speech segment that the model reads with it (seconds, each side). The
#: detector's span is tight: it leaves out breathy onsets and fading ends, and the model,
#: trained on 3 s crops of whole corpus files, loses 8 UA points on bare spans (measured:
#: docs/training.md, "What the model reads"). After the segment it is at most the VAD's end
#: hangover (``min_silence_s``), which has been heard anyway, so it adds no latency.
SPEECH_MARGIN_S = 0.5


def _cnn_geometry() -> tuple[int, int]:
    """(time stride, receptive field) of the CNN, in frames, from ``CNN_LAYERS``."""
    jump, field_ = 1, 1
    for _, kernel, stride, _ in CNN_LAYERS:
        field_ += (kernel - 1) * jump
        jump *= stride
    return jump, field_


STRIDE, FIELD = _cnn_geometry()


def _steps(n_frames: int) -> int:
    """CNN output steps of ``n_frames`` frames (0 when fewer than FIELD)."""
    return 0 if n_frames < FIELD else (n_frames - FIELD) // STRIDE + 1


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------- events


def _probabilities(labels: tuple[str, ...], p: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(labels, p)}


@dataclass(frozen=True)
class Prediction:
    """The emotion of a whole utterance (:meth:`Recognizer.predict`).

    Attributes:
        label: the most probable emotion, or None when no speech was detected.
        probabilities: every label's posterior (sums to 1).
        duration: seconds of audio given.
        speech: seconds of it that the voice-activity detector took for speech.
    """

    label: str | None
    probabilities: dict[str, float]
    duration: float
    speech: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "probabilities": dict(self.probabilities),
                "duration": self.duration, "speech": self.speech}


@dataclass(frozen=True)
class _Moment:
    """An event at one instant, ``time`` seconds from the stream start."""

    time: float
    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "time": self.time}


@dataclass(frozen=True)
class _Scored:
    """Posteriors over the window ``[start, end)`` seconds."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]
    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "start": self.start, "end": self.end, "label": self.label,
                "probabilities": dict(self.probabilities)}


@dataclass(frozen=True)
class SpeechStart(_Moment):
    """Speech began at ``time`` seconds (the detector's onset, on the CNN's 40 ms grid; the
    segment's windows start up to ``SPEECH_MARGIN_S`` earlier)."""

    type: ClassVar[str] = "speech_start"


@dataclass(frozen=True)
class SpeechEnd(_Moment):
    """Speech ended at ``time`` seconds (the detector's end; the utterance window reads up to
    ``SPEECH_MARGIN_S`` beyond it)."""

    type: ClassVar[str] = "speech_end"


@dataclass(frozen=True)
class Partial(_Scored):
    """Posteriors over the sliding window ``[start, end)`` seconds, once per hop in speech.

    ``probabilities`` are smoothed when the stream has ``smoothing_s`` > 0.
    """

    type: ClassVar[str] = "partial"


@dataclass(frozen=True)
class Utterance(_Scored):
    """Posteriors over a whole speech segment ``[start, end)`` seconds, at its end."""

    type: ClassVar[str] = "utterance"


Event = SpeechStart | SpeechEnd | Partial | Utterance


# ------------------------------------------------------------------------ recognizer

_ASSET_PACKAGE = "pyser.assets"
_ASSET_NAMES = {"torchscript": "default.pt", "onnx": "default.onnx"}


def bundled_model_path(backend: str = "torchscript") -> Path:
    """Path of the bundled default model file for ``backend``.

    Raises:
        FileNotFoundError: no model of that kind is bundled with this installation.
    """
    if backend not in _ASSET_NAMES:
        raise ValueError(f"backend must be one of {tuple(_ASSET_NAMES)}, got {backend!r}")
    resource = resources.files(_ASSET_PACKAGE).joinpath(_ASSET_NAMES[backend])
    if not resource.is_file():
        raise FileNotFoundError(
            f"no bundled {backend} model in {_ASSET_PACKAGE} ({_ASSET_NAMES[backend]}); train "
            "one with `pyser train`, export it with `pyser export`, and pass its path"
        )
    return Path(str(resource))


class Recognizer:
    """A loaded emotion model: read-only, shared by any number of streams and threads.

    Use :meth:`load`; then :meth:`predict` for whole utterances and :meth:`create_stream`
    for live audio.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.metadata = backend.metadata
        self.labels: tuple[str, ...] = tuple(self.metadata.labels)
        try:
            self.feature_config = FeatureConfig.from_dict(self.metadata.feature_config)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"the model's feature_config is invalid: {exc}") from None
        try:
            #: The model's online speaker adaptation constants (None: it was not trained so).
            self.adaptation: SpeakerAdaptation | None = self.metadata.adaptation()
        except ValueError as exc:
            raise ModelFileError(f"the model's speaker_adaptation is invalid: {exc}") from None
        logit_mean = None if self.adaptation is None else self.adaptation.logit_mean
        if logit_mean is not None and logit_mean.size != len(self.labels):
            raise ModelFileError(f"the model's speaker_adaptation has {logit_mean.size} "
                                 f"logit_mean values for {len(self.labels)} labels")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        backend: str = "torchscript",
        num_threads: int | None = None,
    ) -> Recognizer:
        """Load a self-describing model file.

        Args:
            path: a ``.pt`` (TorchScript) or ``.onnx`` file from ``pyser train`` /
                ``pyser export``; None loads the bundled default model.
            backend: ``"torchscript"`` (the default) or ``"onnx"`` (ONNX Runtime); with a
                path ending in ``.onnx`` the backend is ONNX whatever this says.
            num_threads: ONNX Runtime threads per call (TorchScript follows
                ``torch.set_num_threads``).
        Raises:
            FileNotFoundError: no such file, or no bundled model.
            ModelFileError: not a pyser model file, or inconsistent metadata.
        """
        if path is None:
            path = bundled_model_path(backend)
        elif Path(path).suffix.lower() == ".onnx":
            backend = "onnx"
        return cls(load_backend(path, backend, num_threads))

    @property
    def sample_rate(self) -> int:
        """The sample rate the model's features are computed at (Hz)."""
        return self.feature_config.sample_rate

    def new_speaker(self) -> SpeakerState:
        """An empty speaker history for :meth:`predict` (``speaker=``): pass the same one
        with each utterance of one speaker, in order, and each is normalised by the speech
        (and the model's outputs) of those before it (see pyser.adapt).

        Raises:
            ValueError: the model was not trained for speaker adaptation.
        """
        if self.adaptation is None:
            raise ValueError(
                "this model was not trained for speaker adaptation (its metadata has no "
                "speaker_adaptation); train with speaker_adapt = true"
            )
        return self.adaptation.new_speaker()

    def _logits(self, frames: np.ndarray) -> np.ndarray:
        """Logits (n_classes,) float64 of one utterance's frames (T, n_bins), a full pass."""
        x = np.ascontiguousarray(frames[None], dtype=np.float32)
        h, h_lengths = self.backend.cnn(x, np.array([frames.shape[0]], dtype=np.int64))
        logits, _ = self.backend.head(h, h_lengths)
        return logits[0].astype(np.float64)

    def predict(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        vad: VadConfig | None = DEFAULT_VAD,
        speaker: SpeakerState | None = None,
    ) -> Prediction:
        """The emotion of one whole utterance.

        The model reads the frames from the first speech onset to the last speech end found
        by ``vad``, with ``SPEECH_MARGIN_S`` around them, as a stream's utterance result
        does; every frame of the file when ``vad`` is None or finds no speech.

        Args:
            waveform: (n,) or (n, channels) float in [-1, 1] or int16 samples.
            sample_rate: its rate in Hz (resampled to the model's when different).
            vad: voice-activity settings; when it finds no speech, ``label`` is None (the
                posteriors are still given). None: always name an emotion, from every frame.
            speaker: this speaker's history from :meth:`new_speaker`: the utterance's
                features (and, for a model with ``logit_mean``, its logits) are normalised
                by it, then its speech (by ``vad``; all frames when None) and its logits
                (unless no speech was found) are added to it. None: the utterance alone.
        Raises:
            ValueError: bad samples or rate, fewer samples than one frame (n_fft), or a
                speaker history of another model; ``speaker`` is then unchanged.
        """
        if speaker is not None and (not isinstance(speaker, SpeakerState)
                                    or speaker.adaptation.n_bins != self.feature_config.n_bins):
            raise ValueError("predict: speaker must come from this model's new_speaker()")
        cfg = self.feature_config
        x = _resample_whole(to_mono_float32(waveform), check_sample_rate(sample_rate),
                            cfg.sample_rate)
        if len(x) < cfg.n_fft:
            raise ValueError(
                f"predict: {len(x) / cfg.sample_rate:.3f} s of audio is shorter than one "
                f"analysis frame ({cfg.n_fft / cfg.sample_rate * 1000:.0f} ms)"
            )
        frames = extract_features(x, FeatureConfig.from_dict({**cfg.to_dict(), "center": False}))
        mask = speech_mask(frames, vad, cfg.frame_rate) if vad is not None else None
        # the speech with SPEECH_MARGIN_S around it, as streams read it
        span = None if mask is None else mask_span(mask, round(SPEECH_MARGIN_S * cfg.frame_rate))
        scored = frames if span is None else frames[span]
        if speaker is None:
            p = _softmax(self._logits(scored))
        else:
            logits = self._logits(speaker.apply(scored))
            p = _softmax(speaker.score(logits))
        speech = None if mask is None else float(mask.sum()) / cfg.frame_rate
        if speaker is not None:
            speaker.add(frames if mask is None else frames[mask])
            if speech != 0.0:  # silence says nothing about the speaker
                speaker.add_logits(logits)
        label = None if speech == 0.0 else self.labels[int(np.argmax(p))]
        return Prediction(label, _probabilities(self.labels, p), len(x) / cfg.sample_rate,
                          len(frames) / cfg.frame_rate if speech is None else speech)

    def accept_waveforms(
        self,
        streams: list[EmotionStream],
        chunks: list[np.ndarray],
        sample_rate: int | None = None,
    ) -> list[list[Event]]:
        """Feed one chunk to each of several streams and run their model work in one batch.

        The events are those each stream's own ``accept_waveform`` would give (within
        float rounding: padded batches use the model's length masks); the CNN and the
        BiGRU run over up to ``MAX_BATCH`` streams per call, which lets one core serve
        about 1.7 times as many real-time streams as stream-by-stream calls do
        (bench/RESULTS.md). For servers that hold many streams of this model.

        Args:
            streams: distinct streams created by this Recognizer.
            chunks: one chunk per stream (as for ``accept_waveform``).
            sample_rate: the chunks' rate in Hz (default: the model's).
        Returns:
            The events of each stream, in the order of ``streams``.
        Raises:
            ValueError: mismatched lists or foreign streams (nothing was fed).
            BatchInputError: some chunks were bad; those streams are unchanged and the
                exception carries every stream's events.
        """
        return _accept_many(self, list(streams), list(chunks), sample_rate)

    def create_stream(
        self,
        window_s: float = 3.0,
        hop_s: float = 0.48,
        vad: VadConfig | None = DEFAULT_VAD,
        smoothing_s: float = 0.0,
        max_utterance_s: float = 30.0,
        on_event: Callable[[Event], None] | None = None,
        cache_cnn: bool = True,
        adapt: bool = True,
    ) -> EmotionStream:
        """A new stream over this model (cheap; one per audio source).

        Args:
            window_s: longest window the BiGRU reads per hop (seconds); rounded down to the
                CNN's 0.16 s grid (3.0 s -> 2.89 s of frames, 16 CNN steps).
            hop_s: time between partial results (seconds), rounded to a multiple of 0.16 s.
            vad: voice-activity settings; None treats all input as one speech segment.
            smoothing_s: time constant of exponential smoothing of partial posteriors
                (0: none).
            max_utterance_s: the utterance result at speech end reads at most this much.
            on_event: called with every event, in order, besides being returned.
            cache_cnn: reuse CNN outputs across hops (False: recompute the whole window each
                hop; the same results, slower; for checks and benchmarks).
            adapt: with a model trained for it, normalise each utterance by the speech the
                stream has heard before it (online speaker adaptation: one stream, one
                speaker); the history is ``stream.speaker``. False, or another model: none.
        """
        return EmotionStream(self, window_s=window_s, hop_s=hop_s, vad=vad,
                             smoothing_s=smoothing_s, max_utterance_s=max_utterance_s,
                             on_event=on_event, cache_cnn=cache_cnn, adapt=adapt)


class BatchInputError(ValueError):
    """Some chunks of :meth:`Recognizer.accept_waveforms` were bad.

    Attributes:
        indices: the positions of the streams whose chunk was refused (those streams are
            unchanged).
        events: every stream's events from the call, as the method would have returned
            them (the good streams went on).
    """

    def __init__(self, indices: list[int], messages: list[str], events: list[list[Event]]):
        detail = "; ".join(f"stream {i}: {m}" for i, m in zip(indices, messages))
        super().__init__(f"bad input for {len(indices)} stream(s): {detail}")
        self.indices = indices
        self.events = events


def _accept_many(
    recognizer: Recognizer,
    streams: list[EmotionStream],
    chunks: list[np.ndarray],
    sample_rate: int | None,
) -> list[list[Event]]:
    if len(streams) != len(chunks):
        raise ValueError(f"{len(streams)} streams but {len(chunks)} chunks")
    if len({id(s) for s in streams}) != len(streams):
        raise ValueError("a stream appears twice; give each stream one chunk per call")
    entered: list[EmotionStream] = []
    try:
        for s in streams:
            if s.recognizer is not recognizer:
                raise ValueError("every stream must come from this Recognizer")
            s._enter()
            entered.append(s)
        errors: list[BaseException | None] = []
        for s, chunk in zip(streams, chunks):
            try:
                s._feed(chunk, sample_rate, eager=False)
                errors.append(None)
            except ValueError as exc:  # that stream is unchanged; the others go on
                errors.append(exc)
        if streams:
            _run_model(streams)
        out = [s._take_events() for s in streams]
    finally:
        for s in entered:
            s._busy.release()
    bad = [i for i, e in enumerate(errors) if e is not None]
    if bad:
        raise BatchInputError(bad, [str(errors[i]) for i in bad], out) from errors[bad[0]]
    return out


def _resample_whole(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x
    import soxr

    return np.ascontiguousarray(soxr.resample(x, rate, target, quality="HQ"), dtype=np.float32)


# ---------------------------------------------------------------------------- stream


@dataclass
class _Segment:
    """The open speech segment: frames from ``start`` (on the CNN grid)."""

    start: int
    next_partial: int  # frame count at which the next partial window ends


@dataclass
class _Job:
    """An event waiting for the model: logits of frames ``[begin, stop)``.

    ``full``: score by one padded pass over the frames (segments shorter than the CNN's
    receptive field, or a stream without the CNN cache); otherwise from cached CNN steps
    ``[begin // STRIDE, (stop - FIELD) // STRIDE + 1)``.
    """

    kind: type
    begin: int
    stop: int
    full: bool
    logits: np.ndarray | None = field(default=None)  # (n_classes,) float64, as the model gave

    @property
    def steps(self) -> tuple[int, int]:
        return self.begin // STRIDE, (self.stop - FIELD) // STRIDE + 1


def _pad(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack (T_i, D) arrays into (B, max T, D), zero-padded, and their lengths (B,) int64."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    if len(arrays) == 1:
        return arrays[0][None], lengths
    out = np.zeros((len(arrays), int(lengths.max()), arrays[0].shape[1]), dtype=np.float32)
    for row, a in zip(out, arrays):
        row[: len(a)] = a
    return out, lengths


#: Streams per model call in a batch: larger batches stop paying for themselves once their
#: activations leave the caches (256 streams in one call ran slower than 64).
MAX_BATCH = 32


def _run_model(streams: list[EmotionStream]) -> None:
    """Score every pending job of ``streams`` (one model), batched across the streams.

    CNN calls over the new frames of up to ``MAX_BATCH`` streams at a time, then BiGRU + FC
    calls over up to ``MAX_BATCH`` windows at a time; padded rows are exact through the
    model's length masks.
    """
    backend = streams[0].recognizer.backend
    spans = [(s, span) for s in streams if (span := s._cnn_span()) is not None]
    if spans and backend.streaming_cnn is not None:
        _run_streaming_cnn(backend.streaming_cnn, spans)
    else:
        for part in _batches(spans):
            frames = [s._model_window(a * STRIDE, (b - 1) * STRIDE + FIELD)
                      for s, (a, b) in part]
            h, _ = backend.cnn(*_pad(frames))
            for (s, (a, b)), rows in zip(part, h):
                s._cnn.append(rows[: b - a])
    jobs = [(s, j) for s in streams for j in s._pending
            if isinstance(j, _Job) and j.logits is None and not j.full]
    for part in _batches(jobs):
        logits, _ = backend.head(*_pad([s._cnn.window(*j.steps) for s, j in part]))
        for (_, j), row in zip(part, logits):
            j.logits = row.astype(np.float64)
    for s in streams:
        for j in s._pending:
            if isinstance(j, _Job) and j.logits is None:
                j.logits = s.recognizer._logits(s._model_window(j.begin, j.stop))


def _batches(items: list) -> list[list]:
    return [items[i : i + MAX_BATCH] for i in range(0, len(items), MAX_BATCH)]


def _run_streaming_cnn(cnn: Any, spans: list[tuple[EmotionStream, tuple[int, int]]]) -> None:
    """New CNN steps through the layer-by-layer streaming CNN: each stream feeds the frames
    it has not fed yet; streams whose states have the same shapes run as one batch."""
    import torch

    groups: dict[tuple, list[tuple[EmotionStream, int, int, np.ndarray]]] = {}
    for s, (a, b) in spans:
        frames = s._model_window(s._fed, (b - 1) * STRIDE + FIELD)
        key = (len(frames), *(None if t is None else tuple(t.shape) for t in s._cnn_state))
        groups.setdefault(key, []).append((s, a, b, frames))
    for members in (part for group in groups.values() for part in _batches(group)):
        if len(members) == 1:  # no stacking or splitting
            s, a, b, frames = members[0]
            h, s._cnn_state = cnn.step(torch.from_numpy(frames[None]), s._cnn_state)
            s._cnn.append(h[0, : b - a].numpy())
            s._fed += len(frames)
            continue
        x = torch.from_numpy(np.stack([f for *_, f in members]))
        state = [None if t is None else torch.cat([m[0]._cnn_state[i] for m in members])
                 for i, t in enumerate(members[0][0]._cnn_state)]
        h, state = cnn.step(x, state)
        h = h.numpy()
        for row, (s, a, b, frames) in enumerate(members):
            s._cnn.append(h[row, : b - a])
            s._fed += len(frames)
            s._cnn_state = [None if t is None else t[row : row + 1] for t in state]


class EmotionStream:
    """Per-stream state: resampler, features, VAD, frame and CNN caches. One thread at a time.

    Create with :meth:`Recognizer.create_stream`. Feed audio with :meth:`accept_waveform`
    (returns the events it causes, also passed to ``on_event``); call :meth:`flush` at the
    end of the input and :meth:`reset` to start over. Servers with many streams feed them
    together through :meth:`Recognizer.accept_waveforms`, which batches the model work.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        window_s: float,
        hop_s: float,
        vad: VadConfig | None,
        smoothing_s: float,
        max_utterance_s: float,
        on_event: Callable[[Event], None] | None,
        cache_cnn: bool,
        adapt: bool = True,
    ) -> None:
        cfg = recognizer.feature_config
        for name, value in (("window_s", window_s), ("hop_s", hop_s),
                            ("max_utterance_s", max_utterance_s)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(smoothing_s, (int, float)) or not 0 <= smoothing_s < math.inf:
            raise ValueError(f"smoothing_s must be >= 0 seconds, got {smoothing_s!r}")
        if on_event is not None and not callable(on_event):
            raise ValueError("on_event must be callable")
        self.recognizer = recognizer
        self.config = cfg
        grid_s = STRIDE / cfg.frame_rate
        self.window_steps = _steps(int(window_s * cfg.frame_rate))
        if self.window_steps < 1:
            raise ValueError(
                f"window_s={window_s} is shorter than the CNN's receptive field "
                f"({FIELD / cfg.frame_rate:.2f} s)"
            )
        self.hop_steps = max(1, round(hop_s / grid_s))
        self.max_utterance_steps = max(self.window_steps,
                                       _steps(int(max_utterance_s * cfg.frame_rate)))
        #: The effective hop and window, in seconds, after rounding to the CNN grid.
        self.hop_s = self.hop_steps * grid_s
        self.window_s = ((self.window_steps - 1) * STRIDE + FIELD) / cfg.frame_rate
        self.smoothing_s = float(smoothing_s)
        self.cache_cnn = bool(cache_cnn)
        self._on_event = on_event
        self._vad = VoiceActivityDetector(vad, cfg.frame_rate) if vad is not None else None
        #: Frames the model reads around a segment (SPEECH_MARGIN_S; after it, at most the
        #: end hangover, which the stream holds when the segment closes).
        self._margin = round(SPEECH_MARGIN_S * cfg.frame_rate) if vad is not None else 0
        hangover = self._vad.latency_frames if self._vad else 0
        self._frames = FrameRing(
            capacity=(self.window_steps + self.hop_steps + 3) * STRIDE + FIELD + hangover,
            width=cfg.n_bins,
        )
        self._cnn = FrameRing(capacity=self.max_utterance_steps,
                              width=recognizer.backend.rnn_input_size)
        self._cnn_state: list = []  # the streaming CNN's per-layer rows, when the backend has one
        self._restart_cnn(0)
        self._features = StreamingFeatures(FeatureConfig.from_dict(
            {**cfg.to_dict(), "center": False}))
        self._busy = threading.Lock()  # misuse from two threads raises, never corrupts
        self._input_rate: int | None = None
        self._resampler: Any = None
        self._segment: _Segment | None = None
        self._pending: list[Event | _Job] = []  # events in order, some awaiting the model
        self._smoothed: np.ndarray | None = None
        self._eager = True
        #: The speaker history this stream adapts to (None: no adaptation).
        self.speaker: SpeakerState | None = (
            recognizer.adaptation.new_speaker() if adapt and recognizer.adaptation else None
        )
        self._adapting = False  # whether the model's frames go through the speaker's adjustment
        self._heard = np.zeros(cfg.n_bins)  # the open segment's per-bin frame sum, sum of
        # squares (only a scaling adaptation needs them), count, and whether a closed one
        # waits to be added
        scales = self.speaker is not None and self.speaker.adaptation.population_std is not None
        self._heard_sq: np.ndarray | None = np.zeros(cfg.n_bins) if scales else None
        self._heard_n = 0
        self._unheard = False

    # ------------------------------------------------------------------ public

    def accept_waveform(self, chunk: np.ndarray, sample_rate: int | None = None) -> list[Event]:
        """Feed the next samples; returns the events they complete (possibly none).

        Args:
            chunk: (n,) or (n, channels) samples, float in [-1, 1] or int16; any n, 0 too.
            sample_rate: the chunk's rate in Hz (default: the model's). A stream keeps one
                input rate until :meth:`reset`.
        Raises:
            ValueError: bad samples or rate; the stream is unchanged and still usable.
            RuntimeError: another thread is inside this stream.
        """
        self._enter()
        try:
            self._feed(chunk, sample_rate, eager=True)
            return self._take_events()
        finally:
            self._busy.release()

    def flush(self) -> list[Event]:
        """End of input: drain the resampler, close an open segment (utterance + speech end)."""
        self._enter()
        try:
            self._eager = True
            self._advance(self._resample(np.zeros(0, np.float32), None, last=True))
            if self._segment is not None:
                self._close(self._frames.end)
            if self.speaker is not None:
                self._commit_heard()
            return self._take_events()
        finally:
            self._busy.release()

    def reset(self) -> None:
        """Forget all audio and state: the next sample is time 0 of a new stream."""
        self._enter()
        try:
            self._features.reset()
            self._frames.reset()
            self._restart_cnn(0)
            if self._vad is not None:
                self._vad.reset()
            self._segment = None
            self._pending = []
            self._smoothed = None
            self._input_rate = None
            self._resampler = None
            if self.speaker is not None:
                self.speaker.reset()
            self._adapting, self._heard_n, self._unheard = False, 0, False
        finally:
            self._busy.release()

    @property
    def time(self) -> float:
        """Seconds of (model-rate) audio accepted so far."""
        return self._features.num_samples / self.config.sample_rate

    @property
    def in_speech(self) -> bool:
        """Whether a speech segment is open."""
        return self._segment is not None

    # ------------------------------------------------------------------ input

    def _enter(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                "EmotionStream is in use by another thread; a stream belongs to one thread "
                "at a time (create one stream per thread)"
            )

    def _feed(self, chunk: np.ndarray, sample_rate: int | None, eager: bool) -> None:
        """The chunk's frames, VAD and event schedule. ``eager``: score each window as it
        is scheduled; otherwise leave the model work pending for a batch (it still runs
        before any frame it needs would leave the ring)."""
        samples = to_mono_float32(chunk)
        self._eager = eager
        self._advance(self._resample(samples, sample_rate, last=False))

    def _resample(self, x: np.ndarray, sample_rate: int | None, last: bool) -> np.ndarray:
        target = self.config.sample_rate
        rate = self._input_rate or target
        if sample_rate is not None:
            rate = check_sample_rate(sample_rate)
            if self._input_rate is not None and rate != self._input_rate:
                raise ValueError(
                    f"sample_rate {rate} Hz differs from this stream's {self._input_rate} Hz; "
                    "call reset() before changing rates"
                )
            self._input_rate = rate
        if rate == target:
            return x
        if self._resampler is None:
            import soxr

            self._resampler = soxr.ResampleStream(rate, target, 1, dtype="float32",
                                                  quality="HQ")
        return np.ascontiguousarray(self._resampler.resample_chunk(x, last=last))

    # ------------------------------------------------------------------ schedule

    def _advance(self, samples: np.ndarray) -> None:
        frames = self._features.accept_waveform(samples)
        # Block by block, so that a long chunk never pushes out of the ring the frames that
        # pending work still needs.
        for i in range(0, len(frames), STRIDE):
            block = frames[i : i + STRIDE]
            if self._oldest_needed() < self._frames.end + len(block) - self._frames.capacity:
                _run_model([self])
            self._advance_block(block)

    def _advance_block(self, frames: np.ndarray) -> None:
        first = self._frames.end
        self._frames.append(frames)
        if self.speaker is not None and self._segment is not None:
            self._hear(frames, 1)
        end = self._frames.end
        if self._vad is not None:
            # (frame count at which it is known, kind, frame)
            queue = [(known + 1, kind, t) for kind, t, known in self._vad.accept(frames)]
        elif self._segment is None:
            queue = [(first + 1, "start", first)]
        else:
            queue = []
        while True:
            due = self._segment.next_partial if self._segment is not None else math.inf
            if queue and queue[0][0] <= due:
                known, kind, t = queue.pop(0)
                self._open(t) if kind == "start" else self._close(t, known)
            elif due <= end:
                self._partial(due)
                self._segment.next_partial += self.hop_steps * STRIDE
            else:
                return

    def _open(self, onset: int) -> None:
        # The model reads from SPEECH_MARGIN_S before the onset, on the grid, never before
        # the ring's oldest frame; the event gives the onset itself (on the grid).
        oldest = -(-self._frames.start // STRIDE) * STRIDE
        start = max(max(0, onset - self._margin) // STRIDE * STRIDE, oldest)
        said = max(max(0, onset - STRIDE // 2) // STRIDE * STRIDE, oldest)
        if self.speaker is not None:
            self._adapt(max(onset, self._frames.start))
        self._segment = _Segment(start, next_partial=start + FIELD + (self.hop_steps - 1) * STRIDE)
        self._pending.append(SpeechStart(self._time(said)))

    def _close(self, end: int, known: int | None = None) -> None:
        """End the segment at frame ``end``; ``known``: the frame count at which the end was
        detected (the model reads on to there at most, whatever the chunking)."""
        segment, self._segment = self._segment, None
        if segment is None:  # the VAD alternates start and end; nothing to close
            return
        end = min(max(end, segment.start + 1), self._frames.end)
        if self.speaker is not None:  # the frames after the segment's end were heard too
            self._hear(self._frames.window(max(end, self._frames.start), self._frames.end), -1)
            self._unheard = True
        speech_end = end
        end = min(end + self._margin, self._frames.end if known is None else known)
        available = _steps(end - segment.start)
        n = min(available, self.max_utterance_steps if self.cache_cnn else self.window_steps)
        if n >= 1:
            stop = segment.start + FIELD + (available - 1) * STRIDE
            job = _Job(Utterance, stop - FIELD - (n - 1) * STRIDE, stop, not self.cache_cnn)
        else:  # shorter than the receptive field: one padded pass over what there is
            job = _Job(Utterance, segment.start, end, True)
        self._pending += [job, SpeechEnd(self._end_time(min(job.stop, speech_end)))]
        if self._eager:
            _run_model([self])

    def _partial(self, stop: int) -> None:
        n = min(_steps(stop - self._segment.start), self.window_steps)
        begin = stop - FIELD - (n - 1) * STRIDE
        self._pending.append(_Job(Partial, begin, stop, not self.cache_cnn))
        if self._eager:
            # One window at a time, so that the CNN sees the same spans whatever the
            # chunking, and events are bit-identical for any chunk size.
            _run_model([self])

    # ------------------------------------------------------------------ adaptation

    def _hear(self, frames: np.ndarray, sign: int) -> None:
        self._heard += sign * frames.sum(axis=0, dtype=np.float64)
        if self._heard_sq is not None:
            self._heard_sq += sign * np.square(frames, dtype=np.float64).sum(axis=0)
        self._heard_n += sign * len(frames)

    def _adapt(self, onset: int) -> None:
        """At a segment's start: the last segment joins the speaker history; count this one's
        speech from its VAD onset (not from the earlier grid start the model reads)."""
        self._commit_heard()
        speech = self._frames.window(onset, self._frames.end)
        self._heard = speech.sum(axis=0, dtype=np.float64)
        if self._heard_sq is not None:
            self._heard_sq = np.square(speech, dtype=np.float64).sum(axis=0)
        self._heard_n = self._frames.end - onset

    def _commit_heard(self) -> None:
        """Add the closed segment to the speaker history once all its model work is done (so
        it never adapts itself); later CNN steps are computed with the new shift."""
        if not self._unheard:
            return
        if any(isinstance(j, _Job) and j.logits is None for j in self._pending):
            _run_model([self])
        self.speaker.add_sums(self._heard, self._heard_n, self._heard_sq)
        self._adapting = self.speaker.speech_frames > 0
        self._restart_cnn(self._cnn.end)  # cached steps were computed with the old adjustment
        self._unheard = False

    def _model_window(self, begin: int, stop: int) -> np.ndarray:
        """Frames ``[begin, stop)`` as the model reads them (adjusted for the speaker)."""
        frames = self._frames.window(begin, stop)
        return self.speaker.apply(frames) if self._adapting else frames

    # ------------------------------------------------------------------ model work

    def _oldest_needed(self) -> float:
        """The oldest frame that pending jobs still read (inf when none)."""
        oldest = math.inf
        for j in self._pending:
            if isinstance(j, _Job) and j.logits is None:
                if j.full:
                    oldest = min(oldest, j.begin)
                else:
                    first = j.steps[0]
                    has = self._cnn.start <= first <= self._cnn.end
                    oldest = min(oldest, (self._cnn.end if has else first) * STRIDE)
        return oldest

    def _restart_cnn(self, step: int) -> None:
        """Forget cached CNN steps; the next one computed is ``step``."""
        self._cnn.reset(step)
        self._fed = step * STRIDE  # next frame the streaming CNN reads
        if self.recognizer.backend.streaming_cnn is not None:
            self._cnn_state = self.recognizer.backend.streaming_cnn.empty_state()

    def _cnn_span(self) -> tuple[int, int] | None:
        """CNN steps ``[a, b)`` that pending jobs need and the cache lacks (None: none)."""
        steps = [j.steps for j in self._pending
                 if isinstance(j, _Job) and j.logits is None and not j.full]
        if not steps:
            return None
        first, last = min(a for a, _ in steps), max(b for _, b in steps)
        if not self._cnn.start <= first <= self._cnn.end:
            self._restart_cnn(first)
        return (self._cnn.end, last) if self._cnn.end < last else None

    def _take_events(self) -> list[Event]:
        """Turn the scored pending jobs into events, in order; smoothing; callbacks."""
        labels = self.recognizer.labels
        events: list[Event] = []
        for item in self._pending:
            if isinstance(item, _Job):
                p = self._posteriors(item)
                if item.kind is Partial and self.smoothing_s > 0:
                    if self._smoothed is not None:
                        a = math.exp(-self.hop_s / self.smoothing_s)
                        p = a * self._smoothed + (1 - a) * p
                    self._smoothed = p
                item = item.kind(self._time(item.begin), self._end_time(item.stop),
                                 labels[int(np.argmax(p))], _probabilities(labels, p))
            elif isinstance(item, SpeechStart):
                self._smoothed = None
            events.append(item)
        self._pending = []
        if self._on_event is not None:
            for event in events:
                self._on_event(event)
        return events

    def _posteriors(self, job: _Job) -> np.ndarray:
        """A scored job's posteriors, normalised by the speaker's outputs so far; an
        utterance's result then joins those outputs (its partials never do)."""
        if self.speaker is None:
            return _softmax(job.logits)
        p = _softmax(self.speaker.score(job.logits))
        if job.kind is Utterance:
            self.speaker.add_logits(job.logits)
        return p

    def _time(self, frame: int) -> float:
        return frame * self.config.hop_length / self.config.sample_rate

    def _end_time(self, frame_end: int) -> float:
        """Time of the last sample of frames ``[., frame_end)``."""
        cfg = self.config
        return ((frame_end - 1) * cfg.hop_length + cfg.n_fft) / cfg.sample_rate
