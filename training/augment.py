"""Training-time augmentation of log-spectrogram batches (nothing here runs at inference).

Every transform works on the (B, T, F) dB frames that the model receives, before its
normalisation, so none of them changes what a model file or the streaming path computes:

* **gain**: a random level offset per utterance, uniform in ``±gain_db`` dB (a level change
  of the waveform is an additive constant in dB power);
* **frequency warp**: the frequency axis of each utterance stretched or compressed by a
  random factor in ``1 ± freq_warp`` (linear interpolation between bins), a cheap stand-in
  for vocal-tract-length perturbation: speakers differ in where their formants sit;
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
    """

    fill: Tensor
    seed: int
    gain_db: float = 0.0
    freq_warp: float = 0.0
    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0

    @property
    def active(self) -> bool:
        """Whether any transform is on."""
        return bool(
            self.gain_db > 0
            or self.freq_warp > 0
            or (self.time_masks > 0 and self.time_mask_frames > 0)
            or (self.freq_masks > 0 and self.freq_mask_bins > 0)
        )

    def generator(self, step: int) -> torch.Generator:
        """The generator of the batch at ``step`` (0-based)."""
        seq = np.random.SeedSequence([int(self.seed) % 2**63, int(step)])
        return torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))

    @torch.no_grad()
    def apply(self, x: Tensor, lengths: Tensor, step: int) -> Tensor:
        """A transformed copy of ``x`` (B, T, F) float dB frames, valid for ``lengths`` (B,);
        frames beyond each length stay as they were (padding)."""
        gen = self.generator(step)
        original = x
        b, t, f = x.shape
        fill = self.fill.to(x.device, x.dtype)
        if self.freq_warp > 0:
            x = _warp_frequency(x, _uniform(b, 1 - self.freq_warp, 1 + self.freq_warp, gen))
        if self.gain_db > 0:
            x = x + _uniform(b, -self.gain_db, self.gain_db, gen).to(x)[:, None, None]
        valid = torch.arange(t)[None, :] < lengths.cpu()[:, None]  # (B, T)
        mask = torch.zeros(b, t, f, dtype=torch.bool)
        for _ in range(self.time_masks if self.time_mask_frames > 0 else 0):
            mask |= _stretch(lengths.cpu(), self.time_mask_frames, t, gen)[:, :, None]
        for _ in range(self.freq_masks if self.freq_mask_bins > 0 else 0):
            mask |= _stretch(torch.full((b,), f), self.freq_mask_bins, f, gen)[:, None, :]
        x = torch.where(mask.to(x.device), fill.expand_as(x), x)
        return torch.where(valid[:, :, None].to(x.device), x, original)


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
