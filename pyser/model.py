"""The CRNN of Dai et al. (ICASSP 2019) and self-describing model files.

The network follows the authors' ``MelModel11`` (``cr_model_v2/cr_model_impl_mel.py`` in
DaiDongyang/ser_nn_spectrogram)::

    (B, T, F) log-spectrogram
      -> per-bin normalisation  (x - norm_mean) / norm_std       buffers, stored in the model file
      -> conv 7x7 /2, 48 -> conv 3x3, 64 -> max-pool 2x2
      -> conv 3x3, 80 -> max-pool 2x2 -> conv 3x3, 96 -> max-pool 2x2    valid padding, ReLU
      -> (B, T', F' * 96)       480 for 128 Mel bins, 2,880 for 513 STFT bins
      -> BiGRU(128): forward output at the last valid step ++ backward output at step 0  (256)
      -> FC1(64) + PReLU = z    the center-loss embedding
      -> FC2(n_classes)         logits

Variable lengths are exact: after the normalisation and after every conv/pool the steps
beyond each utterance's valid length are zeroed, the valid length is carried through every
layer with the valid conv/pool length formula, and the GRU only ever reads valid steps, so a
padded batch gives the same outputs as each utterance alone. Inputs shorter than
``min_frames`` (the smallest length that leaves one step after the CNN, 49) are zero-padded
to it (zeros *after* normalisation, i.e. frames at the training mean).

Model files are TorchScript archives written by :func:`save_model`; the JSON metadata
(labels, feature configuration, provenance) travels inside the same file as
``pyser_metadata.json``, next to the weights and the normalisation buffers.
"""

import copy
import datetime as _dt
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyser._io import atomic_write

__all__ = [
    "CNN_LAYERS",
    "CRNN",
    "EMBEDDING_DIM",
    "GRU_HIDDEN",
    "METADATA_FILE",
    "ModelFileError",
    "ModelMetadata",
    "StreamingCNN",
    "cnn_output_length",
    "load_model",
    "min_input_frames",
    "prepare_metadata",
    "rnn_input_size",
    "save_model",
    "script_model",
]

#: The CNN's layers as (kind, kernel, stride, out_channels), applied to time and frequency alike
#: (square kernels and strides, valid padding). Pools have no channel count (None).
CNN_LAYERS: tuple[tuple[str, int, int, int | None], ...] = (
    ("conv", 7, 2, 48),
    ("conv", 3, 1, 64),
    ("pool", 2, 2, None),
    ("conv", 3, 1, 80),
    ("pool", 2, 2, None),
    ("conv", 3, 1, 96),
    ("pool", 2, 2, None),
)
GRU_HIDDEN = 128
EMBEDDING_DIM = 64
METADATA_FILE = "pyser_metadata.json"
_FORMAT = "pyser-model"
_FORMAT_VERSION = 1


def cnn_output_length(n: int) -> int:
    """Steps left along one axis (time or frequency) after the CNN; <= 0 means none."""
    for _, kernel, stride, _ in CNN_LAYERS:
        if n < kernel:
            return 0
        n = (n - kernel) // stride + 1
    return n


def min_input_frames() -> int:
    """The smallest input length (frames or bins) that leaves at least one step after the CNN."""
    n = 1
    while cnn_output_length(n) < 1:
        n += 1
    return n


_CNN_CHANNELS = [c for kind, _, _, c in CNN_LAYERS if kind == "conv"]


def rnn_input_size(n_bins: int) -> int:
    """Width of a CNN output step (the BiGRU's input) for ``n_bins`` frequency bins."""
    return cnn_output_length(n_bins) * _CNN_CHANNELS[-1]


def _valid_length(lengths: Tensor, kernel: int, stride: int) -> Tensor:
    """Valid output length of a valid-padding conv/pool: floor((L - k) / s) + 1."""
    return torch.div(lengths - kernel, stride, rounding_mode="floor") + 1


def _mask_time(h: Tensor, lengths: Tensor, padded: bool = True) -> Tensor:
    """Zero the steps of ``h`` (B, C, T, F) at or beyond each row's valid length.

    ``padded`` False (no row of the batch is padded) returns ``h`` as it is.
    """
    if not padded:
        return h
    steps = torch.arange(h.size(2), device=h.device)
    keep = steps.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    return h * keep.to(h.dtype)[:, None, :, None]


