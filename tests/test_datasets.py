"""pyser.training.datasets: corpus parsers on generated trees in the original layouts, and on
the real corpora (``@pytest.mark.corpus``)."""

from __future__ import annotations

import csv
import functools
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pyser.training.datasets import (
    EMOTIONS,
    IEMOCAP_4CLASS_COUNTS,
    IEMOCAP_4CLASS_TOTAL,
    TASKS,
    UNKNOWN_SPEAKER,
    Utterance,
    check_iemocap_count,
    label_map,
    load_corpus,
)
from pyser.training.splits import speaker_folds

SR = 16000


def write_audio(path: Path, seconds: float = 0.25, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32)
    sf.write(str(path), x, SR)
    return path


def problem_names(report) -> set[str]:
    return {Path(str(p).split(":")[0]).name for p, _ in report.problems}


# --------------------------------------------------------------------------- labels


def test_label_maps():
    assert label_map("iemocap") == {
        "neu": "neutral", "ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad"
    }
    assert label_map("emodb") == {"N": "neutral", "W": "angry", "F": "happy", "T": "sad"}
    assert label_map("ravdess") == {"01": "neutral", "05": "angry", "03": "happy", "04": "sad"}
    assert label_map("tess") == {"neutral": "neutral", "angry": "angry", "happy": "happy",
                                 "sad": "sad"}
    assert sorted(label_map("emodb", "emodb7").values()) == sorted(TASKS["emodb7"])
    assert sorted(label_map("ravdess", "ravdess8").values()) == sorted(TASKS["ravdess8"])
    assert sorted(label_map("tess", "tess7").values()) == sorted(TASKS["tess7"])
    # Without the 4class merge, excited is its own emotion.
    assert label_map("iemocap", None)["exc"] == "excited"
    assert "xxx" not in label_map("iemocap", None)
    with pytest.raises(ValueError):
        label_map("iemocap", "5class")
    with pytest.raises(ValueError):
        load_corpus("crema", "/nonexistent")


def test_utterance_hashable_and_meta_ignored():
    a = Utterance(Path("a.wav"), "sad", "s1", 1.0, "x", {"k": [1]})
    b = Utterance(Path("a.wav"), "sad", "s1", 1.0, "x", {"k": [2]})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.name == "a"
    with pytest.raises(AttributeError):
        a.label = "happy"  # frozen


# --------------------------------------------------------------------------- IEMOCAP

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def iemocap_eval(turns: list[tuple[str, str]], extra: str = "") -> str:
    out = [HEADER]
    for i, (turn, emo) in enumerate(turns):
        out.append(f"[{6.2901 + 3 * i:.4f} - {8.2357 + 3 * i:.4f}]\t{turn}\t{emo}\t"
                   "[2.5000, 3.0000, 2.0000]\n")
        out.append("C-E2:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n")
    return "".join(out) + extra


def make_iemocap(root: Path, sessions=(1, 2), write_missing=False) -> Path:
    """A small tree in the IEMOCAP_full_release layout; returns the release folder."""
    rel = root / "IEMOCAP_full_release"
    for s in sessions:
        sess = rel / f"Session{s}"
        ev = sess / "dialog" / "EmoEvaluation"
        ev.mkdir(parents=True)
        # Per-evaluator files of the release live in subfolders and are not read.
        (ev / "Categorical").mkdir()
        (ev / "Categorical" / f"Ses0{s}F_impro01_e2_cat.txt").write_text(
            f"Ses0{s}F_impro01_F000 :Neutral; ()\n"
        )
        impro = f"Ses0{s}F_impro01"
        turns = [
            (f"{impro}_F000", "neu"),
            (f"{impro}_M000", "exc"),   # merged into happy
            (f"{impro}_F001", "hap"),
            (f"{impro}_M001", "xxx"),   # no agreement: excluded
            (f"{impro}_F002", "fru"),   # outside 4 classes: excluded
            (f"{impro}_M002", "ang"),
        ]
        bad = ""
        if s == 1:
            bad = ("[10.1 - ]\tSes01F_impro01_F009\tneu\t[2.5, 2.5, 2.5]\n"  # malformed
                   f"[40.0 - 41.0]\t{impro}_F003\tsad\t[2.0, 2.0, 2.0]\n")  # audio missing
        (ev / f"{impro}.txt").write_text(iemocap_eval(turns, bad))
        for turn, emo in turns:
            if emo in ("neu", "exc", "hap", "ang", "xxx", "fru"):
                suffix = ".flac" if turn.endswith("M002") else ".wav"
                write_audio(sess / "sentences" / "wav" / impro / f"{turn}{suffix}")
        script = f"Ses0{s}M_script01_1"
        sturns = [(f"{script}_F000", "sad"), (f"{script}_M000", "neu")]
        (ev / f"{script}.txt").write_text(iemocap_eval(sturns))
        for turn, _ in sturns:
            write_audio(sess / "sentences" / "wav" / script / f"{turn}.wav", seconds=0.5)
        if write_missing and s == 1:
            write_audio(sess / "sentences" / "wav" / impro / f"{impro}_F003.wav")
    return rel


