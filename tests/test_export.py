"""pyser.training.export: TorchScript and ONNX files that match the eager CRNN, metadata included.

Reference: the eager ``pyser.model.CRNN``; tolerance 1e-4 absolute (verify_export's default)
for ONNX Runtime vs PyTorch kernels.
"""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from crnn_factory import random_crnn as _model
from crnn_factory import script as _script

from pyser.model import CRNN, ModelFileError, ModelMetadata, load_model
from pyser.training.export import (
    INPUT_NAMES,
    ONNX_METADATA_KEY,
    OUTPUT_NAMES,
    TRACE_FRAMES,
    ExportMismatchError,
    export_onnx,
    export_torchscript,
    load_onnx_metadata,
    verify_export,
)

ATOL = 1e-4






def _metadata(n_bins: int = 128, labels=("neutral", "angry", "happy", "sad")) -> ModelMetadata:
    cfg = {"kind": "mel", "n_mels": n_bins} if n_bins != 513 else {"kind": "stft", "n_fft": 1024}
    return ModelMetadata(
        labels=list(labels),
        feature_config=cfg | {"sample_rate": 16000, "hop_length": 160},
        provenance={"corpus": "unit-test", "metrics": {"ua": 0.61, "wa": 0.6}},
    )


@pytest.fixture(scope="module")
def model() -> CRNN:
    return _model()


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, model) -> str:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, _metadata(), path)
    return path


def _assert_same_metadata(got: ModelMetadata, want: ModelMetadata, n_bins: int = 128) -> None:
    assert got.labels == want.labels
    assert got.feature_config == want.feature_config
    for key, value in want.provenance.items():
        assert got.provenance[key] == value
    assert got.provenance["pyser_version"] and got.provenance["date"]
    assert got.model["n_bins"] == n_bins and got.model["min_frames"] == 49
    assert got.model["n_classes"] == len(want.labels)


# ---------------------------------------------------------------- TorchScript


def test_torchscript_export_round_trip(tmp_path, model):
    path = export_torchscript(model, _metadata(), tmp_path / "model.pt")
    loaded, meta = load_model(path)
    _assert_same_metadata(meta, _metadata())
    diff = verify_export(model, path, _metadata(), n_trials=2)
    assert 0.0 <= diff <= ATOL
    x, lengths = 3.0 * torch.randn(2, 70, 128) - 40.0, torch.tensor([70, 20])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, lengths), model(x, lengths), rtol=0, atol=ATOL)


def test_torchscript_export_rejects_a_script_module(tmp_path, model):
    with pytest.raises(TypeError, match="eager"):
        export_torchscript(_script(model), _metadata(), tmp_path / "m.pt")


# ---------------------------------------------------------------- ONNX


def test_onnx_file_is_valid_and_self_describing(onnx_path):
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    features = proto.graph.input[0].type.tensor_type
    assert features.elem_type == onnx.TensorProto.FLOAT
    dims = features.shape.dim
    assert dims[0].dim_param and dims[1].dim_param  # dynamic batch and time
    assert dims[2].dim_value == 128
    assert proto.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert ONNX_METADATA_KEY in {p.key for p in proto.metadata_props}
    _assert_same_metadata(load_onnx_metadata(onnx_path), _metadata())


