"""The training script end to end on a generated corpus, resume, config parsing, CLI.

The corpus: 3 speakers x 4 emotions x 6 utterances of 0.5-1.0 s; each emotion is a
harmonic tone at its own frequency (220 / 1800 / 3500 / 600 Hz, shifted 5 % per speaker)
plus a little noise, written as WAV files with a CSV manifest, so a CRNN separates the
classes within a few dozen steps. Features use 64 Mel bands to keep the run fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from pyser.training.config import ConfigError, TrainConfig, apply_overrides, load_config, load_experiment

LABELS = {"neutral": 220.0, "angry": 1800.0, "happy": 3500.0, "sad": 600.0}
SPEAKERS = ("s1", "s2", "s3")


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def make_corpus(root: Path, n_per: int = 6, sr: int = 16000, seed: int = 0,
                syllables: bool = False, labels: dict[str, float] = LABELS) -> Path:
    """Tone clips per speaker and label (``syllables``: in 0.2 s bursts between pauses,
    which the VAD takes for speech; steady tones it does not); ``labels``: each label's
    tone frequency in Hz."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for si, spk in enumerate(SPEAKERS):
        for label, f0 in labels.items():
            for k in range(n_per):
                t = np.arange(int(rng.uniform(0.5, 1.0) * sr)) / sr
                f = f0 * (1 + 0.05 * si) * rng.uniform(0.97, 1.03)
                x = 0.3 * np.sin(2 * np.pi * f * t) + 0.15 * np.sin(4 * np.pi * f * t)
                if syllables:
                    x *= (t % 0.3 > 0.1) & (t > 0.1)
                x = (x + 0.01 * rng.standard_normal(t.size)) * rng.uniform(0.5, 1.0)
                name = f"{spk}_{label}_{k}.wav"
                sf.write(root / name, x.astype(np.float32), sr)
                rows.append({"path": name, "label": label, "speaker": spk})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "speaker"])
        w.writeheader()
        w.writerows(rows)
    return manifest


def check_figure(path: Path, inches: tuple[float, float], dpi: int = 120) -> None:
    """A PNG of about ``inches`` x ``dpi`` pixels (bbox_inches="tight" trims or grows the
    margins), not blank: more than 2 % of it drawn, and more than 0.1 % coloured pixels
    (data -- lines, markers, colormaps -- as axes and text are grey; the PCA scatters of
    these tests colour about 0.4 %, an axes-only figure 0)."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    img = matplotlib.image.imread(path)  # (h, w, 3 or 4) floats in [0, 1]
    h, w = img.shape[:2]
    want_w, want_h = inches[0] * dpi, inches[1] * dpi
    assert 0.6 * want_w <= w <= 1.4 * want_w and 0.6 * want_h <= h <= 1.4 * want_h, (
        path, (w, h), (want_w, want_h))
    rgb = img[..., :3]
    drawn = (rgb < 0.95).any(axis=2).mean()
    coloured = (rgb.max(axis=2) - rgb.min(axis=2) > 0.25).mean()
    assert drawn > 0.02, (path, drawn)
    assert coloured > 0.001, (path, coloured)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def tiny_config(manifest: Path, out: Path, **changes) -> TrainConfig:
    base = {
        "experiment": "tiny",
        "corpus": "csv",
        "data_root": str(manifest),
        "split": "speaker",
        "n_folds": 3,
        "folds": [0],
        "steps": 30,
        "batch_size": 8,
        "lr": 3e-3,
        "eval_every": 10,
        "best_after_step": 30,
        "log_every": 5,
        "warmup_steps": 5,
        "features": {"n_mels": 64},
        "max_seconds": 0.8,
        "cache_dir": str(out.parent / "cache"),
        "out_dir": str(out),
        "num_threads": 1,
        "progress": False,
        "checkpoint_every": 0,
        "save_embeddings": True,
    }
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """One uninterrupted 30-step run (shared by the tests below)."""
    from pyser.training.train import run

    out = tmp_path_factory.mktemp("runs") / "full"
    cfg = tiny_config(corpus, out)
    return cfg, run(cfg)


def test_training_learns_the_tiny_corpus(trained):
    _, out = trained
    assert out["status"] == "done"
    (fold,) = out["folds"]
    losses = [h["loss"] for h in fold["history"]["train"]]
    assert len(losses) == 6  # every 5 of 30 steps
    assert losses[-1] < 0.5 * losses[0], losses
    assert fold["train"]["wa"] == 1.0  # the selected (last) model fits its training set
    assert fold["best_step"] == 30  # best_after_step=30: only the last evaluation competes
    # data description: 72 utterances, 18 a class, 24 per fold part
    assert out["data"]["class_counts"] == {"neutral": 18, "angry": 18, "happy": 18, "sad": 18}
    assert fold["sizes"] == {"train": 24, "dev": 24, "test": 24}
    # the warmup: lambda 0 (alpha 1) for steps 1-5, then 0.3 (0.5)
    sched = [(h["step"], h["lam"], h["alpha"]) for h in fold["history"]["train"]]
    assert sched[0] == (5, 0.0, 1.0)
    assert all((lam, alpha) == (0.3, 0.5) for _, lam, alpha in sched[1:])


def test_outputs_written(trained):
    from pyser.model import load_model

    _, out = trained
    exp = Path(out["dir"])
    doc = json.loads((exp / "results.json").read_text())
    assert doc["summary"]["test"]["ua"]["n"] == 1
    assert doc["data"]["split"] == "speaker"
    md = (exp / "results.md").read_text()
    assert "| r0 f0 | 30 |" in md and "mean ± std" in md
    assert "last step's weights" in md and doc["summary"]["test_last"]["ua"]["n"] == 1
    fold = out["folds"][0]
    assert fold["best_step"] == 30  # = the last step here, so both scores are of one model
    assert fold["test_last"]["confusion"] == fold["test"]["confusion"]
    assert fold["calibration_last"] == pytest.approx(fold["calibration"])
    assert "Calibration of the last step's weights" in md
    cal = out["folds"][0]["calibration"]
    assert cal["temperature"] > 0 and 0 <= cal["test_ece_after"] <= 1
    assert doc["summary"]["calibration"]["temperature"]["mean"] == pytest.approx(
        cal["temperature"])
    assert f"T = {cal['temperature']:.2f}" in md and "expected calibration error" in md
    rows = read_csv(exp / "results.csv")
    assert [r["row"] for r in rows] == ["r0 f0", "mean", "std"]
    events = [e["event"] for e in read_jsonl(exp / "log.jsonl")]
    assert events[0] == "start" and events[-1] == "end" and "fold_end" in events
    fold_dir = exp / "folds" / "r0_f0"
    model, meta = load_model(fold_dir / "model.pt")
    assert meta.labels == ["neutral", "angry", "happy", "sad"]
    assert meta.feature_config["n_mels"] == 64
    assert meta.provenance["corpus"] == "csv" and meta.provenance["fold"] == 0
    assert meta.provenance["metrics"]["test"]["ua"] == pytest.approx(out["folds"][0]["test"]["ua"])
    # the normalisation is inside the model: its mean is not the default zeros
    assert model.norm_mean.abs().sum() > 0
    emb = np.load(fold_dir / "embeddings.npz")
    assert emb["z_train"].shape == (24, 64) and emb["z_test"].shape == (24, 64)
    assert not (fold_dir / "checkpoint.pt").exists()  # removed once the fold is done


def test_resume_gives_identical_weights(trained, corpus, tmp_path):
    from pyser.training.train import run

    _, out_full = trained
    out = tmp_path / "interrupted"
    first = run(tiny_config(corpus, out, stop_at_step=13))
    assert first["status"] == "stopped" and first["step"] == 13
    ckpt = out / "tiny" / "folds" / "r0_f0" / "checkpoint.pt"
    assert ckpt.is_file()
    assert not (out / "tiny" / "folds" / "r0_f0" / "result.json").exists()
    second = run(tiny_config(corpus, out), resume=True)
    assert second["status"] == "done"
    events = read_jsonl(out / "tiny" / "log.jsonl")
    assert any(e["event"] == "resume" and e["step"] == 13 for e in events)

    a = torch.load(Path(out_full["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    b = torch.load(out / "tiny" / "folds" / "r0_f0" / "final_state.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ea = np.load(Path(out_full["dir"]) / "folds" / "r0_f0" / "embeddings.npz")
    eb = np.load(out / "tiny" / "folds" / "r0_f0" / "embeddings.npz")
    assert np.array_equal(ea["centers"], eb["centers"])
    assert second["folds"][0]["history"] == out_full["folds"][0]["history"]
    # a finished fold is skipped on a second resume
    third = run(tiny_config(corpus, out), resume=True)
    assert third["folds"][0]["test"] == second["folds"][0]["test"]


def test_kept_weights_of_a_longer_run_are_the_shorter_runs_last_step(trained, corpus, tmp_path):
    """At a constant learning rate a run's first N steps do not depend on its length, so
    the weights it keeps after step 30 are the 30-step run's last ones."""
    from pyser.training.results import fold_weights, weights_choice, weights_label
    from pyser.training.train import run

    _, out_full = trained
    out = tmp_path / "longer"
    run(tiny_config(corpus, out, steps=40, keep_weights_every=15))
    folder = out / "tiny" / "folds" / "r0_f0"
    assert sorted(p.name for p in folder.glob("weights_*.pt")) == ["weights_15.pt",
                                                                   "weights_30.pt"]
    short = fold_weights(Path(out_full["dir"]) / "folds" / "r0_f0", "last")
    kept = fold_weights(folder, "step:30")
    assert kept.keys() == short.keys()
    for k in short:
        assert torch.equal(kept[k], short[k]), k
    assert not torch.equal(fold_weights(folder, "last")["fc2.weight"], short["fc2.weight"])
    with pytest.raises(FileNotFoundError, match=r"weights_20.pt does not exist.*\[15, 30\]"):
        fold_weights(folder, "step:20")
    for bad in ("step:0", "step:x", "steps:5", "first"):
        with pytest.raises(ValueError, match="'last', 'best' or 'step:N'"):
            fold_weights(folder, bad)
        with pytest.raises(argparse.ArgumentTypeError):
            weights_choice(bad)
    assert [weights_label(w) for w in ("last", "best", "step:30")] == [
        "last-step", "best-dev", "step-30"]
    with pytest.raises(ConfigError, match="keep_weights_every must be >= 0"):
        tiny_config(corpus, out, keep_weights_every=-1)


