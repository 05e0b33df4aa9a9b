"""pyser.training.splits: the paper's stratified 10-subset split and speaker-independent folds."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pyser.training.datasets import UNKNOWN_SPEAKER, Utterance, load_corpus
from pyser.training.splits import (
    Fold,
    default_folds,
    paper_folds,
    paper_strata_key,
    paper_subsets,
    speaker_folds,
    validate_folds,
)

IEMOCAP_CODES = {"neu": "neutral", "ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad"}


def fake_iemocap(seed: int = 0) -> list[Utterance]:
    """~3,000 utterances with IEMOCAP's metadata structure and uneven strata."""
    rng = np.random.default_rng(seed)
    out = []
    for session in range(1, 6):
        for typ in ("improvised", "scripted"):
            for gender in "FM":
                for code, label in IEMOCAP_CODES.items():
                    for i in range(int(rng.integers(3, 60))):
                        name = f"Ses0{session}{gender}_{typ[:5]}_{code}_{i:03d}"
                        meta = {"session": session, "type": typ, "gender": gender, "emotion": code}
                        out.append(
                            Utterance(Path(f"/x/{name}.wav"), label, f"Ses0{session}{gender}",
                                      1.0, "iemocap", meta)
                        )
    return out


def fake_speakers(counts: dict[str, int], corpus: str = "emodb", seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = ("neutral", "angry", "happy", "sad")
    out = []
    for spk, n in counts.items():
        for i in range(n):
            label = labels[int(rng.integers(4))]
            out.append(Utterance(Path(f"/x/{spk}_{i}.wav"), label, spk, 1.0, corpus,
                                 {"emotion": label}))
    return out


# --------------------------------------------------------------------------- paper split


def test_paper_subsets_deal_each_stratum_evenly():
    utts = fake_iemocap()
    subset = paper_subsets(utts, 10, seed=0)
    assert subset.min() == 0 and subset.max() == 9
    strata = {}
    for i, u in enumerate(utts):
        strata.setdefault(paper_strata_key(u), []).append(subset[i])
    assert len(strata) == 5 * 2 * 2 * 5  # hap and exc are separate strata
    for members in strata.values():
        per_subset = np.bincount(members, minlength=10)
        # Round-robin dealing: floor or ceil of len/10 in every subset.
        assert per_subset.max() - per_subset.min() <= 1


def test_paper_subsets_class_proportions_close_to_global():
    utts = fake_iemocap(1)
    subset = paper_subsets(utts, 10, seed=3)
    labels = np.array([u.label for u in utts])
    classes = sorted(set(labels))
    glob = np.array([np.mean(labels == c) for c in classes])
    sizes = np.bincount(subset, minlength=10)
    assert sizes.max() - sizes.min() <= 0.1 * sizes.mean()
    for s in range(10):
        sub = labels[subset == s]
        prop = np.array([np.mean(sub == c) for c in classes])
        np.testing.assert_allclose(prop, glob, atol=0.03)
    # Also per session x gender (the speakers): each is spread over all ten subsets.
    for spk in {u.speaker for u in utts}:
        idx = [i for i, u in enumerate(utts) if u.speaker == spk]
        assert set(subset[idx]) == set(range(10))


def test_paper_folds_structure():
    utts = fake_iemocap()
    folds = paper_folds(utts, n_folds=5, seeds=(0, 7))
    assert len(folds) == 10
    assert [(f.repeat, f.fold) for f in folds] == [(r, k) for r in range(2) for k in range(5)]
    # Partitions, and no utterance tested twice in a repeat. The authors' folds test
    # subsets 1, 3, 5, 7, 9 only (the even ones are the dev sets): half of the data.
    validate_folds(utts, folds, full_coverage=False)
    with pytest.raises(ValueError, match="exactly once"):
        validate_folds(utts, folds)
    for r in range(2):
        seen = Counter(i for f in folds if f.repeat == r for i in f.dev + f.test)
        assert len(seen) == len(utts) and set(seen.values()) == {1}
    for f in folds:
        assert f.kind == "paper"
        subset = paper_subsets(utts, 10, seed=f.seed)
        assert set(subset[f.dev]) == {2 * f.fold}
        assert set(subset[f.test]) == {2 * f.fold + 1}
        assert set(subset[f.train]) == set(range(10)) - {2 * f.fold, 2 * f.fold + 1}
        assert not (set(f.train) & set(f.dev) or set(f.train) & set(f.test)
                    or set(f.dev) & set(f.test))
        # The paper split is speaker-dependent: every speaker is in train and test.
        assert {utts[i].speaker for i in f.test} == {utts[i].speaker for i in f.train}
        assert abs(len(f.test) - len(utts) / 10) <= 0.02 * len(utts)
        assert abs(len(f.train) - 0.8 * len(utts)) <= 0.04 * len(utts)


def test_paper_folds_rotate_all_tests_everything_once():
    utts = fake_iemocap()
    folds = paper_folds(utts, n_folds=5, seeds=(0, 1), rotate_all=True)
    assert len(folds) == 20
    validate_folds(utts, folds)  # every utterance tested exactly once per repeat
    authors = paper_folds(utts, n_folds=5, seeds=(0, 1))
    # The authors' fold j is fold 2j of the rotation.
    for a in authors:
        b = folds[10 * a.repeat + 2 * a.fold]
        assert (a.train, a.dev, a.test) == (b.train, b.dev, b.test)


def test_paper_folds_deterministic_by_seed():
    utts = fake_iemocap()
    a = paper_folds(utts, seeds=(0, 1))
    b = paper_folds(utts, seeds=(0, 1))
    assert [(f.train, f.dev, f.test) for f in a] == [(f.train, f.dev, f.test) for f in b]
    assert a[0].test != a[5].test  # repeat 1 (seed 1) redraws the subsets
    c = paper_folds(utts, seeds=(1,))
    assert c[0].test == a[5].test


def test_paper_folds_other_corpora_stratify_by_speaker_and_emotion():
    utts = fake_speakers({f"{i:02d}": 40 + 7 * i for i in range(8)})
    subset = paper_subsets(utts, 10, seed=0)
    for key in {(u.speaker, u.label) for u in utts}:
        idx = [i for i, u in enumerate(utts) if (u.speaker, u.label) == key]
        counts = np.bincount(subset[idx], minlength=10)
        assert counts.max() - counts.min() <= 1


# --------------------------------------------------------------------------- speaker folds


def test_speaker_folds_disjoint_and_complete():
    counts = {"03": 49, "08": 58, "09": 43, "10": 38, "11": 55, "12": 35, "13": 61, "14": 69}
    utts = fake_speakers(counts)
    folds = speaker_folds(utts, n_folds=5, seeds=(0, 1, 2))
    assert len(folds) == 15
    validate_folds(utts, folds, speaker_independent=True)
    for f in folds:
        assert f.kind == "speaker"
        spk = {p: {utts[i].speaker for i in getattr(f, p)} for p in ("train", "dev", "test")}
        assert not (spk["train"] & spk["dev"]) and not (spk["train"] & spk["test"])
        assert not (spk["dev"] & spk["test"])
        assert spk["train"] and spk["dev"] and spk["test"]
    for r in range(3):
        tested = Counter(i for f in folds if f.repeat == r for i in f.test)
        assert sorted(tested) == list(range(len(utts))) and set(tested.values()) == {1}
        dev = Counter(i for f in folds if f.repeat == r for i in f.dev)
        assert set(dev.values()) == {1}  # dev rotates: every utterance is dev once


def test_speaker_folds_balanced_by_count():
    # 18 actors x 60 utterances (RAVDESS): groups of 4,4,4,3,3 actors.
    utts = fake_speakers({f"{i:02d}": 60 for i in range(1, 19)}, corpus="ravdess")
    folds = speaker_folds(utts, 5, seeds=(0,))
    assert sorted(len(f.test) for f in folds) == [180, 180, 240, 240, 240]
    # Uneven speakers: test sizes within the largest speaker's count of each other.
    counts = {f"s{i}": n for i, n in enumerate([200, 180, 150, 120, 100, 90, 60, 40, 30, 20])}
    utts = fake_speakers(counts)
    for seed in range(4):
        sizes = [len(f.test) for f in speaker_folds(utts, 5, seeds=(seed,))]
        assert max(sizes) - min(sizes) <= 40, sizes


def test_speaker_folds_deterministic_and_seed_dependent():
    utts = fake_speakers({f"{i:02d}": 60 for i in range(1, 19)}, corpus="ravdess")
    a = speaker_folds(utts, 5, seeds=(0, 1))
    b = speaker_folds(utts, 5, seeds=(0, 1))
    assert [(f.train, f.dev, f.test) for f in a] == [(f.train, f.dev, f.test) for f in b]
    groups0 = {frozenset(utts[i].speaker for i in f.test) for f in a[:5]}
    groups1 = {frozenset(utts[i].speaker for i in f.test) for f in a[5:]}
    assert groups0 != groups1


def test_speaker_folds_keeps_corpora_apart():
    # Speaker "03" of EmoDB and "03" of RAVDESS are different people.
    utts = fake_speakers({"03": 30, "08": 30}, "emodb")
    utts += fake_speakers({"03": 30, "05": 30}, "ravdess")
    folds = speaker_folds(utts, n_folds=4)
    validate_folds(utts, folds, speaker_independent=True)
    assert sorted(len(f.test) for f in folds) == [30, 30, 30, 30]


def test_speaker_folds_errors_and_cap(caplog):
    with pytest.raises(ValueError, match="at least 3 speakers"):
        speaker_folds(fake_speakers({"OAF": 20, "YAF": 20}, "tess"))
    with pytest.raises(ValueError, match="no speaker information"):
        speaker_folds(fake_speakers({UNKNOWN_SPEAKER: 50}, "csv"))
    with pytest.raises(ValueError, match="n_folds"):
        speaker_folds(fake_speakers({"a": 5, "b": 5, "c": 5}), n_folds=2)
    with pytest.raises(ValueError):
        speaker_folds([], 5)
    utts = fake_speakers({"a": 10, "b": 12, "c": 9})
    with caplog.at_level(logging.WARNING, logger="pyser.training.splits"):
        folds = speaker_folds(utts, n_folds=5)
    assert len(folds) == 3 and "reducing speaker folds from 5 to 3" in caplog.text
    validate_folds(utts, folds, speaker_independent=True)


def test_session_folds_via_group():
    utts = fake_iemocap()
    folds = speaker_folds(utts, 5, group=lambda u: u.meta["session"])
    validate_folds(utts, folds, speaker_independent=True, group=lambda u: u.meta["session"])
    for f in folds:
        assert len({utts[i].meta["session"] for i in f.test}) == 1


def test_default_folds():
    assert {f.kind for f in default_folds(fake_iemocap(), "IEMOCAP")} == {"paper"}
    utts = fake_speakers({f"{i:02d}": 20 for i in range(6)})
    folds = default_folds(utts, "emodb", seeds=(0, 1))
    assert {f.kind for f in folds} == {"speaker"} and len(folds) == 10
    with pytest.raises(ValueError, match="at least 3 speakers"):
        default_folds(fake_speakers({"OAF": 20, "YAF": 20}, "tess"), "tess")


def test_validate_folds_catches_errors():
    utts = fake_speakers({"a": 4, "b": 4, "c": 4})
    good = speaker_folds(utts, 3)
    validate_folds(utts, good, speaker_independent=True)
    f = good[0]
    leaky = Fold(f.train + f.test[:1], f.dev, f.test[1:], f.repeat, f.fold)
    with pytest.raises(ValueError, match="speakers"):
        validate_folds(utts, [leaky] + good[1:], speaker_independent=True)
    overlap = Fold(f.train, f.dev, f.test + f.dev[:1], f.repeat, f.fold)
    with pytest.raises(ValueError, match="partition"):
        validate_folds(utts, [overlap] + good[1:])
    with pytest.raises(ValueError, match="exactly once"):
        validate_folds(utts, good[:2])


@pytest.mark.corpus
def test_real_ravdess_and_emodb_speaker_folds(data_root):
    for name in ("ravdess", "emodb"):
        utts = load_corpus(name, data_root / name)
        folds = default_folds(utts, name, n_folds=5, seeds=(0, 1))
        validate_folds(utts, folds, speaker_independent=True)
        for f in folds:
            # Every class is in every training set.
            assert {utts[i].label for i in f.train} == {"neutral", "angry", "happy", "sad"}
