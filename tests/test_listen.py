"""`pyser listen` and `pyser.audio.Microphone` against a fake PyAudio module.

The fake has devices and a callback stream that plays a script from its own thread, as
PortAudio does: int16 audio cut into blocks of the requested size, an input-overflow flag
on the next block, a device failure, and a Ctrl-C (``_thread.interrupt_main``, which runs
the process's SIGINT handler as a real Ctrl-C would). `pyser listen` imports ``pyaudio``
lazily, so the tests put the fake in ``sys.modules``; the Microphone takes it as a
parameter. The real PortAudio/PulseAudio path is in test_audio_stack.py.
"""

from __future__ import annotations

import _thread
import json
import math
import signal
import sys
import threading
import time
import types

import numpy as np
import pytest
from crnn_factory import save_random_model

from pyser.audio import AudioDeviceError, Microphone, list_input_devices
from pyser.cli import main
from pyser.stream import Recognizer

LABELS = ["neutral", "angry", "happy", "sad"]
RATE = 48000
BLOCK = RATE // 10  # what Microphone asks for: chunk_s = 0.1 s

MIC = {"index": 0, "name": "Fake Mic", "maxInputChannels": 2, "maxOutputChannels": 0,
       "defaultSampleRate": 48000.0}
SPEAKERS = {"index": 1, "name": "Fake Speakers", "maxInputChannels": 0,
            "maxOutputChannels": 2, "defaultSampleRate": 44100.0}
USB = {"index": 2, "name": "USB Mic", "maxInputChannels": 1, "maxOutputChannels": 0,
       "defaultSampleRate": 16000.0}


# --------------------------------------------------------------------------- the fake


class FakeStream:
    def __init__(self, owner, *, format, channels, rate, input, input_device_index,
                 frames_per_buffer, stream_callback, start=True):
        assert input is True and format == owner.module.paInt16
        assert stream_callback is not None, "Microphone uses a callback stream"
        self.owner = owner
        self.kwargs = {"channels": channels, "rate": rate, "device": input_device_index,
                       "frames_per_buffer": frames_per_buffer}
        self.callback = stream_callback
        self.active = False
        self.stopped = self.closed = False
        self.delivered = threading.Event()  # the script has been played
        self._thread = threading.Thread(target=self._play, daemon=True)
        if start:
            self.start_stream()

    def start_stream(self):
        self.active = True
        self._thread.start()

    def _play(self):
        n, status = self.kwargs["frames_per_buffer"], 0
        flag = self.owner.module.paInputOverflow
        for item in self.owner.script:
            if self.stopped:
                break
            if isinstance(item, np.ndarray):
                for i in range(0, len(item), n):
                    if self.stopped:
                        break
                    block = item[i:i + n]
                    if len(block) < n:
                        block = np.concatenate([block, np.zeros((n - len(block),) +
                                                                block.shape[1:], np.int16)])
                    self.callback(block.astype("<i2").tobytes(), n, {}, status)
                    status = 0
            elif item == "overflow":
                status |= flag
            elif item == "interrupt":
                _thread.interrupt_main()  # what Ctrl-C does: SIGINT's handler runs
            elif item == "fail":
                self.active = False  # as PortAudio when the device goes away
                break
            else:
                raise AssertionError(f"bad script item {item!r}")
        self.delivered.set()
        # Otherwise the device stays open and silent, like an idle microphone.

    def is_active(self):
        return self.active and not self.stopped

    def stop_stream(self):
        self.stopped = True
        self.active = False

    def close(self):
        self.closed = True


def make_pyaudio(devices=(MIC, SPEAKERS), script=(), default_input=0, open_error=None,
                 init_error=None):
    """A module that quacks like ``pyaudio``; ``module.instances`` are the PyAudio objects."""
    module = types.ModuleType("pyaudio")
    module.paInt16, module.paContinue, module.paInputOverflow = 8, 0, 2
    module.instances = []

    class PyAudio:
        def __init__(self):
            if init_error is not None:
                raise init_error
            self.module, self.script = module, list(script)
            self.streams: list[FakeStream] = []
            self.terminated = False
            module.instances.append(self)

        def get_device_count(self):
            return len(devices)

        def get_device_info_by_index(self, i):
            return dict(devices[i])

        def get_default_input_device_info(self):
            if default_input is None:
                raise OSError(-9996, "No Default Input Device Available")
            return dict(devices[default_input])

        def open(self, **kwargs):
            if open_error is not None:
                raise open_error
            stream = FakeStream(self, **kwargs)
            self.streams.append(stream)
            return stream

        def terminate(self):
            self.terminated = True

    module.PyAudio = PyAudio
    return module


