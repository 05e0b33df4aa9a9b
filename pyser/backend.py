"""Model runtimes behind :class:`pyser.stream.Recognizer`: TorchScript and ONNX Runtime.

Both run the CRNN in its two halves, so that a stream can cache CNN outputs, and may offer
``streaming_cnn`` (a ``pyser.model.StreamingCNN``, or None), the CNN layer by layer, which
streams use to put each frame through the CNN once:

* ``cnn(x, lengths) -> (h, h_lengths)``: normalisation + CNN, x (B, T, n_bins) float32,
  lengths (B,) int64 -> h (B, T', rnn_input_size) float32, h_lengths (B,) int64;
* ``head(h, h_lengths) -> (logits, z)``: BiGRU + FC1 + FC2 -> (B, n_classes), (B, 64).

Arrays in and out are NumPy. A backend is read-only after construction and may be called
from many threads at once (TorchScript modules and ONNX Runtime sessions both allow it).

ONNX model files written by ``pyser export`` carry the CNN output as two extra graph
outputs, ``cnn_features`` and ``cnn_lengths``; the backend cuts the graph there into a CNN
session and a head session (ONNX Runtime runs every node of a graph on each call, so one
session could not run half of it).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pyser.model import ModelFileError, ModelMetadata, StreamingCNN, rnn_input_size

__all__ = [
    "BACKENDS",
    "ONNX_CNN_OUTPUTS",
    "ONNX_INPUTS",
    "ONNX_METADATA_KEY",
    "ONNX_OUTPUTS",
    "OnnxBackend",
    "TorchScriptBackend",
    "load_backend",
    "read_onnx_metadata",
]

BACKENDS = ("torchscript", "onnx")
ONNX_METADATA_KEY = "pyser_metadata"
ONNX_INPUTS = ("features", "lengths")
ONNX_OUTPUTS = ("logits", "embedding")
ONNX_CNN_OUTPUTS = ("cnn_features", "cnn_lengths")


class TorchScriptBackend:
    """A self-describing TorchScript model file (``pyser.model.save_model``) on the CPU."""

    name = "torchscript"

    def __init__(self, path: str | os.PathLike) -> None:
        import torch

        from pyser.model import load_model

        self._torch = torch
        self.module, self.metadata = load_model(path, map_location="cpu")
        self.rnn_input_size = int(self.module.rnn_input_size)
        #: The CNN layer by layer for streams (see ``pyser.model.StreamingCNN``).
        self.streaming_cnn = StreamingCNN(self.module)

    def cnn(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            h, h_lengths = self.module.cnn(torch.from_numpy(x), torch.from_numpy(lengths))
        return h.numpy(), h_lengths.numpy()

    def head(self, h: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            logits, z = self.module.head(torch.from_numpy(h), torch.from_numpy(lengths))
        return logits.numpy(), z.numpy()


def read_onnx_metadata(model) -> ModelMetadata:  # model: onnx.ModelProto
    """The pyser metadata stored in an ONNX model's ``metadata_props``."""
    props = {p.key: p.value for p in model.metadata_props}
    if ONNX_METADATA_KEY not in props:
        raise ModelFileError(f"ONNX file has no {ONNX_METADATA_KEY!r} metadata: not a pyser model")
    return ModelMetadata.from_json(props[ONNX_METADATA_KEY])


class OnnxBackend:
    """A self-describing ONNX model file (``pyser export -o model.onnx``) on ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        num_threads: ONNX Runtime intra-op threads per call (None: its default).
    """

    name = "onnx"
    #: Streams cache CNN output steps and re-run ``cnn`` over each hop's new steps' frames.
    streaming_cnn = None

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        try:
            import onnx
            import onnx.utils
            import onnxruntime as ort
        except ImportError:
            raise ModelFileError(
                "the ONNX backend needs onnx and onnxruntime: pip install 'pyser[onnx]'"
            ) from None
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pyser model file not found: {path}")
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001 (protobuf raises its own DecodeError types)
            raise ModelFileError(f"{path} is not an ONNX model file ({exc})") from None
        self.metadata = read_onnx_metadata(model)
        outputs = [o.name for o in model.graph.output]
        missing = [n for n in (*ONNX_OUTPUTS, *ONNX_CNN_OUTPUTS) if n not in outputs]
        if missing:
            raise ModelFileError(
                f"{path} lacks the graph outputs {missing} that streaming needs; export it "
                "again with this pyser (pyser export MODEL.pt -o MODEL.onnx)"
            )
        n_bins = self.metadata.model.get("n_bins")
        if not isinstance(n_bins, int):
            raise ModelFileError(f"{path}: the metadata does not give the model's n_bins")
        self.rnn_input_size = rnn_input_size(n_bins)
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        extractor = onnx.utils.Extractor(model)
        cnn = extractor.extract_model(list(ONNX_INPUTS), list(ONNX_CNN_OUTPUTS))
        head = extractor.extract_model(list(ONNX_CNN_OUTPUTS), list(ONNX_OUTPUTS))
        providers = ["CPUExecutionProvider"]
        self._cnn = ort.InferenceSession(cnn.SerializeToString(), options, providers=providers)
        self._head = ort.InferenceSession(head.SerializeToString(), options, providers=providers)

    def cnn(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, h_lengths = self._cnn.run(list(ONNX_CNN_OUTPUTS), {"features": x, "lengths": lengths})
        return h, h_lengths

    def head(self, h: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, z = self._head.run(
            list(ONNX_OUTPUTS), {"cnn_features": h, "cnn_lengths": lengths}
        )
        return logits, z


def load_backend(
    path: str | os.PathLike, backend: str = "torchscript", num_threads: int | None = None
) -> TorchScriptBackend | OnnxBackend:
    """Open ``path`` with the named backend (``"torchscript"`` or ``"onnx"``)."""
    if backend == "torchscript":
        if num_threads is not None:
            warnings.warn(
                "num_threads applies to the ONNX backend only; TorchScript uses torch's "
                "process-wide setting (torch.set_num_threads)",
                stacklevel=2,
            )
        return TorchScriptBackend(path)
    if backend == "onnx":
        return OnnxBackend(path, num_threads=num_threads)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