def test_iemocap_release_layout(tmp_path, caplog):
    make_iemocap(tmp_path)
    with caplog.at_level(logging.WARNING):
        utts = load_corpus("iemocap", tmp_path)  # parent of IEMOCAP_full_release
    by_name = {u.name: u for u in utts}
    assert len(utts) == 2 * 6  # per session: neu, exc, hap, ang + 2 scripted
    assert Counter(u.label for u in utts) == {"neutral": 4, "happy": 4, "angry": 2, "sad": 2}
    exc = by_name["Ses01F_impro01_M000"]
    assert exc.label == "happy" and exc.meta["emotion"] == "exc"
    assert exc.speaker == "Ses01M" and exc.meta["gender"] == "M"  # the turn's speaker
    assert exc.meta["type"] == "improvised" and exc.meta["session"] == 1
    assert exc.corpus == "iemocap" and exc.meta["dialog"] == "Ses01F_impro01"
    assert exc.meta["vad"] == (2.5, 3.0, 2.0)
    assert exc.meta["start_s"] == pytest.approx(9.2901)
    sc = by_name["Ses02M_script01_1_F000"]
    assert (sc.label, sc.speaker, sc.meta["type"], sc.meta["session"]) == (
        "sad", "Ses02F", "scripted", 2)
    assert sc.duration_s == pytest.approx(0.5)
    assert by_name["Ses01F_impro01_M002"].path.suffix == ".flac"
    assert "Ses01F_impro01_M001" not in by_name and "Ses01F_impro01_F002" not in by_name
    rep = utts.report
    assert rep.excluded == {"xxx": 2, "fru": 2}
    reasons = " ".join(r for _, r in rep.problems)
    assert len(rep.problems) == 2
    assert "malformed evaluation line" in reasons
    assert "missing audio for Ses01F_impro01_F003" in reasons
    assert "Ses01F_impro01_F003" in caplog.text and "malformed" in caplog.text
    assert [str(u.path) for u in utts] == sorted(str(u.path) for u in utts)
    # Given the release folder itself, the result is the same.
    again = load_corpus("iemocap", tmp_path / "IEMOCAP_full_release")
    assert list(again) == list(utts)


def test_iemocap_missing_audio_found_when_present(tmp_path):
    make_iemocap(tmp_path, write_missing=True)
    utts = load_corpus("iemocap", tmp_path)
    assert "Ses01F_impro01_F003" in {u.name for u in utts}
    assert len(utts.report.problems) == 1


def test_iemocap_other_tasks(tmp_path):
    make_iemocap(tmp_path)
    utts = load_corpus("iemocap", tmp_path, task=None)
    labels = Counter(u.label for u in utts)
    assert labels["excited"] == 2 and labels["happy"] == 2 and labels["frustrated"] == 2
    assert "xxx" in utts.report.excluded and utts.report.excluded["xxx"] == 2


