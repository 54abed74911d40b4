"""``{{ cookiecutter.frontend_name }}``: log-mel spectrogram pooled over time by its mean and standard deviation."""
from __future__ import annotations

import pydantic
import torch
import torchaudio

import asdcore

NAME = "{{ cookiecutter.frontend_name }}"


class {{ cookiecutter.class_name }}(asdcore.Frontend):
    """Untrained: the log mel power spectrogram (Hann window ``n_fft``, hop ``n_fft // 2``, 0 Hz to Nyquist),
    then the mean and the standard deviation of each mel band over time, concatenated into a
    ``2 * n_mels`` embedding. Usage::

        frontend: {name: {{ cookiecutter.frontend_name }}, params: {n_mels: 64, n_fft: 1024}}
    """

    class Params(asdcore.Params):
        n_mels: int = pydantic.Field(64, ge=1)
        n_fft: int = pydantic.Field(1024, ge=16)

    def __init__(self, params: Params, **context):
        super().__init__(params, **context)
        if params.n_fft > self.clip_samples:
            raise asdcore.ConfigError(
                f"frontend.params.n_fft: a window of {params.n_fft} samples is longer than the clips "
                f"({self.clip_samples} samples); lower n_fft or use longer clips"
            )
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=params.n_fft, hop_length=params.n_fft // 2, n_mels=params.n_mels,
            power=2.0, center=True, pad_mode="constant",
        ).to(self.device)

    @property
    def spec(self) -> asdcore.FrontendSpec:
        return asdcore.FrontendSpec(embedding_dim=2 * self.params.n_mels)

    def extract(self, waves: torch.Tensor) -> asdcore.FrontendOutput:
        """``[B, L]`` waveforms -> ``[B, 2 * n_mels]``: per band the mean, then the standard deviation over time."""
        log_mel = self.mel(waves).clamp_min(1e-10).log()
        return asdcore.FrontendOutput(torch.cat([log_mel.mean(dim=-1), log_mel.std(dim=-1, correction=0)], dim=-1))
