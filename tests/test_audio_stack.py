"""`pyser listen` through the real audio stack: PyAudio -> PortAudio -> ALSA -> PulseAudio.

scripts/test.sh starts a private PulseAudio server whose default sink is a null sink,
pyser_test, and whose default source is that sink's monitor. Speech made with espeak-ng is
played into the sink with `paplay` while `pyser listen` records the default source. Without
that server these tests fail (they never skip): run them through scripts/test.sh, or
deselect them with `-m "not audio"`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from crnn_factory import save_random_model

pytestmark = pytest.mark.audio

LABELS = ["neutral", "angry", "happy", "sad"]
HOW = ("scripts/test.sh starts one (a null sink pyser_test whose monitor is the default "
       "source); run the tests through it, or deselect these with -m \"not audio\"")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; scripts/setup.sh installs it")
    return path


@pytest.fixture(scope="module")
def pulse() -> dict[str, str]:
    """The PulseAudio server of scripts/test.sh: its `pactl info`, checked."""
    if not os.environ.get("PULSE_SERVER"):
        pytest.fail(f"PULSE_SERVER is not set: no PulseAudio server for the audio tests; {HOW}")
    proc = subprocess.run([_tool("pactl"), "info"], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        pytest.fail(f"no PulseAudio server answers at PULSE_SERVER={os.environ['PULSE_SERVER']}"
                    f" ({proc.stderr.strip()}); {HOW}")
    info = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    if info.get("Default Source") != "pyser_test.monitor":
        pytest.fail(f"the PulseAudio server's default source is {info.get('Default Source')!r}, "
                    f"not pyser_test.monitor; {HOW}")
    return info


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("model") / "random.pt")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Two espeak-ng sentences (about 4 s) with silence around them."""
    folder = tmp_path_factory.mktemp("speech")
    raw = folder / "raw.wav"
    subprocess.run([_tool("espeak-ng"), "-w", str(raw),
                    "I told you not to touch my things. Why do you never listen to me?"],
                   check=True, capture_output=True)
    x, rate = sf.read(raw, dtype="float32")
    pad = np.zeros(rate // 2, np.float32)
    path = folder / "speech.wav"
    sf.write(path, np.concatenate([pad, x, pad]), rate)
    return path


class Listener:
    """`pyser listen --json` in a subprocess; stderr is read in a thread to see it start."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyser", "listen", "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started = threading.Event()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "Ctrl-C to stop" in line:
                self.started.set()

    def wait_started(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out = self.proc.communicate()[0]
                pytest.fail(f"pyser listen did not start (exit {self.proc.returncode}):\n"
                            f"{''.join(self.stderr)}{out}")

    def finish(self, timeout: float = 120) -> tuple[int, list[dict]]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            pytest.fail(f"pyser listen did not end:\n{''.join(self.stderr)}{out}")

        def reject(name):
            raise ValueError(f"non-standard JSON constant {name}")

        try:
            lines = [json.loads(line, parse_constant=reject) for line in out.splitlines()]
        except ValueError as exc:
            pytest.fail(f"pyser listen printed something that is not strict JSON ({exc}):\n"
                        f"{out}")
        return self.proc.returncode, lines


def play(path) -> None:
    subprocess.run([_tool("paplay"), str(path)], check=True, timeout=60)


def check_events(lines: list[dict], stderr: list[str]) -> list[dict]:
    assert lines and lines[-1]["type"] == "summary", "".join(stderr)
    events = lines[:-1]
    types = [e["type"] for e in events]
    assert "speech_start" in types, f"no speech heard: {lines}\n{''.join(stderr)}"
    results = [e for e in events if e["type"] in ("partial", "utterance")]
    assert results, f"speech but no result: {lines}"
    for e in results:
        assert list(e["probabilities"]) == LABELS
        assert math.isclose(sum(e["probabilities"].values()), 1.0, abs_tol=1e-6)
        assert e["label"] == max(e["probabilities"], key=e["probabilities"].get)
        assert 0 <= e["start"] < e["end"]
    return events


def test_pulseaudio_source_is_a_portaudio_input(pulse):
    proc = subprocess.run([sys.executable, "-m", "pyser", "listen", "--list-devices",
                           "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    devices = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(d["is_default"] for d in devices), devices
    assert proc.stderr == ""  # ALSA's probing chatter is kept off the terminal


def test_listen_hears_speech_played_into_the_null_sink(pulse, model, speech):
    seconds = sf.info(speech).duration + 3.0
    listener = Listener("--model", str(model), "--seconds", f"{seconds:.1f}")
    listener.wait_started()
    play(speech)
    code, lines = listener.finish()
    assert code == 0, "".join(listener.stderr)
    events = check_events(lines, listener.stderr)
    assert "utterance" in [e["type"] for e in events]
    summary = lines[-1]
    assert summary["duration"] == pytest.approx(seconds, abs=0.11)
    assert summary["segments"] >= 1 and summary["interrupted"] is False
    assert summary["overflows"] >= 0 and summary["sample_rate"] > 0


def test_ctrl_c_ends_listen_cleanly(pulse, model, speech):
    listener = Listener("--model", str(model))
    listener.wait_started()
    play(speech)
    time.sleep(0.5)
    listener.proc.send_signal(signal.SIGINT)
    code, lines = listener.finish()
    assert code == 0, "".join(listener.stderr)
    events = check_events(lines, listener.stderr)
    assert events[-1]["type"] == "speech_end"  # every segment closed
    summary = lines[-1]
    assert summary["interrupted"] is True and summary["segments"] >= 1
    assert summary["duration"] >= sf.info(speech).duration
    assert "Traceback" not in "".join(listener.stderr)