def test_iemocap_count_check(tmp_path, caplog):
    make_iemocap(tmp_path, sessions=(1, 2, 3, 4, 5))
    with caplog.at_level(logging.WARNING, logger="pyser.training.datasets"):
        utts = load_corpus("iemocap", tmp_path)
    assert f"official release gives {IEMOCAP_4CLASS_TOTAL}" in caplog.text
    info = check_iemocap_count(utts)
    assert info["full_tree"] and not info["matches"] and info["total"] == len(utts) == 30
    assert info["per_code"]["exc"] == 5 and info["sessions"] == [1, 2, 3, 4, 5]
    caplog.clear()
    partial = [u for u in utts if u.meta["session"] != 5]
    with caplog.at_level(logging.WARNING, logger="pyser.training.datasets"):
        info = check_iemocap_count(partial)
    assert not info["full_tree"] and "official release" not in caplog.text


# The official release's 4-class counts, as published (not read from pyser.training.datasets).
OFFICIAL_4CLASS = {"neu": 1708, "ang": 1103, "hap": 595, "exc": 1041, "sad": 1084}


def make_iemocap_release(root: Path, counts: dict[str, int]) -> Path:
    """A release tree with ``counts[code]`` turns of each emotion code over five sessions,
    improvised and scripted dialogs of up to 60 turns, both speakers; every turn has its own
    audio file (hard links to one short WAV, to keep the tree cheap)."""
    rel = root / "IEMOCAP_full_release"
    template = write_audio(root / "template.wav", seconds=0.05)
    turns = [code for code, n in counts.items() for _ in range(n)]
    for s in range(1, 6):
        mine = turns[s - 1 :: 5]  # spread every code over the five sessions
        ev = rel / f"Session{s}" / "dialog" / "EmoEvaluation"
        ev.mkdir(parents=True)
        for d, start in enumerate(range(0, len(mine), 60)):
            kind = "impro" if d % 2 == 0 else "script"
            dialog = f"Ses0{s}{'FM'[d % 2]}_{kind}{d:02d}" + ("" if kind == "impro" else "_1")
            wav_dir = rel / f"Session{s}" / "sentences" / "wav" / dialog
            wav_dir.mkdir(parents=True)
            chunk = mine[start : start + 60]
            names = [f"{dialog}_{'FM'[k % 2]}{k:03d}" for k in range(len(chunk))]
            (ev / f"{dialog}.txt").write_text(iemocap_eval(list(zip(names, chunk))))
            for name in names:
                os.link(template, wav_dir / f"{name}.wav")
    return rel


def test_iemocap_4class_count_of_a_full_release_tree(tmp_path, caplog):
    """5,531 comes out of the loader on a generated release tree (excluded codes included),
    and one missing file is noticed."""
    counts = dict(OFFICIAL_4CLASS, fru=1849, xxx=2507, sur=107, fea=40, oth=3, dis=2)
    make_iemocap_release(tmp_path, counts)
    with caplog.at_level(logging.WARNING, logger="pyser.training.datasets"):
        utts = load_corpus("iemocap", tmp_path)
    assert len(utts) == 5531 == IEMOCAP_4CLASS_TOTAL
    assert Counter(u.meta["emotion"] for u in utts) == OFFICIAL_4CLASS == IEMOCAP_4CLASS_COUNTS
    assert Counter(u.label for u in utts) == {"neutral": 1708, "angry": 1103, "happy": 1636,
                                              "sad": 1084}
    assert utts.report.excluded == {"fru": 1849, "xxx": 2507, "sur": 107, "fea": 40, "oth": 3,
                                    "dis": 2}
    assert not utts.report.problems and caplog.text == ""
    info = check_iemocap_count(utts)
    assert info["full_tree"] and info["matches"] and info["total"] == 5531
    assert info["sessions"] == [1, 2, 3, 4, 5]
    # One turn's audio missing: the loader reports it and the count check warns.
    gone = next(u for u in utts if u.meta["emotion"] == "exc")
    gone.path.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyser.training.datasets"):
        fewer = load_corpus("iemocap", tmp_path)
    assert len(fewer) == 5530 and len(fewer.report.problems) == 1
    assert "5530 utterances" in caplog.text and "official release gives 5531" in caplog.text