def install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "pyaudio", module)
    return module


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("model") / "random.pt")


def voice(seconds: float) -> np.ndarray:
    """A voiced, speech-like sound at RATE: a vibrato harmonic series with a 4 Hz syllable
    envelope (the voice-activity detector takes it for speech, unlike a flat noise)."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(150 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / RATE
    x = sum((0.5 / k) * np.sin(k * phase) for k in range(1, 20))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    return np.round(9000 * x / np.abs(x).max()).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def utterance_audio() -> np.ndarray:
    """0.5 s silence, 2 s voice, 1 s silence: one speech segment, 3.5 s (35 blocks)."""
    return np.concatenate([silence(0.5), voice(2.0), silence(1.0)])


def library_events(model_path, samples: np.ndarray, rate: int = RATE) -> list[dict]:
    """The library's EmotionStream events for ``samples`` fed in the microphone's blocks
    (its CNN cache makes float32 rounding depend on the chunking, by ~1e-8)."""
    stream = Recognizer.load(model_path).create_stream()
    events = []
    for i in range(0, len(samples), BLOCK):
        events += stream.accept_waveform(samples[i:i + BLOCK], rate)
    return [e.to_dict() for e in events + stream.flush()]


def strict_lines(text: str) -> list[dict]:
    def reject(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=reject) for line in text.splitlines()]


# ------------------------------------------------------------------------ listen


def test_listen_json_events_are_the_streams(model, monkeypatch, capsys):
    audio = utterance_audio()
    fake = install(monkeypatch, make_pyaudio(script=[audio]))
    code = main(["listen", "--json", "--model", str(model), "--seconds", "3.5"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = strict_lines(captured.out)
    events, summary = lines[:-1], lines[-1]
    assert events == library_events(model, audio)
    assert [e["type"] for e in events if e["type"] != "partial"] == [
        "speech_start", "utterance", "speech_end"]
    assert any(e["type"] == "partial" for e in events)
    for e in events:
        if "probabilities" in e:
            assert list(e["probabilities"]) == LABELS
            assert math.isclose(sum(e["probabilities"].values()), 1.0, abs_tol=1e-6)
    assert summary == {
        "type": "summary", "duration": 3.5, "segments": 1,
        "labels": [e["label"] for e in events if e["type"] == "utterance"],
        "overflows": 0, "input_overflows": 0, "dropped_chunks": 0, "interrupted": False,
        "device": "Fake Mic", "sample_rate": RATE,
    }
    assert "pyser listen: Fake Mic at 48000 Hz; Ctrl-C to stop" in captured.err
    (pa,) = fake.instances
    (stream,) = pa.streams
    assert stream.kwargs == {"channels": 1, "rate": RATE, "device": 0,
                             "frames_per_buffer": BLOCK}
    assert stream.stopped and stream.closed and pa.terminated


def test_listen_seconds_stops_after_that_much_audio(model, monkeypatch, capsys):
    install(monkeypatch, make_pyaudio(script=[utterance_audio()]))
    assert main(["listen", "--json", "--model", str(model), "--seconds", "1"]) == 0
    summary = strict_lines(capsys.readouterr().out)[-1]
    assert summary["duration"] == 1.0 and summary["interrupted"] is False


def test_overflows_are_counted_and_reported_not_fatal(model, monkeypatch, capsys):
    audio = utterance_audio()
    script = [audio[:10 * BLOCK], "overflow", audio[10 * BLOCK:20 * BLOCK], "overflow",
              audio[20 * BLOCK:]]
    install(monkeypatch, make_pyaudio(script=script))
    assert main(["listen", "--json", "--model", str(model), "--seconds", "3.5"]) == 0
    lines = strict_lines(capsys.readouterr().out)
    assert lines[-1]["overflows"] == lines[-1]["input_overflows"] == 2
    assert lines[-1]["dropped_chunks"] == 0 and lines[-1]["duration"] == 3.5
    assert lines[:-1] == library_events(model, audio)  # the audio itself went on

    install(monkeypatch, make_pyaudio(script=script))
    assert main(["listen", "--model", str(model), "--seconds", "3.5"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("listened to 3.50 s of audio: 1 speech segment (")
    assert last.endswith("; 2 input overflows (audio lost)")


def test_ctrl_c_flushes_and_prints_a_summary(model, monkeypatch, capsys):
    audio = np.concatenate([silence(0.5), voice(2.0)])  # still speaking at Ctrl-C
    install(monkeypatch, make_pyaudio(script=[audio, "interrupt"]))
    before = signal.getsignal(signal.SIGINT)
    code = main(["listen", "--json", "--model", str(model)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert signal.getsignal(signal.SIGINT) is before
    lines = strict_lines(captured.out)
    events, summary = lines[:-1], lines[-1]
    # Everything captured before the Ctrl-C is recognised, and the open segment is closed.
    assert events == library_events(model, audio)
    assert [e["type"] for e in events][-2:] == ["utterance", "speech_end"]
    assert summary["type"] == "summary" and summary["interrupted"] is True
    assert summary["duration"] == 2.5 and summary["segments"] == 1


def test_a_device_failure_mid_stream_keeps_the_results_and_exits_2(model, monkeypatch,
                                                                    capsys):
    audio = np.concatenate([silence(0.5), voice(1.5)])
    fake = install(monkeypatch, make_pyaudio(script=[audio, "fail"]))
    code = main(["listen", "--json", "--model", str(model)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.splitlines()[-1] == (
        "pyser listen: error: the input device stopped delivering audio (its PortAudio "
        "stream is no longer active: unplugged, or the sound server went away)")
    lines = strict_lines(captured.out)
    assert lines[:-1] == library_events(model, audio)
    assert lines[-1]["type"] == "summary" and "stopped delivering" in lines[-1]["error"]
    assert fake.instances[0].terminated and fake.instances[0].streams[0].closed


def test_a_device_that_cannot_be_opened_is_a_clear_error(model, monkeypatch, capsys):
    fake = install(monkeypatch, make_pyaudio(
        open_error=OSError(-9997, "Invalid sample rate")))
    assert main(["listen", "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err == ("pyser listen: error: cannot open input device 0 (Fake Mic) at 48000 Hz, "
                   "1 channel(s): [Errno -9997] Invalid sample rate; list the devices with "
                   "`pyser listen --list-devices`\n")
    assert fake.instances[0].terminated


def test_portaudio_that_cannot_start_is_a_clear_error(model, monkeypatch, capsys):
    install(monkeypatch, make_pyaudio(init_error=OSError(-9999, "Unanticipated host error")))
    assert main(["listen", "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyser listen: error: cannot start PortAudio: [Errno -9999] "
                          "Unanticipated host error")


@pytest.mark.parametrize("default_input", [None, 0])  # 0: an output named as default
def test_no_input_device_names_pyser_stream(model, monkeypatch, capsys, default_input):
    install(monkeypatch, make_pyaudio(devices=[SPEAKERS], default_input=default_input))
    assert main(["listen", "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyser listen: error: no audio input device found")
    assert "use `pyser stream FILE`" in err and "Traceback" not in err


def test_device_choice_by_index_and_name(model, monkeypatch, capsys):
    fake = install(monkeypatch, make_pyaudio(devices=[MIC, SPEAKERS, USB],
                                             script=[silence(0.5)]))
    assert main(["listen", "--json", "--model", str(model), "--device", "2",
                 "--seconds", "0.2"]) == 0
    assert fake.instances[-1].streams[0].kwargs["device"] == 2
    assert fake.instances[-1].streams[0].kwargs["rate"] == 16000
    assert strict_lines(capsys.readouterr().out)[-1]["device"] == "USB Mic"

    assert main(["listen", "--json", "--model", str(model), "--device", "fake",
                 "--seconds", "0.2"]) == 0
    assert fake.instances[-1].streams[0].kwargs["device"] == 0
    capsys.readouterr()

    for device, message in [("1", "no input device with index 1 (inputs: 0, 2)"),
                            ("7", "no input device with index 7"),
                            ("mic", "--device 'mic' matches several input device names"),
                            ("webcam", "--device 'webcam' matches no input device names")]:
        assert main(["listen", "--model", str(model), "--device", device]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"pyser listen: error: {message}")
        assert "--list-devices" in err


def test_list_devices(monkeypatch, capsys):
    install(monkeypatch, make_pyaudio(devices=[MIC, SPEAKERS, USB]))
    assert main(["listen", "--list-devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # a header and the two inputs, the default starred
    assert lines[1].split() == ["*", "0", "2", "48000", "Fake", "Mic"]
    assert lines[2].split() == ["2", "1", "16000", "USB", "Mic"]

    assert main(["listen", "--list-devices", "--json"]) == 0
    assert strict_lines(capsys.readouterr().out) == [
        {"index": 0, "name": "Fake Mic", "channels": 2, "default_sample_rate": 48000,
         "is_default": True},
        {"index": 2, "name": "USB Mic", "channels": 1, "default_sample_rate": 16000,
         "is_default": False},
    ]

    install(monkeypatch, make_pyaudio(devices=[SPEAKERS], default_input=None))
    assert main(["listen", "--list-devices"]) == 0
    assert "no audio input device found" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["listen"], ["listen", "--list-devices"]])
def test_missing_pyaudio_says_how_to_install_it(monkeypatch, capsys, tmp_path, argv):
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # `import pyaudio` raises ImportError
    # Reported before the model is looked at: the model here does not even exist.
    assert main([*argv, "--model", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyser listen: error: the microphone needs PyAudio")
    assert "pip install pyaudio" in err and "apt-get install portaudio19-dev" in err
    assert err.count("\n") == 1


def test_text_output_when_stdout_is_not_a_terminal(model, monkeypatch, capsys):
    install(monkeypatch, make_pyaudio(script=[utterance_audio()]))
    assert main(["listen", "--model", str(model), "--seconds", "3.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "speech start" in out[0] and any(" utterance " in line for line in out)
    assert out[-1].startswith("listened to 3.50 s of audio: 1 speech segment (")
    assert out[-1].endswith("; no input overflow")


def test_live_display_on_a_terminal(model, monkeypatch, capsys):
    install(monkeypatch, make_pyaudio(script=[utterance_audio()]))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["listen", "--model", str(model), "--seconds", "3.5"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" in out  # drawn with terminal control codes
    assert "pyser listen · Fake Mic" in out and "● speech" in out and "○ silence" in out
    for name in LABELS:
        assert name in out
    assert "listened to 3.50 s of audio: 1 speech segment" in out


# -------------------------------------------------------------------- Microphone


def test_microphone_yields_int16_blocks_and_closes(monkeypatch):
    audio = utterance_audio()
    fake = make_pyaudio(script=[audio])
    with Microphone(pyaudio=fake) as mic:
        assert mic.sample_rate == RATE and mic.device_info.name == "Fake Mic"
        blocks = []
        for block in mic:
            assert block.dtype == np.int16 and block.shape == (BLOCK,)
            blocks.append(block)
            if len(blocks) == len(audio) // BLOCK:
                break
    np.testing.assert_array_equal(np.concatenate(blocks), audio)
    assert fake.instances[0].streams[0].closed and fake.instances[0].terminated
    mic.close()  # twice is fine


def test_microphone_stereo_blocks():
    stereo = np.stack([voice(0.5), silence(0.5)], axis=1)
    fake = make_pyaudio(script=[stereo])
    with Microphone(pyaudio=fake, channels=2, sample_rate=RATE) as mic:
        first = next(iter(mic))
    assert first.shape == (BLOCK, 2) and first.dtype == np.int16
    np.testing.assert_array_equal(first, stereo[:BLOCK])
    with pytest.raises(AudioDeviceError, match="has 2 channel"):
        Microphone(pyaudio=make_pyaudio(), channels=3).open()


def test_microphone_counts_blocks_dropped_when_the_reader_lags():
    fake = make_pyaudio(script=[silence(1.0)])  # 10 blocks, read by nobody meanwhile
    mic = Microphone(pyaudio=fake, max_backlog_s=0.3).open()  # room for 3 blocks
    try:
        assert fake.instances[0].streams[0].delivered.wait(10)
        mic.request_stop()
        assert len(list(mic)) == 3
    finally:
        mic.close()
    assert mic.dropped_chunks == 7 and mic.input_overflows == 0 and mic.overflows == 7


def test_microphone_reports_a_stall():
    mic = Microphone(pyaudio=make_pyaudio(script=[]), stall_timeout_s=0.3)
    with mic:
        start = time.monotonic()
        with pytest.raises(AudioDeviceError, match=r"no audio from the input device for 0.3 s"):
            next(iter(mic))
        assert time.monotonic() - start < 5


def test_microphone_must_be_opened_and_validates_settings():
    with pytest.raises(RuntimeError, match="not open"):
        next(iter(Microphone(pyaudio=make_pyaudio())))
    for kwargs in ({"chunk_s": 0}, {"chunk_s": float("nan")}, {"channels": 0},
                   {"sample_rate": 12.5}, {"max_backlog_s": -1}):
        with pytest.raises(ValueError):
            Microphone(pyaudio=make_pyaudio(), **kwargs)


def test_list_input_devices_uses_the_module_given():
    devices = list_input_devices(pyaudio=make_pyaudio(devices=[MIC, SPEAKERS, USB],
                                                      default_input=2))
    assert [(d.index, d.name, d.is_default) for d in devices] == [
        (0, "Fake Mic", False), (2, "USB Mic", True)]
