"""Several corpora in one run: the corpus list in the config, loading, folds stratified by
corpus, and per-corpus metrics end to end (a tiny run on two generated manifests)."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from pyser.training.config import ConfigError, TrainConfig, apply_overrides, load_config
from pyser.training.datasets import load_corpora
from pyser.training.splits import (
    default_split,
    make_folds,
    speaker_folds,
    stratified_speaker_folds,
    validate_folds,
)
from test_splits import fake_speakers
from test_train import make_corpus, tiny_config

CORPORA = ("emodb", "ravdess", "tess")


def pooled_fake() -> list:
    """EmoDB-, RAVDESS- and TESS-shaped speaker counts; EmoDB and RAVDESS share ids 03..10."""
    return (
        fake_speakers({f"{i:02d}": 30 + 3 * i for i in range(3, 11)}, corpus="emodb")
        + fake_speakers({f"{i:02d}": 28 for i in range(1, 19)}, corpus="ravdess", seed=1)
        + fake_speakers({"OAF": 800, "YAF": 800}, corpus="tess", seed=2)
    )


def corpora_in(utts, idx) -> set[str]:
    return {utts[i].corpus for i in idx}


# --------------------------------------------------------------------------- config


def test_corpus_list_from_toml_and_both_set_forms(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('corpus = ["emodb", "ravdess", "tess"]\n')
    assert load_config(f).corpus == list(CORPORA)
    assert load_config(None, ["corpus=[emodb,ravdess,tess]"]).corpus == list(CORPORA)
    assert load_config(None, ['corpus=["emodb","ravdess"]']).corpus == ["emodb", "ravdess"]
    cfg = load_config(None, ["corpus=[emodb, tess]"])
    assert cfg.corpus_entries() == ["emodb", "tess"] and cfg.corpus_label() == "emodb+tess"
    assert cfg.split_kind() == "speaker"
    assert cfg.replace(steps=5).corpus == ["emodb", "tess"]  # survives to_dict/from_dict


def test_single_corpus_string_is_unchanged():
    cfg = load_config(None, ["corpus=emodb"])
    assert cfg.corpus == "emodb" and cfg.corpus_entries() == ["emodb"]
    assert load_config(None, ["corpus=iemocap"]).split_kind() == "paper"
    assert default_split(["iemocap"]) == "paper"
    assert default_split(["iemocap", "emodb"]) == "speaker"


def test_bad_corpus_lists_are_named(tmp_path):
    with pytest.raises(ConfigError, match="empty list"):
        TrainConfig(corpus=[])
    with pytest.raises(ConfigError, match="'cremad' is not a corpus"):
        apply_overrides(TrainConfig(), ["corpus=[emodb,cremad]"])
    with pytest.raises(ConfigError, match="'csv' is not a corpus.*csv:PATH"):
        TrainConfig(corpus=["emodb", "csv"])
    with pytest.raises(ConfigError, match="emodb more than once"):
        TrainConfig(corpus=["emodb", "emodb"])
    with pytest.raises(ConfigError, match=r"has no \{corpus\}"):
        TrainConfig(corpus=["emodb", "tess"], data_root=str(tmp_path))
    with pytest.raises(ConfigError, match="must be str or list"):
        TrainConfig.from_dict({"corpus": 3})


def test_data_root_is_resolved_per_corpus(tmp_path, monkeypatch):
    for name in ("emodb", "tess"):
        (tmp_path / name).mkdir()
    manifest = make_corpus(tmp_path / "mine", n_per=1)
    cfg = TrainConfig(corpus=["emodb", "tess", f"csv:{manifest}"],
                      data_root=str(tmp_path / "{corpus}"))
    got = [(s.name, s.kind, s.root) for s in cfg.corpus_sources()]
    assert got == [("emodb", "emodb", tmp_path / "emodb"), ("tess", "tess", tmp_path / "tess"),
                   (f"csv:{manifest}", "csv", manifest)]
    monkeypatch.setenv("PYSER_DATA", str(tmp_path))  # without data_root: $PYSER_DATA/<corpus>
    assert [s.root for s in TrainConfig(corpus=["emodb", "tess"]).corpus_sources()] == [
        tmp_path / "emodb", tmp_path / "tess"]
    with pytest.raises(FileNotFoundError, match="ravdess data not found"):
        TrainConfig(corpus=["emodb", "ravdess"],
                    data_root=str(tmp_path / "{corpus}")).corpus_sources()
    with pytest.raises(FileNotFoundError, match="csv:/nowhere.csv"):
        TrainConfig(corpus=["emodb", "csv:/nowhere.csv"]).corpus_sources()


# --------------------------------------------------------------------------- folds


def test_stratified_folds_train_on_every_corpus():
    utts = pooled_fake()
    folds = make_folds("speaker", utts, n_folds=5, seeds=(0, 1))
    validate_folds(utts, folds, speaker_independent=True)  # (corpus, speaker) keys
    assert len(folds) == 10
    for f in folds:
        assert corpora_in(utts, f.train) == set(CORPORA), f
    # Equal speaker ids of two corpora are different speakers: 28 speakers, not 20.
    assert len({(u.corpus, u.speaker) for u in utts}) == 28
    # EmoDB and RAVDESS (>= 5 speakers) are tested in every fold, each balanced on its own:
    # test sizes differ by at most one speaker's utterances.
    for name in ("emodb", "ravdess"):
        biggest = max(Counter(u.speaker for u in utts if u.corpus == name).values())
        for r in (0, 1):
            sizes = [sum(utts[i].corpus == name for i in f.test) for f in folds[5 * r:5 * r + 5]]
            assert min(sizes) > 0 and max(sizes) - min(sizes) <= biggest, (name, sizes)
    # TESS's two speakers are tested in two folds and never both in one fold's test + dev.
    tess_tested = [f.fold for f in folds[:5] if "tess" in corpora_in(utts, f.test)]
    assert len(tess_tested) == 2


def test_pooled_speaker_folds_miss_a_small_corpus_where_stratified_ones_do_not():
    """Why the stratified split exists: the plain pooled split can leave TESS out of train."""
    utts = pooled_fake()
    plain = speaker_folds(utts, 5, (0,))
    assert any(corpora_in(utts, f.train) != set(CORPORA) for f in plain)
    strat = stratified_speaker_folds(utts, 5, (0,))
    assert all(corpora_in(utts, f.train) == set(CORPORA) for f in strat)


def test_a_corpus_too_small_for_every_fold_is_refused():
    utts = pooled_fake()
    with pytest.raises(ValueError, match="corpus 'tess' has 2 speaker.*at least 4 folds"):
        stratified_speaker_folds(utts, 3, (0,))
    one = utts + fake_speakers({"solo": 20}, corpus="mine")
    with pytest.raises(ValueError, match="corpus 'mine' has 1 speaker"):
        make_folds("speaker", one, 5, (0,))


def test_single_corpus_keeps_plain_speaker_folds():
    utts = fake_speakers({f"{i:02d}": 28 for i in range(1, 19)}, corpus="ravdess")
    a = make_folds("speaker", utts, 5, (0,))
    b = speaker_folds(utts, 5, (0,))
    assert [(f.train, f.dev, f.test) for f in a] == [(f.train, f.dev, f.test) for f in b]


@pytest.mark.corpus
def test_real_three_corpora_load_and_fold(data_root, caplog):
    caplog.set_level(logging.INFO)
    utts, reports = load_corpora([(c, c, data_root / c) for c in CORPORA])
    assert [r.corpus for r in reports.values()] == list(CORPORA)
    assert reports["ravdess"].excluded["02"] > 0  # calm is excluded ...
    assert "02 (calm)" in caplog.text  # ... and the load report says so
    assert set(Counter(u.label for u in utts)) == {"neutral", "angry", "happy", "sad"}
    folds = make_folds(default_split(list(CORPORA)), utts, 5, (0,))
    validate_folds(utts, folds, speaker_independent=True)
    sizes = {}
    for f in folds:
        assert corpora_in(utts, f.train) == set(CORPORA), f
        sizes[f.fold] = {c: tuple(sum(utts[i].corpus == c for i in getattr(f, p))
                                  for p in ("train", "dev", "test")) for c in CORPORA}
    print("fold sizes per corpus (train, dev, test):", json.dumps(sizes))
    for c in ("emodb", "ravdess"):
        assert all(sizes[k][c][2] > 0 for k in sizes), c  # tested in every fold


# --------------------------------------------------------------------------- end to end


def test_two_manifests_train_end_to_end_with_per_corpus_metrics(tmp_path):
    from pyser.training.train import run

    a = make_corpus(tmp_path / "a", n_per=3, seed=1)
    b = make_corpus(tmp_path / "b", n_per=3, seed=2)  # the same speaker ids s1..s3
    out = tmp_path / "runs"
    cfg = tiny_config(a, out, corpus=[f"csv:{a}", f"csv:{b}"], data_root="", split="auto",
                      steps=10, eval_every=5, best_after_step=5, save_embeddings=False)
    res = run(cfg)
    assert res["status"] == "done"
    info = res["data"]
    assert info["corpus"] == f"csv:{a}+csv:{b}" and info["n_speakers"] == 6
    assert set(info["corpora"]) == {f"csv:{a}", f"csv:{b}"}
    (fold,) = res["folds"]
    assert set(fold["test_by_corpus"]) == {f"csv:{a}", f"csv:{b}"}
    for c, n in fold["sizes_by_corpus"].items():
        assert n["train"] > 0 and n["test"] > 0, (c, n)
        assert n["test"] == fold["test_by_corpus"][c]["n"]
    assert sum(n["test"] for n in fold["sizes_by_corpus"].values()) == fold["test"]["n"]
    doc = json.loads((out / "tiny" / "results.json").read_text())
    by = doc["summary"]["test_by_corpus"]
    assert set(by) == {f"csv:{a}", f"csv:{b}"}
    assert all(0 <= by[c][m]["mean"] <= 1 for c in by for m in ("ua", "wa", "macro_f1"))
    md = (out / "tiny" / "results.md").read_text()
    assert "Test metrics per corpus" in md and f"| csv:{b} |" in md
    assert f"csv:{a} mean" in (out / "tiny" / "results.csv").read_text()
