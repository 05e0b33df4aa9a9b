"""``pyser bench``'s command layer (pyser.benchmarks.command) on tiny sizes.

The benchmark sizes are patched down (``TINY``) so that a run takes a few
seconds; every assertion is on the report's content, none on a timing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pyser.benchmarks import command, features

TINY = features.Settings(
    offline_seconds=1.0,
    offline_warmup=0,
    offline_repeats=1,
    stream_warmup_seconds=0.1,
    stream_seconds=0.2,
    stream_rounds=1,
    batch_size=4,
    batch_repeats=1,
    probe_blocks=1,
    overhead_calls=100,
    perf_seconds=1,
    perf_repeats=1,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pyser bench")
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def table_rows(text: str, heading: str) -> list[str]:
    """First cells of the Markdown table under the ``## heading`` that starts with it."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row.split("|")[1].strip() for row in rows[1:]]  # rows[0] is the header


def thread_state() -> tuple[int, dict[str, int]]:
    """torch's thread count and, with threadpoolctl, each loaded BLAS/OpenMP pool's."""
    torch = pytest.importorskip("torch")
    pools = {}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        pools = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    return torch.get_num_threads(), pools


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    for preset in ("QUICK", "STANDARD", "FULL"):
        monkeypatch.setattr(features, preset, TINY)


