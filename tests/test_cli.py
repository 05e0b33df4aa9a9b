"""The `pyser` command line."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from pyser import FeatureConfig, extract_features
from pyser.audio import load_audio
from pyser.cli import main


def write_tone(path, rate=16000, seconds=1.5):
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def test_features_prints_shape_and_writes_png_and_npy(tmp_path, capsys):
    wav = tmp_path / "tone.wav"
    write_tone(wav)
    png, npy = tmp_path / "tone.png", tmp_path / "tone.npy"
    assert main(["features", str(wav), "--png", str(png), "--save", str(npy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shape"] == [1 + (24000 - 1024) // 160, 128]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = np.load(npy)
    np.testing.assert_array_equal(saved, extract_features(load_audio(wav), FeatureConfig()))


def test_features_resamples_other_rates(tmp_path, capsys):
    wav = tmp_path / "tone44.wav"
    write_tone(wav, rate=44100, seconds=1.0)
    assert main(["features", str(wav), "--kind", "stft", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [1 + (16000 - 1024) // 160, 513]


def test_features_reports_a_missing_file(tmp_path, capsys):
    assert main(["features", str(tmp_path / "nope.wav")]) == 2
    assert "no such audio file" in capsys.readouterr().err


def test_features_reports_an_undecodable_file(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert main(["features", str(bad)]) == 2
    assert "cannot decode" in capsys.readouterr().err


def test_console_script_runs_as_module(tmp_path):
    wav = tmp_path / "tone.wav"
    write_tone(wav)
    out = subprocess.run([sys.executable, "-m", "pyser", "features", str(wav)],
                         capture_output=True, text=True, check=True).stdout
    assert "144 frames x 128 mel bins" in out
