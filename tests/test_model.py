"""pyser.model: the CRNN's shapes, exact variable-length handling, TorchScript, model files.

Reference for the layer arithmetic: the authors' MelModel11 (valid 7x7/2 conv, three 3x3
convs, three 2x2 pools); 128 Mel bins -> 5 x 96 = 480 GRU inputs, 513 STFT bins -> 30 x 96 =
2,880. Numeric tolerances: 1e-5 absolute (float32 reassociation between batch shapes and
between eager and TorchScript), as the model's contract states.
"""

import json
import warnings

import pytest
import torch
from crnn_factory import random_crnn as _model
from crnn_factory import script as _script

from pyser.model import (
    CRNN,
    EMBEDDING_DIM,
    METADATA_FILE,
    ModelFileError,
    ModelMetadata,
    cnn_output_length,
    load_model,
    min_input_frames,
    save_model,
)

ATOL = 1e-5


def _features(model: CRNN, lengths: list[int], pad_value: float = 0.0) -> torch.Tensor:
    """dB-like frames at the model's statistics; ``pad_value`` noise beyond each length."""
    batch, frames = len(lengths), max(lengths)
    x = model.norm_mean + model.norm_std * torch.randn(batch, frames, model.n_bins)
    for i, n in enumerate(lengths):
        x[i, n:] = pad_value * torch.randn(frames - n, model.n_bins)
    return x


@pytest.fixture(scope="module")
def mel() -> CRNN:
    return _model(128, 4)


@pytest.fixture(scope="module")
def mel_scripted(mel: CRNN) -> torch.jit.ScriptModule:
    return _script(mel)


@pytest.fixture()
def metadata() -> ModelMetadata:
    return ModelMetadata(
        labels=["neutral", "angry", "happy", "sad"],
        feature_config={"kind": "mel", "sample_rate": 16000, "n_fft": 1024, "n_mels": 128},
        provenance={"corpus": "unit-test", "split": "none", "metrics": {"ua": 0.5}},
    )


# ---------------------------------------------------------------- layer arithmetic


def _raw_cnn_steps(model: CRNN, frames: int) -> int:
    """Time steps after the bare torch conv/pool layers (no masking, no padding)."""
    h = torch.zeros(1, 1, frames, model.n_bins)
    pool = torch.nn.MaxPool2d(2, 2)
    for layer in (
        model.conv1,
        model.conv2,
        pool,
        model.conv3,
        pool,
        model.conv4,
        pool,
    ):
        h = layer(h)
    return h.shape[2]


def test_length_formula_matches_the_torch_layers(mel):
    with torch.no_grad():
        for frames in (49, 50, 51, 64, 65, 97, 150, 301):
            assert _raw_cnn_steps(mel, frames) == cnn_output_length(frames), frames
        with pytest.raises(RuntimeError):  # 48 frames leave nothing: the last pool fails
            _raw_cnn_steps(mel, 48)
    assert cnn_output_length(48) == 0
    assert min_input_frames() == 49
    assert mel.min_frames == 49


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 5, 37, 61), (1, 1, 2, 3), (2, 4, 9, 2)])
def test_max_pool_equals_torch_max_pool(shape):
    from pyser.model import _max_pool_2x2

    h = torch.randn(shape)
    assert torch.equal(_max_pool_2x2(h), torch.nn.functional.max_pool2d(h, 2, 2))


@pytest.mark.parametrize(("n_bins", "width"), [(128, 480), (513, 2880)])
def test_gru_input_width(n_bins, width):
    model = _model(n_bins, 4)
    assert model.rnn_input_size == width
    assert model.gru_fw.input_size == width and model.gru_bw.input_size == width
    with torch.no_grad():
        h, h_lengths = model.cnn(_features(model, [49, 81]), torch.tensor([49, 81]))
    assert h.shape == (2, cnn_output_length(81), width)
    assert h_lengths.tolist() == [1, cnn_output_length(81)]


