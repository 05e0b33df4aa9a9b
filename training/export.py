"""Backend of ``pyser export``: TorchScript and ONNX model files, checked against the eager model.

* :func:`export_torchscript` writes the self-describing ``.pt`` of :func:`pyser.model.save_model`.
* :func:`export_onnx` writes an ``.onnx`` with inputs ``features`` (B, T, F) float32 and
  ``lengths`` (B,) int64, outputs ``logits`` (B, C) and ``embedding`` (B, 64), dynamic batch
  and time axes, and the same JSON metadata under the ``pyser_metadata`` metadata_props key.
* :func:`verify_export` runs either file (TorchScript or ONNX Runtime) on random batches of
  mixed lengths, including lengths below ``min_frames`` and padded lengths other than the
  one the ONNX graph was traced with, and raises :class:`ExportMismatchError` when it
  disagrees with the eager model.

ONNX uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): as of
torch 2.13 the torch.export-based exporter fails to decompose ``nn.GRU`` with a symbolic
time axis, and it cannot express the model's data-dependent length checks. The model keeps
its graph shape-dynamic while traced (see ``CRNN._pad_traced``), so the traced example
length is not baked in; :func:`verify_export` checks exactly that.
"""

import copy
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pyser._io import atomic_write_bytes
from pyser.backend import (
    ONNX_CNN_OUTPUTS,
    ONNX_INPUTS,
    ONNX_METADATA_KEY,
    ONNX_OUTPUTS,
    read_onnx_metadata,
)
from pyser.model import (
    CRNN,
    ModelFileError,
    ModelMetadata,
    load_model,
    prepare_metadata,
    save_model,
)

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAMES",
    "ONNX_METADATA_KEY",
    "OUTPUT_NAMES",
    "TRACE_FRAMES",
    "ExportMismatchError",
    "export_onnx",
    "export_torchscript",
    "load_onnx_metadata",
    "verify_export",
]

DEFAULT_OPSET = 17
INPUT_NAMES = ONNX_INPUTS
#: The model's outputs, then the CNN output that streaming cuts the graph at.
OUTPUT_NAMES = ONNX_OUTPUTS + ONNX_CNN_OUTPUTS
#: Padded length of the example batch the ONNX graph is traced with.
TRACE_FRAMES = 150

PathLike = str | os.PathLike
_Runner = Callable[[Tensor, Tensor], dict[str, np.ndarray]]


class ExportMismatchError(RuntimeError):
    """An exported model disagrees with the eager one (or cannot be run at all)."""