def test_iemocap_without_sessions(tmp_path):
    with pytest.raises(FileNotFoundError, match="Session"):
        load_corpus("iemocap", tmp_path)
    with pytest.raises(FileNotFoundError):
        load_corpus("iemocap", tmp_path / "nope")


# --------------------------------------------------------------------------- EmoDB


def test_emodb(tmp_path, caplog):
    wav = tmp_path / "wav"
    for name in ["03a01Fa.wav", "03a01Nc.wav", "08b02Wb.flac", "09a05Tb.wav", "10a07La.wav",
                 "13a01Ea.wav", "03a01Xa.wav", "notes.wav"]:
        write_audio(wav / name)
    (wav / "12a01Fa.wav").write_bytes(b"RIFF not really a wave file")
    (tmp_path / "README.md").write_text("readme")
    with caplog.at_level(logging.WARNING):
        utts = load_corpus("emodb", tmp_path)
    got = {(u.name, u.label, u.speaker) for u in utts}
    assert got == {("03a01Fa", "happy", "03"), ("03a01Nc", "neutral", "03"),
                   ("08b02Wb", "angry", "08"), ("09a05Tb", "sad", "09")}
    u = next(u for u in utts if u.name == "08b02Wb")
    assert u.meta == {"emotion": "W", "emotion_name": "angry", "gender": "female",
                      "text": "b02", "version": "b"}
    assert u.duration_s == pytest.approx(0.25) and u.corpus == "emodb"
    rep = utts.report
    assert rep.excluded == {"L": 1, "E": 1}
    assert problem_names(rep) == {"03a01Xa.wav", "notes.wav", "12a01Fa.wav"}
    assert "12a01Fa.wav" in caplog.text and "notes.wav" in caplog.text
    assert rep.ignored == 1  # README.md
    full = load_corpus("emodb", tmp_path, task="emodb7")
    assert Counter(u.label for u in full)["bored"] == 1 and len(full) == 6


# --------------------------------------------------------------------------- RAVDESS


def test_ravdess(tmp_path):
    files = {
        "Actor_01/03-01-01-01-01-01-01.wav": ("neutral", "01"),
        "Actor_01/03-01-05-02-01-02-01.wav": ("angry", "01"),
        "Actor_02/03-01-03-01-02-01-02.flac": ("happy", "02"),
        "Actor_03/03-01-04-01-01-01-05.wav": ("sad", "05"),  # wrong folder: name wins
    }
    others = [
        "Actor_02/03-01-02-01-01-01-02.wav",  # calm: excluded from 4class
        "Actor_02/03-02-03-01-01-01-02.wav",  # song
        "Actor_02/01-01-03-01-01-01-02.wav",  # audio-video modality
        "Actor_02/03-01-09-01-01-01-02.wav",  # no emotion 09
        "Actor_02/03-01-04-01-01.wav",        # too few fields
    ]
    for i, rel in enumerate(list(files) + others):
        write_audio(tmp_path / rel, seed=i)
    utts = load_corpus("ravdess", tmp_path)
    got = {u.path.relative_to(tmp_path).as_posix(): (u.label, u.speaker) for u in utts}
    assert got == files
    angry = next(u for u in utts if u.label == "angry")
    assert angry.meta["intensity"] == "strong" and angry.meta["gender"] == "male"
    assert angry.meta["repetition"] == 2 and angry.meta["statement"] == 1
    happy = next(u for u in utts if u.label == "happy")
    assert happy.meta["gender"] == "female" and happy.meta["emotion"] == "03"
    rep = utts.report
    assert rep.excluded == {"02": 1}
    assert problem_names(rep) == {Path(p).name for p in others[1:]}
    assert [p.name for p, _ in rep.repaired] == ["03-01-04-01-01-01-05.wav"]
    assert len(load_corpus("ravdess", tmp_path, task="ravdess8")) == 5


# --------------------------------------------------------------------------- TESS


