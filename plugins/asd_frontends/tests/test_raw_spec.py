import numpy as np
import pytest
import torch

import asdcore
from asdcore.errors import ConfigError

SR = 16000


@pytest.fixture
def registry():
    """The process-wide registry: the core, this plugin and the toys."""
    return asdcore.get_registry()


@pytest.fixture(scope="module")
def waves():
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    return np.stack([tone + 0.05 * rng.standard_normal(t.size), 0.2 * rng.standard_normal(t.size)]).astype(np.float32)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_freqs, f_min, f_max, n_mels, sr):
    freqs = np.linspace(0, sr / 2, n_freqs)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bank = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        bank[:, m] = np.maximum(0.0, np.minimum(rising, falling))
    return bank


def reference_mel(wave, n_fft=1024, hop=512, n_mels=128, f_min=0.0, f_max=None):
    """[frames, n_mels] magnitude mel spectrogram, computed frame by frame in float64."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(wave.astype(np.float64), n_fft // 2)
    n_frames = 1 + len(wave) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    magnitude = np.abs(np.fft.rfft(frames, axis=1)) / np.sqrt(np.sum(window**2))
    return magnitude @ mel_filterbank(n_fft // 2 + 1, f_min, f_max or SR / 2, n_mels, SR)


def extract(registry, waves, **params):
    frontend = registry.create("frontends", "raw_spec", params=params, sample_rate=SR)
    with torch.no_grad():
        out = frontend.extract(torch.from_numpy(waves))
    return frontend, out


def test_entry_point_registers_raw_spec(registry):
    assert "raw_spec" in registry.names("frontends")
    assert registry.get("frontends", "raw_spec").distribution == "asd-frontends"


def test_default_embedding_shape_and_spec(registry, waves):
    frontend, out = extract(registry, waves)
    assert out.embedding.shape == (2, 128)
    assert out.score is None
    assert frontend.spec.embedding_dim == 128
    assert not frontend.spec.needs_training and not frontend.spec.emits_scores


def test_time_mean_matches_independent_computation(registry, waves):
    _, out = extract(registry, waves)
    expected = np.stack([reference_mel(w).mean(axis=0) for w in waves])
    np.testing.assert_allclose(out.embedding.numpy(), expected, rtol=1e-5, atol=1e-6 * expected.max())


def test_time_max_and_custom_params(registry, waves):
    params = dict(n_fft=256, hop_length=100, n_mels=40, f_min=100.0, f_max=6000.0, pooling="time_max")
    frontend, out = extract(registry, waves, **params)
    assert out.embedding.shape == (2, 40) and frontend.spec.embedding_dim == 40
    expected = np.stack([reference_mel(w, 256, 100, 40, 100.0, 6000.0).max(axis=0) for w in waves])
    np.testing.assert_allclose(out.embedding.numpy(), expected, rtol=1e-5, atol=1e-6 * expected.max())
    _, mean_out = extract(registry, waves, **{**params, "pooling": "time_mean"})
    assert torch.all(out.embedding >= mean_out.embedding) and not torch.allclose(out.embedding, mean_out.embedding)


def test_batch_items_are_independent(registry, waves):
    _, both = extract(registry, waves)
    _, single = extract(registry, waves[1:])
    torch.testing.assert_close(both.embedding[1:], single.embedding, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"n_mels": "x"}, "n_mels"),
        ({"n_mels": 0}, "n_mels"),
        ({"n_fft": 8}, "n_fft"),
        ({"pooling": "time_median"}, "pooling"),
        ({"n_mel": 64}, "n_mel"),
    ],
)
def test_invalid_params_name_the_key(registry, params, key):
    with pytest.raises(ConfigError) as info:
        registry.create("frontends", "raw_spec", params=params)
    assert f"frontends.raw_spec.params.{key}" in str(info.value)


def test_unknown_key_lists_allowed_keys(registry):
    with pytest.raises(ConfigError, match="unknown key 'n_mel'") as info:
        registry.create("frontends", "raw_spec", params={"n_mel": 64})
    message = str(info.value)
    assert "n_mels" in message and "pooling" in message and "Did you mean 'n_mels'" in message


def test_mel_band_must_be_ordered_and_below_nyquist(registry):
    with pytest.raises(ConfigError, match=r"frontends.raw_spec.params: .*f_max \(2000.0\) must be above f_min"):
        registry.create("frontends", "raw_spec", params={"f_min": 4000, "f_max": 2000})
    with pytest.raises(ConfigError, match="Nyquist frequency 8000.0 Hz"):
        registry.create("frontends", "raw_spec", params={"f_max": 12000})
