"""Training-time augmentation of log-spectrogram batches (nothing here runs at inference).

Every transform works on the (B, T, F) dB frames that the model receives, before its
normalisation, so none of them changes what a model file or the streaming path computes:

* **gain**: a random level offset per utterance, uniform in ``±gain_db`` dB (a level change
  of the waveform is an additive constant in dB power);
* **frequency warp**: the frequency axis of each utterance stretched or compressed by a
  random factor in ``1 ± freq_warp`` (linear interpolation between bins), a cheap stand-in
  for vocal-tract-length perturbation: speakers differ in where their formants sit;
* **speed**: the utterance played faster or slower by a random factor in ``1 ± speed``
  (Ko et al., 2015): its frames resampled in time (linear interpolation; a slower one is
  cut at the batch's frame count) and its frequency axis scaled by the same factor, as
  resampling the waveform would;
* **added noise**: coloured noise at a random SNR in ``noise_snr_db`` (low, high) dB
  against the utterance's mean power, added in the power domain. Its spectrum has a random
  tilt (from falling 20 dB across the band, brown-like, to rising 10 dB) and each cell
  fluctuates log-normally, as a short-time noise spectrum does;
* **SpecAugment masks** (Park et al., 2019): ``time_masks`` stretches of up to
  ``time_mask_frames`` frames and ``freq_masks`` bands of up to ``freq_mask_bins`` bins per
  utterance, filled with the training mean of each bin (0 after the model's normalisation).

Draws come from a generator seeded by (run seed, step), so a resumed run augments each step
exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Augment"]


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


@dataclass(frozen=True)
class Augment:
    """The augmentation of one run; :meth:`apply` transforms a batch.

    Attributes:
        fill: (F,) dB value of a masked cell per bin (the training mean).
        seed: the run's seed; combined with the step for each batch's draws.
        gain_db: maximum level offset in dB (0: off).
        freq_warp: maximum relative stretch of the frequency axis (0: off), e.g. 0.1.
        time_masks, time_mask_frames: number and maximum width of time masks (0: off).
        freq_masks, freq_mask_bins: number and maximum width of frequency masks (0: off).
        speed: maximum relative speed change (0: off), e.g. 0.1.
        noise_snr_db: (low, high) SNR range of added noise in dB (empty: off).
    """

    fill: Tensor
    seed: int
    gain_db: float = 0.0
    freq_warp: float = 0.0
    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0
    speed: float = 0.0
    noise_snr_db: tuple[float, ...] = ()

    @property
    def active(self) -> bool:
        """Whether any transform is on."""
        return bool(
            self.gain_db > 0
            or self.freq_warp > 0
            or self.speed > 0
            or len(self.noise_snr_db) > 0
            or (self.time_masks > 0 and self.time_mask_frames > 0)
            or (self.freq_masks > 0 and self.freq_mask_bins > 0)
        )

    def generator(self, step: int) -> torch.Generator:
        """The generator of the batch at ``step`` (0-based)."""
        seq = np.random.SeedSequence([int(self.seed) % 2**63, int(step)])
        return torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))

    @torch.no_grad()
    def apply(self, x: Tensor, lengths: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """(a transformed copy of ``x``, its lengths): ``x`` (B, T, F) float dB frames, valid
        for ``lengths`` (B,). Only speed changes the lengths (never beyond T); frames beyond
        each length stay as they were (padding)."""
        gen = self.generator(step)
        original = x
        b, t, f = x.shape
        fill = self.fill.to(x.device, x.dtype)
        if self.speed > 0:
            rate = _uniform(b, 1 - self.speed, 1 + self.speed, gen)
            x, lengths = _resample_time(x, lengths, rate)
            x = _warp_frequency(x, 1 / rate)
        if self.freq_warp > 0:
            x = _warp_frequency(x, _uniform(b, 1 - self.freq_warp, 1 + self.freq_warp, gen))
        if self.gain_db > 0:
            x = x + _uniform(b, -self.gain_db, self.gain_db, gen).to(x)[:, None, None]
        if self.noise_snr_db:
            x = _add_noise(x, lengths, *self.noise_snr_db, gen)
        valid = torch.arange(t)[None, :] < lengths.cpu()[:, None]  # (B, T)
        mask = torch.zeros(b, t, f, dtype=torch.bool)
        for _ in range(self.time_masks if self.time_mask_frames > 0 else 0):
            mask |= _stretch(lengths.cpu(), self.time_mask_frames, t, gen)[:, :, None]
        for _ in range(self.freq_masks if self.freq_mask_bins > 0 else 0):
            mask |= _stretch(torch.full((b,), f), self.freq_mask_bins, f, gen)[:, None, :]
        x = torch.where(mask.to(x.device), fill.expand_as(x), x)
        return torch.where(valid[:, :, None].to(x.device), x, original), lengths


def _resample_time(x: Tensor, lengths: Tensor, rate: Tensor) -> tuple[Tensor, Tensor]:
    """Each row played ``rate[i]`` times as fast: frame j takes the value at frame
    ``j * rate[i]`` (linear interpolation within the row's valid frames); new lengths
    ``floor(length / rate)``, at least 1 and at most T."""
    t = x.size(1)
    n = lengths.cpu().to(torch.float32)
    new = torch.clamp(torch.floor(n / rate), 1, t).long()
    src = torch.arange(t, dtype=torch.float32)[None, :] * rate[:, None]
    src = torch.minimum(src, (n - 1).clamp(min=0)[:, None])
    lo = src.floor().long()
    hi = torch.minimum(lo + 1, (n - 1).clamp(min=0).long()[:, None])
    frac = (src - lo)[:, :, None].to(x.device, x.dtype)
    return _frames(x, lo) * (1 - frac) + _frames(x, hi) * frac, new.to(lengths.device)


def _frames(x: Tensor, idx: Tensor) -> Tensor:
    """``x[i, idx[i]]`` for every row i: x (B, T, F), idx (B, T) -> (B, T, F)."""
    return torch.gather(x, 1, idx.to(x.device)[:, :, None].expand(-1, -1, x.size(2)))


def _add_noise(x: Tensor, lengths: Tensor, low_db: float, high_db: float,
               gen: torch.Generator) -> Tensor:
    """``x`` with coloured noise added in the power domain at an SNR uniform in [low_db,
    high_db] dB against each row's mean power over its valid frames."""
    b, t, f = x.shape
    valid = (torch.arange(t)[None, :] < lengths.cpu()[:, None]).to(x.device)  # (B, T)
    power = torch.pow(10.0, x.float() / 10)
    mean_power = (power * valid[:, :, None]).sum(dim=(1, 2)) / (valid.sum(1) * f).clamp(min=1)
    snr = _uniform(b, low_db, high_db, gen).to(x.device)
    tilt = _uniform(b, -20.0, 10.0, gen).to(x.device)  # dB from the lowest to the highest bin
    shape = torch.pow(10.0, tilt[:, None] * torch.linspace(-0.5, 0.5, f, device=x.device) / 10)
    shape = shape / shape.mean(dim=1, keepdim=True)  # unit mean: the SNR holds
    sigma = 0.5  # log-normal fluctuation with unit mean
    wobble = torch.exp(sigma * torch.randn(b, t, f, generator=gen).to(x.device) - sigma**2 / 2)
    noise = (mean_power * torch.pow(10.0, -snr / 10))[:, None, None] * shape[:, None, :] * wobble
    return (10 * torch.log10(power + noise)).to(x.dtype)


def _stretch(extent: Tensor, max_width: int, size: int, gen: torch.Generator) -> Tensor:
    """(B, size) bool: one random stretch per row, width uniform in [0, max_width], placed
    uniformly within the row's ``extent``."""
    b = extent.numel()
    width = torch.minimum((torch.rand(b, generator=gen) * (max_width + 1)).long(), extent)
    start = (torch.rand(b, generator=gen) * (extent - width + 1)).long()
    pos = torch.arange(size)[None, :]
    return (pos >= start[:, None]) & (pos < (start + width)[:, None])


def _warp_frequency(x: Tensor, factor: Tensor) -> Tensor:
    """Bin k of row i takes the value at bin ``k * factor[i]`` (linear interpolation, edges
    held): factor > 1 moves spectral content down, < 1 up."""
    f = x.size(2)
    src = (torch.arange(f, dtype=torch.float32)[None, :] * factor[:, None]).clamp(0, f - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=f - 1)
    frac = (src - lo).to(x)
    frac = frac[:, None, :].to(x.device)
    return _bins(x, lo) * (1 - frac) + _bins(x, hi) * frac


def _bins(x: Tensor, idx: Tensor) -> Tensor:
    """``x[i, :, idx[i]]`` for every row i: x (B, T, F), idx (B, F) -> (B, T, F)."""
    return torch.gather(x, 2, idx.to(x.device)[:, None, :].expand(-1, x.size(1), -1))