def test_resume_refuses_a_checkpoint_of_other_settings(corpus, tmp_path):
    from pyser.training.train import run

    out = tmp_path / "r"
    assert run(tiny_config(corpus, out, stop_at_step=3))["status"] == "stopped"
    with pytest.raises(RuntimeError, match="different center_lambda, lr"):
        run(tiny_config(corpus, out, lr=1e-3, center_lambda=0.1), resume=True)
    with pytest.raises(RuntimeError, match="different aug_time_masks, label_smoothing"):
        run(tiny_config(corpus, out, aug_time_masks=2, label_smoothing=0.1), resume=True)
    # a cosine schedule depends on the step count: changing it is refused too
    out = tmp_path / "cos"
    assert run(tiny_config(corpus, out, stop_at_step=3, lr_schedule="cosine"))["status"] == "stopped"
    with pytest.raises(RuntimeError, match="different steps"):
        run(tiny_config(corpus, out, lr_schedule="cosine", steps=40), resume=True)


def test_resume_accepts_a_checkpoint_from_before_the_augmentation_keys(corpus, tmp_path):
    from pyser.training.checkpoint import torch_save
    from pyser.training.train import run

    out = tmp_path / "old"
    assert run(tiny_config(corpus, out, stop_at_step=3))["status"] == "stopped"
    path = out / "tiny" / "folds" / "r0_f0" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    for key in ("label_smoothing", "lr_schedule", "lr_final", "aug_gain_db", "aug_time_masks"):
        del ckpt["config"][key]  # what an older pyser wrote
    torch_save(ckpt, path)
    assert run(tiny_config(corpus, out), resume=True)["status"] == "done"


def test_evaluate_reproduces_the_fold_test_metrics(trained, corpus):
    from pyser.training.evaluate import evaluate_model

    cfg, out = trained
    model = Path(out["dir"]) / "folds" / "r0_f0" / "model.pt"
    r = evaluate_model(model, "csv", corpus, fold=0, cache_dir=cfg.cache_dir)
    fold = out["folds"][0]
    assert r["n"] == 24
    assert r["ua"] == pytest.approx(fold["test"]["ua"])
    assert r["confusion"] == fold["test"]["confusion"]
    whole = evaluate_model(model, "csv", corpus, cache_dir=cfg.cache_dir)
    assert whole["n"] == 72


def test_centre_crop_and_collate():
    from pyser.training.sampler import BatchSampler
    from pyser.training.store import centre_crop, collate

    x = np.arange(10)[:, None].repeat(2, axis=1).astype(np.float32)
    assert centre_crop(x, 4)[:, 0].tolist() == [3, 4, 5, 6]  # start (10 - 4) // 2
    assert centre_crop(x, 12) is x
    xb, lengths = collate([x[:3], x[:5]])
    assert xb.shape == (2, 5, 2) and lengths.tolist() == [3, 5]
    assert torch.equal(xb[0, 3:], torch.zeros(2, 2))
    s = BatchSampler(5, 3, seed=0)
    seen = np.concatenate([s.next() for _ in range(5)])  # 15 draws = 3 epochs of 5
    assert sorted(seen.tolist()) == sorted(list(range(5)) * 3)
    state = s.state_dict()
    t = BatchSampler(5, 3, seed=123)
    t.load_state_dict(state)
    assert [t.next().tolist() for _ in range(4)] == [s.next().tolist() for _ in range(4)]


