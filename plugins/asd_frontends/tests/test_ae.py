"""The AE baseline against fact sheet §4a, with an independently computed reference feature."""
import math

import pytest
import torch
import torchaudio
from torch import nn

from asd_frontends.ae import AutoEncoder, clip_embedding, clip_outputs, clip_scores, log_mel_frames

SR = 16000


def reference_frames(wave, n_fft=1024, hop=512, n_mels=128, context=5):
    """[T - 4, 640] from torch.stft, an HTK fbank and explicit frame stacking."""
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(
        wave.double(), n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True
    ).abs() / window.square().sum().sqrt()
    fbank = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, 0.0, SR / 2, n_mels, SR, norm=None, mel_scale="htk"
    ).double()
    mel = 20 * torch.log10((fbank.T @ spec).clamp_min(2.22e-16))  # [n_mels, T]
    n_vectors = mel.shape[1] - context + 1
    return torch.stack([torch.cat([mel[:, t + k] for k in range(context)]) for t in range(n_vectors)])


def test_log_mel_frames_matches_reference():
    torch.manual_seed(0)
    t = torch.arange(SR) / SR
    waves = torch.stack([0.3 * torch.sin(2 * math.pi * 1000 * t) + 0.01 * torch.randn(SR), 0.1 * torch.randn(SR)])
    features = log_mel_frames(waves)
    assert features.shape == (2, 1 + SR // 512 - 4, 640)
    for wave, got in zip(waves, features):
        torch.testing.assert_close(got.double(), reference_frames(wave), atol=2e-3, rtol=0)


def test_vector_count_for_ten_seconds():
    features = log_mel_frames(torch.zeros(1, 10 * SR))
    assert features.shape == (1, 309, 640)
    torch.testing.assert_close(features, torch.full_like(features, 20 * math.log10(2.22e-16)))


def test_log_mel_frames_rejects_short_clips():
    with pytest.raises(ValueError, match="context"):
        log_mel_frames(torch.zeros(1, 3 * 512))  # 4 frames


def test_autoencoder_layers_and_parameter_count():
    model = AutoEncoder()
    dims = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    expected = []
    for i, (n_in, n_out) in enumerate(zip(dims, dims[1:])):
        expected.append(("Linear", n_in, n_out))
        if i < 9:
            expected += [("BatchNorm1d", n_out), ("ReLU",)]
    layers = [m for m in model.modules() if not isinstance(m, (AutoEncoder, nn.Sequential))]
    described = []
    for m in layers:
        if isinstance(m, nn.Linear):
            assert m.bias is not None
            described.append(("Linear", m.in_features, m.out_features))
        elif isinstance(m, nn.BatchNorm1d):
            assert (m.momentum, m.eps, m.affine) == (0.01, 1e-3, True)
            described.append(("BatchNorm1d", m.num_features))
        else:
            described.append((type(m).__name__,))
    assert described == expected
    linear = sum(n_in * n_out + n_out for n_in, n_out in zip(dims, dims[1:]))
    batchnorm = sum(2 * n for n in dims[1:-1])
    assert sum(p.numel() for p in model.parameters()) == linear + batchnorm == 267928


def test_forward_shapes_and_backward():
    model = AutoEncoder()
    x = torch.randn(3, 7, 640)
    reconstruction, bottleneck = model(x)
    assert reconstruction.shape == (3, 7, 640) and bottleneck.shape == (3, 7, 8)
    assert (bottleneck >= 0).all()
    nn.functional.mse_loss(reconstruction, x).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_clip_scores_and_embedding():
    torch.manual_seed(0)
    model = AutoEncoder().eval()
    waves = 0.1 * torch.randn(2, SR)
    with torch.no_grad():
        scores, embeddings = clip_outputs(model, waves)
        features = log_mel_frames(waves)
        manual_scores, manual_embeddings = [], []
        for clip in features:
            reconstruction, bottleneck = model(clip)
            manual_scores.append(((reconstruction - clip) ** 2).sum() / clip.numel())
            manual_embeddings.append(bottleneck.mean(dim=0))
        torch.testing.assert_close(scores, torch.stack(manual_scores))
        torch.testing.assert_close(embeddings, torch.stack(manual_embeddings))
        torch.testing.assert_close(clip_scores(model, waves), scores)
        assert clip_embedding(model, waves).shape == (2, 8)
