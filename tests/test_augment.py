"""Training-time augmentation: each transform does what it says, only on valid frames, and
is a pure function of (seed, step), so resumed runs stay bit-identical."""

from pathlib import Path

import pytest
import torch

from pyser.training.augment import Augment
from pyser.training.config import ConfigError, TrainConfig
from test_train import make_corpus, tiny_config

F_BINS = 64


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 120, F_BINS, generator=g) * 10 - 40
    lengths = torch.tensor([120, 100, 80, 60, 49, 1])
    x[torch.arange(120)[None, :] >= lengths[:, None]] = 0.0  # collate's zero padding
    return x, lengths


def test_off_by_default_and_each_switch_turns_it_on():
    fill = torch.zeros(F_BINS)
    assert not Augment(fill, 0).active
    assert not Augment(fill, 0, time_masks=2).active  # no width
    for on in ({"gain_db": 3}, {"freq_warp": 0.1}, {"time_masks": 1, "time_mask_frames": 5},
               {"freq_masks": 1, "freq_mask_bins": 5}, {"speed": 0.1},
               {"noise_snr_db": (10.0, 20.0)}):
        assert Augment(fill, 0, **on).active, on


def test_draws_depend_on_seed_and_step_only():
    x, lengths = batch()
    a = Augment(torch.zeros(F_BINS), 7, gain_db=6, freq_warp=0.1, time_masks=2,
                time_mask_frames=20, freq_masks=2, freq_mask_bins=10)
    assert torch.equal(a.apply(x, lengths, 3)[0], a.apply(x.clone(), lengths, 3)[0])
    assert not torch.equal(a.apply(x, lengths, 3)[0], a.apply(x, lengths, 4)[0])
    b = Augment(torch.zeros(F_BINS), 8, gain_db=6)
    assert not torch.equal(Augment(torch.zeros(F_BINS), 7, gain_db=6).apply(x, lengths, 3)[0],
                           b.apply(x, lengths, 3)[0])
    x_before = x.clone()
    a.apply(x, lengths, 0)
    assert torch.equal(x, x_before)  # the input is not modified in place


def test_padding_is_left_as_it_was():
    x, lengths = batch()
    a = Augment(torch.full((F_BINS,), -30.0), 1, gain_db=6, freq_warp=0.2, time_masks=3,
                time_mask_frames=50, freq_masks=2, freq_mask_bins=20,
                noise_snr_db=(0.0, 10.0))
    for step in range(10):
        y = a.apply(x, lengths, step)[0]
        pad = torch.arange(120)[None, :] >= lengths[:, None]
        assert torch.equal(y[pad], x[pad])


def test_gain_is_one_offset_per_utterance_within_the_range():
    x, lengths = batch()
    y = Augment(torch.zeros(F_BINS), 2, gain_db=4).apply(x, lengths, 0)[0]
    for i, n in enumerate(lengths.tolist()):
        d = y[i, :n] - x[i, :n]
        assert torch.allclose(d, d[0, 0].expand_as(d), atol=1e-4)
        assert abs(float(d[0, 0])) <= 4
    offsets = [float((y[i, 0] - x[i, 0])[0]) for i in range(6)]
    assert len({round(o, 4) for o in offsets}) == 6  # independent draws


def test_masks_fill_stretches_with_the_bin_means_within_the_widths():
    x, lengths = batch()
    fill = torch.linspace(-60, -20, F_BINS)
    a = Augment(fill, 3, time_masks=1, time_mask_frames=15)
    masked_any = False
    for step in range(20):
        y = a.apply(x, lengths, step)[0]
        for i, n in enumerate(lengths.tolist()):
            rows = (y[i, :n] != x[i, :n]).any(dim=1).nonzero().flatten()
            if len(rows):
                masked_any = True
                assert len(rows) <= 15 and rows.max() - rows.min() + 1 == len(rows)
                assert torch.equal(y[i, rows], fill.expand(len(rows), -1))
    assert masked_any
    f = Augment(fill, 3, freq_masks=1, freq_mask_bins=10).apply(x, lengths, 0)[0]
    for i, n in enumerate(lengths.tolist()):
        cols = (f[i, :n] != x[i, :n]).any(dim=0).nonzero().flatten()
        assert len(cols) <= 10
        if len(cols):
            assert torch.equal(f[i, :n][:, cols], fill[cols].expand(n, -1))


def test_frequency_warp_moves_a_spectral_peak_by_the_factor():
    x = torch.full((200, 1, F_BINS), -80.0)
    x[:, :, 40] = 0.0
    lengths = torch.full((200,), 1)
    y = Augment(torch.zeros(F_BINS), 4, freq_warp=0.2).apply(x, lengths, 0)[0]
    peaks = y[:, 0].argmax(dim=1).float()
    # bin k takes the value of bin k * factor: the peak lands near 40 / factor
    assert peaks.min() >= 40 / 1.2 - 1 and peaks.max() <= 40 / 0.8 + 1
    assert peaks.std() > 2  # the factor varies per utterance
    same = Augment(torch.zeros(F_BINS), 4, freq_warp=1e-9).apply(x, lengths, 0)[0]
    assert torch.allclose(same, x, atol=1e-3)


