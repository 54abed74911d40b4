"""Training-batch augmentations on raw waveforms: mixup and SpecAugment.

Each maps ``(waves [B, L], target [B, C]) -> (waves, target)`` and draws from the global torch RNG.
"""
from __future__ import annotations

import pydantic
import torch

import asdcore


class Mixup(asdcore.Augmentation):
    """Mixup on waveforms and targets. Per sample i, with probability ``prob``:
    wave_i ← λ_i·wave_i + (1−λ_i)·wave_π(i), y_i ← λ_i·y_i + (1−λ_i)·y_π(i), with λ_i ~ U(0, 1) and
    π a random permutation of the batch (π(i) = i is possible); otherwise the sample is unchanged.
    Draw order: ``rand(B)`` (λ), ``randperm(B)`` (π), ``rand(B)`` (apply decisions). Usage::

        augmentations: [{name: mixup, params: {prob: 0.5}}]
    """

    class Params(asdcore.Params):
        prob: float = pydantic.Field(0.5, ge=0, le=1)

    def __call__(self, waves: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = len(waves)
        lam = torch.rand(batch)
        perm = torch.randperm(batch)
        apply = torch.rand(batch) < self.params.prob
        lam = torch.where(apply, lam, torch.ones(batch)).to(waves.device)[:, None]
        perm = perm.to(waves.device)
        target = target.to(waves.dtype)
        return lam * waves + (1 - lam) * waves[perm], lam * target + (1 - lam) * target[perm]


def _band_mask(batch: int, size: int, max_width: int, prob: float) -> torch.Tensor:
    """[B, size] boolean masks: with probability ``prob`` per sample one band [start, start + width),
    width = ⌊u·W⌋ and start = ⌊v·(size − u·W)⌋ with u, v ~ U(0, 1), W = min(max_width, size)."""
    apply = torch.rand(batch) < prob
    width = torch.rand(batch) * min(max_width, size)
    start = (torch.rand(batch) * (size - width)).long()
    index = torch.arange(size)
    band = (index >= start[:, None]) & (index < (start + width.long())[:, None])
    return band & apply[:, None]


class SpecAugment(asdcore.Augmentation):
    """SpecAugment on waveforms: STFT (Hann, ``n_fft``, hop ``n_fft/4`` by default, centred) → per sample,
    with probability ``prob`` each, one time mask (up to ``max_time_width`` frames) and then one
    frequency mask (up to ``max_freq_width`` bins) set the magnitude to 0 → iSTFT with the original
    phase, cropped to the input length. Targets are unchanged. Usage::

        augmentations: [{name: specaugment, params: {max_time_width: 80, max_freq_width: 80, prob: 0.5}}]
    """

    class Params(asdcore.Params):
        max_time_width: int = pydantic.Field(80, ge=0)
        max_freq_width: int = pydantic.Field(80, ge=0)
        prob: float = pydantic.Field(0.5, ge=0, le=1)
        n_fft: int = pydantic.Field(1024, ge=16)
        hop_length: int | None = pydantic.Field(None, ge=1)

    def __call__(self, waves: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        hop = p.hop_length or p.n_fft // 4
        window = torch.hann_window(p.n_fft, device=waves.device, dtype=waves.dtype)
        spec = torch.stft(waves, p.n_fft, hop, window=window, center=True, return_complex=True)
        batch, bins, frames = spec.shape
        time = _band_mask(batch, frames, p.max_time_width, p.prob)
        freq = _band_mask(batch, bins, p.max_freq_width, p.prob)
        keep = ~(time[:, None, :] | freq[:, :, None])
        # Zeroing the complex bins = zeroing the magnitude and keeping the original phase.
        spec = spec * keep.to(waves.device)
        out = torch.istft(spec, p.n_fft, hop, window=window, center=True, length=waves.shape[-1])
        return out, target