def test_tess(tmp_path):
    files = {
        "OAF_Fear/OAF_back_fear.wav": ("fearful", "OAF"),
        "OAF_neutral/OA_bite_neutral.wav": ("neutral", "OAF"),  # release anomaly, repaired
        "YAF_pleasant_surprised/YAF_gaze_ps.wav": ("surprised", "YAF"),
        "OAF_Pleasant_surprise/OAF_bar_ps.wav": ("surprised", "OAF"),
        "YAF_happy/YAF_dog_happy.flac": ("happy", "YAF"),
        "YAF_sad/YAF_bath_sad.wav": ("sad", "YAF"),
        "YAF_angry/YAF_base_angry.wav": ("angry", "YAF"),
    }
    bad = [
        "YAF_angry/YAF_bad.wav",           # two fields
        "YAF_sad/YAF_kill_angry.wav",      # emotion disagrees with folder
        "OAF_Sad/XYZ_word_sad.wav",        # unknown speaker
        "YAF_sad/YAF_word_bored.wav",      # not a TESS emotion
        "OAF_sad/YAF_word_sad.wav",        # speaker disagrees with folder
    ]
    for i, rel in enumerate(list(files) + bad):
        write_audio(tmp_path / rel, seed=i)
    utts = load_corpus("tess", tmp_path, task="tess7")
    got = {u.path.relative_to(tmp_path).as_posix(): (u.label, u.speaker) for u in utts}
    assert got == files
    rep = utts.report
    assert problem_names(rep) == {Path(p).name for p in bad}
    assert [p.name for p, _ in rep.repaired] == ["OA_bite_neutral.wav"]
    u = next(u for u in utts if u.name == "YAF_dog_happy")
    assert u.meta["word"] == "dog" and u.meta["age"] == 26 and u.meta["emotion"] == "happy"
    four = load_corpus("tess", tmp_path)
    assert Counter(u.label for u in four) == {"neutral": 1, "happy": 1, "sad": 1, "angry": 1}
    assert four.report.excluded == {"fear": 1, "ps": 2}


# --------------------------------------------------------------------------- CSV


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_csv_manifest(tmp_path):
    a = write_audio(tmp_path / "audio" / "a.wav")
    write_audio(tmp_path / "audio" / "b.flac", seconds=0.5)
    c = write_audio(tmp_path / "elsewhere" / "c.wav")
    write_audio(tmp_path / "audio" / "d.wav")
    rows = [
        {"path": "audio/a.wav", "label": "Anger", "speaker": "s1", "session": "1"},
        {"path": "audio/b.flac", "label": "sad", "speaker": "s2", "session": "1"},
        {"path": str(c.resolve()), "label": "happiness", "speaker": "s3", "session": "2"},
        {"path": "audio/d.wav", "label": "boredom", "speaker": "s3", "session": "2"},
        {"path": "audio/missing.wav", "label": "neutral", "speaker": "s4", "session": "2"},
    ]
    man = write_csv(tmp_path / "data.csv", rows)
    utts = load_corpus("csv", man)
    assert [(u.path.name, u.label, u.speaker) for u in utts] == [
        ("a.wav", "angry", "s1"), ("b.flac", "sad", "s2"), ("c.wav", "happy", "s3")]
    assert utts[0].path == a and utts[0].meta["session"] == "1" and utts[0].corpus == "csv"
    assert utts[1].duration_s == pytest.approx(0.5)
    assert utts.report.excluded == {"boredom": 1}
    assert problem_names(utts.report) == {"missing.wav"}
    raw = load_corpus("csv", man, task=None)
    assert [u.label for u in raw] == ["Anger", "sad", "boredom", "happiness"]  # sorted by path


def test_csv_without_speaker(tmp_path, caplog):
    for i in range(3):
        write_audio(tmp_path / f"{i}.wav", seed=i)
    write_csv(tmp_path / "manifest.csv",
              [{"path": f"{i}.wav", "emotion": "neutral"} for i in range(3)])
    with caplog.at_level(logging.WARNING):
        utts = load_corpus("csv", tmp_path)  # folder holding manifest.csv
    assert "no 'speaker' column" in caplog.text
    assert {u.speaker for u in utts} == {UNKNOWN_SPEAKER} and len(utts) == 3
    assert utts[0].meta["speaker_known"] is False
    with pytest.raises(ValueError, match="no speaker information"):
        speaker_folds(utts, 3)


