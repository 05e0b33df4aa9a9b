"""The classical baseline (openSMILE functionals + RBF SVM) on a generated two-corpus set:
features and their cache, per-speaker normalisation, the CRNN's folds, no speaker leak into
the inner CV, a learnable task against shuffled labels, and the command's files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pyser.training import baseline, smile
from pyser.training.baseline import (
    SvmGrid,
    fold_fingerprint,
    run_baseline,
    settings_for,
    online_speaker_normalize,
    speaker_ids,
    speaker_normalize,
    standardize,
)
from pyser.training.config import TrainConfig
from pyser.training.data import prepare_data
from pyser.training.smile import SmileCache

SR = 16000
# Class -> (EmoDB letter, tone in Hz, level): pitch and level both separate the classes.
CLASSES = {"angry": ("W", 330.0, 0.6), "happy": ("F", 250.0, 0.4),
           "neutral": ("N", 160.0, 0.2), "sad": ("T", 110.0, 0.08)}
EMODB_SPEAKERS = ("03", "08", "09", "10")
TESS_SPEAKERS = ("OAF", "YAF")
N_PER = 3  # utterances per speaker and class
WORDS = ("back", "bar", "base")


def _tone(rng: np.random.Generator, f0: float, level: float, speaker_shift: float) -> np.ndarray:
    """0.6-1.0 s of a harmonic tone with a little noise: f0 and level set by the class,
    pitch nudged per speaker."""
    t = np.arange(int(rng.uniform(0.6, 1.0) * SR)) / SR
    f = f0 * speaker_shift * rng.uniform(0.97, 1.03)
    x = sum(a * np.sin(2 * np.pi * h * f * t) for h, a in ((1, 1.0), (2, 0.5), (3, 0.2)))
    x = level * x / 1.7 * rng.uniform(0.85, 1.15) + 0.003 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def make_two_corpora(root: Path, seed: int = 0) -> Path:
    """An EmoDB-named (4 speakers) and a TESS-named (OAF, YAF) corpus of tones under
    ``root/emodb`` and ``root/tess``; returns ``root``."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (root / "emodb" / "wav").mkdir(parents=True)
    for si, spk in enumerate(EMODB_SPEAKERS):
        for label, (letter, f0, level) in CLASSES.items():
            for k in range(N_PER):
                sf.write(root / "emodb" / "wav" / f"{spk}a0{k + 1}{letter}a.wav",
                         _tone(rng, f0, level, 1 + 0.04 * si), SR)
    for si, spk in enumerate(TESS_SPEAKERS):
        for label, (_, f0, level) in CLASSES.items():
            folder = root / "tess" / f"{spk}_{label}"
            folder.mkdir(parents=True)
            for word in WORDS[:N_PER]:
                sf.write(folder / f"{spk}_{word}_{label}.wav",
                         _tone(rng, f0, level, 0.97 + 0.06 * si), SR)
    return root


def tiny_config(root: Path, out: Path, **changes) -> TrainConfig:
    base = {
        "experiment": "tiny",
        "corpus": ["emodb", "tess"],
        "data_root": str(root / "{corpus}"),
        "n_folds": 4,  # TESS's two speakers need at least 4 folds
        "features": {"n_mels": 32},
        "max_seconds": 1.0,
        "cache_dir": str(out / "cache" / "features"),
        "out_dir": str(out / "runs"),
        "num_threads": 1,
        "progress": False,
    }
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_two_corpora(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="module")
def full_run(corpus, tmp_path_factory):
    """All six settings once (2 feature sets x 3 speaker normalisations), with every inner
    split recorded (the real splits, passed through)."""
    cfg = tiny_config(corpus, tmp_path_factory.mktemp("out"))
    calls = []
    real = baseline.inner_splits

    def spy(idx, speakers, n_splits):
        splits = real(idx, speakers, n_splits)
        calls.append((np.asarray(idx).copy(), splits))
        return splits

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(baseline, "inner_splits", spy)
        out = run_baseline(cfg)
    return cfg, out, calls


# --------------------------------------------------------------------------- features


def test_feature_sets_have_their_sizes(corpus, tmp_path):
    wav = next((corpus / "emodb" / "wav").glob("*.wav"))
    for name, n in (("compare", 6373), ("egemaps", 88)):
        x = SmileCache(tmp_path, name).get(wav)
        assert x.shape == (n,) and x.dtype == np.float32
        assert np.isfinite(x).all()  # a 0.6 s tone is long enough for every functional
    with pytest.raises(ValueError, match="unknown openSMILE feature set 'mfcc'"):
        SmileCache(tmp_path, "mfcc")