def test_speed_resamples_time_and_scales_frequency_by_one_factor():
    # three frames in ten carry a spectral peak at bin 40
    x = torch.full((300, 100, F_BINS), -80.0)
    for k in range(3):
        x[:, k::10, 40] = 0.0
    lengths = torch.full((300,), 100)
    y, new = Augment(torch.zeros(F_BINS), 5, speed=0.2).apply(x, lengths, 0)
    rate = 100 / new.float()  # new length = floor(100 / rate)
    assert new.min() >= 100 / 1.2 - 1 and new.max() == 100  # a slower one is cut at T
    assert new.float().std() > 3  # the factor varies per utterance
    fast = (new < 90).nonzero().flatten()
    for i in fast[:20].tolist():
        row = y[i, : new[i]]
        peak_bin = row.max(dim=0).values.argmax().item()
        # faster: the peak moves up in frequency (bin 40 * rate) ...
        assert abs(peak_bin - 40 * rate[i].item()) <= 2
        # ... and the bursts of frames with it come closer together (every 10 / rate)
        on = row[:, peak_bin] > -40
        starts = (on[1:] & ~on[:-1]).nonzero().flatten().float()
        period = (starts[-1] - starts[0]) / (len(starts) - 1)
        assert abs(period.item() - 10 / rate[i].item()) < 0.3
    # beyond the new lengths: left as it was (padding)
    for i in range(300):
        assert torch.equal(y[i, new[i]:], x[i, new[i]:])


def test_noise_is_added_at_the_snr_in_the_power_domain():
    b, t = 200, 80
    x = torch.full((b, t, F_BINS), -30.0)
    lengths = torch.full((b,), t)
    y, same = Augment(torch.zeros(F_BINS), 6, noise_snr_db=(10.0, 10.0)).apply(x, lengths, 0)
    assert torch.equal(same, lengths)
    assert (y > x).all()  # power only adds
    added = (torch.pow(10.0, y / 10) - torch.pow(10.0, x / 10)).mean(dim=(1, 2))
    snr = 10 * torch.log10(torch.pow(10.0, torch.tensor(-3.0)) / added)
    assert (snr - 10.0).abs().max() < 0.5  # the drawn fluctuation averages out
    tilt = (y[:, :, -8:] - y[:, :, :8]).mean(dim=(1, 2))
    assert tilt.min() < -0.3 and tilt.max() > 0.1  # coloured: the spectrum's tilt varies
    loud = Augment(torch.zeros(F_BINS), 6, noise_snr_db=(-10.0, -10.0)).apply(x, lengths, 0)[0]
    assert (loud.mean(dim=(1, 2)) > -25).all()  # at -10 dB SNR the noise dominates


@pytest.mark.parametrize(
    ("key", "value"),
    [("aug_speed", 0.5), ("aug_speed", -0.1), ("aug_noise_snr_db", [20.0, 10.0]),
     ("aug_noise_snr_db", [10.0]), ("aug_gain_db", -1), ("aug_freq_warp", 0.5), ("aug_time_masks", -1),
     ("aug_freq_mask_bins", -2), ("label_smoothing", 1.0)],
)
def test_config_refuses_bad_augmentation_values(key, value):
    with pytest.raises(ConfigError, match=key):
        TrainConfig(**{key: value})


def test_augmented_training_resumes_bit_identically(tmp_path):
    from pyser.training.train import run

    corpus = make_corpus(tmp_path / "corpus")
    aug = {"aug_gain_db": 6.0, "aug_freq_warp": 0.1, "aug_time_masks": 2,
           "aug_time_mask_frames": 10, "aug_freq_masks": 2, "aug_freq_mask_bins": 8,
           "aug_speed": 0.1, "aug_noise_snr_db": [5.0, 30.0],
           "label_smoothing": 0.1, "lr_schedule": "cosine", "steps": 20,
           "save_embeddings": False}
    full = run(tiny_config(corpus, tmp_path / "full", **aug))
    plain = run(tiny_config(corpus, tmp_path / "plain", steps=20, save_embeddings=False))
    assert full["folds"][0]["history"] != plain["folds"][0]["history"]  # it changed training
    out = tmp_path / "resumed"
    assert run(tiny_config(corpus, out, stop_at_step=7, **aug))["status"] == "stopped"
    resumed = run(tiny_config(corpus, out, **aug), resume=True)
    a = torch.load(Path(full["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    b = torch.load(out / "tiny" / "folds" / "r0_f0" / "final_state.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed["folds"][0]["history"] == full["folds"][0]["history"]


def test_cosine_learning_rate_runs_from_lr_to_the_final_fraction():
    from pyser.training.train import learning_rate

    flat = TrainConfig(lr=1e-3, steps=100, warmup_steps=10)
    assert {learning_rate(flat, s) for s in range(100)} == {1e-3}
    cos = TrainConfig(lr=1e-3, steps=100, warmup_steps=10, lr_schedule="cosine", lr_final=0.1)
    lrs = [learning_rate(cos, s) for s in range(100)]
    assert lrs[:11] == [1e-3] * 11
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(1e-4)
    assert lrs[10 + 89 // 2] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=0.05)
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
