"""``raw_spec``: the time-pooled mel amplitude spectrogram, a training-free baseline frontend."""
from __future__ import annotations

from typing import Literal

import pydantic
import torch
import torchaudio

import asdcore


class RawSpecFrontend(asdcore.Frontend):
    """Mel spectrogram (magnitude, no log, window-normalised, centred with zero padding), pooled over time.

    Defaults follow the ASDKit ``raw_spec`` recipe: 128 mels, n_fft 1024, hop 512, 0 Hz to Nyquist,
    mean over time → a 128-d embedding. Usage::

        frontend: {name: raw_spec, params: {n_mels: 128, pooling: time_mean}}
    """

    class Params(asdcore.Params):
        n_fft: int = pydantic.Field(1024, ge=16)
        hop_length: int = pydantic.Field(512, ge=1)
        n_mels: int = pydantic.Field(128, ge=1)
        f_min: float = pydantic.Field(0.0, ge=0)
        f_max: float | None = None
        pooling: Literal["time_mean", "time_max"] = "time_mean"

        @pydantic.model_validator(mode="after")
        def _band(self):
            if self.f_max is not None and self.f_max <= self.f_min:
                raise ValueError(f"f_max ({self.f_max}) must be above f_min ({self.f_min})")
            return self

    def __init__(self, params: Params, **context):
        super().__init__(params, **context)
        nyquist = self.sample_rate / 2
        if (params.f_max or nyquist) > nyquist or params.f_min >= nyquist:
            raise asdcore.ConfigError(
                f"frontend.params: the mel band {params.f_min}–{params.f_max} Hz must lie below the "
                f"Nyquist frequency {nyquist} Hz"
            )
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length, n_mels=params.n_mels,
            f_min=params.f_min, f_max=params.f_max, power=1.0, normalized=True, center=True, pad_mode="constant",
        ).to(self.device)

    @property
    def spec(self) -> asdcore.FrontendSpec:
        return asdcore.FrontendSpec(embedding_dim=self.params.n_mels)

    def extract(self, waves: torch.Tensor) -> asdcore.FrontendOutput:
        spectrogram = self.mel(waves)
        pooled = spectrogram.mean(dim=-1) if self.params.pooling == "time_mean" else spectrogram.amax(dim=-1)
        return asdcore.FrontendOutput(pooled)