def test_csv_bad_columns(tmp_path):
    man = write_csv(tmp_path / "m.csv", [{"file": "x.wav", "label": "sad"}])
    with pytest.raises(ValueError, match="'path'"):
        load_corpus("csv", man)
    with pytest.raises(FileNotFoundError):
        load_corpus("csv", tmp_path / "none.csv")


# --------------------------------------------------------------------------- real corpora

EXPECTED_4CLASS = {  # this copy of the data (held-out speakers removed)
    "emodb": {"angry": 100, "neutral": 63, "happy": 54, "sad": 49},
    "ravdess": {"neutral": 72, "angry": 144, "happy": 144, "sad": 144},
    "tess": {"neutral": 400, "angry": 400, "happy": 400, "sad": 400},
}
EXPECTED_SPEAKERS = {
    "emodb": {"03", "08", "09", "10", "11", "12", "13", "14"},
    "ravdess": {f"{i:02d}" for i in range(1, 19)},
    "tess": {"OAF", "YAF"},
}


@functools.cache
def load_real(folder: Path, name: str, task: str | None = "4class"):
    return load_corpus(name, folder, task=task)


def read_manifest(folder: Path) -> dict[str, dict]:
    with (folder / "manifest.csv").open(newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["emodb", "ravdess", "tess"])
def test_real_corpus_against_manifest(data_root, name):
    folder = data_root / name
    manifest = read_manifest(folder)
    utts = load_real(folder, name, None)
    assert utts.report.problems == []
    got = {u.path.relative_to(folder).as_posix(): u for u in utts}
    assert set(got) == set(manifest)  # every file parsed, none invented
    for rel, row in manifest.items():
        u = got[rel]
        assert u.speaker == row["speaker"], rel
        assert u.label == EMOTIONS["csv"][row["emotion"].lower()], rel
        assert u.duration_s == pytest.approx(float(row["duration_s"]), abs=1e-4), rel
        assert u.meta["gender"] == row["gender"], rel
    # Per-emotion counts agree with the manifest.
    canon = Counter(EMOTIONS["csv"][row["emotion"].lower()] for row in manifest.values())
    assert Counter(u.label for u in utts) == canon
    four = load_real(folder, name)
    assert Counter(u.label for u in four) == EXPECTED_4CLASS[name]
    assert {u.speaker for u in four} == EXPECTED_SPEAKERS[name]
    assert {k: v for k, v in canon.items() if k in TASKS["4class"]} == EXPECTED_4CLASS[name]
    # The generic CSV loader on the manifest gives the same utterances.
    via_csv = load_corpus("csv", folder / "manifest.csv")
    assert [(u.path, u.label, u.speaker) for u in via_csv] == [
        (u.path, u.label, u.speaker) for u in four]


@pytest.mark.corpus
def test_real_tess_repairs_known_anomaly(data_root):
    utts = load_real(data_root / "tess", "tess")
    assert [p.name for p, _ in utts.report.repaired] == ["OA_bite_neutral.flac"]


# --------------------------------------------------------------------------- corpus marker


def test_corpus_marker_skips_only_without_data(tmp_path):
    """The conftest hook: corpus tests skip (with the reason) iff the data folder is absent."""
    import os
    import shutil
    import subprocess
    import sys

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers\nmarkers =\n    corpus: needs the corpora\n"
    )
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.corpus\ndef test_needs_data(data_root):\n    assert data_root.is_dir()\n\n"
        "def test_plain():\n    pass\n"
    )

    def run(data: Path) -> str:
        env = {**os.environ, "PYSER_DATA": str(data), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        res = subprocess.run(
            [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        return res.stdout + res.stderr

    out = run(tmp_path / "absent")
    assert "1 passed, 1 skipped" in out and "corpus data folder" in out and "absent" in out
    (tmp_path / "present").mkdir()
    assert "2 passed" in run(tmp_path / "present")
