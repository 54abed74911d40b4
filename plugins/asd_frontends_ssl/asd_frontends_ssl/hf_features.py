"""Hugging Face audio feature extractors recomputed with torch on the batch's device.

:func:`hf_features` maps ``Wav2Vec2FeatureExtractor`` (wav2vec 2.0, HuBERT, WavLM), ``ASTFeatureExtractor``
and ``WhisperFeatureExtractor`` to modules that reproduce them for a batch of equal-length clips at the
extractor's rate, in float32 even under autocast. Any other extractor keeps its own path through
numpy on the CPU (:class:`CpuFeatures`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fbank import kaldi_fbank


class DeviceFeatures(nn.Module):
    """Waves ``[B, L]`` → model input, computed in float32 on the waves' device."""

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        with torch.autocast(waves.device.type, enabled=False):
            return self.compute(waves.float())

    def compute(self, waves: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Wav2Vec2Features(DeviceFeatures):
    """``Wav2Vec2FeatureExtractor``: with ``do_normalize``, each clip (x − mean) / √(var + 1e-7), var with 1/L."""

    def __init__(self, extractor):
        super().__init__()
        self.do_normalize = extractor.do_normalize

    def compute(self, waves: torch.Tensor) -> torch.Tensor:
        if not self.do_normalize:
            return waves
        var, mean = torch.var_mean(waves, dim=1, correction=0, keepdim=True)
        return (waves - mean) / torch.sqrt(var + 1e-7)


class AstFeatures(DeviceFeatures):
    """``ASTFeatureExtractor``: Kaldi fbank (Hanning window, no scaling), zero-padded or truncated to
    ``max_length`` frames, then (x − mean) / (2·std) with ``do_normalize``."""

    def __init__(self, extractor):
        super().__init__()
        self.num_mel_bins = extractor.num_mel_bins
        self.sampling_rate = extractor.sampling_rate
        self.max_length = extractor.max_length
        self.do_normalize = extractor.do_normalize
        self.mean, self.std = extractor.mean, extractor.std

    def compute(self, waves: torch.Tensor) -> torch.Tensor:
        fbank = kaldi_fbank(waves, self.num_mel_bins, self.sampling_rate, window="hanning")
        fbank = F.pad(fbank, (0, 0, 0, max(self.max_length - fbank.shape[1], 0)))[:, : self.max_length]
        return (fbank - self.mean) / (self.std * 2) if self.do_normalize else fbank


class WhisperFeatures(DeviceFeatures):
    """``WhisperFeatureExtractor`` (its torch path): truncate or pad (``padding_side``, ``padding_value``)
    to ``n_samples``, dither, centred STFT with a periodic Hann window, power without the last frame,
    Slaney mel, log10 floored at 1e-10 and at the clip's maximum − 8, then (x + 4) / 4
    → ``[B, feature_size, n_samples // hop_length]``."""

    def __init__(self, extractor):
        super().__init__()
        self.n_samples = extractor.n_samples
        self.pad_left = extractor.padding_side == "left"
        self.padding_value = extractor.padding_value
        self.n_fft = extractor.n_fft
        self.hop_length = extractor.hop_length
        self.dither = extractor.dither
        self.register_buffer("mel_filters", torch.from_numpy(extractor.mel_filters).float().T, persistent=False)

    def compute(self, waves: torch.Tensor) -> torch.Tensor:
        missing = max(self.n_samples - waves.shape[1], 0)
        padding = (missing, 0) if self.pad_left else (0, missing)
        waves = F.pad(waves[:, : self.n_samples], padding, value=self.padding_value)
        if self.dither:
            waves = waves + self.dither * torch.randn_like(waves)
        window = torch.hann_window(self.n_fft, device=waves.device)
        stft = torch.stft(waves, self.n_fft, self.hop_length, window=window, return_complex=True)
        power = (stft[..., :-1].abs() ** 2).contiguous()
        log_spec = torch.clamp(self.mel_filters.float() @ power, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0


class CpuFeatures(nn.Module):
    """Any other extractor, called on numpy copies of the clips; its ``name`` output moves back to the device."""

    def __init__(self, extractor, name: str):
        super().__init__()
        self.extractor = extractor
        self.name = name

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        clips = [w.numpy() for w in waves.detach().float().cpu()]
        features = self.extractor(clips, sampling_rate=self.extractor.sampling_rate, return_tensors="pt")
        return features[self.name].to(waves.device)


def hf_features(extractor, name: str) -> nn.Module:
    """The module computing input ``name`` of a model from its feature ``extractor``: on the device for
    the three extractor types above (exact type, not subclasses), :class:`CpuFeatures` otherwise."""
    import transformers

    on_device = {
        transformers.Wav2Vec2FeatureExtractor: Wav2Vec2Features,
        transformers.ASTFeatureExtractor: AstFeatures,
        transformers.WhisperFeatureExtractor: WhisperFeatures,
    }.get(type(extractor))
    return CpuFeatures(extractor, name) if on_device is None else on_device(extractor)
