"""`pyser predict` and `pyser stream` on real speech: espeak-ng speech made at test time
(scripts/setup.sh installs espeak-ng; without it these tests fail, saying so) and corpus
clips. Models are random-weight CRNNs saved as self-describing TorchScript files."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
import sys
import time
from importlib.metadata import EntryPoint

import numpy as np
import pytest
import soundfile as sf
from crnn_factory import random_crnn, save_random_model

from pyser import cli
from pyser.audio import read_audio
from pyser.cli import main
from pyser.features import FeatureConfig
from pyser.model import ModelMetadata
from pyser.stream import Recognizer
from pyser.vad import VadConfig

LABELS = ["neutral", "angry", "happy", "sad"]


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def strict_json(line: str) -> dict:
    """json.loads that refuses NaN/Infinity (RFC 8259 JSON only)."""
    obj = json.loads(line, parse_constant=_reject_constant)
    assert isinstance(obj, dict), line
    return obj


def json_lines(text: str) -> list[dict]:
    lines = text.splitlines()
    assert lines, "no output"
    return [strict_json(line) for line in lines]


def check_posteriors(probabilities: dict, label: str | None) -> None:
    assert list(probabilities) == LABELS
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-6)
    if label is not None:
        assert label == max(probabilities, key=probabilities.get)


def espeak(path, text: str) -> None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed: scripts/setup.sh installs it "
                    "(apt-get install espeak-ng)")
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("model") / "random.pt")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Two espeak-ng sentences with 1.5 s of silence between them (22.05 kHz mono WAV):
    the voice-activity detector finds two segments."""
    folder = tmp_path_factory.mktemp("speech")
    espeak(folder / "a.wav", "I can't believe you did that to me.")
    espeak(folder / "b.wav", "Well, that is wonderful news, thank you.")
    a, rate = sf.read(folder / "a.wav", dtype="float32")
    b, rate_b = sf.read(folder / "b.wav", dtype="float32")
    assert rate == rate_b
    gap = np.zeros(int(1.5 * rate), np.float32)
    path = folder / "two.wav"
    sf.write(path, np.concatenate([gap[: rate // 2], a, gap, b, gap[: rate // 2]]), rate)
    return path


@pytest.fixture(scope="module")
def stereo_flac(speech, tmp_path_factory):
    """The same speech as a 44.1 kHz stereo FLAC (resampled and downmixed by the stream)."""
    from scipy.signal import resample_poly

    x, rate = sf.read(speech, dtype="float32")
    y = resample_poly(x, 2, 1) if rate == 22050 else resample_poly(x, 44100, rate)
    path = tmp_path_factory.mktemp("flac") / "two.flac"
    sf.write(path, np.stack([0.8 * y, 0.6 * y], axis=1), 44100)
    return path


def library_events(model_path, path, **stream_options) -> list[dict]:
    """What the library's EmotionStream gives for the file fed in 0.1 s blocks, as `pyser
    stream` feeds it (its CNN cache makes float32 rounding depend on the chunking)."""
    data, rate = read_audio(path)
    stream = Recognizer.load(model_path).create_stream(**stream_options)
    n, events = round(0.1 * rate), []
    for i in range(0, len(data), n):
        events += stream.accept_waveform(data[i:i + n], rate)
    return [e.to_dict() for e in events + stream.flush()]


# ------------------------------------------------------------------------ stream


def test_stream_json_equals_the_library_stream(model, speech, capsys):
    assert main(["stream", str(speech), "--model", str(model), "--json"]) == 0
    out = json_lines(capsys.readouterr().out)
    events, summary = out[:-1], out[-1]
    assert events == library_events(model, speech)
    types = [e["type"] for e in events]
    assert types.count("speech_start") == types.count("utterance") == 2
    assert "partial" in types
    for e in events:
        if "probabilities" in e:
            check_posteriors(e["probabilities"], e["label"])
            assert 0 <= e["start"] < e["end"]
    assert summary["type"] == "summary"
    assert summary["segments"] == 2
    assert summary["labels"] == [e["label"] for e in events if e["type"] == "utterance"]
    assert summary["duration"] == pytest.approx(sf.info(speech).duration, abs=1e-3)
    assert summary["interrupted"] is False


def test_stream_options_reach_the_stream(model, speech, capsys):
    args = ["--window", "2.0", "--hop", "0.32", "--smoothing", "1.5"]
    assert main(["stream", str(speech), "--model", str(model), "--json", *args]) == 0
    events = json_lines(capsys.readouterr().out)[:-1]
    assert events == library_events(model, speech, window_s=2.0, hop_s=0.32, smoothing_s=1.5)
    default = library_events(model, speech)
    assert [e for e in events if e["type"] == "partial"] != \
        [e for e in default if e["type"] == "partial"]


def test_stream_no_vad_is_one_segment_from_time_zero(model, speech, capsys):
    assert main(["stream", str(speech), "--model", str(model), "--json", "--no-vad"]) == 0
    events = json_lines(capsys.readouterr().out)[:-1]
    assert events == library_events(model, speech, vad=None)
    assert events[0] == {"type": "speech_start", "time": 0.0}
    assert [e["type"] for e in events].count("utterance") == 1


def test_stream_resamples_and_downmixes_any_file(model, stereo_flac, capsys):
    assert sf.info(stereo_flac).channels == 2
    assert main(["stream", str(stereo_flac), "--model", str(model), "--json"]) == 0
    out = json_lines(capsys.readouterr().out)
    assert out[:-1] == library_events(model, stereo_flac)
    assert out[-1]["sample_rate"] == 44100 and out[-1]["segments"] == 2


def test_stream_text_output_lists_events_and_a_summary(model, speech, capsys):
    assert main(["stream", str(speech), "--model", str(model)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum("speech start" in line for line in out) == 2
    assert sum(" utterance " in line for line in out) == 2
    assert out[-1].startswith("streamed ") and "2 speech segments" in out[-1]


def test_stream_realtime_is_paced(model, tmp_path, capsys):
    path = tmp_path / "short.wav"
    espeak(path, "Hello.")
    duration = sf.info(path).duration
    start = time.perf_counter()
    assert main(["stream", str(path), "--model", str(model), "--json", "--realtime"]) == 0
    assert time.perf_counter() - start >= 0.9 * duration
    assert json_lines(capsys.readouterr().out)[-1]["type"] == "summary"


@pytest.mark.corpus
def test_stream_a_corpus_clip(model, data_root, capsys):
    clip = data_root / "emodb" / "wav" / "03a01Fa.flac"
    assert main(["stream", str(clip), "--model", str(model), "--json"]) == 0
    out = json_lines(capsys.readouterr().out)
    assert out[:-1] == library_events(model, clip)
    assert out[-1]["segments"] >= 1
    assert [e["type"] for e in out].count("utterance") == out[-1]["segments"]


# ----------------------------------------------------------------------- predict


def test_predict_table_json_and_csv_agree_with_the_library(model, speech, tmp_path, capsys):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000, np.float32), 16000)
    files = [str(speech), str(silence)]
    rec = Recognizer.load(model)
    want = [rec.predict(*read_audio(f)).to_dict() for f in files]
    assert want[0]["label"] in LABELS and want[1]["label"] is None

    assert main(["predict", *files, "--model", str(model), "--json"]) == 0
    rows = json_lines(capsys.readouterr().out)
    assert rows == [{"file": f, **w} for f, w in zip(files, want)]
    for row in rows:
        check_posteriors(row["probabilities"], row["label"])

    assert main(["predict", *files, "--model", str(model), "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["file"] for r in table] == files
    assert [r["label"] for r in table] == [want[0]["label"], ""]
    for r, w in zip(table, want):
        assert [float(r[k]) for k in LABELS] == pytest.approx(
            [w["probabilities"][k] for k in LABELS], abs=1e-6)

    assert main(["predict", *files, "--model", str(model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["file", "duration"] and lines[0].split()[-4:] == LABELS
    assert lines[1].startswith(str(speech)) and f" {want[0]['label']} " in lines[1]
    assert lines[2].startswith(str(silence)) and " no speech " in lines[2]


def test_predict_no_vad_always_names_an_emotion(model, tmp_path, capsys):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000, np.float32), 16000)
    assert main(["predict", str(silence), "--model", str(model), "--json", "--no-vad"]) == 0
    row = json_lines(capsys.readouterr().out)[0]
    want = Recognizer.load(model).predict(*read_audio(silence), vad=None)
    assert row["label"] == want.label in LABELS


def test_predict_timeline_is_the_streams_utterances(model, speech, capsys):
    want = [e for e in library_events(model, speech) if e["type"] == "utterance"]
    assert len(want) == 2

    assert main(["predict", str(speech), "--model", str(model), "--timeline", "--json"]) == 0
    rows = json_lines(capsys.readouterr().out)
    assert rows == [{"file": str(speech), **u} for u in want]

    assert main(["predict", str(speech), "--model", str(model), "--timeline",
                 "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(float(r["start"]), float(r["end"]), r["label"]) for r in table] == [
        (pytest.approx(u["start"], abs=1e-3), pytest.approx(u["end"], abs=1e-3), u["label"])
        for u in want]

    assert main(["predict", str(speech), "--model", str(model), "--timeline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["file", "start", "(s)", "end", "(s)"]
    assert len(lines) == 3 and all(u["label"] in line for u, line in zip(want, lines[1:]))


def test_predict_timeline_of_silence_is_an_error(model, tmp_path, capsys):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(32000, np.float32), 16000)
    assert main(["predict", str(silence), "--model", str(model), "--timeline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pyser predict: error: {silence}: no speech found")


def test_predict_reports_bad_files_and_goes_on(model, speech, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    missing = tmp_path / "missing.wav"
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, np.zeros(100, np.float32), 16000)
    code = main(["predict", str(bad), str(speech), str(missing), str(tiny),
                 "--model", str(model), "--json"])
    assert code == 2
    captured = capsys.readouterr()
    assert [r["file"] for r in json_lines(captured.out)] == [str(speech)]
    err = captured.err.splitlines()
    assert len(err) == 3 and all(line.startswith("pyser predict: error: ") for line in err)
    assert "cannot decode audio file" in err[0] and str(bad) in err[0]
    assert "no such audio file" in err[1] and str(missing) in err[1]
    assert str(tiny) in err[2] and "shorter than one analysis frame" in err[2]
    assert "Traceback" not in captured.err


def test_predict_json_and_another_format_conflict(model, speech, capsys):
    assert main(["predict", str(speech), "--model", str(model), "--json",
                 "--format", "csv"]) == 2
    assert "--json and --format csv" in capsys.readouterr().err


# ---------------------------------------------------------------- errors, models


@pytest.mark.parametrize("verb", ["predict", "stream"])
def test_a_missing_model_file_is_a_clear_error(verb, speech, tmp_path, capsys):
    assert main([verb, str(speech), "--model", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err == f"pyser {verb}: error: pyser model file not found: {tmp_path / 'none.pt'}\n"


@pytest.mark.parametrize("verb", ["predict", "stream"])
def test_no_bundled_model_says_how_to_get_one(verb, speech, monkeypatch, capsys):
    # The real lookup, pointed at a name that is never bundled (pyser/assets/default.pt may
    # exist on this machine).
    import pyser.stream

    monkeypatch.setattr(pyser.stream, "_ASSET_NAMES",
                        {"torchscript": "no-such-model.pt", "onnx": "no-such-model.onnx"})
    assert main([verb, str(speech)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pyser {verb}: error: no --model given and no bundled")
    assert "pyser train" in err and err.count("\n") == 1


def test_a_file_that_is_not_a_model_is_a_clear_error(speech, capsys):
    assert main(["stream", str(speech), "--model", str(speech)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyser stream: error: ") and "not a TorchScript model file" in err


def test_the_onnx_backend_refuses_a_torchscript_file(model, speech, capsys):
    assert main(["predict", str(speech), "--model", str(model), "--backend", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyser predict: error: ") and "not an ONNX model file" in err


@pytest.mark.parametrize("content", [None, b"\x00\x01garbage"])
def test_stream_reports_missing_and_undecodable_files(model, tmp_path, capsys, content):
    path = tmp_path / "x.wav"
    if content is not None:
        path.write_bytes(content)
    assert main(["stream", str(path), "--model", str(model), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    want = "no such audio file" if content is None else "cannot decode audio file"
    assert captured.err.startswith(f"pyser stream: error: {want}")
    assert str(path) in captured.err and captured.err.count("\n") == 1


@pytest.mark.parametrize("option", [["--window", "0"], ["--hop", "nan"], ["--smoothing", "-1"]])
def test_bad_stream_settings_are_usage_errors(model, speech, option, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["stream", str(speech), "--model", str(model), *option])
    assert exc.value.code == 2
    assert f"argument {option[0]}" in capsys.readouterr().err


def test_a_window_shorter_than_the_cnn_field_is_reported(model, speech, capsys):
    assert main(["stream", str(speech), "--model", str(model), "--window", "0.2"]) == 2
    assert "shorter than the CNN's receptive field" in capsys.readouterr().err


# ------------------------------------------------------------ commands of plugins


def test_training_verbs_come_from_the_entry_point(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    assert "usage: pyser train" in capsys.readouterr().out


def test_a_broken_plugin_is_a_one_line_warning(monkeypatch, speech, capsys):
    group = cli.ENTRY_POINT_GROUP
    broken = EntryPoint(name="broken", value="pyser_no_such_module:register", group=group)
    good = EntryPoint(name="train", value="pyser.training.cli:register", group=group)

    def entry_points(group=None):
        assert group == cli.ENTRY_POINT_GROUP
        return [broken, good]

    monkeypatch.setattr("importlib.metadata.entry_points", entry_points)
    assert main(["features", str(speech), "--json"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("pyser: warning: the 'broken' commands "
                             "(pyser_no_such_module:register) are unavailable: "
                             "ModuleNotFoundError")
    with pytest.raises(SystemExit):  # the working plugin is still registered
        main(["evaluate", "--help"])


def test_importing_pyser_does_not_import_training():
    code = ("import sys, pyser, pyser.cli, pyser.stream, pyser.audio; "
            "print(sorted(m for m in sys.modules if m in ('pyser.training', 'training') "
            "or m.startswith(('pyser.training.', 'training.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_console_script_streams(model, speech):
    proc = subprocess.run([sys.executable, "-m", "pyser", "stream", str(speech), "--model",
                           str(model), "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json_lines(proc.stdout)
    assert out[-1]["type"] == "summary" and out[-1]["segments"] == 2
    assert proc.stderr == ""


def test_vad_default_is_the_library_default():
    # The CLI's voice-activity settings are the library's defaults (nothing CLI-specific).
    import argparse

    assert cli._vad(argparse.Namespace(no_vad=False)) == VadConfig()
    assert cli._vad(argparse.Namespace(no_vad=True)) is None


def test_ctrl_c_stops_stream_early_with_a_summary(model, speech, monkeypatch, capsys):
    import _thread

    update = cli._JsonOutput.update
    fired = []

    def update_then_ctrl_c(self, events, stream, overflows=0):
        update(self, events, stream, overflows)
        if events and not fired:  # Ctrl-C right after the first event is printed
            fired.append(stream.time)
            _thread.interrupt_main()  # runs the SIGINT handler, as a real Ctrl-C does

    monkeypatch.setattr(cli._JsonOutput, "update", update_then_ctrl_c)
    assert main(["stream", str(speech), "--model", str(model), "--json"]) == 130
    lines = json_lines(capsys.readouterr().out)
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["interrupted"] is True
    assert fired[0] <= summary["duration"] < sf.info(speech).duration - 1.0
    assert [e["type"] for e in lines[:-1]][-2:] == ["utterance", "speech_end"]


@pytest.mark.parametrize("verb", ["predict", "stream"])
def test_a_folder_is_not_an_audio_file(verb, model, tmp_path, capsys):
    assert main([verb, str(tmp_path), "--model", str(model)]) == 2
    assert capsys.readouterr().err == (f"pyser {verb}: error: {tmp_path} is a folder, not an "
                                       "audio file\n")


def test_stream_with_an_onnx_model_matches_torchscript(model, speech, tmp_path, capsys):
    from pyser.training.export import export_onnx

    onnx_path = tmp_path / "random.onnx"  # the same weights as `model` (random_crnn seed 0)
    export_onnx(random_crnn(), ModelMetadata(labels=LABELS,
                                             feature_config=FeatureConfig().to_dict()),
                onnx_path)
    assert main(["stream", str(speech), "--model", str(onnx_path), "--json"]) == 0
    got = json_lines(capsys.readouterr().out)[:-1]
    want = library_events(model, speech)
    assert [(e["type"], e.get("time"), e.get("start"), e.get("end")) for e in got] == \
        [(e["type"], e.get("time"), e.get("start"), e.get("end")) for e in want]
    for g, w in zip(got, want):
        if "probabilities" in w:
            assert list(g["probabilities"]) == LABELS
            assert [g["probabilities"][k] for k in LABELS] == pytest.approx(
                [w["probabilities"][k] for k in LABELS], abs=1e-4)


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """A random-weight model whose metadata carries speaker-adaptation constants."""
    from pyser.adapt import SpeakerAdaptation
    from pyser.model import save_model

    path = tmp_path_factory.mktemp("adapted") / "adapted.pt"
    rng = np.random.default_rng(0)
    save_model(path, random_crnn(seed=4), ModelMetadata(
        labels=LABELS, feature_config=FeatureConfig(),
        speaker_adaptation=SpeakerAdaptation(-40 + 5 * rng.standard_normal(128), 100.0)
        .to_dict()))
    return path


def test_stream_adapts_unless_no_adapt(adapted, speech, capsys):
    assert main(["stream", str(speech), "--model", str(adapted), "--json"]) == 0
    events = json_lines(capsys.readouterr().out)[:-1]
    assert events == library_events(adapted, speech)
    assert main(["stream", str(speech), "--model", str(adapted), "--json", "--no-adapt"]) == 0
    alone = json_lines(capsys.readouterr().out)[:-1]
    assert alone == library_events(adapted, speech, adapt=False)
    utterances = [[e for e in run if e["type"] == "utterance"] for run in (events, alone)]
    assert len(utterances[0]) == 2
    assert utterances[0][0] == utterances[1][0] and utterances[0][1] != utterances[1][1]


def test_predict_same_speaker_adapts_each_file_by_the_ones_before(adapted, speech, tmp_path,
                                                                  capsys):
    files = [str(speech), str(speech)]
    rec = Recognizer.load(adapted)
    speaker = rec.new_speaker()
    want = [rec.predict(*read_audio(f), speaker=speaker).to_dict() for f in files]
    assert want[0] != want[1]  # the second hears the first
    assert main(["predict", *files, "--model", str(adapted), "--json", "--same-speaker"]) == 0
    assert json_lines(capsys.readouterr().out) == [{"file": f, **w} for f, w in zip(files, want)]
    assert main(["predict", *files, "--model", str(adapted), "--json"]) == 0
    alone = json_lines(capsys.readouterr().out)
    assert alone[0] == alone[1] == {"file": files[0], **want[0]}

    plain = save_random_model(tmp_path / "plain.pt")
    assert main(["predict", *files, "--model", str(plain), "--same-speaker"]) == 2
    assert "not trained for speaker adaptation" in capsys.readouterr().err
    assert main(["predict", *files, "--model", str(adapted), "--timeline", "--same-speaker"]) == 2
    assert "--timeline" in capsys.readouterr().err
