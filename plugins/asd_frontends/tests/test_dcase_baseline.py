"""The official DCASE autoencoder baseline (methods-facts §1) against direct computations."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import asdcore
from asd_frontends.dcase_baseline import (
    BaselineAutoEncoder, DcaseBaselineAeFrontend, LogMelVectors, error_covariances, mahalanobis_scores, mse_scores,
    shuffled_batches, split_vectors,
)
from asdcore import TrainingConfig

SR = 16000
EPS = np.finfo(np.float64).eps


def slaney_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz >= 1000, 15 + np.log(np.maximum(hz, 1000) / 1000) * 27 / np.log(6.4), hz * 3 / 200)


def slaney_hz(mel):
    return np.where(mel >= 15, 1000 * np.exp((mel - 15) * np.log(6.4) / 27), mel * 200 / 3)


def slaney_filterbank(n_fft=1024, n_mels=128):
    """[n_mels, n_fft/2 + 1] triangles on the Slaney mel scale, each scaled to unit area."""
    freqs = np.linspace(0, SR / 2, n_fft // 2 + 1)
    edges = slaney_hz(np.linspace(slaney_mel(0), slaney_mel(SR / 2), n_mels + 2))
    rising = (freqs - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - freqs) / (edges[2:] - edges[1:-1])[:, None]
    return np.maximum(0, np.minimum(rising, falling)) * (2 / (edges[2:] - edges[:-2]))[:, None]


def reference_vectors(wave, n_fft=1024, hop=512):
    """[T − 4, 640] from a numpy STFT (zero-padded, periodic Hann), the filterbank and 10·log10(max(·, ε))."""
    padded = np.pad(wave.astype(np.float64), n_fft // 2)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    starts = range(0, len(padded) - n_fft + 1, hop)
    power = np.abs(np.fft.rfft(np.stack([padded[s:s + n_fft] * window for s in starts]), axis=1)) ** 2
    log_mel = 10 * np.log10(np.maximum(slaney_filterbank() @ power.T, EPS))  # [mels, T]
    return np.stack([np.concatenate([log_mel[:, t + k] for k in range(5)]) for t in range(log_mel.shape[1] - 4)])


def test_features_match_a_direct_computation():
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    waves = np.stack([0.3 * np.sin(2 * np.pi * 1000 * t) + 0.01 * rng.standard_normal(SR),
                      0.1 * rng.standard_normal(SR)]).astype(np.float32)
    got = LogMelVectors(SR)(torch.from_numpy(waves)).numpy()
    assert got.shape == (2, 1 + SR // 512 - 4, 640)
    for wave, vectors in zip(waves, got):
        np.testing.assert_allclose(vectors, reference_vectors(wave), atol=5e-4, rtol=0)  # dB


def test_silence_sits_on_the_float64_epsilon_floor_and_vector_counts():
    features = LogMelVectors(SR)
    np.testing.assert_allclose(features(torch.zeros(1, SR)).numpy(), 10 * np.log10(EPS), rtol=1e-6)
    assert features(torch.zeros(1, 10 * SR)).shape == (1, 309, 640)
    assert features(torch.zeros(1, 12 * SR)).shape == (1, 372, 640)
    assert features(torch.zeros(1, 2047)).shape == (1, 0, 640)  # four frames: no vector


def test_network_layers_and_parameter_count():
    model = BaselineAutoEncoder()
    sizes = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    linear = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))
    batch_norm = 2 * sum(sizes[1:-1])  # weight and bias after every Linear but the output
    assert linear + batch_norm == 267928
    assert sum(p.numel() for p in model.parameters()) == 267928  # the covariances are buffers, not parameters
    assert model.cov_source.shape == model.cov_target.shape == (128, 128)
    assert {"cov_source", "cov_target"} <= set(model.state_dict())
    layers = [*model.encoder, *model.decoder]
    norms = [m for m in layers if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 9 and all(m.momentum == 0.01 and m.eps == 1e-3 for m in norms)
    assert isinstance(model.encoder[-3], nn.Linear) and model.encoder[-3].out_features == 8
    assert isinstance(model.encoder[-1], nn.ReLU) and isinstance(layers[-1], nn.Linear)


def test_split_is_seeded_ten_percent_and_batches_skip_single_vectors():
    train, valid = split_vectors(101, seed=3)
    assert len(valid) == 11 and sorted(np.concatenate([train, valid]).tolist()) == list(range(101))
    again = split_vectors(101, seed=3)
    assert (again[0] == train).all() and (split_vectors(101, seed=4)[1] != valid).any()
    batches = shuffled_batches(train, 45, seed=3, epoch=0)  # 90 = 45 + 45
    assert [len(b) for b in batches] == [45, 45]
    assert [len(b) for b in shuffled_batches(np.arange(9), 4, seed=0, epoch=1)] == [4, 4]  # the last one is left out
    assert (shuffled_batches(train, 90, 3, 0)[0] != shuffled_batches(train, 90, 3, 1)[0]).any()


def reference_covariances(errors, is_target, batches):
    """S_d = Σ_batches scatter of the domain's centred 128-d rows; Σ_d = S_d / (vectors − 1)."""
    result = []
    for domain in (False, True):
        scatter, count = np.zeros((128, 128)), 0
        for index in batches:
            vectors = errors[index][is_target[index] == domain]
            if len(vectors):
                rows = vectors.reshape(-1, 128)
                scatter += np.cov(rows.T, bias=True) * len(rows)
                count += len(vectors)
        result.append(scatter / (count - 1))
    return np.stack(result)