@pytest.mark.parametrize(("n_bins", "n_classes"), [(128, 4), (513, 7)])
def test_output_shapes(n_bins, n_classes):
    model = _model(n_bins, n_classes)
    lengths = [120, 33, 64]
    x, lens = _features(model, lengths), torch.tensor(lengths)
    with torch.no_grad():
        logits = model(x, lens)
        z = model.embed(x, lens)
        both = model.forward_with_embedding(x, lens)
    assert logits.shape == (3, n_classes) and logits.dtype == torch.float32
    assert z.shape == (3, EMBEDDING_DIM) and model.embedding_dim == EMBEDDING_DIM
    torch.testing.assert_close(both[0], logits, rtol=0, atol=0)
    torch.testing.assert_close(both[1], z, rtol=0, atol=0)
    assert torch.isfinite(logits).all() and torch.isfinite(z).all()


# ---------------------------------------------------------------- variable length


def _outputs(model: CRNN, x: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """logits, z and each GRU direction's part of the FC1 input: ``fw`` (forward GRU at the
    last valid step) and ``bw`` (backward GRU at step 0), captured with a forward hook."""
    seen = {}
    hook = model.fc1.register_forward_hook(lambda m, inputs, out: seen.update(rnn=inputs[0]))
    try:
        logits, z = model.forward_with_embedding(x, lengths)
    finally:
        hook.remove()
    hidden = model.gru_fw.hidden_size
    return {"logits": logits, "z": z, "fw": seen["rnn"][:, :hidden], "bw": seen["rnn"][:, hidden:]}


@pytest.mark.parametrize("n_bins", [128, 513])
def test_padding_invariance(n_bins):
    """Each row of a padded batch gives the same logits, z and GRU outputs of *both*
    directions as the utterance alone (z alone could hide a bug in one direction)."""
    model = _model(n_bins, 4)
    lengths = [160, 30, 49, 50, 97, 1]
    # Loud noise in the padding: only exact masking keeps it out of the valid outputs.
    x = _features(model, lengths, pad_value=1e3)
    with torch.no_grad():
        batch = _outputs(model, x, torch.tensor(lengths))
        for i, n in enumerate(lengths):
            alone = _outputs(model, x[i : i + 1, :n], torch.tensor([n]))
            for key in ("logits", "z", "fw", "bw"):
                torch.testing.assert_close(
                    batch[key][i : i + 1], alone[key], rtol=0, atol=ATOL, msg=f"{key}, row {i}"
                )


def test_padding_invariance_holds_for_both_gru_directions(mel):
    """Changing only the first or only the last valid frame must change *each* direction's
    GRU output (each direction reads every valid frame), while changing padding must change
    nothing.

    n = 113 = 49 + 4 * 16 is a length the valid conv/pool stack uses to its last frame (for
    other lengths up to 15 trailing frames fall outside every receptive field, as in TF)."""
    n = 113
    x = _features(mel, [n + 40], pad_value=0.0)
    lens = torch.tensor([n])
    with torch.no_grad():
        base = _outputs(mel, x, lens)
        for frame in (0, n - 1):
            y = x.clone()
            y[0, frame] += 30.0
            changed = _outputs(mel, y, lens)
            for key in ("fw", "bw", "z", "logits"):
                assert (changed[key] - base[key]).abs().max() > 1e-4, (key, frame)
        y = x.clone()
        y[0, n:] = 1e4
        padded = _outputs(mel, y, lens)
        for key in ("fw", "bw", "z", "logits"):
            torch.testing.assert_close(padded[key], base[key], rtol=0, atol=ATOL, msg=key)


def test_short_inputs_are_padded_with_mean_frames(mel):
    """Below min_frames the model pads with zeros after normalisation, i.e. mean frames."""
    for n in (1, 10, 48):
        x = _features(mel, [n])
        padded = torch.cat([x, mel.norm_mean.expand(1, mel.min_frames - n, -1)], dim=1)
        with torch.no_grad():
            short = mel.forward_with_embedding(x, torch.tensor([n]))
            full = mel.forward_with_embedding(padded, torch.tensor([mel.min_frames]))
        assert short[0].shape == (1, 4)
        torch.testing.assert_close(short[0], full[0], rtol=0, atol=ATOL)
        torch.testing.assert_close(short[1], full[1], rtol=0, atol=ATOL)


# ---------------------------------------------------------------- TorchScript


def test_eager_equals_scripted(mel, mel_scripted):
    lengths = [130, 7, 49, 88]
    x, lens = _features(mel, lengths, pad_value=5.0), torch.tensor(lengths)
    with torch.no_grad():
        torch.testing.assert_close(mel_scripted(x, lens), mel(x, lens), rtol=0, atol=ATOL)
        torch.testing.assert_close(
            mel_scripted.embed(x, lens), mel.embed(x, lens), rtol=0, atol=ATOL
        )
        s_logits, s_z = mel_scripted.forward_with_embedding(x, lens)
        e_logits, e_z = mel.forward_with_embedding(x, lens)
        torch.testing.assert_close(s_logits, e_logits, rtol=0, atol=ATOL)
        torch.testing.assert_close(s_z, e_z, rtol=0, atol=ATOL)
        # A whole batch shorter than min_frames goes through the scripted padding branch.
        short, short_lens = _features(mel, [20, 3]), torch.tensor([20, 3])
        torch.testing.assert_close(
            mel_scripted(short, short_lens), mel(short, short_lens), rtol=0, atol=ATOL
        )
    assert mel_scripted.min_frames == 49 and mel_scripted.n_classes == 4


# ---------------------------------------------------------------- normalisation


def test_normalization_is_applied_inside_the_model(mel):
    plain = CRNN(n_bins=128, n_classes=4).eval()
    plain.load_state_dict(mel.state_dict())
    plain.set_normalization(torch.zeros(128), torch.ones(128))
    lengths = [90, 60]
    x, lens = _features(mel, lengths), torch.tensor(lengths)
    manual = (x - mel.norm_mean) / mel.norm_std
    for i, n in enumerate(lengths):
        manual[i, n:] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(mel(x, lens), plain(manual, lens), rtol=0, atol=ATOL)
        # and the statistics matter: the unnormalised input gives other outputs
        assert (plain(x, lens) - mel(x, lens)).abs().max() > 1e-3
    assert "norm_mean" in mel.state_dict() and "norm_std" in mel.state_dict()


def test_set_normalization_validates():
    model = CRNN()
    with pytest.raises(ValueError, match="n_bins"):
        model.set_normalization(torch.zeros(127), torch.ones(127))
    with pytest.raises(ValueError, match="std"):
        model.set_normalization(torch.zeros(128), torch.zeros(128))
    with pytest.raises(ValueError, match="non-finite"):
        model.set_normalization(torch.full((128,), float("nan")), torch.ones(128))
    model.set_normalization([1.0] * 128, [2.0] * 128)  # array-likes are fine
    assert model.norm_mean.tolist() == [1.0] * 128 and model.norm_std.tolist() == [2.0] * 128


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs",
    [{"n_bins": 48}, {"n_bins": 0}, {"n_classes": 1}, {"n_bins": 128.0}, {"n_classes": True}],
)
def test_bad_constructor_args(kwargs):
    with pytest.raises(ValueError):
        CRNN(**kwargs)


