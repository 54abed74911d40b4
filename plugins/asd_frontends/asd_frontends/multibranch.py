"""The multi-branch CNN of the ``dis_spec`` / ``dis_multispec`` frontends (fact sheet §4b).

One spectrum branch (1-D convolutions over the |rFFT| of the whole clip) and one spectrogram branch
per DFT size (a pre-activation residual 2-D CNN over the 200–8000 Hz magnitude STFT). Each branch
maps a batch of clips to an ``emb_per_branch``-d vector; the network concatenates them.

Throughout: no biases in convolutions or linear layers, and every BatchNorm is non-affine (§4b,
``use_bias = false``). BatchNorms keep torch's default momentum and eps.
"""
from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

import pydantic

import asdcore
from asdcore import TorchFrontend, require_clip_samples

MIN_BINS_OR_FRAMES = 36  # §4b: spectrogram branches must have ≥ 36 bins and frames
CROP_HZ = (200.0, 8000.0)  # §4b: spectrogram branches keep 200 Hz ≤ f ≤ 8000 Hz
SE_RATIO = 16


class SqueezeExcitation(nn.Module):
    """Channel mean → Linear C→C/16 → ReLU → Linear C/16→C → sigmoid → channel rescale (§4b)."""

    def __init__(self, channels: int, ratio: int = SE_RATIO):
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, channels // ratio, bias=False),
            nn.ReLU(),
            nn.Linear(channels // ratio, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.gate(x.mean(dim=tuple(range(2, x.dim()))))
        return x * weights.view(*weights.shape, *(1,) * (x.dim() - 2))


def _mlp_head(in_features: int, width: int) -> nn.Sequential:
    """The spectrum branch aggregation: Linear → BN → ReLU, 4× (Linear, BN, ReLU), final Linear (§4b)."""
    layers: list[nn.Module] = []
    for n_in in (in_features, width, width, width, width):
        layers += [nn.Linear(n_in, width, bias=False), nn.BatchNorm1d(width, affine=False), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, width, bias=False))


class SpectrumBranch(nn.Module):
    """Whole-clip spectrum branch (§4b).

    Input: |rFFT| of the padded clip (no window, no normalisation, full 0 Hz–Nyquist, L/2+1 values).
    Three unpadded Conv1d (k 256 s 64, k 64 s 32, k 16 s 4; 128 channels), each → ReLU → SE, then the
    "mlp" aggregation over the flattened 128 × remaining-length map. The remaining length, and hence
    ``flatten_dim``, follows from ``clip_samples`` (10 s at 16 kHz: 6 → 768).
    """

    CONVS = ((256, 64), (64, 32), (16, 4))  # (kernel, stride)
    CHANNELS = 128

    def __init__(self, clip_samples: int, emb_dim: int = 128):
        super().__init__()
        self.clip_samples = clip_samples
        length = clip_samples // 2 + 1
        layers: list[nn.Module] = []
        in_channels = 1
        for kernel, stride in self.CONVS:
            if length < kernel:
                raise ValueError(f"clip of {clip_samples} samples is too short for the spectrum branch")
            length = (length - kernel) // stride + 1
            layers += [
                nn.Conv1d(in_channels, self.CHANNELS, kernel, stride=stride, bias=False),
                nn.ReLU(inplace=True),
                SqueezeExcitation(self.CHANNELS),
            ]
            in_channels = self.CHANNELS
        self.remaining_length = length
        self.flatten_dim = self.CHANNELS * length
        self.convs = nn.Sequential(*layers)
        self.head = _mlp_head(self.flatten_dim, emb_dim)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(waves, dim=-1).abs().unsqueeze(1)
        return self.head(self.convs(spectrum).flatten(1))