def _reverse_within_length(h: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row of ``h`` (B, T, D) within its valid length; padding stays at the end."""
    steps = torch.arange(h.size(1), device=h.device).unsqueeze(0)  # (1, T)
    last = (lengths - 1).unsqueeze(1)  # (B, 1)
    index = torch.where(steps <= last, last - steps, steps)  # (B, T)
    return h.gather(1, index.unsqueeze(2).expand(-1, -1, h.size(2)))


def _max_pool_2x2(h: Tensor) -> Tensor:
    """``nn.MaxPool2d(2, 2)`` of ``h`` (B, C, T, F) as two element-wise maxima of strided views.

    The same values (floor mode: an odd last row or column is dropped) about ten times
    faster than ATen's CPU max-pool, which also computes argmax indices and took a quarter
    of the CNN's time at streaming sizes. When gradients are needed ATen's pool is used:
    its backward is faster than that of the two maxima (bench/bench_train_step.py).
    """
    if h.requires_grad:  # training: ATen's pool has the faster backward (through its indices)
        return F.max_pool2d(h, 2, 2)
    t, f = h.size(2) // 2 * 2, h.size(3) // 2 * 2
    h = torch.maximum(h[:, :, 0:t:2], h[:, :, 1:t:2])
    return torch.maximum(h[:, :, :, 0:f:2], h[:, :, :, 1:f:2])


def _take_step(h: Tensor, index: Tensor) -> Tensor:
    """Row b of the result is ``h[b, index[b]]`` for ``h`` (B, T, D) and ``index`` (B,)."""
    return h.gather(1, index.view(-1, 1, 1).expand(-1, 1, h.size(2))).squeeze(1)


class CRNN(nn.Module):
    """The paper's CRNN: 4 conv layers, a bidirectional GRU, FC1 + PReLU (z), FC2 (logits).

    Args:
        n_bins: frequency bins per input frame (128 Mel, 513 STFT); at least
            ``min_input_frames()`` (49) so that the CNN leaves one frequency step.
        n_classes: number of emotion classes (>= 2).

    Differences from the authors' TensorFlow code, on purpose:

    * The TF code passes one ``GRUCell`` object as both the forward and the backward cell of
      ``tf.nn.bidirectional_dynamic_rnn``, which (TF1 cells build their variables once) very
      probably makes both directions share weights. Here the two directions have separate
      weights, as in ``nn.GRU(bidirectional=True)``; they are two unidirectional GRUs
      (``gru_fw``, ``gru_bw``) so that each can run on a padded batch and stay exact (the
      backward one reads each utterance reversed within its own length).
    * PyTorch's GRU applies the reset gate after the recurrent matmul (cuDNN/ONNX
      ``linear_before_reset``), TF1's ``GRUCell`` before it.
    * Parameters start from TF1's defaults (Glorot-uniform kernels, zero biases, GRU gate
      biases 1, PReLU slopes 0, one per unit as in ``tf.keras.layers.PReLU``), not PyTorch's.

    ``forward``, ``embed``, ``forward_with_embedding`` and the two halves ``cnn`` /
    ``head`` (for streaming, which caches CNN outputs) are all TorchScript-exportable.
    """

    n_bins: int
    n_classes: int
    min_frames: int
    embedding_dim: int
    rnn_input_size: int

    def __init__(self, n_bins: int = 128, n_classes: int = 4) -> None:
        super().__init__()
        for name, value in (("n_bins", n_bins), ("n_classes", n_classes)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"CRNN: {name} must be an int, got {value!r}")  # noqa: TRY004
        min_frames = min_input_frames()
        if n_bins < min_frames:
            raise ValueError(
                f"CRNN: n_bins={n_bins} is too small for the CNN; it needs at least "
                f"{min_frames} frequency bins to leave one step after the conv/pool stack"
            )
        if n_classes < 2:
            raise ValueError(f"CRNN: n_classes must be >= 2, got {n_classes}")

        self.n_bins = n_bins
        self.n_classes = n_classes
        self.min_frames = min_frames
        self.embedding_dim = EMBEDDING_DIM
        self.rnn_input_size = rnn_input_size(n_bins)

        c1, c2, c3, c4 = _CNN_CHANNELS
        self.conv1 = nn.Conv2d(1, c1, kernel_size=7, stride=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=3)
        self.conv4 = nn.Conv2d(c3, c4, kernel_size=3)
        self.gru_fw = nn.GRU(self.rnn_input_size, GRU_HIDDEN, batch_first=True)
        self.gru_bw = nn.GRU(self.rnn_input_size, GRU_HIDDEN, batch_first=True)
        self.fc1 = nn.Linear(2 * GRU_HIDDEN, EMBEDDING_DIM)
        self.prelu = nn.PReLU(EMBEDDING_DIM, init=0.0)
        self.fc2 = nn.Linear(EMBEDDING_DIM, n_classes)
        self.register_buffer("norm_mean", torch.zeros(n_bins))
        self.register_buffer("norm_std", torch.ones(n_bins))
        self.reset_parameters()

    # ------------------------------------------------------------------ setup

    @torch.jit.ignore
    def reset_parameters(self) -> None:
        """TF1 default initialisation (see the class docstring); normalisation is kept."""
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        for gru in (self.gru_fw, self.gru_bw):
            hidden, inputs = gru.hidden_size, gru.input_size
            # TF's GRUCell has one kernel (inputs + hidden, 2 * hidden) for the gates and one
            # (inputs + hidden, hidden) for the candidate, each Glorot-uniform as a whole.
            bounds = (
                math.sqrt(6.0 / (inputs + hidden + 2 * hidden)),  # reset, update gates
                math.sqrt(6.0 / (inputs + hidden + hidden)),  # candidate
            )
            with torch.no_grad():
                for weight in (gru.weight_ih_l0, gru.weight_hh_l0):
                    weight[: 2 * hidden].uniform_(-bounds[0], bounds[0])
                    weight[2 * hidden :].uniform_(-bounds[1], bounds[1])
                gru.bias_ih_l0.zero_()
                gru.bias_ih_l0[: 2 * hidden].fill_(1.0)
                gru.bias_hh_l0.zero_()
        nn.init.zeros_(self.prelu.weight)

    @torch.jit.ignore
    def set_normalization(self, mean: Any, std: Any) -> None:
        """Set the per-bin normalisation ``(x - mean) / std``; both of shape (n_bins,)."""
        mean_t = torch.as_tensor(mean, dtype=self.norm_mean.dtype).detach().reshape(-1)
        std_t = torch.as_tensor(std, dtype=self.norm_std.dtype).detach().reshape(-1)
        for name, value in (("mean", mean_t), ("std", std_t)):
            if value.numel() != self.n_bins:
                raise ValueError(
                    f"set_normalization: {name} has {value.numel()} values, "
                    f"the model has n_bins={self.n_bins}"
                )
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"set_normalization: {name} has non-finite values")
        if not bool((std_t > 0).all()):
            raise ValueError("set_normalization: std must be > 0 everywhere")
        with torch.no_grad():
            self.norm_mean.copy_(mean_t.to(self.norm_mean.device))
            self.norm_std.copy_(std_t.to(self.norm_std.device))

    # ------------------------------------------------------------------ model

    def _check_input(self, x: Tensor, lengths: Tensor) -> None:
        if x.dim() != 3:
            raise ValueError(
                f"CRNN: x must have shape (batch, time, n_bins); got a {x.dim()}-D tensor"
            )
        if lengths.dim() != 1:
            raise ValueError(
                f"CRNN: lengths must have shape (batch,); got a {lengths.dim()}-D tensor"
            )
        if torch.jit.is_tracing():
            return  # shapes are symbolic while tracing for ONNX; the checks below are eager-only
        if x.size(2) != self.n_bins:
            raise ValueError(
                f"CRNN: x has {x.size(2)} bins per frame, the model expects n_bins={self.n_bins}"
            )
        if x.size(0) == 0 or x.size(1) == 0:
            raise ValueError(f"CRNN: empty input of shape {x.shape}")
        if lengths.size(0) != x.size(0):
            raise ValueError(
                f"CRNN: lengths has {lengths.size(0)} entries for a batch of {x.size(0)}"
            )
        if bool((lengths < 1).any()) or bool((lengths > x.size(1)).any()):
            raise ValueError(
                f"CRNN: lengths must be in [1, {x.size(1)}] (the padded time axis); "
                f"got min {int(lengths.min())} max {int(lengths.max())}"
            )

    @torch.jit.unused
    def _pad_traced(self, x: Tensor) -> Tensor:
        """Shape-dynamic twin of the ``T < min_frames`` padding, for ONNX tracing.

        Appends ``min_frames`` zero frames and keeps the first ``max(T, min_frames)`` ones, with
        the count computed as a tensor, so the exported graph is right for any T.
        """
        padded = F.pad(x, [0, 0, 0, self.min_frames])
        n_frames = torch.clamp(torch._shape_as_tensor(x)[1], min=self.min_frames)
        keep = torch.arange(n_frames, device=x.device)  # type: ignore[call-overload]
        return padded.index_select(1, keep)

    @torch.jit.export
    def cnn(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Normalise and run the CNN.

        Args:
            x: (B, T, n_bins) float32 log-spectrogram frames, zero-padded after each length.
            lengths: (B,) int64 valid frames per row, in [1, T].

        Returns:
            (h, h_lengths): h (B, T', rnn_input_size) with steps beyond h_lengths zeroed, the
            features ordered (frequency, channel) as TF's channels-last reshape; h_lengths (B,).
        """
        self._check_input(x, lengths)
        lengths = lengths.to(device=x.device, dtype=torch.long)
        x = x.to(self.norm_mean.dtype)
        x = (x - self.norm_mean) / self.norm_std
        # Without padding every row stays full through every layer: no mask work at all.
        padded = torch.jit.is_tracing() or bool((lengths < x.size(1)).any())
        h = _mask_time(x.unsqueeze(1), lengths, padded)  # (B, 1, T, F)
        if torch.jit.is_tracing():
            h = self._pad_traced(h.squeeze(1)).unsqueeze(1)
        elif h.size(2) < self.min_frames:
            h = F.pad(h, [0, 0, 0, self.min_frames - h.size(2)])
        lengths = torch.clamp(lengths, min=self.min_frames)

        # The layers of CNN_LAYERS, each followed by its valid-length update and the mask
        # (tests check that cnn_output_length and these layers agree).
        h = torch.relu(self.conv1(h))
        lengths = _valid_length(lengths, 7, 2)
        h = _mask_time(h, lengths, padded)
        h = torch.relu(self.conv2(h))
        lengths = _valid_length(lengths, 3, 1)
        h = _mask_time(h, lengths, padded)
        h = _max_pool_2x2(h)
        lengths = _valid_length(lengths, 2, 2)
        h = _mask_time(h, lengths, padded)
        h = torch.relu(self.conv3(h))
        lengths = _valid_length(lengths, 3, 1)
        h = _mask_time(h, lengths, padded)
        h = _max_pool_2x2(h)
        lengths = _valid_length(lengths, 2, 2)
        h = _mask_time(h, lengths, padded)
        h = torch.relu(self.conv4(h))
        lengths = _valid_length(lengths, 3, 1)
        h = _mask_time(h, lengths, padded)
        h = _max_pool_2x2(h)
        lengths = _valid_length(lengths, 2, 2)
        h = _mask_time(h, lengths, padded)
        # (B, C, T', F') -> (B, T', F', C) -> (B, T', F' * C)
        h = h.permute(0, 2, 3, 1).flatten(2)
        return h, lengths

    @torch.jit.export
    def head(self, h: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """BiGRU + FC layers on CNN output ``h`` (B, T', rnn_input_size) -> (logits, z).

        ``lengths`` (B,) are the valid steps of ``h`` as returned by :meth:`cnn`, in [1, T'];
        steps beyond them are never read.
        """
        last = lengths.to(device=h.device, dtype=torch.long) - 1
        if torch.jit.is_tracing() or bool((last + 1 < h.size(1)).any()):
            out_fw, _ = self.gru_fw(h)
            out_bw, _ = self.gru_bw(_reverse_within_length(h, last + 1))
            # Backward output at original step 0 = last valid step of the reversed sequence.
            rnn = torch.cat([_take_step(out_fw, last), _take_step(out_bw, last)], dim=1)
        else:  # no padding: the final hidden states are those outputs
            _, last_fw = self.gru_fw(h)
            _, last_bw = self.gru_bw(h.flip(1))
            rnn = torch.cat([last_fw[0], last_bw[0]], dim=1)
        z = self.prelu(self.fc1(rnn))
        return self.fc2(z), z

    @torch.jit.export
    def forward_with_embedding(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (B, n_classes), z (B, 64)) in one pass."""
        h, h_lengths = self.cnn(x, lengths)
        return self.head(h, h_lengths)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Logits (B, n_classes) for ``x`` (B, T, n_bins) float32 and ``lengths`` (B,) int64."""
        return self.forward_with_embedding(x, lengths)[0]

    @torch.jit.export
    def embed(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The center-loss embedding z (B, 64): FC1 + PReLU output."""
        return self.forward_with_embedding(x, lengths)[1]


# ---------------------------------------------------------------------- streaming CNN


class StreamingCNN:
    """The CRNN's CNN run over frames that arrive in pieces, each layer keeping the input
    rows its next outputs still need (the standard streaming form of valid convolutions).

    For one run of frames from the start (or a :meth:`reset`) the steps it returns are
    those of ``CRNN.cnn`` over all the frames so far, within float rounding, but each frame
    goes through every layer once: a hop of 48 new frames costs 48 frames of CNN work, not
    the 81 (its 3 steps' receptive fields) that re-running ``cnn`` on them would. The layer
    sequence is ``CNN_LAYERS`` applied to the model's conv weights (tests compare with
    ``cnn``).

    Works on an eager ``CRNN`` or a TorchScript one loaded from a model file. State is per
    stream: use one object per stream, and :meth:`state` / :meth:`step` for batches.
    """

    def __init__(self, model: Any) -> None:
        convs = iter([model.conv1, model.conv2, model.conv3, model.conv4])
        self._layers: list[tuple[Any, int, int]] = []
        for kind, kernel, stride, _ in CNN_LAYERS:
            if kind == "conv":
                self._layers.append((next(convs), kernel, stride))
            else:
                self._layers.append((None, kernel, stride))
        self._mean = model.norm_mean.detach()
        self._std = model.norm_std.detach()

    def empty_state(self) -> list[Tensor | None]:
        """The state of a run that has seen no frames."""
        return [None] * len(self._layers)

    @torch.no_grad()
    def step(self, x: Tensor, state: list[Tensor | None]) -> tuple[Tensor, list[Tensor | None]]:
        """Feed new frames ``x`` (B, n, n_bins) of B runs whose states have equal shapes.

        Returns (steps (B, m, rnn_input_size), new state): the CNN steps these frames
        complete (m may be 0), and the rows each layer keeps for later.
        """
        h = ((x - self._mean) / self._std).unsqueeze(1)  # (B, 1, n, F)
        new_state: list[Tensor | None] = []
        for i, ((conv, kernel, stride), pending) in enumerate(zip(self._layers, state)):
            if pending is not None:
                h = torch.cat([pending, h], dim=2)
            n_out = (h.size(2) - kernel) // stride + 1 if h.size(2) >= kernel else 0
            new_state.append(h[:, :, stride * n_out :])
            if n_out == 0:  # nothing reaches the next layers this time
                new_state += state[i + 1 :]
                return x.new_zeros(x.size(0), 0, 0), new_state
            h = torch.relu(conv(h)) if conv is not None else _max_pool_2x2(h)
        return h.permute(0, 2, 3, 1).flatten(2), new_state


# ---------------------------------------------------------------------- model files


class ModelFileError(ValueError):
    """A model file that is missing its pyser metadata, or whose metadata is inconsistent."""


def _json_roundtrip(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ModelMetadata: {what} must be JSON-serialisable: {exc}") from None


@dataclass
class ModelMetadata:
    """What a model file says about itself, stored as JSON next to the weights.

    Attributes:
        labels: class names, index i is logit i.
        feature_config: the ``FeatureConfig`` as a dict (``FeatureConfig.to_dict()``, or any
            subset of its fields, the others taking their defaults); validated on
            construction and on load with ``FeatureConfig.from_dict``.
        provenance: training data, split, metrics, date, pyser version, ... (JSON values).
        model: architecture facts filled in on save (arch, n_bins, n_classes, min_frames,
            embedding_dim, rnn_input_size); readers such as ONNX Runtime users need them.
        speaker_adaptation: ``pyser.adapt.SpeakerAdaptation.to_dict()`` of a model trained
            for online speaker adaptation; empty for one that was not.
    """

    labels: list[str]
    feature_config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    speaker_adaptation: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if hasattr(self.feature_config, "to_dict"):  # a FeatureConfig
            self.feature_config = self.feature_config.to_dict()
        if isinstance(self.labels, (str, bytes)) or not isinstance(self.labels, (list, tuple)):
            raise ValueError(  # noqa: TRY004 (from_dict maps ValueError to ModelFileError)
                f"ModelMetadata: labels must be a list of str, got {self.labels!r}"
            )
        self.labels = list(self.labels)
        if not self.labels or not all(isinstance(s, str) and s for s in self.labels):
            raise ValueError(f"ModelMetadata: labels must be non-empty strings, got {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"ModelMetadata: duplicate labels in {self.labels}")
        for name in ("feature_config", "provenance", "model", "speaker_adaptation"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                msg = f"ModelMetadata: {name} must be a dict, got {type(value)}"
                raise ValueError(msg)  # noqa: TRY004 (from_dict maps ValueError to ModelFileError)
            setattr(self, name, _json_roundtrip(value, name))
        self.features()  # a feature config no extractor accepts is an error here, not at use
        self.adaptation()

    def features(self) -> Any:
        """The ``pyser.FeatureConfig`` of ``feature_config`` (None when it is empty).

        Raises ValueError naming ``feature_config`` and the bad field for unknown keys, wrong
        types or invalid values (``FeatureConfig.from_dict`` validates them).
        """
        if not self.feature_config:
            return None
        from pyser.features import FeatureConfig

        try:
            return FeatureConfig.from_dict(self.feature_config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ModelMetadata: invalid feature_config: {exc}") from None

    def adaptation(self) -> Any:
        """The ``pyser.adapt.SpeakerAdaptation`` of ``speaker_adaptation`` (None when empty).

        Raises ValueError when it is malformed or its bin count is not the features'.
        """
        if not self.speaker_adaptation:
            return None
        from pyser.adapt import SpeakerAdaptation

        adaptation = SpeakerAdaptation.from_dict(self.speaker_adaptation)
        features = self.features()
        if features is not None and adaptation.n_bins != features.n_bins:
            raise ValueError(
                f"ModelMetadata: speaker_adaptation has {adaptation.n_bins} bins, the "
                f"features {features.n_bins}"
            )
        return adaptation

    def to_dict(self) -> dict:
        out = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "labels": list(self.labels),
            "feature_config": self.feature_config,
            "provenance": self.provenance,
            "model": self.model,
        }
        if self.speaker_adaptation:  # absent for other models: their files stay as they were
            out["speaker_adaptation"] = self.speaker_adaptation
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelMetadata":
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ModelFileError("not pyser model metadata (missing 'format': 'pyser-model')")
        version = data.get("format_version")
        if not isinstance(version, int) or version > _FORMAT_VERSION:
            raise ModelFileError(
                f"pyser model metadata format_version {version!r} is not supported "
                f"(this pyser reads up to {_FORMAT_VERSION}); upgrade pyser"
            )
        try:
            return cls(
                labels=data["labels"],
                feature_config=data.get("feature_config", {}),
                provenance=data.get("provenance", {}),
                model=data.get("model", {}),
                speaker_adaptation=data.get("speaker_adaptation", {}),
            )
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"invalid pyser model metadata: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelMetadata":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelFileError(f"pyser model metadata is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def check_model(self, n_bins: int, n_classes: int) -> None:
        """Raise ValueError unless the labels and the feature config fit the model's shape."""
        if len(self.labels) != n_classes:
            raise ValueError(
                f"metadata has {len(self.labels)} labels {self.labels}, "
                f"the model has n_classes={n_classes}"
            )
        features = self.features()
        expected = features.n_bins if features is not None else None
        if expected is not None and expected != n_bins:
            raise ValueError(
                f"feature_config gives {expected} bins per frame, the model has n_bins={n_bins}"
            )


def _pyser_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("pyser")
    except PackageNotFoundError:
        return "unknown"


def _model_facts(model: CRNN | torch.jit.ScriptModule) -> dict:
    try:
        return {
            "arch": "CRNN",
            "n_bins": int(model.n_bins),
            "n_classes": int(model.n_classes),
            "min_frames": int(model.min_frames),
            "embedding_dim": int(model.embedding_dim),
            "rnn_input_size": int(model.rnn_input_size),
        }
    except AttributeError:
        raise TypeError(f"expected a pyser CRNN (eager or scripted), got {type(model)}") from None


def prepare_metadata(
    model: CRNN | torch.jit.ScriptModule, metadata: ModelMetadata
) -> ModelMetadata:
    """Validated copy of ``metadata`` with ``model`` facts and provenance defaults filled in."""
    if not isinstance(metadata, ModelMetadata):
        raise TypeError(f"metadata must be a ModelMetadata, got {type(metadata)}")
    facts = _model_facts(model)
    metadata.check_model(facts["n_bins"], facts["n_classes"])
    provenance = dict(metadata.provenance)
    provenance.setdefault("pyser_version", _pyser_version())
    provenance.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return ModelMetadata(
        labels=list(metadata.labels),
        feature_config=dict(metadata.feature_config),
        provenance=provenance,
        model=facts,
        speaker_adaptation=dict(metadata.speaker_adaptation),
    )


def script_model(model: CRNN | torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """TorchScript copy of ``model`` in eval mode (a ScriptModule is returned as is, in eval)."""
    if isinstance(model, torch.jit.ScriptModule):
        return model.eval()
    if not isinstance(model, CRNN):
        raise TypeError(f"expected a pyser CRNN, got {type(model)}")
    if not all(p.is_contiguous() for p in model.parameters()):
        # trained channels-last: files carry plain layouts, which inference expects
        model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch>=2.10 deprecates jit
        scripted = torch.jit.script(model)
    return scripted.eval()


def save_model(
    path: str | os.PathLike,
    model: CRNN | torch.jit.ScriptModule,
    metadata: ModelMetadata,
) -> ModelMetadata:
    """Write ``model`` as one self-describing TorchScript file; returns the metadata written.

    The file holds the weights, the normalisation buffers and ``pyser_metadata.json``
    (labels, feature config, provenance, architecture). Raises ValueError when the labels or
    the feature config do not fit the model. The write is atomic (``pyser._io.atomic_write``).
    """
    path = Path(path)
    meta = prepare_metadata(model, metadata)
    scripted = script_model(model)

    def write(f: Any) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.jit.save(scripted, f, _extra_files={METADATA_FILE: meta.to_json()})

    atomic_write(path, write)
    return meta


def load_model(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a file written by :func:`save_model`: (TorchScript model in eval mode, metadata).

    Raises FileNotFoundError for a missing file and :class:`ModelFileError` (a ValueError)
    for a file that is not a TorchScript archive, has no pyser metadata, or whose metadata
    does not match the network (e.g. label count != n_classes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pyser model file not found: {path}")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a TorchScript model file ({first})") from None
    if not extra[METADATA_FILE]:
        raise ModelFileError(
            f"{path} is a TorchScript file but not a pyser model (no {METADATA_FILE})"
        )
    try:
        meta = ModelMetadata.from_json(extra[METADATA_FILE])
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    try:
        facts = _model_facts(module)
        meta.check_model(facts["n_bins"], facts["n_classes"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    return module.eval(), meta