def test_onnx_runtime_matches_eager_off_the_trace_length(onnx_path, model):
    """Independent of verify_export: batch sizes and padded lengths never traced, including a
    padded length below min_frames (the graph's dynamic padding branch)."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    cases = [[30, 5, 1], [TRACE_FRAMES + 37, 12, 49, 100, TRACE_FRAMES + 37], [49], [48]]
    for lengths in cases:
        x = model.norm_mean + model.norm_std * torch.randn(len(lengths), max(lengths), 128)
        lens = torch.tensor(lengths)
        logits, z, h, h_lengths = session.run(
            list(OUTPUT_NAMES), {"features": x.numpy(), "lengths": lens.numpy()}
        )
        with torch.no_grad():
            want_logits, want_z = model.forward_with_embedding(x, lens)
        np.testing.assert_allclose(logits, want_logits.numpy(), rtol=0, atol=ATOL)
        np.testing.assert_allclose(z, want_z.numpy(), rtol=0, atol=ATOL)
        with torch.no_grad():
            want_h, want_h_lengths = model.cnn(x, lens)
        np.testing.assert_allclose(h, want_h.numpy(), rtol=0, atol=ATOL)
        np.testing.assert_array_equal(h_lengths, want_h_lengths.numpy())


def test_verify_export_passes_for_onnx(onnx_path, model):
    diff = verify_export(model, onnx_path, _metadata(), n_trials=3)
    assert 0.0 <= diff <= ATOL


def test_onnx_export_of_a_stft_model(tmp_path):
    model = _model(513, 3, seed=1)
    meta = _metadata(513, labels=("a", "b", "c"))
    path = export_onnx(model, meta, tmp_path / "stft.onnx")
    _assert_same_metadata(load_onnx_metadata(path), meta, n_bins=513)
    assert verify_export(model, path, meta, n_trials=2) <= ATOL


def test_export_onnx_validates_before_writing(tmp_path, model):
    path = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match="labels"):
        export_onnx(model, ModelMetadata(labels=["a", "b"]), path)
    with pytest.raises(TypeError, match="eager"):
        export_onnx(_script(model), _metadata(), path)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, _metadata(), path, opset=9)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- mismatches


@pytest.fixture(scope="module")
def torchscript_path(tmp_path_factory, model):
    return export_torchscript(model, _metadata(), tmp_path_factory.mktemp("ts") / "model.pt")


def _slightly_different(model: CRNN) -> CRNN:
    other = copy.deepcopy(model)
    other.set_normalization(other.norm_mean + 1.0, other.norm_std)  # 0.1 std shift per bin
    return other


@pytest.mark.parametrize("which", ["onnx", "torchscript"])
def test_verify_export_raises_on_a_mismatching_model(which, onnx_path, torchscript_path, model):
    path = onnx_path if which == "onnx" else torchscript_path
    with pytest.raises(ExportMismatchError, match="differs from the eager model"):
        verify_export(_model(seed=7), path, _metadata(), n_trials=1)
    with pytest.raises(ExportMismatchError, match="differs from the eager model"):
        verify_export(_slightly_different(model), path, _metadata(), n_trials=1)
    # and the untouched model still passes against the same file
    assert verify_export(model, path, _metadata(), n_trials=1) <= ATOL


@pytest.mark.parametrize("which", ["onnx", "torchscript"])
def test_verify_export_raises_on_a_model_of_another_shape(which, onnx_path, torchscript_path):
    path = onnx_path if which == "onnx" else torchscript_path
    with pytest.raises(ExportMismatchError, match="labels"):
        verify_export(_model(n_classes=5), path, _metadata(), n_trials=1)


def test_onnx_metadata_errors(tmp_path, onnx_path):
    with pytest.raises(FileNotFoundError):
        load_onnx_metadata(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xfe not a protobuf \x00" * 20)
    with pytest.raises(ModelFileError):
        load_onnx_metadata(junk)
    bare = onnx.load(str(onnx_path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelFileError, match="not a pyser model"):
        load_onnx_metadata(tmp_path / "bare.onnx")


# ---------------------------------------------------------------- metadata checks


def test_verify_export_compares_labels_and_feature_config(tmp_path, model):
    reversed_meta = _metadata(labels=("sad", "happy", "angry", "neutral"))
    path = export_onnx(model, reversed_meta, tmp_path / "reversed.onnx")
    # Same weights, same shapes: only the metadata tells the classes apart.
    assert verify_export(model, path, reversed_meta, n_trials=1) <= ATOL
    with pytest.raises(ExportMismatchError, match=r"reversed\.onnx.*labels"):
        verify_export(model, path, _metadata(), n_trials=1)
    ts = export_torchscript(model, reversed_meta, tmp_path / "reversed.pt")
    with pytest.raises(ExportMismatchError, match=r"reversed\.pt.*labels"):
        verify_export(model, ts, _metadata(), n_trials=1)
    hop = _metadata()
    hop.feature_config["hop_length"] = 320  # frames twice as far apart: the model is wrong
    path = export_onnx(model, hop, tmp_path / "hop.onnx")
    with pytest.raises(ExportMismatchError, match=r"hop\.onnx.*feature_config.*hop_length"):
        verify_export(model, path, _metadata(), n_trials=1)


def test_export_validates_the_feature_config(tmp_path, model):
    meta = _metadata()
    meta.feature_config["n_fft"] = 0  # set after construction, as a caller could
    with pytest.raises(ValueError, match="feature_config.*n_fft"):
        export_onnx(model, meta, tmp_path / "bad.onnx")
    meta = _metadata()
    meta.feature_config["typo_key"] = 1
    with pytest.raises(ValueError, match="feature_config.*typo_key"):
        export_torchscript(model, meta, tmp_path / "bad.pt")
    assert not list(tmp_path.iterdir())


def test_cli_export_refuses_invalid_metadata(tmp_path, model, capsys):
    import argparse
    import json
    import warnings

    from pyser.model import METADATA_FILE
    from pyser.training.cli import register

    src = tmp_path / "src.pt"
    doc = _metadata().to_dict() | {"feature_config": {"kind": "mel", "n_fft": 0}}
    doc["model"] = {"n_bins": 128, "n_classes": 4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(_script(model), str(src), _extra_files={METADATA_FILE: json.dumps(doc)})
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "out.onnx"
    args = parser.parse_args(["export", str(src), "-o", str(out)])
    assert args.func(args) == 2
    assert "n_fft" in capsys.readouterr().err and not out.exists()


def test_cli_export_verifies_labels(tmp_path, model, capsys, monkeypatch):
    """pyser export checks the written file's labels against the source model's."""
    import argparse
    import json

    import pyser.training.export as export_mod
    from pyser.training.cli import register

    src = export_torchscript(model, _metadata(), tmp_path / "src.pt")
    real = export_mod.export_onnx

    def reversing(net, meta, path, **kw):  # a buggy exporter that reverses the labels
        flipped = ModelMetadata(labels=meta.labels[::-1], feature_config=meta.feature_config,
                                provenance=meta.provenance)
        return real(net, flipped, path, **kw)

    monkeypatch.setattr(export_mod, "export_onnx", reversing)
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(src), "-o", str(tmp_path / "out.onnx")])
    assert args.func(args) == 3
    line = json.loads(capsys.readouterr().out)
    assert line["verified"] is False and "labels" in line["error"]