def test_covariance_pass_matches_numpy():
    rng = np.random.default_rng(1)
    errors = rng.standard_normal((70, 640))
    is_target = np.zeros(70, dtype=bool)
    is_target[[3, 8, 20, 21, 22, 40, 41, 60]] = True
    batches = shuffled_batches(np.arange(70), 32, seed=0, epoch=0)
    pairs = [(torch.from_numpy(errors[i]).float(), torch.from_numpy(is_target[i])) for i in batches]
    got = error_covariances(pairs).numpy()
    np.testing.assert_allclose(got, reference_covariances(errors.astype(np.float32), is_target, batches), atol=1e-9)
    only_source = error_covariances([(e, torch.zeros_like(t)) for e, t in pairs])
    torch.testing.assert_close(only_source[1], only_source[0])


def test_clip_scores_match_numpy_and_the_double_sum():
    rng = np.random.default_rng(2)
    features, reconstruction = rng.standard_normal((2, 3, 4, 640))  # 3 clips of 4 vectors
    factors = rng.standard_normal((2, 128, 128))
    precisions = factors @ factors.transpose(0, 2, 1) / 128 + np.eye(128)
    tensors = [torch.from_numpy(a) for a in (features, reconstruction, precisions)]
    mse = mse_scores(*tensors[:2]).numpy()
    np.testing.assert_allclose(mse, ((reconstruction - features) ** 2).mean(axis=(1, 2)))
    rows = (reconstruction - features).reshape(3, -1, 128)  # R = 20 rows per clip
    double_sum = np.array([[(r @ p @ r.T).sum() / len(r) ** 2 for p in precisions] for r in rows]).min(axis=1)
    np.testing.assert_allclose(mahalanobis_scores(*tensors).numpy(), double_sum, rtol=1e-10)


def training_data(tmp_path, epochs=2, **training):
    rng = np.random.default_rng(0)
    clips = [asdcore.Clip(Path(f"{i}.wav"), "fan", "train", 0, asdcore.TARGET if i < 2 else asdcore.SOURCE, 0)
             for i in range(8)]
    waves = {clip.path: (0.1 * rng.standard_normal(SR)).astype(np.float32) for clip in clips}
    config = TrainingConfig(**{"epochs": epochs, "batch_size": 64, "weight_decay": 0.0, "tf32": False} | training)
    return asdcore.TrainData(clips=clips, load=lambda clip: waves[clip.path], clip_samples=SR,
                             labels=np.zeros(8, dtype=int), num_classes=1, training=config, make_loss=None,
                             augmentations=[], device=torch.device("cpu"), seed=5, workdir=tmp_path)


def frontend(score="mse"):
    torch.manual_seed(0)
    return DcaseBaselineAeFrontend(DcaseBaselineAeFrontend.Params(score=score), sample_rate=SR, clip_samples=SR)


def test_fit_ends_with_the_covariance_pass_over_the_training_split(tmp_path):
    data = training_data(tmp_path)
    model = frontend("mahalanobis")
    model.fit(data)
    assert [row["epoch"] for row in data.log] == [1, 2]
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["val_loss"]) for row in data.log)
    vectors = torch.cat([model.features(torch.from_numpy(data.load(c))[None])[0] for c in data.clips])
    is_target = np.repeat([c.domain == asdcore.TARGET for c in data.clips], 28)
    train_index, _ = split_vectors(len(vectors), data.seed)
    batches = shuffled_batches(train_index, 64, data.seed, epoch=2)
    model.model.eval()
    with torch.no_grad():
        errors = (vectors - model.model(vectors)[0]).numpy()
    expected = reference_covariances(errors, is_target, batches)
    np.testing.assert_allclose(model.model.cov_source.numpy(), expected[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.model.cov_target.numpy(), expected[1], rtol=1e-4, atol=1e-6)


def test_scores_survive_save_and_load_and_training_resumes(tmp_path):
    data = training_data(tmp_path)
    trained = frontend("mahalanobis")
    trained.fit(data)
    trained.save(tmp_path)
    loaded = frontend("mahalanobis")
    loaded.load(tmp_path)
    waves = torch.from_numpy(np.stack([data.load(c) for c in data.clips[:3]]))
    first, second = trained.extract(waves), loaded.extract(waves)
    assert first.embedding.shape == (3, 8) and first.score.shape == (3,)
    torch.testing.assert_close(first.score, second.score)
    longer = training_data(tmp_path, epochs=3)
    frontend("mahalanobis").fit(longer)
    assert longer.log[:2] == data.log and len(longer.log) == 3


def test_settings_of_the_core_loop_are_rejected(tmp_path):
    with pytest.raises(asdcore.ConfigError, match="weight_decay: 0.0"):
        frontend().fit(training_data(tmp_path, weight_decay=0.01))