def test_smallest_n_bins_works():
    model = CRNN(n_bins=49, n_classes=2).eval()
    assert model.rnn_input_size == 96
    with torch.no_grad():
        assert model(torch.randn(1, 60, 49), torch.tensor([60])).shape == (1, 2)


@pytest.mark.parametrize(
    ("x_shape", "lengths", "match"),
    [
        ((2, 100), [100, 100], "shape"),  # rank 2
        ((2, 100, 64), [100, 100], "n_bins"),  # wrong bin count
        ((2, 100, 128), [100], "lengths"),  # one length for two rows
        ((2, 100, 128), [101, 50], r"lengths must be in \[1, 100\]"),
        ((2, 100, 128), [0, 50], r"lengths must be in \[1, 100\]"),
        ((2, 100, 128), [[100, 50]], "lengths"),  # lengths 2-D
    ],
)
def test_bad_inputs_raise(mel, mel_scripted, x_shape, lengths, match):
    x, lens = torch.zeros(x_shape), torch.tensor(lengths)
    with pytest.raises(ValueError, match=match):
        mel(x, lens)
    with pytest.raises(Exception, match=match):  # TorchScript wraps it in torch.jit.Error
        mel_scripted(x, lens)


# ---------------------------------------------------------------- model files


def test_save_load_round_trip(tmp_path, metadata):
    model = _model(128, 4, seed=3).train()
    path = tmp_path / "model.pt"
    written = save_model(path, model, metadata)
    assert model.training  # saving does not flip the caller's module to eval
    loaded, meta = load_model(path)

    assert isinstance(loaded, torch.jit.ScriptModule) and not loaded.training
    assert meta.labels == metadata.labels
    assert meta.feature_config == metadata.feature_config
    for key, value in metadata.provenance.items():
        assert meta.provenance[key] == value
    assert meta.provenance["pyser_version"] and meta.provenance["date"]
    assert meta.model == {
        "arch": "CRNN",
        "n_bins": 128,
        "n_classes": 4,
        "min_frames": 49,
        "embedding_dim": 64,
        "rnn_input_size": 480,
    }
    assert meta == written
    torch.testing.assert_close(loaded.norm_mean, model.norm_mean, rtol=0, atol=0)
    torch.testing.assert_close(loaded.norm_std, model.norm_std, rtol=0, atol=0)

    lengths = [70, 12, 140]
    x, lens = _features(model, lengths), torch.tensor(lengths)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, lens), model(x, lens), rtol=0, atol=ATOL)
        torch.testing.assert_close(loaded.embed(x, lens), model.embed(x, lens), rtol=0, atol=ATOL)