def test_cache_is_reused_and_a_corrupt_entry_is_rebuilt(corpus, tmp_path, monkeypatch, caplog):
    wav = next((corpus / "tess").rglob("*.wav"))
    first = SmileCache(tmp_path, "egemaps").get(wav)

    def no_opensmile(*args):
        raise AssertionError("openSMILE ran although the cache holds the entry")

    monkeypatch.setattr(smile, "extract_functionals", no_opensmile)
    cache = SmileCache(tmp_path, "egemaps")
    np.testing.assert_array_equal(cache.get(wav), first)
    assert (cache.hits, cache.misses) == (1, 0)

    # Garbage bytes, then a well-formed entry of another file: both are recomputed.
    other = next((corpus / "emodb" / "wav").glob("*.wav"))
    entry = cache.entry_path(wav)
    monkeypatch.undo()
    for corrupt in (b"not an npz at all", cache.entry_path(other)):
        if isinstance(corrupt, Path):
            cache.get(other)
            corrupt = corrupt.read_bytes()
        entry.write_bytes(corrupt)
        fresh = SmileCache(tmp_path, "egemaps")
        np.testing.assert_array_equal(fresh.get(wav), first)
        assert fresh.misses == 1
        assert "corrupt openSMILE cache entry" in caplog.text
        caplog.clear()
    again = SmileCache(tmp_path, "egemaps")
    again.get(wav)
    assert (again.hits, again.misses) == (1, 0)  # the rebuilt entry is valid


def test_a_changed_file_gets_a_new_entry(corpus, tmp_path):
    import shutil

    wav = tmp_path / "a.wav"
    shutil.copy(next((corpus / "emodb" / "wav").glob("*.wav")), wav)
    cache = SmileCache(tmp_path / "cache", "egemaps")
    before = cache.entry_path(wav)
    cache.get(wav)
    shutil.copy(next((corpus / "tess").rglob("*.wav")), wav)  # other audio, other size
    assert cache.entry_path(wav) != before
    cache.get(wav)
    assert cache.misses == 2


# --------------------------------------------------------------------------- normalisation