def test_quick_report_has_pyser_rows_and_notes_for_missing_peers(
    tiny: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    # librosa is installed for the tests: make it (and the other optional peers, and the
    # streaming-latency module) unimportable, as on a machine without them.
    for name in ("librosa", "kaldi_native_fbank", "python_speech_features"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, command.STREAM_MODULE, None)
    out = tmp_path / "report.md"
    before = thread_state()

    status = command.run(parse("--quick", "--out", str(out)))

    assert status == 0
    after = thread_state()  # the limits hold for the run only
    assert after[0] == before[0]
    assert {lib: after[1][lib] for lib in before[1]} == before[1]  # (the run may load more)
    text = capsys.readouterr().out
    assert out.read_text() == text  # the report printed is the report written
    assert text.startswith("# pyser benchmark\n")

    offline = table_rows(text, "1. Offline")
    assert offline[0] == "pyser"
    assert {"numpy", "scipy.fft"} <= set(offline)
    assert "librosa" not in offline and "python_speech_features" not in offline
    pyser_row = next(line for line in text.splitlines() if line.startswith("| pyser |"))
    assert "max abs Δ 0.0e+00 dB" in pyser_row  # pyser against itself
    assert table_rows(text, "2. Streaming") == ["pyser", "numpy loop"]
    assert "pyser streamed frames vs offline `extract_features`: identical" in text
    assert table_rows(text, "3. Batch")[:2] == [features.BATCH_1, features.BATCH_2]
    assert "Batch output equals per-utterance `extract_features`: yes" in text
    assert "## 4. Profile" in text
    assert "perf profile not run (--quick or --no-perf)." in text

    notes = text.split("## Notes", 1)[1]
    assert "- librosa: not installed" in notes
    assert "- python_speech_features: not installed" in notes
    assert "- kaldi-native-fbank: not installed" in notes
    assert "Mel matrix for the numpy/scipy/torch peers: pyser's own (librosa missing)" in notes
    assert f"Streaming latency: not measured, this pyser has no `{command.STREAM_MODULE}`" in notes
    assert "- threads: " in text and "torch.get_num_threads() = 1" in text


def test_default_run_adds_the_stream_section_and_skips_perf_outside_a_checkout(
    tiny: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    calls: list[bool] = []

    def run_stream_benchmark(quick: bool) -> str:
        calls.append(quick)
        return "## Streaming recognition latency\n\n| hop | p50 ms |\n|---|---:|\n| 0.48 s | 1.0 |\n"

    fake = types.ModuleType(command.STREAM_MODULE)
    fake.run_stream_benchmark = run_stream_benchmark
    monkeypatch.setitem(sys.modules, command.STREAM_MODULE, fake)
    monkeypatch.setattr(features, "find_repo", lambda: None)  # as from an installed wheel

    assert command.run(parse()) == 0  # perf on by default: skipped with a note

    text = capsys.readouterr().out
    assert calls == [False]
    assert "no per-stage C++ profile: bench/profile_frame.cpp and csrc/ are not here" in text
    assert "installed from a package, no csrc/ to compare" in text
    assert "git HEAD" not in text
    # The stream section comes after the feature sections, before the notes.
    assert text.index("## 4. Profile") < text.index("## Streaming recognition latency")
    assert text.index("## Streaming recognition latency") < text.index("## Notes")


def test_features_only_does_not_touch_the_stream_module(
    tiny: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    fake = types.ModuleType(command.STREAM_MODULE)  # would fail: no entry point
    monkeypatch.setitem(sys.modules, command.STREAM_MODULE, fake)
    assert command.run(parse("--quick", "--features-only")) == 0
    text = capsys.readouterr().out
    assert text.startswith("# pyser feature benchmark\n")
    assert "Streaming latency" not in text


def test_stream_only_without_the_stream_module_runs_nothing_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def no_features(*args: object, **kwargs: object) -> dict:
        raise AssertionError("--stream-only ran the feature benchmark")

    monkeypatch.setattr(features, "run_features", no_features)
    monkeypatch.setitem(sys.modules, command.STREAM_MODULE, None)
    assert command.run(parse("--stream-only")) == 1
    text = capsys.readouterr().out
    assert "- CPU: " in text
    assert "Streaming latency: not measured" in text


def test_options() -> None:
    args = parse()
    assert (args.quick, args.full, args.perf, args.out) == (False, False, True, None)
    assert parse("--no-perf").perf is False
    with pytest.raises(SystemExit):
        parse("--quick", "--full")
    with pytest.raises(SystemExit):
        parse("--features-only", "--stream-only")
    sub = argparse.ArgumentParser(prog="pyser").add_subparsers(dest="command")
    command.register(sub)
    assert sub.choices["bench"].parse_args(["--quick"]).func is command.run


def test_thread_line_says_whether_blas_threads_are_limited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without threadpoolctl, numpy's BLAS keeps its threads unless the variables were
    set before numpy loaded; the report says which case it is."""
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    for var in features.THREAD_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    with features.single_threaded() as line:
        assert "**BLAS may use several threads**" in line
    with features.single_threaded(env_pinned=True) as line:
        assert "set before numpy was imported" in line
    for var in features.THREAD_ENV_VARS:
        monkeypatch.setenv(var, "1")  # exported in the shell: there before numpy loaded
    with features.single_threaded() as line:
        assert "set before numpy was imported" in line


def test_importing_pyser_or_the_command_layer_does_no_benchmark_work() -> None:
    code = (
        "import os, sys\n"
        "import pyser\n"
        "assert 'pyser.benchmarks' not in sys.modules\n"
        "env = dict(os.environ)\n"
        "from pyser.benchmarks import command\n"
        "assert 'pyser.benchmarks.features' not in sys.modules\n"
        "assert 'torch' not in sys.modules and 'scipy' not in sys.modules\n"
        "import pyser.benchmarks.features\n"
        "assert 'torch' not in sys.modules\n"
        "assert dict(os.environ) == env\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_adaptation_run_times_every_call_of_both_streams() -> None:
    """The VAD-on run feeds the same talk turns to an adapting and a non-adapting stream of
    the bundled model: every segment closes, and only the adapting one builds a history."""
    from pyser.benchmarks import stream as bench
    from pyser.stream import Recognizer

    rec = Recognizer.load()
    times, heard = bench._segment_latency(rec, turns=3)
    calls = len(bench._turns(3, seed=5)) // bench.CHUNK
    for name in ("adapting", "not adapting"):
        assert len(times[name]["all"]) == calls
        assert len(times[name]["utterance"]) == len(times[name]["speech_start"]) == 3
        assert len(times[name]["partial"]) >= 3 and (times[name]["all"] > 0).all()
    assert heard["segments"] == 3 and 3.0 < heard["speech_s"] < heard["audio_s"]
    text = "\n".join(bench._segment_lines(times, heard, 3))
    assert "| adapting | `speech_start` | 3 |" in text and "holds" in text