def test_save_round_trips_a_stft_model_and_explicit_provenance(tmp_path):
    model = _model(513, 3, seed=4)
    meta = ModelMetadata(
        labels=["a", "b", "c"],
        feature_config={"kind": "stft", "n_fft": 1024},
        provenance={"pyser_version": "9.9.9", "date": "2019-05-12"},
    )
    save_model(tmp_path / "stft.pt", model, meta)
    loaded, got = load_model(tmp_path / "stft.pt")
    assert got.provenance == {"pyser_version": "9.9.9", "date": "2019-05-12"}  # kept as given
    assert got.model["n_bins"] == 513 and loaded.rnn_input_size == 2880
    x = _features(model, [64])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(x, torch.tensor([64])), model(x, torch.tensor([64])), rtol=0, atol=ATOL
        )


def test_save_validates_metadata(tmp_path, metadata, mel):
    path = tmp_path / "bad.pt"
    with pytest.raises(ValueError, match="labels"):
        save_model(path, mel, ModelMetadata(labels=["a", "b", "c"]))
    with pytest.raises(ValueError, match="bins"):
        save_model(
            path,
            mel,
            ModelMetadata(labels=metadata.labels, feature_config={"kind": "mel", "n_mels": 64}),
        )
    with pytest.raises(ValueError, match="bins"):
        save_model(
            path,
            mel,
            ModelMetadata(labels=metadata.labels, feature_config={"kind": "stft", "n_fft": 1024}),
        )
    assert not path.exists()
    assert not list(tmp_path.iterdir())  # no temp files left behind
    with pytest.raises(ValueError, match="duplicate"):
        ModelMetadata(labels=["a", "a", "b", "c"])
    with pytest.raises(ValueError, match="JSON"):
        ModelMetadata(labels=["a", "b"], provenance={"when": object()})
    with pytest.raises(ValueError, match="labels"):
        ModelMetadata(labels="abcd")


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.pt")


def test_load_not_a_torchscript_file(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"definitely not a zip archive" * 10)
    with pytest.raises(ModelFileError, match="not a TorchScript"):
        load_model(path)


def test_load_torchscript_without_metadata(tmp_path, mel_scripted):
    path = tmp_path / "bare.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(mel_scripted, str(path))
    with pytest.raises(ModelFileError, match="not a pyser model"):
        load_model(path)


