"""The AE baseline (``ae`` frontend): stacked log-mel frames and a dense autoencoder (fact sheet §4a).

The anomaly score of a clip is its mean squared reconstruction error over all vectors and dims;
the bottleneck averaged over vectors is kept as the clip's (unscored) embedding.
"""
from __future__ import annotations

import torch
import torchaudio
from torch import nn

import asdcore
from asdcore import TorchFrontend, require_clip_samples
from asdcore.errors import AudioError

LOG_FLOOR = 2.22e-16  # §4a: 20·log10(max(x, 2.22e-16))


def log_mel_frames(
    waves: torch.Tensor,
    sample_rate: int = 16000,
    n_fft: int = 1024,
    hop: int = 512,
    n_mels: int = 128,
    context: int = 5,
) -> torch.Tensor:
    """``[B, L]`` waveforms → ``[B, T - context + 1, context · n_mels]`` feature vectors (§4a).

    Mel filterbank (HTK, no area normalisation, 0 Hz–Nyquist) applied to the magnitude of a
    window-normalised, centred, zero-padded periodic-Hann STFT (§4 intro), then
    20·log10(max(x, 2.22e-16)). Vector t concatenates frames t..t+context-1, each frame's mel bins
    contiguous. With the defaults a 10 s clip gives 313 frames → 309 640-d vectors.
    """
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
        power=1.0, normalized=True, center=True, pad_mode="constant",
    ).to(waves.device)
    frames = 20 * torch.log10(mel(waves).clamp_min(LOG_FLOOR)).transpose(1, 2)  # [B, T, n_mels]
    if frames.shape[1] < context:
        raise ValueError(f"{frames.shape[1]} frames are fewer than the {context}-frame context")
    vectors = frames.unfold(1, context, 1)  # [B, T - context + 1, n_mels, context]
    return vectors.transpose(2, 3).flatten(2)


def min_samples(hop: int = 512, context: int = 5) -> int:
    """The fewest samples that give one ``context``-frame vector (centred frames of ``hop``)."""
    return (context - 1) * hop


def long_enough(wave, clip: asdcore.Clip, frontend: str):
    """``wave``, or AudioError naming ``clip`` when it is too short for one 5-frame vector."""
    if len(wave) < min_samples():
        raise AudioError(f"{clip.path}: {len(wave)} samples are fewer than the {min_samples()} that frontend "
                         f"{frontend!r} needs for one 5-frame vector: leave the clip out or record longer clips")
    return wave


def _dense(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out, momentum=0.01, eps=1e-3), nn.ReLU()]


class AutoEncoder(nn.Module):
    """Dense autoencoder of §4a: ten linear layers with biases, BatchNorm (momentum 0.01, eps 1e-3).

    Encoder 640→128, 3× 128→128, 128→8, each + BN + ReLU; decoder 8→128, 3× 128→128, each + BN +
    ReLU, then a linear 128→640 output. ``forward(x[..., 640]) -> (reconstruction, bottleneck)``.
    """

    def __init__(self, input_dim: int = 640, hidden_dim: int = 128, bottleneck_dim: int = 8):
        super().__init__()
        self.input_dim = input_dim
        self.encoder = nn.Sequential(
            *_dense(input_dim, hidden_dim),
            *[m for _ in range(3) for m in _dense(hidden_dim, hidden_dim)],
            *_dense(hidden_dim, bottleneck_dim),
        )
        self.decoder = nn.Sequential(
            *_dense(bottleneck_dim, hidden_dim),
            *[m for _ in range(3) for m in _dense(hidden_dim, hidden_dim)],
            nn.Linear(hidden_dim, input_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead = x.shape[:-1]
        bottleneck = self.encoder(x.reshape(-1, self.input_dim))
        reconstruction = self.decoder(bottleneck)
        return reconstruction.reshape(*lead, -1), bottleneck.reshape(*lead, -1)


def clip_outputs(
    model: AutoEncoder, waves: torch.Tensor, sample_rate: int = 16000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``[B]`` and embeddings ``[B, 8]`` of ``[B, L]`` (already tiled/cropped) clips in one pass (§4a).

    Score: mean squared reconstruction error over all vectors and dims of the clip; embedding: the
    bottleneck averaged over the clip's vectors. Call with the model in eval mode.
    """
    features = log_mel_frames(waves, sample_rate)
    reconstruction, bottleneck = model(features)
    return (reconstruction - features).square().mean(dim=(1, 2)), bottleneck.mean(dim=1)


def clip_scores(model: AutoEncoder, waves: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """Anomaly score per clip, ``[B]``: mean squared reconstruction error (§4a)."""
    return clip_outputs(model, waves, sample_rate)[0]


def clip_embedding(model: AutoEncoder, waves: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """Bottleneck averaged over each clip's vectors, ``[B, 8]`` (§4a; stored, not scored)."""
    return clip_outputs(model, waves, sample_rate)[1]


class AeFrontend(TorchFrontend):
    """``ae``: the official DCASE autoencoder baseline (asdkit-facts §4a). Trained per machine type on
    5-frame log-mel vectors of the unpadded training clips (MSE); its anomaly score is the clip's mean
    squared reconstruction error, scored through the ``passthrough`` backend. Usage::

        frontend: {name: ae, training: {epochs: 50, batch_size: 256, lr: 0.001, scope: per_machine}}
        backends: [{name: passthrough}]
    """

    uses_loss = False
    uses_augmentations = False
    embedding_dim = 8

    def build_model(self) -> torch.nn.Module:
        require_clip_samples("ae", min_samples(), self.clip_samples, self.sample_rate,
                             "choose a frontend without a 5-frame context (e.g. raw_spec)")
        return AutoEncoder()

    @property
    def spec(self) -> asdcore.FrontendSpec:
        return asdcore.FrontendSpec(embedding_dim=self.embedding_dim, needs_training=True, emits_scores=True)

    def training_dataset(self, data) -> torch.utils.data.Dataset:
        vectors = [log_mel_frames(torch.from_numpy(long_enough(data.load(clip), clip, "ae"))[None], self.sample_rate)[0]
                   for clip in data.clips]
        return torch.utils.data.TensorDataset(torch.cat(vectors))

    def training_loss(self, batch, loss) -> torch.Tensor:
        reconstruction, _ = self.model(batch[0])
        return torch.nn.functional.mse_loss(reconstruction, batch[0])

    def extract(self, waves: torch.Tensor) -> asdcore.FrontendOutput:
        self.model.eval()
        scores, embedding = clip_outputs(self.model, waves)
        return asdcore.FrontendOutput(embedding, scores)
