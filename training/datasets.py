"""Emotional speech corpora: file-name parsers, label maps and tasks.

Every corpus is read from its *original* file-naming scheme by walking the
corpus folder (not from a manifest), so the same code works on the official
releases. Audio may be ``.wav`` or ``.flac`` (the copies in ``shared/data`` are
FLAC with the original names).

Labels go through two maps:

1. corpus code -> canonical emotion name (``EMOTIONS``), e.g. EmoDB ``W`` ->
   ``angry``, IEMOCAP ``exc`` -> ``excited``;
2. canonical name -> task label: the task's merges (``TASK_MERGES``, e.g.
   ``excited`` -> ``happy`` in the paper's ``4class`` task), then kept only if
   the result is one of the task's labels (``TASKS``).

Utterances whose emotion falls outside the task are *excluded* and counted in
the load report (not an error). Files whose names do not follow the corpus's
scheme, or that cannot be read, are *problems*: each is logged with its path
(``logging.warning``), recorded in the report and skipped.

``load_corpus`` returns a :class:`CorpusList` (a ``list`` of
:class:`Utterance`, sorted by path) whose ``report`` attribute is the
:class:`LoadReport`.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AUDIO_SUFFIXES",
    "CORPORA",
    "EMOTIONS",
    "IEMOCAP_4CLASS_COUNTS",
    "IEMOCAP_4CLASS_TOTAL",
    "TASKS",
    "TASK_MERGES",
    "UNKNOWN_SPEAKER",
    "CorpusList",
    "LoadReport",
    "Utterance",
    "check_iemocap_count",
    "label_map",
    "load_corpora",
    "load_corpus",
    "load_csv",
    "load_emodb",
    "load_iemocap",
    "load_ravdess",
    "load_tess",
    "task_label",
]

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")
UNKNOWN_SPEAKER = "unknown"

# --------------------------------------------------------------------------- tasks

TASKS: dict[str, tuple[str, ...]] = {
    # Dai et al. 2019 (and most IEMOCAP work): IEMOCAP happy = happy + excited.
    "4class": ("neutral", "angry", "happy", "sad"),
    # Full label sets of the other corpora, in the order of their documentation.
    "emodb7": ("angry", "bored", "disgust", "fearful", "happy", "sad", "neutral"),
    "ravdess8": ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    "tess7": ("angry", "disgust", "fearful", "happy", "neutral", "surprised", "sad"),
}

# Canonical emotion -> task label, applied before the task's label filter.
TASK_MERGES: dict[str, dict[str, str]] = {
    "4class": {"excited": "happy"},
}

# Corpus code -> canonical emotion name; None = never usable (no agreement).
EMOTIONS: dict[str, dict[str, str | None]] = {
    "iemocap": {
        "neu": "neutral", "ang": "angry", "hap": "happy", "exc": "excited", "sad": "sad",
        "fru": "frustrated", "sur": "surprised", "fea": "fearful", "dis": "disgust",
        "oth": "other", "xxx": None,
    },
    "emodb": {
        "W": "angry", "L": "bored", "E": "disgust", "A": "fearful", "F": "happy",
        "T": "sad", "N": "neutral",
    },
    "ravdess": {
        "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
        "06": "fearful", "07": "disgust", "08": "surprised",
    },
    "tess": {
        "angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
        "neutral": "neutral", "ps": "surprised", "sad": "sad",
    },
    # Generic manifests: common spellings (lower-cased before lookup).
    "csv": {
        "neutral": "neutral", "neu": "neutral",
        "angry": "angry", "anger": "angry", "ang": "angry",
        "happy": "happy", "happiness": "happy", "hap": "happy", "joy": "happy",
        "sad": "sad", "sadness": "sad",
        "fear": "fearful", "fearful": "fearful", "fea": "fearful",
        "disgust": "disgust", "dis": "disgust",
        "surprise": "surprised", "surprised": "surprised", "sur": "surprised",
        "ps": "surprised", "pleasant_surprise": "surprised",
        "calm": "calm", "boredom": "bored", "bored": "bored",
        "excited": "excited", "exc": "excited", "frustrated": "frustrated", "fru": "frustrated",
        "other": "other", "oth": "other", "xxx": None,
    },
}

# The official IEMOCAP release, 4 classes with exc merged into happy.
IEMOCAP_4CLASS_COUNTS = {"neu": 1708, "ang": 1103, "hap": 595, "exc": 1041, "sad": 1084}
IEMOCAP_4CLASS_TOTAL = 5531

_EMODB_GENDER = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
    "12": "male", "13": "female", "14": "female", "15": "male", "16": "female",
}


def task_label(canonical: str | None, task: str | None) -> str | None:
    """Map a canonical emotion to ``task``'s label, or None when the task excludes it.

    ``task=None`` keeps every usable emotion under its canonical name.
    """
    if canonical is None:
        return None
    if task is None:
        return canonical
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    label = TASK_MERGES.get(task, {}).get(canonical, canonical)
    return label if label in TASKS[task] else None


def label_map(corpus: str, task: str | None = "4class") -> dict[str, str]:
    """The map from ``corpus``'s own emotion codes to ``task``'s labels (excluded codes absent).

    >>> label_map("iemocap")["exc"]
    'happy'
    """
    corpus = corpus.lower()
    if corpus not in EMOTIONS:
        raise ValueError(f"unknown corpus {corpus!r}; known: {sorted(EMOTIONS)}")
    out = {}
    for code, canonical in EMOTIONS[corpus].items():
        label = task_label(canonical, task)
        if label is not None:
            out[code] = label
    return out


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Utterance:
    """One labelled recording.

    ``meta`` holds corpus details (``emotion``: the corpus's own emotion code,
    ``gender``, IEMOCAP ``session``/``type``...). It takes no part in equality or
    hashing, so utterances stay hashable.
    """

    path: Path
    label: str
    speaker: str
    duration_s: float
    corpus: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        """The file stem, e.g. ``03a01Fa`` or ``Ses01F_impro01_F000``."""
        return self.path.stem


@dataclass
class LoadReport:
    """What a loader kept, excluded and skipped."""

    corpus: str
    root: Path
    task: str | None
    kept: Counter = field(default_factory=Counter)  # task label -> utterances
    excluded: Counter = field(default_factory=Counter)  # corpus emotion code -> utterances
    problems: list[tuple[Path, str]] = field(default_factory=list)  # skipped, with reason
    repaired: list[tuple[Path, str]] = field(default_factory=list)  # kept despite an anomaly
    ignored: int = 0  # non-audio files seen while walking (README, manifest, ...)

    def problem(self, path: Path, reason: str) -> None:
        log.warning("%s: skipping %s: %s", self.corpus, path, reason)
        self.problems.append((Path(path), reason))

    def repair(self, path: Path, reason: str) -> None:
        log.warning("%s: %s: %s", self.corpus, path, reason)
        self.repaired.append((Path(path), reason))

    @property
    def n_kept(self) -> int:
        return sum(self.kept.values())

    def summary(self) -> str:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(self.kept.items()))
        names = EMOTIONS.get(self.corpus, {})
        excl = ", ".join(
            f"{k} ({names[k]}) {v}" if names.get(k) and names[k] != k else f"{k} {v}"
            for k, v in sorted(self.excluded.items())
        ) or "none"
        return (
            f"{self.corpus} ({self.root}, task {self.task}): kept {self.n_kept} [{kept}]; "
            f"excluded {sum(self.excluded.values())} [{excl}]; "
            f"skipped {len(self.problems)} problem files; repaired {len(self.repaired)}"
        )


class CorpusList(list):
    """A list of :class:`Utterance` with the :class:`LoadReport` that produced it."""

    def __init__(self, items: Iterable[Utterance] = (), report: LoadReport | None = None):
        super().__init__(items)
        self.report = report


# --------------------------------------------------------------------------- helpers


def _duration(path: Path, report: LoadReport) -> float | None:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError) as exc:  # sf.LibsndfileError is a RuntimeError
        report.problem(path, f"unreadable audio ({exc})")
        return None
    if info.samplerate <= 0 or info.frames <= 0:
        report.problem(path, f"empty audio ({info.frames} frames at {info.samplerate} Hz)")
        return None
    return info.frames / info.samplerate


def _walk_audio(root: Path, report: LoadReport) -> Iterator[Path]:
    """Audio files under ``root`` in sorted order; other files are counted as ignored."""
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.name.startswith("."):
            report.ignored += 1
            log.debug("ignoring hidden file %s", path)
            continue
        if path.suffix.lower() in AUDIO_SUFFIXES:
            yield path
        else:
            report.ignored += 1


def _check_root(root: Path, corpus: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus} corpus folder not found: {root}")
    return root


def _add(
    out: list[Utterance],
    report: LoadReport,
    corpus: str,
    path: Path,
    code: str,
    speaker: str,
    meta: dict,
    task: str | None,
) -> None:
    """Label, time and append one utterance (or count it as excluded)."""
    canonical = EMOTIONS[corpus][code]
    label = task_label(canonical, task)
    if label is None:
        report.excluded[code] += 1
        return
    duration = _duration(path, report)
    if duration is None:
        return
    meta = {"emotion": code, "emotion_name": canonical, **meta}
    out.append(Utterance(path, label, speaker, duration, corpus, meta))
    report.kept[label] += 1


def _finish(out: list[Utterance], report: LoadReport) -> CorpusList:
    out.sort(key=lambda u: str(u.path))
    log.info(report.summary())
    return CorpusList(out, report)


# --------------------------------------------------------------------------- IEMOCAP

_IEMOCAP_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]\s+"
    r"(?P<turn>\S+)\s+(?P<emo>\S+)\s+\[(?P<vad>[^\]]*)\]\s*$"
)
_IEMOCAP_TURN = re.compile(
    r"^(?P<session>Ses0[1-5])(?P<dgender>[FM])_(?P<rest>.+)_(?P<tail>[FM]\w*)$"
)


def _iemocap_release(root: Path) -> Path:
    """Accept the ``IEMOCAP_full_release`` folder itself or its parent."""
    if (root / "IEMOCAP_full_release").is_dir():
        return root / "IEMOCAP_full_release"
    return root


def load_iemocap(root: str | Path, task: str | None = "4class") -> CorpusList:
    """IEMOCAP in the official release layout.

    Labels come from ``Session*/dialog/EmoEvaluation/*.txt`` summary lines
    (``[start - end]<TAB>turn<TAB>emo<TAB>[V, A, D]``); audio from
    ``Session*/sentences/wav/<dialog>/<turn>.wav`` (or ``.flac``). The speaker
    is the session plus the gender of the turn's speaker (``Ses01F_impro01_M003``
    -> ``Ses01M``). ``meta``: ``session`` (1-5), ``type`` (improvised/scripted),
    ``gender`` (F/M), ``dialog``, ``start_s``/``end_s``, ``vad``.
    """
    release = _iemocap_release(_check_root(Path(root), "iemocap"))
    report = LoadReport("iemocap", release, task)
    sessions = sorted(p for p in release.glob("Session*") if p.is_dir())
    if not sessions:
        raise FileNotFoundError(
            f"no Session* folders under {release}; expected the IEMOCAP_full_release layout"
        )
    out: list[Utterance] = []
    for session_dir in sessions:
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        if not eval_dir.is_dir():
            report.problem(eval_dir, "missing EmoEvaluation folder")
            continue
        for txt in sorted(eval_dir.glob("*.txt")):
            if txt.name.startswith("."):
                report.ignored += 1
                continue
            _iemocap_eval_file(txt, session_dir, task, report, out)
    result = _finish(out, report)
    if task == "4class":
        check_iemocap_count(result)
    return result


def _iemocap_eval_file(
    txt: Path, session_dir: Path, task: str | None, report: LoadReport, out: list[Utterance]
) -> None:
    try:
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        report.problem(txt, f"unreadable evaluation file ({exc})")
        return
    for lineno, line in enumerate(lines, 1):
        if not line.startswith("["):
            continue  # header, per-evaluator lines (C-E1, A-E1...), blanks
        where = Path(f"{txt}:{lineno}")
        m = _IEMOCAP_LINE.match(line)
        if m is None:
            report.problem(where, f"malformed evaluation line {line!r}")
            continue
        turn, code = m["turn"], m["emo"]
        t = _IEMOCAP_TURN.match(turn)
        if t is None or ("impro" not in t["rest"] and "script" not in t["rest"]):
            report.problem(where, f"malformed turn name {turn!r}")
            continue
        if code not in EMOTIONS["iemocap"]:
            report.problem(where, f"unknown emotion code {code!r}")
            continue
        try:
            vad = tuple(float(v) for v in m["vad"].split(","))
            start, end = float(m["start"]), float(m["end"])
        except ValueError:
            report.problem(where, f"malformed numbers in {line!r}")
            continue
        if task_label(EMOTIONS["iemocap"][code], task) is None:
            report.excluded[code] += 1
            continue
        dialog = turn.rsplit("_", 1)[0]
        wav_dir = session_dir / "sentences" / "wav" / dialog
        path = next(
            (wav_dir / f"{turn}{s}" for s in AUDIO_SUFFIXES if (wav_dir / f"{turn}{s}").is_file()),
            None,
        )
        if path is None:
            report.problem(wav_dir / f"{turn}.wav", f"missing audio for {turn} ({where})")
            continue
        gender = t["tail"][0]
        meta = {
            "session": int(t["session"][3:]),
            "type": "improvised" if "impro" in t["rest"] else "scripted",
            "gender": gender,
            "dialog": dialog,
            "start_s": start,
            "end_s": end,
            "vad": vad,
        }
        _add(out, report, "iemocap", path, code, t["session"] + gender, meta, task)


def check_iemocap_count(utts: list[Utterance]) -> dict:
    """Count IEMOCAP 4-class utterances per original code and compare with the release.

    The official release gives 5,531 utterances (neu 1708, ang 1103, hap 595,
    exc 1041, sad 1084). When all five sessions are present and the total
    differs, a warning is logged. Returns ``{"total", "per_code", "sessions",
    "full_tree", "matches"}``.
    """
    iem = [u for u in utts if u.corpus == "iemocap"]
    per_code = Counter(u.meta.get("emotion") for u in iem)
    sessions = sorted({u.meta.get("session") for u in iem})
    full = sessions == [1, 2, 3, 4, 5]
    total = len(iem)
    matches = total == IEMOCAP_4CLASS_TOTAL
    log.info("IEMOCAP 4-class: %d utterances %s, sessions %s", total, dict(per_code), sessions)
    if full and not matches:
        log.warning(
            "IEMOCAP 4-class gives %d utterances, but the official release gives %d "
            "(per code here %s, expected %s): the tree is incomplete or modified",
            total, IEMOCAP_4CLASS_TOTAL, dict(per_code), IEMOCAP_4CLASS_COUNTS,
        )
    return {
        "total": total,
        "per_code": dict(per_code),
        "sessions": sessions,
        "full_tree": full,
        "matches": matches,
    }


# --------------------------------------------------------------------------- EmoDB

_EMODB_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emo>[A-Z])(?P<version>[a-z])$")


def load_emodb(root: str | Path, task: str | None = "4class") -> CorpusList:
    """EmoDB: ``SSTTTEV`` names (speaker, text, German emotion initial, take letter)."""
    root = _check_root(Path(root), "emodb")
    report = LoadReport("emodb", root, task)
    out: list[Utterance] = []
    for path in _walk_audio(root, report):
        m = _EMODB_NAME.match(path.stem)
        if m is None:
            report.problem(path, "name does not follow EmoDB's SSTTTEV scheme")
            continue
        if m["emo"] not in EMOTIONS["emodb"]:
            report.problem(path, f"unknown EmoDB emotion letter {m['emo']!r}")
            continue
        meta = {
            "gender": _EMODB_GENDER.get(m["speaker"], "unknown"),
            "text": m["text"],
            "version": m["version"],
        }
        _add(out, report, "emodb", path, m["emo"], m["speaker"], meta, task)
    return _finish(out, report)


# --------------------------------------------------------------------------- RAVDESS

_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$", re.IGNORECASE)


def load_ravdess(root: str | Path, task: str | None = "4class") -> CorpusList:
    """RAVDESS speech: ``MM-VV-EE-II-SS-RR-AA`` names.

    Only modality 03 (audio-only) with vocal channel 01 (speech) is used; song
    files and others are reported as problems. Speaker = actor ``AA`` (odd =
    male); ``meta``: ``gender``, ``intensity``, ``statement``, ``repetition``.
    """
    root = _check_root(Path(root), "ravdess")
    report = LoadReport("ravdess", root, task)
    out: list[Utterance] = []
    for path in _walk_audio(root, report):
        m = _RAVDESS_NAME.match(path.stem)
        if m is None:
            report.problem(path, "name does not follow RAVDESS's MM-VV-EE-II-SS-RR-AA scheme")
            continue
        modality, channel, emo, intensity, statement, repetition, actor = m.groups()
        if modality != "03":
            report.problem(path, f"modality {modality} is not 03 (audio-only)")
            continue
        if channel != "01":
            report.problem(path, f"vocal channel {channel} is not 01 (speech; 02 is song)")
            continue
        bad = [
            name
            for name, value, ok in (
                ("emotion", emo, emo in EMOTIONS["ravdess"]),
                ("intensity", intensity, intensity in ("01", "02")),
                ("statement", statement, statement in ("01", "02")),
                ("repetition", repetition, repetition in ("01", "02")),
                ("actor", actor, actor != "00"),
            )
            if not ok
        ]
        if bad:
            report.problem(path, f"invalid field(s) {', '.join(bad)} in RAVDESS name")
            continue
        folder = _RAVDESS_ACTOR_DIR.match(path.parent.name)
        if folder is not None and folder.group(1) != actor:
            report.repair(path, f"actor {actor} in a folder of actor {folder.group(1)}; "
                                "using the file name")
        meta = {
            "gender": "male" if int(actor) % 2 else "female",
            "intensity": "normal" if intensity == "01" else "strong",
            "statement": int(statement),
            "repetition": int(repetition),
        }
        _add(out, report, "ravdess", path, emo, actor, meta, task)
    return _finish(out, report)


# --------------------------------------------------------------------------- TESS

_TESS_NAME = re.compile(r"^(?P<spk>[A-Za-z]+)_(?P<word>[A-Za-z]+)_(?P<emo>[A-Za-z]+)$")
_TESS_SPEAKERS = {"OAF": "OAF", "YAF": "YAF"}
_TESS_DIR = re.compile(r"^(?P<spk>OAF|YAF)_(?P<emo>.+)$", re.IGNORECASE)
_TESS_DIR_EMOTION = {
    "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "sad": "sad", "pleasant_surprise": "ps",
    "pleasant_surprised": "ps", "ps": "ps",
}
_TESS_AGE = {"OAF": 64, "YAF": 26}


def load_tess(root: str | Path, task: str | None = "4class") -> CorpusList:
    """TESS: ``<SPK>_<word>_<emotion>`` in folders like ``OAF_Fear``.

    The speaker comes from the file name's prefix (OAF/YAF). A file whose prefix
    is a truncation of its folder's speaker (the release's ``OA_bite_neutral`` in
    ``OAF_neutral``) takes the folder's speaker and is listed in ``report.repaired``. A file whose
    emotion disagrees with its folder's is a problem and is skipped.
    """
    root = _check_root(Path(root), "tess")
    report = LoadReport("tess", root, task)
    out: list[Utterance] = []
    for path in _walk_audio(root, report):
        m = _TESS_NAME.match(path.stem)
        if m is None:
            report.problem(path, "name does not follow TESS's SPK_word_emotion scheme")
            continue
        code = m["emo"].lower()
        if code not in EMOTIONS["tess"]:
            report.problem(path, f"unknown TESS emotion token {m['emo']!r}")
            continue
        folder = _TESS_DIR.match(path.parent.name)
        folder_spk = folder["spk"].upper() if folder else None
        folder_emo = _TESS_DIR_EMOTION.get(folder["emo"].lower()) if folder else None
        if folder_emo is not None and folder_emo != code:
            report.problem(path, f"emotion {code!r} disagrees with folder {path.parent.name!r}")
            continue
        speaker = _TESS_SPEAKERS.get(m["spk"].upper())
        if speaker is None:
            # Only a truncated prefix of the folder's speaker is repaired ("OA" in OAF_*).
            if folder_spk is None or not folder_spk.startswith(m["spk"].upper()):
                report.problem(path, f"unknown TESS speaker prefix {m['spk']!r}")
                continue
            speaker = folder_spk
            report.repair(path, f"speaker prefix {m['spk']!r} is not OAF/YAF; "
                                f"using the folder's speaker {speaker}")
        elif folder_spk is not None and folder_spk != speaker:
            report.problem(path, f"speaker {speaker} disagrees with folder {path.parent.name!r}")
            continue
        meta = {"gender": "female", "age": _TESS_AGE[speaker], "word": m["word"].lower()}
        _add(out, report, "tess", path, code, speaker, meta, task)
    return _finish(out, report)


# --------------------------------------------------------------------------- CSV


def load_csv(path: str | Path, task: str | None = "4class") -> CorpusList:
    """A generic manifest: columns ``path`` and ``label`` (or ``emotion``), optional ``speaker``.

    ``path`` is relative to the CSV's folder or absolute; ``path`` may also name
    a folder holding ``manifest.csv``. Labels are matched case-insensitively
    against common emotion spellings (``EMOTIONS["csv"]``) and mapped to
    ``task``; with ``task=None`` every label is kept as written. Without a
    ``speaker`` column every utterance gets speaker ``"unknown"`` (a warning is
    logged) and speaker-independent splits refuse the list. Other columns go
    to ``meta``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    base = path.parent
    report = LoadReport("csv", path, task)
    out: list[Utterance] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in (reader.fieldnames or [])]
        label_col = "label" if "label" in fields else "emotion" if "emotion" in fields else None
        if "path" not in fields or label_col is None:
            raise ValueError(
                f"{path}: a manifest needs columns 'path' and 'label' (or 'emotion'); "
                f"found {fields}"
            )
        has_speaker = "speaker" in fields
        if not has_speaker:
            log.warning(
                "%s has no 'speaker' column: every utterance gets speaker %r and "
                "speaker-independent splits are impossible", path, UNKNOWN_SPEAKER,
            )
        for rowno, row in enumerate(reader, 2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            where = Path(f"{path}:{rowno}")
            if not row["path"] or not row[label_col]:
                report.problem(where, "empty path or label")
                continue
            audio = Path(row["path"]).expanduser()
            if not audio.is_absolute():
                audio = base / audio
            raw = row[label_col]
            if task is None:
                canonical: str | None = EMOTIONS["csv"].get(raw.lower(), raw)
                label = raw
            else:
                canonical = EMOTIONS["csv"].get(raw.lower())
                label = task_label(canonical, task)
            if label is None:
                report.excluded[raw] += 1
                continue
            if not audio.is_file():
                report.problem(audio, f"missing audio ({where})")
                continue
            duration = _duration(audio, report)
            if duration is None:
                continue
            speaker = row.get("speaker") or UNKNOWN_SPEAKER
            if has_speaker and speaker == UNKNOWN_SPEAKER:
                report.repair(where, f"empty speaker; using {UNKNOWN_SPEAKER!r}")
            meta = {k: v for k, v in row.items() if k not in ("path", label_col, "speaker")}
            meta.update(emotion=raw, emotion_name=canonical, speaker_known=has_speaker)
            out.append(Utterance(audio, label, speaker, duration, "csv", meta))
            report.kept[label] += 1
    return _finish(out, report)


# --------------------------------------------------------------------------- entry point

CORPORA: dict[str, Callable[..., CorpusList]] = {
    "iemocap": load_iemocap,
    "emodb": load_emodb,
    "ravdess": load_ravdess,
    "tess": load_tess,
    "csv": load_csv,
}


def load_corpora(
    sources: Sequence[tuple[str, str, str | Path]], task: str | None = "4class"
) -> tuple[list[Utterance], dict[str, LoadReport]]:
    """Load several corpora, each with its own loader and label map, and concatenate them.

    ``sources`` holds ``(name, kind, root)``: ``kind`` is the loader (:func:`load_corpus`),
    ``name`` the corpus every utterance then carries (``Utterance.corpus``; it differs from
    ``kind`` only for manifests, e.g. ``csv:/data/a.csv``, so two manifests stay apart).
    Speakers stay per corpus: splits key them by ``(corpus, speaker)``. Each load report is
    logged by its loader (what was kept, and what the task excludes, e.g. RAVDESS calm). Returns the
    utterances (corpus by corpus, in the order given) and the report of each corpus.
    """
    names = [name for name, _, _ in sources]
    if not names:
        raise ValueError("no corpora to load")
    if len(set(names)) != len(names):
        raise ValueError(f"corpus names repeat in {names}")
    utts: list[Utterance] = []
    reports: dict[str, LoadReport] = {}
    for name, kind, root in sources:
        loaded = load_corpus(kind, root, task)  # its loader logs the report's summary
        reports[name] = loaded.report
        utts += [u if u.corpus == name else dataclasses.replace(u, corpus=name) for u in loaded]
    return utts, reports


def load_corpus(name: str, root: str | Path, task: str | None = "4class") -> CorpusList:
    """Load corpus ``name`` (iemocap, emodb, ravdess, tess or csv) from ``root``.

    ``root`` is the corpus folder (for csv: the manifest file or its folder).
    ``task`` is a key of ``TASKS`` or None (all usable emotions, canonical names).
    Returns a :class:`CorpusList` sorted by path; its ``report`` says what was
    kept, excluded and skipped.
    """
    key = name.lower()
    if key not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known: {sorted(CORPORA)}")
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    return CORPORA[key](root, task=task)