def _save_with_raw_metadata(path, scripted, text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(scripted, str(path), _extra_files={METADATA_FILE: text})


def test_load_rejects_inconsistent_or_foreign_metadata(tmp_path, mel_scripted, metadata):
    wrong_labels = metadata.to_dict() | {"labels": ["a", "b", "c"]}
    _save_with_raw_metadata(tmp_path / "labels.pt", mel_scripted, json.dumps(wrong_labels))
    with pytest.raises(ModelFileError, match="3 labels"):
        load_model(tmp_path / "labels.pt")

    _save_with_raw_metadata(tmp_path / "garbage.pt", mel_scripted, "{not json")
    with pytest.raises(ModelFileError, match="JSON"):
        load_model(tmp_path / "garbage.pt")

    _save_with_raw_metadata(tmp_path / "foreign.pt", mel_scripted, json.dumps({"labels": ["x"]}))
    with pytest.raises(ModelFileError, match="format"):
        load_model(tmp_path / "foreign.pt")

    future = metadata.to_dict() | {"format_version": 99}
    _save_with_raw_metadata(tmp_path / "future.pt", mel_scripted, json.dumps(future))
    with pytest.raises(ModelFileError, match="format_version"):
        load_model(tmp_path / "future.pt")


def test_metadata_json_round_trip(metadata):
    again = ModelMetadata.from_json(metadata.to_json())
    assert again == metadata
    assert json.loads(metadata.to_json())["format"] == "pyser-model"


@pytest.mark.parametrize(
    ("feature_config", "match"),
    [
        ({"kind": "mel", "n_fft": 0}, "n_fft"),
        ({"kind": "mel", "n_mels": 128, "bogus_key": 1}, "bogus_key"),
        ({"kind": "mfcc"}, "kind"),
        ({"kind": "mel", "hop_length": "160"}, "hop_length"),
    ],
)
def test_metadata_validates_the_feature_config(feature_config, match):
    with pytest.raises(ValueError, match=rf"feature_config.*{match}"):
        ModelMetadata(labels=["a", "b"], feature_config=feature_config)
    doc = ModelMetadata(labels=["a", "b"]).to_dict() | {"feature_config": feature_config}
    with pytest.raises(ModelFileError, match=match):
        ModelMetadata.from_dict(doc)


def test_load_rejects_an_invalid_feature_config(tmp_path, mel_scripted, metadata):
    for name, cfg in (("nfft0", {"kind": "mel", "n_fft": 0}),
                      ("unknown", {"kind": "mel", "n_mels": 128, "n_bins": 128})):
        doc = metadata.to_dict() | {"feature_config": cfg}
        _save_with_raw_metadata(tmp_path / f"{name}.pt", mel_scripted, json.dumps(doc))
        with pytest.raises(ModelFileError, match=rf"{name}\.pt.*feature_config"):
            load_model(tmp_path / f"{name}.pt")


def test_bundled_model_metadata_is_valid():
    from importlib.resources import files

    assets = [p for p in files("pyser").joinpath("assets").iterdir() if p.name.endswith(".pt")]
    for asset in assets:
        _, meta = load_model(str(asset))
        assert meta.labels and meta.feature_config


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "torchscript"])
def test_streaming_cnn_equals_cnn_over_any_split(scripted):
    """Frames fed in arbitrary pieces (batched runs too) give the steps of cnn() over all of
    them: each layer keeps exactly the input rows its next outputs need."""
    from crnn_factory import random_crnn, script

    from pyser.model import StreamingCNN

    model = random_crnn(seed=4)
    model = script(model) if scripted else model
    x = model.norm_mean + model.norm_std * torch.randn(2, 333, 128)
    with torch.no_grad():
        want, _ = model.cnn(x, torch.tensor([333, 333]))
    cnn = StreamingCNN(model)
    for cuts in ([0, 49, 97, 145, 333], [0, 1, 2, 40, 48, 49, 50, 64, 200, 333], [0, 333]):
        state, got = cnn.empty_state(), []
        for a, b in zip(cuts, cuts[1:]):
            steps, state = cnn.step(x[:, a:b], state)
            assert steps.size(0) == 2
            got.append(steps)
        got = torch.cat([g for g in got if g.size(1)], dim=1)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