def test_speaker_normalisation_gives_zero_mean_unit_std_per_speaker():
    rng = np.random.default_rng(1)
    speakers = np.repeat([0, 1, 2], [5, 7, 9])
    x = rng.normal(3.0, 5.0, size=(21, 6)) + 10 * speakers[:, None]
    x[:, 4] = 2.5  # constant everywhere
    x[speakers == 1, 5] = rng.normal(0.0, 1e-18, size=7)  # rounding noise around 0
    x[3, 1] = np.nan
    x[8, 2] = np.inf
    z = speaker_normalize(x, speakers)
    for s in range(3):
        rows = z[speakers == s]
        np.testing.assert_allclose(np.nanmean(rows, axis=0), 0.0, atol=1e-12)
        unit = [0, 1, 2, 3] if s == 1 else [0, 1, 2, 3, 5]
        np.testing.assert_allclose(np.nanstd(rows[:, unit], axis=0), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(z[:, 4], 0.0)  # constant within a speaker: 0, not NaN
    # Noise is not blown up to unit scale (a test speaker's values would become ~1e18 once
    # standardised with the training part's tiny std).
    np.testing.assert_array_equal(z[speakers == 1, 5], 0.0)
    assert np.isnan(z[3, 1]) and np.isnan(z[8, 2])  # no value stays no value
    assert np.isfinite(np.delete(z.ravel(), [3 * 6 + 1, 8 * 6 + 2])).all()


def test_online_normalisation_uses_only_a_speakers_earlier_utterances():
    from pyser.training.speaker_adapt import stream_orders

    rng = np.random.default_rng(4)
    keys = [("emodb", "03")] * 6 + [("tess", "OAF")] * 5 + [("emodb", "08")] * 4
    x = rng.normal(2.0, 3.0, size=(15, 5)) + np.repeat([0.0, 5.0, -3.0], [6, 5, 4])[:, None]
    x[:, 4] = 7.0  # constant everywhere
    x[9, 1] = np.nan
    fit = np.arange(0, 11)
    test = np.arange(11, 15)
    prior = 2.0
    z = online_speaker_normalize(x, keys, fit, [fit, test], seed=5, prior=prior)
    mu, var = np.nanmean(x[fit], axis=0), np.nanvar(x[fit], axis=0)
    filled = np.where(np.isfinite(x), x, mu)
    for part in (fit, test):
        for order in stream_orders([keys[i] for i in part], 5):
            rows = part[order]
            for k, r in enumerate(rows):
                before = filled[rows[:k]]
                n = prior + k
                mean = (prior * mu + before.sum(axis=0)) / n
                std = np.sqrt((prior * (var + mu**2) + (before**2).sum(axis=0)) / n - mean**2)
                with np.errstate(invalid="ignore"):
                    want = (x[r] - mean) / std
                want[4] = 0.0
                np.testing.assert_allclose(z[r], want, rtol=1e-9, atol=1e-12)
    # causal: a test speaker's last utterance changes no other value (the population
    # statistics come from the fit rows)
    last = test[stream_orders([keys[i] for i in test], 5)[0][-1]]
    x2 = x.copy()
    x2[last] += 100.0
    z2 = online_speaker_normalize(x2, keys, fit, [fit, test], seed=5, prior=prior)
    others = np.setdiff1d(np.arange(15), [last])
    np.testing.assert_array_equal(z2[others], z[others])
    assert not np.allclose(z2[last], z[last])
    first = [part[o[0]] for part in (fit, test) for o in stream_orders([keys[i] for i in part], 5)]
    np.testing.assert_allclose(z[first][:, :4], (x[first][:, :4] - mu[:4]) / np.sqrt(var[:4]))
    assert np.isnan(z[9, 1]) and np.isfinite(np.delete(z.ravel(), 9 * 5 + 1)).all()
    with pytest.raises(ValueError, match="prior must be positive"):
        online_speaker_normalize(x, keys, fit, [test], seed=5, prior=0.0)


def test_online_normalisation_walks_the_crnns_test_streams(corpus, tmp_path):
    """The baseline's online order is the one the CRNN's adapted test scores use: the
    fold's seed (pyser.training.train.fold_seed) into the same stream_orders."""
    from pyser.training.train import fold_seed

    cfg = tiny_config(corpus, tmp_path).replace(seed=3)
    data = prepare_data(cfg)
    seen = []
    real = baseline.online_speaker_normalize

    def spy(x, keys, fit, parts, seed, prior=baseline.ONLINE_PRIOR_UTTERANCES):
        seen.append(([np.asarray(p).tolist() for p in parts], seed))
        return real(x, keys, fit, parts, seed, prior)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(baseline, "online_speaker_normalize", spy)
        run_baseline(cfg, settings_for("egemaps", "online"), SvmGrid(C=(1.0,),
                     gamma_factors=(1.0,)), data=data)
    assert [s for _, s in seen] == [fold_seed(cfg, f) for f in data.folds]
    assert [p[1] for p, _ in seen] == [np.asarray(f.test).tolist() for f in data.folds]


def test_standardisation_is_fitted_on_train_and_nonfinite_becomes_zero():
    train = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 30.0]])
    test = np.array([[3.0, np.inf], [7.0, 20.0]])
    z_train, z_test = standardize(train, test)
    np.testing.assert_allclose(z_train[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert z_train[1, 1] == 0.0 and z_test[0, 1] == 0.0
    np.testing.assert_allclose(z_test[1], [2.4494897, 0.0], rtol=1e-6)


def test_speakers_are_keyed_by_corpus_and_speaker():
    from pyser.training.datasets import Utterance

    utts = [Utterance(Path(f"{c}{s}.wav"), "sad", s, 1.0, c)
            for c, s in (("emodb", "03"), ("ravdess", "03"), ("emodb", "03"), ("emodb", "08"))]
    ids = speaker_ids(utts)
    assert ids[0] == ids[2] and len(set(ids.tolist())) == 3


# --------------------------------------------------------------------------- protocol


def test_the_folds_are_the_crnns(full_run):
    cfg, out, _ = full_run
    crnn = prepare_data(cfg).folds
    assert len(crnn) == 4
    for run in out["settings"]:
        assert [f["split_sha1"] for f in run["folds"]] == [fold_fingerprint(f) for f in crnn]
        assert [f["sizes"] for f in run["folds"]] == [
            {"train": len(f.train), "dev": len(f.dev), "test": len(f.test)} for f in crnn]


def test_inner_cv_never_sees_a_test_speaker(full_run):
    cfg, _, calls = full_run
    data = prepare_data(cfg)
    spk = speaker_ids(data.utts)
    assert len(calls) == 6 * len(data.folds)  # one inner CV per setting and fold
    for idx, splits in calls:
        (fold,) = [f for f in data.folds if set(idx.tolist()) == set(f.train) | set(f.dev)]
        test_speakers = set(spk[fold.test].tolist())
        assert len(splits) >= 2
        for tr, va in splits:
            assert not test_speakers & set(spk[tr].tolist())
            assert not test_speakers & set(spk[va].tolist())
            assert not set(spk[tr].tolist()) & set(spk[va].tolist())  # speaker-grouped
        assert sorted(np.concatenate([va for _, va in splits]).tolist()) == sorted(idx.tolist())


def test_separable_task_is_learned(full_run):
    _, out, _ = full_run
    assert [r["setting"] for r in out["settings"]] == [
        "compare", "compare_spknorm", "compare_spknorm_online",
        "egemaps", "egemaps_spknorm", "egemaps_spknorm_online"]
    for key, s in out["summary"].items():
        assert s["test"]["ua"]["mean"] > 0.9, key
        assert set(s["test_by_corpus"]) == {"emodb", "tess"}
        assert s["test_by_corpus"]["emodb"]["ua"]["n"] == 4  # one EmoDB speaker per fold
        assert s["test_by_corpus"]["tess"]["ua"]["n"] == 2  # each TESS speaker tested once
    for run in out["settings"]:
        for f in run["folds"]:
            assert f["C"] in SvmGrid().C and f["gamma_factor"] in SvmGrid().gamma_factors
            assert f["gamma"] == pytest.approx(f["gamma_factor"] / run["n_features"])


def test_shuffled_labels_stay_near_chance(corpus, tmp_path):
    cfg = tiny_config(corpus, tmp_path)
    data = prepare_data(cfg)
    data.y = np.random.default_rng(3).permutation(data.y)
    out = run_baseline(cfg, settings_for("all", "off"), data=data)
    for key, s in out["summary"].items():
        assert s["test"]["ua"]["mean"] < 0.45, key  # chance is 0.25


# --------------------------------------------------------------------------- command


def test_command_writes_the_tables(corpus, tmp_path, capsys):
    from pyser.cli import main

    cfg_file = tmp_path / "tiny.toml"
    cfg = tiny_config(corpus, tmp_path)
    cfg_file.write_text(
        f'corpus = ["emodb", "tess"]\ndata_root = "{corpus}/{{corpus}}"\nn_folds = 4\n'
        f'cache_dir = "{cfg.cache_dir}"\nout_dir = "{cfg.out_dir}"\nprogress = false\n'
        "num_threads = 1\n"
    )
    status = main(["baseline", str(cfg_file), "--set", "folds=[0,1]", "--feature-set", "egemaps",
                   "--speaker-norm", "all", "--c-values", "1,10", "--gamma-factors", "0.5,1"])
    assert status == 0
    exp = Path(cfg.out_dir) / "baseline_tiny"
    md = (exp / "results.md").read_text()
    for norm in ("off", "all utterances", "online (causal)"):
        assert f"| eGeMAPSv02 | {norm} |" in md
    assert "emodb UA %" in md and "tess UA %" in md and "Test confusion matrix" in md
    assert md in capsys.readouterr().out
    doc = json.loads((exp / "results.json").read_text())
    assert [s["setting"] for s in doc["settings"]] == [
        "egemaps", "egemaps_spknorm", "egemaps_spknorm_online"]
    assert [f["fold"] for f in doc["settings"][0]["folds"]] == [0, 1]
    assert doc["protocol"]["C"] == [1.0, 10.0] and doc["protocol"]["gamma_factors"] == [0.5, 1.0]
    assert {f["C"] for s in doc["settings"] for f in s["folds"]} <= {1.0, 10.0}
    rows = (exp / "results.csv").read_text().splitlines()
    assert rows[0].startswith("experiment,setting,feature_set,speaker_norm,row,C")
    assert sum(",r0 f" in r for r in rows) == 6 and sum(",emodb mean," in r for r in rows) == 3


def test_command_refuses_a_bad_grid(capsys):
    from pyser.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["baseline", "--c-values", "1,-3"])
    assert exc.value.code == 2 and "give one or more positive numbers" in capsys.readouterr().err


def test_command_without_opensmile_names_the_extra(monkeypatch, capsys):
    import importlib.util

    from pyser.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "opensmile" else real(name, *a))
    assert main(["baseline"]) == 2
    err = capsys.readouterr().err
    assert "openSMILE not installed" in err and "pip install 'pyser[baseline]'" in err


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="feature set must be one of compare, egemaps, all"):
        settings_for("mfcc", "off")
    with pytest.raises(ValueError, match="speaker norm must be one of off, on, online, both, all"):
        settings_for("all", "maybe")
    with pytest.raises(ValueError, match="speaker_norm must be one of off, all, online"):
        baseline.Setting("compare", "on")
    with pytest.raises(ValueError, match="C grid must be positive"):
        SvmGrid(C=(0.0, 1.0))