def test_feature_store_crops_and_keeps_full_on_request():
    from pyser.training.store import FeatureStore, fit_normalization

    class FakeCache:
        def __init__(self):
            self.data = {
                "a": np.arange(20, dtype=np.float32).reshape(10, 2),
                "b": np.ones((4, 2), np.float32),
            }

        def get(self, utt):
            return self.data[utt]

    for preload in (True, False):
        st = FeatureStore(["a", "b"], FakeCache(), max_frames=6, preload=preload)
        assert st.lengths.tolist() == [6, 4] and st.full_lengths.tolist() == [10, 4]
        assert st.get(0)[:, 0].tolist() == [4, 6, 8, 10, 12, 14]  # frames 2..7
        with pytest.raises(ValueError, match="cropped features only"):
            st.get(0, crop=False)
        full = FeatureStore(["a", "b"], FakeCache(), max_frames=6, preload=preload, keep_full=True)
        assert full.get(0, crop=False).shape == (10, 2)
        assert np.array_equal(full.get(0), st.get(0))
        # a trim (e.g. to the speech span) applies before any crop, to every view
        trimmed = FeatureStore(["a", "b"], FakeCache(), max_frames=6, preload=preload,
                               keep_full=True, trim=lambda x: x[1:-1])
        assert trimmed.full_lengths.tolist() == [8, 2] and trimmed.lengths.tolist() == [6, 2]
        assert trimmed.get(0, crop=False)[:, 0].tolist() == list(range(2, 18, 2))
        assert trimmed.get(0)[:, 0].tolist() == [4, 6, 8, 10, 12, 14]  # frames 2..7 of 1..8
    mean, std = fit_normalization(st, [0, 1])
    frames = np.concatenate([st.get(0), st.get(1)])
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, frames.std(axis=0), rtol=1e-5)


@pytest.mark.corpus
def test_speech_trim_keeps_the_speech_span_of_real_speech(data_root):
    """speech_trim cuts the silence around a corpus utterance (1 s of silence added on each
    side), widens by a margin within the utterance, and keeps everything when the detector
    hears no speech."""
    import soundfile as sf

    from pyser import FeatureConfig, extract_features
    from pyser.training.store import speech_trim

    x, sr = sf.read(data_root / "emodb" / "wav" / "03a01Fa.flac", dtype="float32")
    pad = np.zeros(sr, np.float32)
    fc = FeatureConfig(center=False)
    frames = extract_features(np.concatenate([pad, x, pad]), fc)
    span = speech_trim(frames, fc.frame_rate)
    assert len(x) / sr * 100 - 60 < len(span) < len(x) / sr * 100 + 10  # the clip, less its pauses
    start = next(i for i in range(len(frames)) if np.array_equal(frames[i], span[0]))
    assert 95 <= start <= 160  # after the second of padding
    wide = speech_trim(frames, fc.frame_rate, margin_s=0.5)  # 0.5 s more on each side
    assert len(wide) == len(span) + 100 and np.array_equal(wide[50:-50], span)
    assert len(speech_trim(frames, fc.frame_rate, margin_s=9.0)) == len(frames)  # clipped
    silence = extract_features(np.zeros(sr, np.float32), fc)
    assert speech_trim(silence, fc.frame_rate) is silence


def write_tiny_experiment(tmp_path: Path, name: str, manifest: Path, extra: str) -> Path:
    """A tiny experiment config over a make_corpus manifest (3 speaker folds, 4 steps),
    with ``extra`` TOML appended (keys, [variants.*]); returns its path."""
    config = tmp_path / f"{name}.toml"
    config.write_text(f"""
experiment = "{name}"
corpus = "csv"
data_root = "{manifest}"
split = "speaker"
n_folds = 3
steps = 4
eval_every = 2
best_after_step = 0
batch_size = 8
max_seconds = 0.8
features = {{n_mels = 64}}
cache_dir = "{tmp_path / 'cache'}"
out_dir = "{tmp_path / 'runs'}"
num_threads = 1
progress = false
checkpoint_every = 0
{extra}""")
    return config


# ------------------------------------------------------------------------ config


def test_experiment_variant_picks_one_config():
    spec = load_experiment("ablation_pooled")
    adapt = spec.variant("adapt")
    assert adapt.speaker_adapt and adapt.experiment == "ablation_pooled/adapt"
    assert spec.variant(None) is spec.config
    with pytest.raises(ConfigError, match="no variant 'nope'.*'adapt'"):
        spec.variant("nope")


def test_config_file_and_overrides(tmp_path):
    p = tmp_path / "exp.toml"
    p.write_text(
        'corpus = "emodb"\nsteps = 100\nlr = 1e-3\nseeds = [0, 1]\n[features]\nn_mels = 64\n'
    )
    cfg = load_config(
        p,
        [
            "steps=250",
            "center_lambda=0",
            "corpus=ravdess",
            "folds=[1, 2]",
            "features.fmax=7600",
            "progress=false",
            f"data_root={tmp_path}/{{corpus}}",
        ],
    )
    assert cfg.experiment == "exp"
    assert cfg.steps == 250 and isinstance(cfg.center_lambda, float) and cfg.center_lambda == 0.0
    assert cfg.corpus == "ravdess" and cfg.lr == 1e-3 and cfg.seeds == [0, 1]
    assert cfg.folds == [1, 2] and cfg.progress is False
    assert cfg.features == {"n_mels": 64, "fmax": 7600}
    assert cfg.feature_config().n_bins == 64
    (tmp_path / "ravdess").mkdir()
    assert cfg.resolved_data_root() == tmp_path / "ravdess"
    assert cfg.split_kind() == "speaker"
    assert load_config(None, ["corpus=iemocap"]).split_kind() == "paper"