class _OnnxWrapper(nn.Module):
    """(features, lengths) -> (logits, embedding, cnn_features, cnn_lengths), the ONNX graph."""

    def __init__(self, model: CRNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h, h_lengths = self.model.cnn(features, lengths)
        logits, z = self.model.head(h, h_lengths)
        return logits, z, h, h_lengths


def _eager_copy(model: nn.Module, what: str) -> CRNN:
    if isinstance(model, torch.jit.ScriptModule) or not isinstance(model, CRNN):
        raise TypeError(
            f"{what} needs the eager pyser.model.CRNN (not a ScriptModule or other module), "
            f"got {type(model).__name__}"
        )
    return copy.deepcopy(model).cpu().float().eval()


def export_torchscript(model: CRNN, metadata: ModelMetadata, path: PathLike) -> Path:
    """Write ``model`` as a self-describing TorchScript file (see ``pyser.model.save_model``)."""
    path = Path(path)
    save_model(path, _eager_copy(model, "export_torchscript"), metadata)
    return path


def export_onnx(
    model: CRNN, metadata: ModelMetadata, path: PathLike, opset: int = DEFAULT_OPSET
) -> Path:
    """Write ``model`` as ONNX with dynamic batch/time axes and the metadata in metadata_props.

    The graph is traced on CPU from a copy of ``model`` (the caller's module is untouched)
    and checked with ``onnx.checker.check_model`` before it is written.
    """
    import onnx

    path = Path(path)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 14:
        raise ValueError(f"export_onnx: opset must be an int >= 14, got {opset!r}")
    net = _eager_copy(model, "export_onnx")
    meta = prepare_metadata(net, metadata)

    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([TRACE_FRAMES, TRACE_FRAMES * 2 // 3], dtype=torch.long)
    features = _random_features(net, lengths, generator)

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter's deprecation notice, TracerWarnings from nn.GRU's own shape
        # checks and its batch-size note for GRUs; verify_export checks the result instead.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*GRU.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*[Cc]onstant folding.*", category=UserWarning)
        torch.onnx.export(
            _OnnxWrapper(net),
            (features, lengths),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={
                "features": {0: "batch", 1: "time"},
                "lengths": {0: "batch"},
                "logits": {0: "batch"},
                "embedding": {0: "batch"},
                "cnn_features": {0: "batch", 1: "steps"},
                "cnn_lengths": {0: "batch"},
            },
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta.to_json()
    proto.doc_string = (
        "pyser CRNN (Dai et al., ICASSP 2019): features (batch, time, n_bins) float32 "
        "log-spectrogram frames, lengths (batch,) int64 -> logits, embedding, and the CNN "
        "output cnn_features (batch, steps, rnn_input_size), cnn_lengths (batch,) at which "
        "streaming runtimes cut the graph. "
        f"Labels: {', '.join(meta.labels)}."
    )
    proto.producer_name = "pyser"
    proto.producer_version = str(meta.provenance.get("pyser_version", ""))
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def load_onnx_metadata(path: PathLike) -> ModelMetadata:
    """The :class:`ModelMetadata` stored in an ONNX file written by :func:`export_onnx`."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model file not found: {path}")
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not an ONNX model file ({exc})") from None
    try:
        return read_onnx_metadata(proto)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------- verification


def _random_features(model: CRNN, lengths: Tensor, generator: torch.Generator) -> Tensor:
    """Features at the model's own normalisation statistics, zero-padded after each length."""
    batch, frames = int(lengths.numel()), int(lengths.max())
    noise = torch.randn(batch, frames, model.n_bins, generator=generator)
    x = model.norm_mean.detach().cpu() + model.norm_std.detach().cpu() * noise
    keep = torch.arange(frames).unsqueeze(0) < lengths.unsqueeze(1)
    return (x * keep.unsqueeze(2)).float()


def _trial_lengths(trial: int, min_frames: int, rng: np.random.Generator) -> list[int]:
    """Mixed lengths for one trial; trial 0 pads to fewer than ``min_frames`` frames."""
    if trial == 0:
        top = int(rng.integers(2, min_frames))  # whole batch shorter than min_frames
    else:
        top = int(rng.integers(min_frames + 1, TRACE_FRAMES + 2 * min_frames))
        if top == TRACE_FRAMES:
            top += 1  # never the traced length
    short = int(rng.integers(1, min(top, min_frames)))
    middle = int(rng.integers(1, top + 1))
    lengths = [top, short, middle]
    if trial % 2 == 1:
        lengths.append(min(top, min_frames))  # a row right at the boundary
    return lengths


def _run_onnx(path: Path) -> _Runner:
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportMismatchError(f"{path}: onnx.checker rejects the model: {exc}") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    if names != list(OUTPUT_NAMES):
        raise ExportMismatchError(f"{path}: outputs are {names}, expected {list(OUTPUT_NAMES)}")

    def run(x: Tensor, lengths: Tensor) -> dict[str, np.ndarray]:
        out = session.run(list(ONNX_OUTPUTS), {"features": x.numpy(), "lengths": lengths.numpy()})
        return dict(zip(ONNX_OUTPUTS, out))

    return run


def _run_torchscript(path: Path) -> _Runner:
    module, _ = load_model(path)

    def run(x: Tensor, lengths: Tensor) -> dict[str, np.ndarray]:
        with torch.no_grad():
            logits, z = module.forward_with_embedding(x, lengths)
            return {
                "logits": logits.numpy(),
                "embedding": z.numpy(),
                "forward": module(x, lengths).numpy(),
                "embed": module.embed(x, lengths).numpy(),
            }

    return run


def _compare_metadata(path: Path, got: ModelMetadata, want: ModelMetadata) -> None:
    """Raise ExportMismatchError unless the export's labels and feature config are the model's."""
    if list(got.labels) != list(want.labels):
        raise ExportMismatchError(
            f"{path}: labels {got.labels} differ from the model's {want.labels} "
            "(logit i would be reported as the wrong emotion)"
        )
    got_fc, want_fc = got.features(), want.features()
    got_d = got_fc.to_dict() if got_fc is not None else None
    want_d = want_fc.to_dict() if want_fc is not None else None
    if got_d != want_d:
        if got_d is None or want_d is None:
            detail = f"{got.feature_config} vs {want.feature_config}"
        else:
            detail = ", ".join(
                f"{k}={got_d[k]!r} (model: {want_d[k]!r})" for k in sorted(want_d)
                if got_d[k] != want_d[k]
            )
        raise ExportMismatchError(f"{path}: feature_config differs from the model's: {detail}")


def verify_export(
    model: CRNN,
    path: PathLike,
    metadata: ModelMetadata,
    n_trials: int = 3,
    atol: float = 1e-4,
    seed: int = 0,
) -> float:
    """Check an exported ``.pt`` (TorchScript) or ``.onnx`` (ONNX Runtime) against ``model``.

    ``metadata`` is the model's own (the source model file's): the export must carry the same
    labels, in the same order, and the same feature config (compared as validated
    ``FeatureConfig``s, so defaults written out or left implicit agree). Each trial is a batch
    of mixed lengths, with one row shorter than ``min_frames`` and a padded length different
    from the ONNX trace length (the first trial pads to fewer than ``min_frames`` frames).
    The metadata must also fit the model (labels = n_classes, same n_bins). Raises
    :class:`ExportMismatchError` when the metadata differs or any output differs by more
    than ``atol`` or is not finite; returns the largest absolute difference seen.
    """
    path = Path(path)
    if n_trials < 1:
        raise ValueError(f"verify_export: n_trials must be >= 1, got {n_trials}")
    if not isinstance(metadata, ModelMetadata):
        raise TypeError(f"verify_export: metadata must be a ModelMetadata, got {type(metadata)}")
    reference = _eager_copy(model, "verify_export")
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    is_onnx = path.suffix.lower() == ".onnx"
    meta = load_onnx_metadata(path) if is_onnx else load_model(path)[1]
    try:
        meta.check_model(reference.n_bins, reference.n_classes)
    except ValueError as exc:
        raise ExportMismatchError(f"{path}: metadata does not fit the model: {exc}") from None
    _compare_metadata(path, meta, metadata)
    if meta.model.get("n_bins", reference.n_bins) != reference.n_bins:
        raise ExportMismatchError(
            f"{path}: exported for n_bins={meta.model.get('n_bins')}, "
            f"the model has n_bins={reference.n_bins}"
        )
    run = _run_onnx(path) if is_onnx else _run_torchscript(path)

    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for trial in range(n_trials):
        lengths = torch.tensor(_trial_lengths(trial, reference.min_frames, rng), dtype=torch.long)
        x = _random_features(reference, lengths, generator)
        with torch.no_grad():
            logits, z = reference.forward_with_embedding(x, lengths)
        expected = {"logits": logits.numpy(), "embedding": z.numpy()}
        expected["forward"], expected["embed"] = expected["logits"], expected["embedding"]
        try:
            got = run(x, lengths)
        except Exception as exc:
            raise ExportMismatchError(
                f"{path}: running the export failed on x {tuple(x.shape)}, "
                f"lengths {lengths.tolist()}: {exc}"
            ) from exc
        for name, value in got.items():
            want = expected[name]
            if value.shape != want.shape:
                raise ExportMismatchError(
                    f"{path}: {name} has shape {value.shape}, eager gives {want.shape} "
                    f"(lengths {lengths.tolist()})"
                )
            if not np.all(np.isfinite(value)):
                raise ExportMismatchError(
                    f"{path}: {name} is not finite (lengths {lengths.tolist()})"
                )
            diff = float(np.max(np.abs(value.astype(np.float64) - want.astype(np.float64))))
            if diff > atol:
                raise ExportMismatchError(
                    f"{path}: {name} differs from the eager model by {diff:.3g} > atol {atol:g} "
                    f"(trial {trial}, x {tuple(x.shape)}, lengths {lengths.tolist()})"
                )
            worst = max(worst, diff)
    return worst