class ResidualBlock(nn.Module):
    """Pre-activation residual block (§4b).

    x ← BN(x); r = ReLU → Conv3×3(stride, pad 1) → BN → ReLU → Conv3×3(pad 1) → SE;
    output x + r (stride 1) or [MaxPool3×3 s2 pad 1 → Conv1×1](x) + r (stride 2, on the normalised x).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 residual block keeps its channel count")
        self.norm = nn.BatchNorm2d(in_channels, affine=False)
        self.residual = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, affine=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            SqueezeExcitation(out_channels),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1
            else nn.Sequential(
                nn.MaxPool2d(3, stride=stride, padding=1), nn.Conv2d(in_channels, out_channels, 1, bias=False)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.shortcut(x) + self.residual(x)


class SpectrogramBranch(nn.Module):
    """Magnitude-STFT branch for one DFT size (§4b; spectral conventions §4 intro).

    STFT: periodic Hann of length ``n_fft``, hop ``n_fft/2``, centred zero-padded frames,
    window-normalised, magnitude, no mel, no log; bins ``first_bin``..``last_bin`` (inclusive) with
    200 Hz ≤ f ≤ 8000 Hz are kept. Then a non-affine BatchNorm1d over the bins, a Conv2d 7×7 s2 stem
    with BN, ReLU and MaxPool 3×3 s2, residual stages (16, 32, 64, 128 channels; two blocks each,
    the first of stages 3–5 with stride 2), max over time, flatten, BN, Linear(128·F' → emb_dim).
    The spectrogram is laid out (frequency, time) as the 2-D conv's (height, width).
    """

    STAGES = ((16, 1), (32, 2), (64, 2), (128, 2))  # (channels, stride of the first block)

    def __init__(self, n_fft: int, sample_rate: int = 16000, emb_dim: int = 128):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 2
        self.first_bin = math.ceil(CROP_HZ[0] * n_fft / sample_rate)
        self.last_bin = min(n_fft // 2, math.floor(CROP_HZ[1] * n_fft / sample_rate))
        self.n_bins = self.last_bin - self.first_bin + 1
        if self.n_bins < MIN_BINS_OR_FRAMES:
            raise ValueError(
                f"n_fft {n_fft} gives {self.n_bins} bins in {CROP_HZ[0]:g}–{CROP_HZ[1]:g} Hz; "
                f"a spectrogram branch needs at least {MIN_BINS_OR_FRAMES}"
            )
        self.stft = torchaudio.transforms.Spectrogram(
            n_fft=n_fft, hop_length=self.hop, power=1.0, normalized=True, center=True, pad_mode="constant"
        )
        self.input_norm = nn.BatchNorm1d(self.n_bins, affine=False)
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 7, stride=2, bias=False),
            nn.BatchNorm2d(16, affine=False),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        blocks: list[nn.Module] = []
        in_channels = 16
        for channels, stride in self.STAGES:
            blocks += [ResidualBlock(in_channels, channels, stride), ResidualBlock(channels, channels, 1)]
            in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.out_bins = _stem_and_stages_size(self.n_bins)
        self.head = nn.Sequential(
            nn.BatchNorm1d(in_channels * self.out_bins, affine=False),
            nn.Linear(in_channels * self.out_bins, emb_dim, bias=False),
        )
        self.to(memory_format=torch.channels_last)  # about 1.6x faster 2-D convolutions on CPU (oneDNN)

    def n_frames(self, num_samples: int) -> int:
        """STFT frames of a clip with centred framing: 1 + ⌊L/hop⌋ (§4 intro)."""
        return 1 + num_samples // self.hop

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        spectrogram = self.stft(waves)[:, self.first_bin : self.last_bin + 1]  # [B, F, T]
        x = self.input_norm(spectrogram).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x))  # [B, C, F', T']
        # max(dim).values, not amax: amax's gradient (split among ties) gives NaN when compiled under bf16 autocast
        return self.head(x.max(dim=-1).values.flatten(1))


def _stem_and_stages_size(size: int) -> int:
    """Size of one axis after the stem (conv 7 s2, pool 3 s2) and the three stride-2 stages."""
    size = ((size - 7) // 2 + 1 - 3) // 2 + 1
    for _ in range(3):
        size = (size - 1) // 2 + 1
    return size


def spectrum_min_samples() -> int:
    """The shortest clip whose spectrum (L/2+1 values) leaves the spectrum branch's convolutions one output."""
    length = 1
    for kernel, stride in reversed(SpectrumBranch.CONVS):
        length = (length - 1) * stride + kernel
    return 2 * (length - 1)


def spectrogram_min_samples(n_fft: int) -> int:
    """The shortest clip giving a spectrogram branch of ``n_fft`` its ``MIN_BINS_OR_FRAMES`` frames."""
    return (MIN_BINS_OR_FRAMES - 1) * (n_fft // 2)


class MultiBranchNet(nn.Module):
    """Spectrum branch followed by one spectrogram branch per ``n_ffts`` entry (§4b).

    ``forward(waves[B, clip_samples]) -> [B, emb_per_branch · (1 + len(n_ffts))]``; the spectrum
    branch's vector comes first, then the spectrogram branches' in ``n_ffts`` order.
    ``(1024,)`` is dis_spec (256-d); ``(256, 1024, 4096)`` is dis_multispec (512-d).
    """

    def __init__(self, clip_samples: int, n_ffts=(1024,), sample_rate: int = 16000, emb_per_branch: int = 128):
        super().__init__()
        self.clip_samples = clip_samples
        self.branches = nn.ModuleList([SpectrumBranch(clip_samples, emb_per_branch)])
        for n_fft in n_ffts:
            branch = SpectrogramBranch(n_fft, sample_rate, emb_per_branch)
            frames = branch.n_frames(clip_samples)
            if frames < MIN_BINS_OR_FRAMES:
                raise ValueError(
                    f"n_fft {n_fft} gives {frames} frames for a clip of {clip_samples} samples; "
                    f"a spectrogram branch needs at least {MIN_BINS_OR_FRAMES}"
                )
            self.branches.append(branch)
        self.emb_per_branch = emb_per_branch
        self.embedding_dim = emb_per_branch * len(self.branches)

    def subspace_slices(self) -> list[slice]:
        """Each branch's slice of the embedding, in output order."""
        size = self.emb_per_branch
        return [slice(i * size, (i + 1) * size) for i in range(len(self.branches))]

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.shape[-1] != self.clip_samples:
            raise ValueError(f"expected clips of {self.clip_samples} samples, got {waves.shape[-1]}")
        return torch.cat([branch(waves) for branch in self.branches], dim=1)


class MultiBranchCnnFrontend(TorchFrontend):
    """``multibranch_cnn``: the spectrum branch plus one spectrogram branch per DFT size (asdkit-facts
    §4b), trained with a discriminative loss on meta-information labels. Usage::

        frontend:
          name: multibranch_cnn
          params: {n_ffts: [1024]}            # [256, 1024, 4096] for dis_multispec
          loss: {name: scac, params: {k: 16, trainable: true, dynamic: false}}
          augmentations: [{name: mixup, params: {prob: 0.5}}]
          training: {epochs: 16, batch_size: 64, lr: 0.001, scope: shared}
    """

    class Params(asdcore.Params):
        n_ffts: list[int] = [1024]
        emb_per_branch: int = pydantic.Field(128, ge=1)

    def build_model(self) -> torch.nn.Module:
        spectrum = spectrum_min_samples()
        spectrogram = max(map(spectrogram_min_samples, self.params.n_ffts), default=0)
        remedy = ("use smaller `frontend.params.n_ffts`" if spectrogram > spectrum else
                  f"choose another frontend (its spectrum branch needs {spectrum} samples whatever its params)")
        require_clip_samples("multibranch_cnn", max(spectrum, spectrogram), self.clip_samples, self.sample_rate,
                             remedy)
        try:
            return MultiBranchNet(self.clip_samples, tuple(self.params.n_ffts), self.sample_rate,
                                  self.params.emb_per_branch)
        except ValueError as exc:
            raise asdcore.ConfigError(f"frontend.params: {exc}") from None

    @property
    def embedding_dim(self) -> int:
        return self.model.embedding_dim