def test_unknown_keys_and_bad_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match="'stepz'"):
        apply_overrides(TrainConfig(), ["stepz=3"])
    p = tmp_path / "bad.toml"
    p.write_text("learning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="'learning_rate' in .*bad.toml"):
        load_config(p)
    with pytest.raises(ConfigError, match="steps .* must be an integer"):
        apply_overrides(TrainConfig(), ["steps=many"])
    with pytest.raises(ConfigError, match="steps .* must be an integer"):
        apply_overrides(TrainConfig(), ["steps=1.5"])
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        apply_overrides(TrainConfig(), ["steps"])
    with pytest.raises(ConfigError, match="feature_kind"):
        apply_overrides(TrainConfig(), ["feature_kind=mfcc"])
    with pytest.raises(ConfigError, match="center_alpha"):
        TrainConfig(center_alpha=0.0)


def test_bundled_configs():
    mel_c = load_config("paper_mel_center")
    assert (mel_c.feature_kind, mel_c.center_lambda, mel_c.center_alpha) == ("mel", 0.3, 0.5)
    assert (mel_c.batch_size, mel_c.lr, mel_c.warmup_steps, mel_c.max_seconds) == (
        32,
        3e-4,
        20,
        14.0,
    )
    assert load_config("paper_mel_plain").center_lambda == 0.0
    stft = load_config("paper_stft_center")
    assert stft.feature_kind == "stft" and stft.feature_config().n_bins == 513
    assert load_config("paper_stft_plain").center_lambda == 0.0
    lam = load_experiment("sweep_lambda")
    assert [c.center_lambda for c in lam.configs()] == [0.0, 0.003, 0.03, 0.3, 3.0]
    assert {c.center_alpha for c in lam.configs()} == {0.5}
    assert lam.configs()[1].experiment == "sweep_lambda/center_lambda=0.003"
    alpha = load_experiment("sweep_alpha")
    assert [c.center_alpha for c in alpha.configs()] == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert {c.center_lambda for c in alpha.configs()} == {0.3}
    assert load_experiment("smoke").configs()[0].steps < 200
    long = load_experiment("ablation_adapt_long").variant("adapt_long")
    assert (long.steps, long.keep_weights_every, long.speaker_adapt) == (3520, 500, True)
    # every bundled config and variant parses and validates
    configs = sorted((Path(__file__).resolve().parents[1] / "training" / "configs").glob("*.toml"))
    assert len(configs) > 20
    for path in configs:
        assert load_experiment(path.stem).configs(), path.name
    with pytest.raises(ConfigError, match="no config file"):
        load_config("no_such_experiment")


# ------------------------------------------------------------------------ command line


def test_cli_train_and_evaluate(corpus, tmp_path, capsys):
    from pyser.training.cli import register

    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli"
    cfg_file = tmp_path / "cli.toml"
    cfg_file.write_text(
        f'corpus = "csv"\ndata_root = "{corpus}"\nsplit = "speaker"\nn_folds = 3\nfolds = [0]\n'
        f"steps = 4\nbatch_size = 4\neval_every = 2\nbest_after_step = 0\nfeatures = {{n_mels = 64}}\n"
        f'cache_dir = "{tmp_path / "cache"}"\nout_dir = "{out}"\nprogress = false\n'
        "eval_train = false\nnum_threads = 1\n"
    )
    args = parser.parse_args(["train", str(cfg_file), "--set", "steps=6", "--device", "cpu"])
    assert args.func(args) == 0
    doc = json.loads((out / "cli" / "results.json").read_text())
    assert doc["config"]["steps"] == 6 and doc["config"]["device"] == "cpu"
    args = parser.parse_args(["train", str(cfg_file), "--set", "nope=1"])
    assert args.func(args) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err
    model = out / "cli" / "folds" / "r0_f0" / "model.pt"
    args = parser.parse_args(
        [
            "evaluate",
            str(model),
            "--corpus",
            "csv",
            "--root",
            str(corpus),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
        ]
    )
    assert args.func(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 72
    # The same numbers from the inference path, one utterance at a time, scored by sklearn.
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    from pyser import FeatureConfig, extract_features
    from pyser.audio import load_audio
    from pyser.model import load_model

    net, meta = load_model(model)
    fc = FeatureConfig.from_dict(meta.feature_config)
    y_true, y_pred = [], []
    for row in read_csv(corpus):
        x = torch.from_numpy(extract_features(load_audio(corpus.parent / row["path"]), fc))
        with torch.no_grad():
            logits = net(x[None], torch.tensor([x.shape[0]]))
        y_true.append(meta.labels.index(row["label"]))
        y_pred.append(int(logits.argmax()))
    assert r["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    assert r["wa"] == pytest.approx(np.mean(np.equal(y_true, y_pred)), abs=1e-12)
    assert r["confusion"] == confusion_matrix(y_true, y_pred, labels=range(4)).tolist()


# ------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "auto"])  # auto: bf16 autocast on the GPU
def test_training_runs_on_cuda(corpus, tmp_path, precision):
    from pyser.training.train import run

    out = run(
        tiny_config(
            corpus,
            tmp_path / "gpu",
            steps=12,
            device="cuda",
            precision=precision,
            eval_every=6,
            best_after_step=0,
            log_every=3,
        )
    )
    assert out["status"] == "done"
    fold = out["folds"][0]
    assert all(np.isfinite(h["loss"]) for h in fold["history"]["train"])
    assert fold["history"]["dev"][-1]["step"] == 12
    log = read_jsonl(Path(out["dir"]) / "log.jsonl")
    assert log[0]["device"].startswith("cuda")


def test_cli_export_verifies_against_eager(trained, tmp_path):
    from pyser.training.cli import register
    from pyser.training.export import load_onnx_metadata

    _, out = trained
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    model = Path(out["dir"]) / "folds" / "r0_f0" / "model.pt"
    onnx_path, ts_path = tmp_path / "m.onnx", tmp_path / "m.pt"
    args = parser.parse_args(["export", str(model), "-o", str(onnx_path), "-o", str(ts_path)])
    assert args.func(args) == 0
    assert load_onnx_metadata(onnx_path).labels == ["neutral", "angry", "happy", "sad"]
    args = parser.parse_args(["export", str(model), "-o", str(model)])
    assert args.func(args) == 2  # refuses to overwrite its input


def test_sweep_experiment_writes_table_and_figures(corpus, tmp_path):
    from pyser.training.experiments import run_experiment

    p = tmp_path / "mini_sweep.toml"
    p.write_text(
        f'corpus = "csv"\ndata_root = "{corpus}"\nsplit = "speaker"\nn_folds = 3\nfolds = [0]\n'
        "steps = 3\nbatch_size = 4\neval_every = 3\nbest_after_step = 0\nwarmup_steps = 1\n"
        f'features = {{n_mels = 64}}\ncache_dir = "{tmp_path / "cache"}"\nout_dir = "{tmp_path}"\n'
        "progress = false\neval_train = false\nnum_threads = 1\nsave_embeddings = true\n"
        '[sweep]\nkey = "center_lambda"\nvalues = [0.0, 0.3]\n'
    )
    out = run_experiment(str(p))
    exp = tmp_path / "mini_sweep"
    assert Path(out["dir"]) == exp
    assert [r["lambda"] for r in out["rows"]] == [0.0, 0.3]
    assert (exp / "center_lambda=0.0" / "results.json").is_file()
    assert (exp / "center_lambda=0.3" / "folds" / "r0_f0" / "model.pt").is_file()
    rows = read_csv(exp / "summary.csv")
    assert [float(r["lambda"]) for r in rows] == [0.0, 0.3]
    assert "center_lambda = 0.3" in (exp / "summary.md").read_text()
    check_figure(exp / "center_lambda.png", (5.0, 3.4))
    check_figure(exp / "confusion_center_lambda=0.3.png", (1.1 * 4 + 1.5, 1.1 * 4 + 1.0))
    check_figure(exp / "pca.png", (4.2 * 2, 3.8 * 2))  # train/test x two lambdas


def test_variants_experiment_runs_each_variant_and_tables_them(corpus, tmp_path):
    from pyser.training.experiments import run_experiment

    p = tmp_path / "mini_ablation.toml"
    p.write_text(
        f'corpus = "csv"\ndata_root = "{corpus}"\nsplit = "speaker"\nn_folds = 3\nfolds = [0]\n'
        "steps = 3\nbatch_size = 4\neval_every = 3\nbest_after_step = 0\nwarmup_steps = 1\n"
        f'features = {{n_mels = 64}}\ncache_dir = "{tmp_path / "cache"}"\nout_dir = "{tmp_path}"\n'
        "progress = false\neval_train = false\nnum_threads = 1\n"
        "[variants.base]\n[variants.masked]\naug_time_masks = 2\naug_time_mask_frames = 5\n"
        "[variants.smooth]\nlabel_smoothing = 0.2\ncenter_lambda = 0\nsave_embeddings = true\n"
    )
    out = run_experiment(str(p), ["lr=1e-3"])
    exp = tmp_path / "mini_ablation"
    assert [r["name"] for r in out["rows"]] == ["base", "masked", "smooth"]
    assert [r["lambda"] for r in out["rows"]] == [0.3, 0.3, 0.0]
    cfgs = {v: json.loads((exp / v / "config.json").read_text()) for v in ("base", "masked",
                                                                            "smooth")}
    assert cfgs["masked"]["aug_time_masks"] == 2 and cfgs["base"]["aug_time_masks"] == 0
    assert cfgs["smooth"]["label_smoothing"] == 0.2
    assert {c["lr"] for c in cfgs.values()} == {1e-3}  # --set applies to every variant
    md = (exp / "summary.md").read_text()
    assert "| masked |" in md and "aug_time_masks = 2" in md and "base: the base config" in md
    check_figure(exp / "confusion_smooth.png", (1.1 * 4 + 1.5, 1.1 * 4 + 1.0))
    check_figure(exp / "pca_mel.png", (4.2 * 2, 3.8))  # train/test of the one variant with z
    # neither variants nor a sweep pass through base: the child's own table decides
    child = tmp_path / "child.toml"
    child.write_text('base = "mini_ablation.toml"\n[sweep]\nkey = "lr"\nvalues = [1e-3]\n')
    spec = load_experiment(str(child))
    assert spec.sweep_key == "lr" and not spec.variants and spec.config.steps == 3
    child.write_text('base = "mini_ablation.toml"\n')
    assert not load_experiment(str(child)).variants
    bad = tmp_path / "bad.toml"
    bad.write_text("[variants.x]\nno_such_key = 1\n")
    with pytest.raises(ConfigError, match="no_such_key.*variant 'x'"):
        run_experiment(str(bad))
    bad.write_text("[variants.x]\nsteps = 'many'\n")
    with pytest.raises(ConfigError, match="steps"):
        run_experiment(str(bad))


def test_plots_write_pngs(tmp_path):
    from pyser.training.plots import pca_fit, plot_confusion, plot_pca, plot_sweep

    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 8))
    z[:, 0] *= 10  # the first principal axis is feature 0
    y = rng.integers(0, 4, 40)
    mean, comps = pca_fit(z)
    assert comps.shape == (2, 8) and abs(comps[0, 0]) > 0.99 and comps[0, 0] > 0
    labels = ["neutral", "angry", "happy", "sad"]
    paths = [
        plot_confusion(
            [[5, 1, 0, 0], [0, 6, 0, 0], [1, 0, 4, 1], [0, 0, 0, 6]], labels, tmp_path / "cm.png"
        ),
        plot_pca(
            [("train", z, y, (mean, comps)), ("test", z[:10], y[:10], (mean, comps))],
            labels,
            tmp_path / "pca.png",
        ),
        plot_sweep(
            [0.0, 0.003, 0.03, 0.3, 3.0],
            [{"ua": {"mean": 0.6, "std": 0.01}, "wa": {"mean": 0.62, "std": 0.02}}] * 5,
            "center_lambda",
            tmp_path / "sweep.png",
        ),
    ]
    check_figure(paths[0], (1.1 * 4 + 1.5, 1.1 * 4 + 1.0))
    check_figure(paths[1], (4.2 * 2, 3.8))
    check_figure(paths[2], (5.0, 3.4))
    # and the check itself: a white image, or axes without data, fail it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for draw in (lambda ax: ax.axis("off"), lambda ax: ax.set_xlabel("x")):
        fig, ax = plt.subplots(figsize=(5.0, 3.4))
        draw(ax)
        fig.savefig(tmp_path / "blank.png", dpi=120)
        plt.close(fig)
        with pytest.raises(AssertionError):
            check_figure(tmp_path / "blank.png", (5.0, 3.4))


# ------------------------------------------------------------------------ strict JSON


def _refuse_constant(token):
    raise ValueError(f"non-standard JSON constant {token}")


def strict_loads(text: str):
    """json.loads that rejects NaN/Infinity, as strict parsers (JavaScript, jq, Go) do."""
    return json.loads(text, parse_constant=_refuse_constant)


def one_class_model(path: Path, n_mels: int = 64) -> Path:
    """A model file whose logits always pick 'neutral': every other class is never predicted,
    so its precision is undefined (NaN in the metrics)."""
    from crnn_factory import random_crnn

    from pyser.model import ModelMetadata, save_model

    net = random_crnn(n_bins=n_mels)
    with torch.no_grad():
        net.fc2.bias.copy_(torch.tensor([1e4, 0.0, 0.0, 0.0]))
    meta = ModelMetadata(
        labels=["neutral", "angry", "happy", "sad"],
        feature_config={"kind": "mel", "n_mels": n_mels},
        provenance={"task": "4class"},
    )
    save_model(path, net, meta)
    return path


def test_evaluate_json_is_strict_when_a_class_is_never_predicted(corpus, tmp_path, capsys):
    from pyser.training.cli import register

    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    model = one_class_model(tmp_path / "m.pt")
    args = parser.parse_args(["evaluate", str(model), "--corpus", "csv", "--root", str(corpus),
                              "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    r = strict_loads(out)
    assert r["precision"] == [0.25, None, None, None]  # 18 of 72 are neutral
    assert r["recall"] == [1.0, 0.0, 0.0, 0.0] and r["ua"] == 0.25


def test_results_and_event_log_are_strict_json(tmp_path):
    from pyser.training.events import EventLog
    from pyser.training.metrics import logits_report
    from pyser.training.results import write_results

    y = np.array([0, 1, 2, 3] * 3)
    logits = np.zeros((12, 4), np.float32)
    logits[:, 0] = 1.0  # only class 0 is predicted: precision NaN for 1-3
    report = logits_report(y, logits, 4)
    fold = {"repeat": 0, "fold": 0, "best_step": 1, "sizes": {"test": 12},
            "test": report, "dev": report, "history": {}}
    cfg = TrainConfig(experiment="strict", out_dir=str(tmp_path))
    info = {"corpus": "csv", "labels": ["neutral", "angry", "happy", "sad"],
            "n_utterances": 12, "class_counts": {}, "split": "speaker"}
    write_results(tmp_path, cfg, info, [fold])
    doc = strict_loads((tmp_path / "results.json").read_text())
    assert doc["folds"][0]["test"]["precision"] == [0.25, None, None, None]
    events = EventLog(tmp_path / "log.jsonl")
    events("eval", dev_ua=float("nan"), precision=report["precision"])
    (line,) = (tmp_path / "log.jsonl").read_text().splitlines()
    assert strict_loads(line)["dev_ua"] is None


# ------------------------------------------------------------------------ undecodable audio


def test_feature_store_skips_and_names_files_that_cannot_be_decoded(caplog):
    from pyser.training.cache import AudioDecodeError
    from pyser.training.store import FeatureStore

    class Cache:
        def get(self, utt):
            if utt.startswith("bad"):
                raise AudioDecodeError(f"/corpus/{utt}.flac", "cannot decode the audio (lost sync)")
            if utt == "short":
                return np.zeros((0, 2), np.float32)
            return np.full((5 + len(utt), 2), len(utt), np.float32)

    utts = ["a", "bad1", "bbb", "short", "bad2"]
    with caplog.at_level(logging.WARNING, logger="pyser.training.store"):
        store = FeatureStore(utts, Cache(), max_frames=100, preload=True)
    assert store.utts == ["a", "bbb"] and store.kept.tolist() == [0, 2]
    assert store.lengths.tolist() == [6, 8] and store.get(1)[0, 0] == 3
    assert [u for u, _ in store.skipped] == ["bad1", "short", "bad2"]  # in input order
    reasons = dict(store.skipped)
    assert "lost sync" in reasons["bad1"] and "lost sync" in reasons["bad2"]
    assert "shorter than one FFT frame" in reasons["short"]
    for name in ("bad1.flac", "bad2.flac", "short"):
        assert name in caplog.text


def test_training_skips_undecodable_files_and_counts_them(tmp_path, caplog):
    import soundfile as sf

    from pyser.training.train import run

    manifest = make_corpus(tmp_path / "corpus", n_per=3)
    root = manifest.parent
    tone = (0.3 * np.sin(np.arange(12000) * 0.2)).astype(np.float32)
    sf.write(root / "cut.flac", tone, 16000)
    data = (root / "cut.flac").read_bytes()
    (root / "cut.flac").write_bytes(data[: len(data) // 2])  # the header is intact
    holed = tone.copy()
    holed[500] = np.nan
    sf.write(root / "nan.wav", holed, 16000, subtype="FLOAT")
    with open(manifest, "a") as f:
        f.write("cut.flac,sad,s1\nnan.wav,angry,s2\n")

    cfg = tiny_config(manifest, tmp_path / "out", steps=2, eval_every=2, best_after_step=0,
                      log_every=1, eval_train=False, save_embeddings=False)
    with caplog.at_level(logging.WARNING):
        out = run(cfg)
    assert out["status"] == "done"
    assert "cut.flac" in caplog.text and "nan.wav" in caplog.text
    info = out["data"]
    assert info["n_utterances"] == 36  # 3 speakers x 4 classes x 3, the two bad ones left out
    assert info["n_skipped"] == 2
    skipped = {Path(s["path"]).name: s["reason"] for s in info["skipped"]}
    assert set(skipped) == {"cut.flac", "nan.wav"}
    assert "non-finite" in skipped["nan.wav"] and "decode" in skipped["cut.flac"]
    exp = Path(out["dir"])
    assert json.loads((exp / "results.json").read_text())["data"]["n_skipped"] == 2
    assert "2 files skipped" in (exp / "results.md").read_text()


# ------------------------------------------------------------------------ evaluate's counts


def make_ravdess(root: Path) -> Path:
    """2 actors x 8 emotions of RAVDESS speech (1 s tones), one cut FLAC, one song file."""
    import soundfile as sf

    tone = (0.3 * np.sin(np.arange(16000) * 0.1)).astype(np.float32)
    for actor in ("01", "02"):
        for emo in ("01", "02", "03", "04", "05", "06", "07", "08"):
            path = root / f"Actor_{actor}" / f"03-01-{emo}-01-01-01-{actor}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone, 16000)
    cut = root / "Actor_02" / "03-01-05-02-01-01-02.flac"  # angry, a header and half the data
    sf.write(cut, tone, 16000)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    sf.write(root / "Actor_01" / "03-02-01-01-01-01-01.wav", tone, 16000)  # song: a bad name
    return root


def test_evaluate_says_what_was_excluded_and_skipped(tmp_path, capsys):
    from pyser.training.cli import register

    root = make_ravdess(tmp_path / "ravdess")
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    model = one_class_model(tmp_path / "m.pt")
    common = [str(model), "--corpus", "ravdess", "--root", str(root),
              "--cache-dir", str(tmp_path / "cache")]
    args = parser.parse_args(["evaluate", *common])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    # 16 speech files of 8 emotions: 8 of the 4 classes scored, 8 of calm, fearful, disgust
    # and surprised excluded; the cut FLAC and the song file are skipped.
    assert "8 utterances" in text
    assert "8 excluded" in text and "calm 2" in text and "surprised 2" in text
    assert "2 files skipped" in text and "03-01-05-02-01-01-02.flac" in text
    assert "03-02-01-01-01-01-01.wav" in text
    args = parser.parse_args(["evaluate", *common, "--json"])
    assert args.func(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 8 and r["excluded"] == 8
    assert r["excluded_by"] == {"calm": 2, "fearful": 2, "disgust": 2, "surprised": 2}
    assert r["n_skipped"] == 2
    assert {Path(s["path"]).name for s in r["skipped"]} == {
        "03-01-05-02-01-01-02.flac", "03-02-01-01-01-01-01.wav"}


# ------------------------------------------------------------------------ safe checkpoints


class _Payload:
    """Unpickling this runs code: it touches the marker file (a stand-in for anything worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _stopped_run(corpus: Path, out: Path) -> Path:
    from pyser.training.train import run

    assert run(tiny_config(corpus, out, stop_at_step=3))["status"] == "stopped"
    return out / "tiny" / "folds" / "r0_f0" / "checkpoint.pt"


def test_checkpoints_hold_only_weights_only_types(corpus, tmp_path):
    ckpt = _stopped_run(corpus, tmp_path / "r")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # no numpy, no classes
    assert state["step"] == 3 and "rng" in state


def test_resume_refuses_a_checkpoint_that_would_run_code(corpus, tmp_path):
    from pyser.training.checkpoint import CheckpointError
    from pyser.training.train import run

    ckpt = _stopped_run(corpus, tmp_path / "r")
    marker = tmp_path / "pwned"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state["history"] = _Payload(marker)
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt") as info:
        run(tiny_config(corpus, tmp_path / "r"), resume=True)
    assert not marker.exists()
    assert "delete it" in str(info.value)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_resume_names_a_damaged_checkpoint(corpus, tmp_path, capsys, damage):
    from pyser.training.cli import register

    ckpt = _stopped_run(corpus, tmp_path / "r")
    data = ckpt.read_bytes()
    ckpt.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "garbage": b"\x00not a checkpoint" * 50}[damage])
    cfg_file = tmp_path / "resume.toml"
    cfg = tiny_config(corpus, tmp_path / "r").to_dict()
    cfg_file.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items()
                                if not isinstance(v, dict)) + "[features]\nn_mels = 64\n")
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", str(cfg_file), "--resume"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert str(ckpt) in err and "Traceback" not in err
    assert ("empty" if damage == "empty" else "truncated or corrupt") in err


# ------------------------------------------------------------------------ where the data is


def test_data_root_resolution_order_and_error(tmp_path, monkeypatch):
    import pyser.training.config as config_mod

    for where in ("explicit", "env", "default"):
        (tmp_path / where / "emodb").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the repository: nothing may depend on the cwd
    monkeypatch.setattr(config_mod, "DEFAULT_DATA_DIR", tmp_path / "default", raising=False)
    monkeypatch.delenv("PYSER_DATA", raising=False)
    # 3. the default next to the repository
    assert TrainConfig(corpus="emodb").resolved_data_root() == tmp_path / "default" / "emodb"
    # 2. $PYSER_DATA, the folder holding the corpora
    monkeypatch.setenv("PYSER_DATA", str(tmp_path / "env"))
    assert TrainConfig(corpus="emodb").resolved_data_root() == tmp_path / "env" / "emodb"
    # 1. the data_root option (--set data_root=..., a config file)
    explicit = TrainConfig(corpus="emodb", data_root=str(tmp_path / "explicit" / "{corpus}"))
    assert explicit.resolved_data_root() == tmp_path / "explicit" / "emodb"
    # nothing found: the error names all three places
    monkeypatch.setenv("PYSER_DATA", str(tmp_path / "no_env"))
    monkeypatch.setattr(config_mod, "DEFAULT_DATA_DIR", tmp_path / "no_default")
    with pytest.raises(FileNotFoundError) as info:
        TrainConfig(corpus="emodb").resolved_data_root()
    msg = str(info.value)
    assert "data_root" in msg and "PYSER_DATA" in msg
    assert str(tmp_path / "no_env" / "emodb") in msg and str(tmp_path / "no_default") in msg
    missing = TrainConfig(corpus="emodb", data_root=str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=r"data_root.*typo"):
        missing.resolved_data_root()


@pytest.mark.corpus
def test_default_data_root_does_not_depend_on_the_cwd(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TrainConfig(corpus="emodb").resolved_data_root().resolve() == (
        data_root / "emodb"
    ).resolve()


def test_train_and_evaluate_name_all_data_roots_when_none_exists(tmp_path, monkeypatch, capsys):
    import pyser.training.config as config_mod
    from pyser.training.cli import register

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYSER_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(config_mod, "DEFAULT_DATA_DIR", tmp_path / "default", raising=False)
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "smoke", "--set", f"out_dir={tmp_path / 'out'}"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "PYSER_DATA" in err and str(tmp_path / "env" / "emodb") in err
    assert str(tmp_path / "default" / "emodb") in err and "data_root" in err


def test_evaluate_finds_the_corpus_through_pyser_data(tmp_path, monkeypatch, capsys):
    from pyser.training.cli import register

    make_ravdess(tmp_path / "data" / "ravdess")
    model = one_class_model(tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path / "data" / "ravdess")  # anywhere
    monkeypatch.setenv("PYSER_DATA", str(tmp_path / "data"))
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", str(model), "--corpus", "ravdess", "--json",
                              "--cache-dir", str(tmp_path / "cache")])
    assert args.func(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 8 and Path(r["root"]) == tmp_path / "data" / "ravdess"


# ------------------------------------------------------------------------ missing extras


def test_train_without_the_training_extras_says_what_to_install(corpus, tmp_path, monkeypatch,
                                                                capsys):
    import sys

    from pyser.training.cli import register
    from pyser.training.store import FeatureStore

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "smoke", "--set", f"data_root={corpus}",
                              "--set", "corpus=csv", "--set", f"out_dir={tmp_path}"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "tqdm" in err and "pip install 'pyser[train]'" in err
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'pyser\[train\]'"):
        FeatureStore([], None, max_frames=10, preload=True)  # the library says it too


def test_export_without_onnx_says_what_to_install(trained, tmp_path, monkeypatch, capsys):
    import sys

    from pyser.training.cli import register

    _, out = trained
    monkeypatch.setitem(sys.modules, "onnx", None)
    parser = argparse.ArgumentParser(prog="pyser")
    register(parser.add_subparsers(dest="command"))
    model = Path(out["dir"]) / "folds" / "r0_f0" / "model.pt"
    args = parser.parse_args(["export", str(model), "-o", str(tmp_path / "m.onnx")])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "onnx" in err and "pip install 'pyser[train]'" in err


def test_bf16_training_learns_the_tiny_corpus_and_saves_a_float32_model(corpus, tmp_path):
    """precision=bf16: the forward pass in bfloat16 (slow but correct on CPUs without AMX),
    losses and weights in float32; the saved model is plain float32, contiguous."""
    from pyser.model import load_model
    from pyser.training.train import run

    out = run(tiny_config(corpus, tmp_path / "runs", precision="bf16", experiment="bf16"))
    (fold,) = out["folds"]
    losses = [h["loss"] for h in fold["history"]["train"]]
    assert losses[-1] < 0.5 * losses[0], losses
    assert fold["train"]["wa"] >= 0.9
    module, _ = load_model(tmp_path / "runs" / "bf16" / "folds" / "r0_f0" / "model.pt")
    for name, p in module.state_dict().items():
        assert p.dtype == torch.float32 and p.is_contiguous(), name


def test_precision_and_autocast_choice():
    from pyser.training.runtime import autocast_dtype, fast_bf16

    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if fast_bf16(cpu) else None)
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16")


def test_split_all_trains_a_final_model_on_every_utterance(corpus, tmp_path):
    from pyser.model import load_model
    from pyser.training.train import run

    out = run(tiny_config(corpus, tmp_path, split="all", folds=[], steps=12,
                          save_embeddings=False, eval_every=5))
    assert out["status"] == "done"
    (fold,) = out["folds"]
    assert fold["sizes"] == {"train": 72, "dev": 0, "test": 0}  # the whole tiny corpus
    assert fold["best_step"] == 12 and "test" not in fold and fold["train"]["ua"] > 0
    assert not [h for h in fold["history"]["dev"]]  # no dev evaluation at all
    exp = Path(out["dir"])
    doc = json.loads((exp / "results.json").read_text())
    assert doc["summary"]["train"]["ua"]["n"] == 1 and "test" not in doc["summary"]
    assert "no dev or test part" in (exp / "results.md").read_text()
    # the saved weights are those of the last step
    model, meta = load_model(exp / "folds" / "r0_f0" / "model.pt")
    final = torch.load(exp / "folds" / "r0_f0" / "final_state.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(v, final[k]), k
    assert meta.provenance["split"] == "all" and set(meta.provenance["metrics"]) == {"train"}


def test_speaker_adaptation_trains_resumes_exactly_and_ships_its_constants(tmp_path):
    from pyser.stream import Recognizer
    from pyser.training.train import run

    corpus = make_corpus(tmp_path / "corpus", n_per=4, syllables=True)
    cfg = {"speaker_adapt": True, "steps": 16, "eval_every": 8, "best_after_step": 0}
    full = run(tiny_config(corpus, tmp_path / "full", **cfg))
    fold = full["folds"][0]
    for key in ("test", "test_unadapted", "test_last", "test_last_unadapted"):
        assert 0 <= fold[key]["ua"] <= 1
        assert key in full["summary"]
    assert "Online speaker adaptation" in (Path(full["dir"]) / "results.md").read_text()
    rec = Recognizer.load(Path(full["dir"]) / "folds" / "r0_f0" / "model.pt")
    assert rec.adaptation is not None and rec.adaptation.n_bins == 64
    assert np.isfinite(rec.adaptation.population_mean).all()
    assert rec.create_stream().speaker is not None
    # output normalisation (on by default): the model's mean logits over its training data
    assert rec.adaptation.logit_mean.shape == (len(rec.labels),)
    assert np.isfinite(rec.adaptation.logit_mean).all() and rec.adaptation.logit_prior == 8.0
    assert rec.adaptation.logit_std.shape == (len(rec.labels),)  # z-scored by default

    out = tmp_path / "interrupted"
    assert run(tiny_config(corpus, out, stop_at_step=9, **cfg))["status"] == "stopped"
    assert run(tiny_config(corpus, out, **cfg), resume=True)["status"] == "done"
    a = torch.load(Path(full["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    b = torch.load(out / "tiny" / "folds" / "r0_f0" / "final_state.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    out = tmp_path / "other"
    assert run(tiny_config(corpus, out, stop_at_step=3, **cfg))["status"] == "stopped"
    with pytest.raises(RuntimeError, match="different speaker_adapt "):
        run(tiny_config(corpus, out, **{**cfg, "speaker_adapt": False}), resume=True)


def test_training_with_output_normalisation_changes_the_training_and_resumes_exactly(tmp_path):
    from pyser.training.checkpoint import load_checkpoint
    from pyser.training.config import ConfigError
    from pyser.training.train import run

    corpus = make_corpus(tmp_path / "corpus", n_per=4, syllables=True)
    cfg = {"speaker_adapt": True, "speaker_adapt_logit_train": True, "steps": 16,
           "eval_every": 8, "best_after_step": 0}
    full = run(tiny_config(corpus, tmp_path / "full", **cfg))
    plain = run(tiny_config(corpus, tmp_path / "plain",
                            **{**cfg, "speaker_adapt_logit_train": False}))
    a = torch.load(Path(full["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    b = torch.load(Path(plain["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    assert not torch.equal(a["fc2.weight"], b["fc2.weight"])  # the loss read other logits

    out = tmp_path / "interrupted"
    assert run(tiny_config(corpus, out, stop_at_step=9, **cfg))["status"] == "stopped"
    ckpt = load_checkpoint(out / "tiny" / "folds" / "r0_f0" / "checkpoint.pt")
    assert bool(ckpt["logit_memory"]["seen"].any())  # the memory travels with the checkpoint
    assert run(tiny_config(corpus, out, **cfg), resume=True)["status"] == "done"
    c = torch.load(out / "tiny" / "folds" / "r0_f0" / "final_state.pt")
    for k in a:
        assert torch.equal(a[k], c[k]), k
    for bad in ({"speaker_adapt": False}, {"speaker_adapt_logit_prior": 0.0}):
        with pytest.raises(ConfigError, match="speaker_adapt_logit_train needs"):
            tiny_config(corpus, tmp_path / "bad", **{**cfg, **bad})


def test_a_final_model_gets_the_same_logit_stats_from_training_and_from_bundling(tmp_path):
    """bundle_model.py --logit-stats-from: a split "all" model trained before output
    normalisation existed gets the logit mean a training run now writes itself."""
    from pyser.adapt import SpeakerAdaptation
    from pyser.training.evaluate import load_eager_model
    from pyser.training.train import final_model_logit_stats, run

    corpus = make_corpus(tmp_path / "corpus", n_per=3, syllables=True)
    cfg = tiny_config(corpus, tmp_path / "out", split="all", folds=[], steps=6,
                      speaker_adapt=True, save_embeddings=False)
    out = run(cfg)
    net, meta = load_eager_model(Path(out["dir"]) / "folds" / "r0_f0" / "model.pt")
    written = SpeakerAdaptation.from_dict(meta.speaker_adaptation)
    older = SpeakerAdaptation(written.population_mean, written.prior_frames)  # no logit_mean
    again = final_model_logit_stats(cfg, net, older)
    np.testing.assert_allclose(again.logit_mean, written.logit_mean, atol=1e-5)
    np.testing.assert_allclose(again.logit_std, written.logit_std, atol=1e-5)
    assert again.logit_prior == written.logit_prior == cfg.speaker_adapt_logit_prior
    with pytest.raises(ValueError, match="not the data it was trained on"):
        final_model_logit_stats(cfg, net, SpeakerAdaptation(written.population_mean + 3.0,
                                                           written.prior_frames))
    with pytest.raises(ValueError, match="split 'all'"):
        final_model_logit_stats(cfg.replace(split="speaker", folds=[0]), net, older)


def test_scaling_speaker_adaptation_trains_and_ships_the_population_spread(tmp_path):
    from pyser.model import load_model
    from pyser.training.train import run

    corpus = make_corpus(tmp_path / "corpus", n_per=4, syllables=True)
    cfg = {"speaker_adapt": True, "speaker_adapt_scale": True, "steps": 6, "eval_every": 3,
           "best_after_step": 0, "speaker_adapt_logit_prior": 0.0}
    full = run(tiny_config(corpus, tmp_path / "full", **cfg))
    assert 0 <= full["folds"][0]["test_last"]["ua"] <= 1
    _, meta = load_model(Path(full["dir"]) / "folds" / "r0_f0" / "model.pt")
    std = np.asarray(meta.speaker_adaptation["population_std"])
    assert std.shape == (64,) and (std > 0).all()
    assert "logit_mean" not in meta.speaker_adaptation  # output normalisation off
    out = tmp_path / "other"
    assert run(tiny_config(corpus, out, stop_at_step=3, **cfg))["status"] == "stopped"
    with pytest.raises(RuntimeError, match="speaker_adapt_scale"):
        run(tiny_config(corpus, out, **{**cfg, "speaker_adapt_scale": False}), resume=True)



def test_weight_average_is_the_mean_of_the_states_it_was_given():
    from pyser.training.train import WeightAverage

    net = torch.nn.Linear(3, 2)
    states = []
    avg = WeightAverage()
    for k in range(3):
        with torch.no_grad():
            net.weight.fill_(float(k))
            net.bias.copy_(torch.tensor([k, 2.0 * k]))
        states.append({n: v.clone() for n, v in net.state_dict().items()})
        avg.update(net)
    assert avg.count == 3
    again = WeightAverage()
    again.load_state_dict(avg.state_dict(), torch.device("cpu"))
    again.copy_to(net)
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, torch.stack([s[name] for s in states]).mean(0))


def test_weight_averaging_ends_the_run_with_the_mean_and_resumes_exactly(tmp_path):
    from pyser.training.train import run

    corpus = make_corpus(tmp_path / "corpus", n_per=4)
    base = {"steps": 16, "eval_every": 8, "best_after_step": 0, "save_embeddings": False}

    def final_state(result):
        return torch.load(Path(result["dir"]) / "folds" / "r0_f0" / "final_state.pt")

    plain = final_state(run(tiny_config(corpus, tmp_path / "plain", **base)))
    # averaging the last step alone is the last step
    last = final_state(run(tiny_config(corpus, tmp_path / "last", average_from_step=16, **base)))
    assert all(torch.equal(plain[k], last[k]) for k in plain)
    cfg = {**base, "average_from_step": 6, "checkpoint_every": 4}
    full = run(tiny_config(corpus, tmp_path / "avg", **cfg))
    averaged = final_state(full)
    assert any(not torch.equal(plain[k], averaged[k]) for k in plain)
    assert 0 <= full["folds"][0]["test_last"]["ua"] <= 1
    out = tmp_path / "resumed"
    assert run(tiny_config(corpus, out, stop_at_step=10, **cfg))["status"] == "stopped"
    resumed = final_state(run(tiny_config(corpus, out, **cfg), resume=True))
    for k in averaged:
        assert torch.equal(averaged[k], resumed[k]), k
    with pytest.raises(ConfigError, match="average_from_step"):
        tiny_config(corpus, out, steps=10, average_from_step=11)
