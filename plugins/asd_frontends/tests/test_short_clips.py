"""Clips shorter than ``multibranch_cnn`` takes are refused naming the frontend, the minimum length in samples
and seconds, and what to change; the minimum is exact (a clip of that length builds). The 5-frame frontends
(``ae``, ``dcase_baseline_ae``) likewise, and a training clip too short for them is named."""
import numpy as np
import pytest
import torch

import asdcore
from asdcore.errors import AudioError, ConfigError
from asd_frontends.ae import long_enough, min_samples
from asd_frontends.multibranch import MultiBranchNet, spectrogram_min_samples, spectrum_min_samples

SR = 16000


@pytest.fixture
def registry():
    """The process-wide registry: the core, this plugin and the toys."""
    return asdcore.get_registry()


def frontend(registry, clip_samples: int, n_ffts: list[int]):
    return registry.create("frontends", "multibranch_cnn", params={"n_ffts": n_ffts}, sample_rate=SR,
                           clip_samples=clip_samples, device=torch.device("cpu"))


@pytest.mark.parametrize("n_ffts", [[256], [256, 4096]])
def test_the_minimum_is_the_shortest_clip_the_network_takes(n_ffts):
    minimum = max(spectrum_min_samples(), *map(spectrogram_min_samples, n_ffts))
    MultiBranchNet(minimum, tuple(n_ffts))
    with pytest.raises(ValueError, match="too short|frames"):
        MultiBranchNet(minimum - 1, tuple(n_ffts))


def test_a_clip_too_short_for_the_spectrum_branch_names_the_minimum(registry):
    assert spectrum_min_samples() == 70014
    with pytest.raises(ConfigError) as info:
        frontend(registry, SR, [1024])
    assert str(info.value) == (
        "frontend 'multibranch_cnn' needs clips of at least 70014 samples (4.38 s at 16000 Hz), but the clip length "
        "is 16000 samples (1 s); use longer clips, set `dataset.clip_seconds` to at least 4.38 where the dataset "
        "has it (shorter clips are tiled), or choose another frontend (its spectrum branch needs 70014 samples "
        "whatever its params)")


def test_a_clip_too_short_for_a_spectrogram_branch_points_to_n_ffts(registry):
    with pytest.raises(ConfigError, match=r"at least 71680 samples \(4\.48 s at 16000 Hz\), but the clip length is "
                                          r"71000 samples .* or use smaller `frontend.params.n_ffts`$"):
        frontend(registry, 71000, [1024, 4096])
    assert frontend(registry, 71680, [1024, 4096]).embedding_dim == 384


@pytest.mark.parametrize("name", ["ae", "dcase_baseline_ae"])
def test_the_five_frame_frontends_name_their_minimum(registry, name):
    assert min_samples() == 2048
    with pytest.raises(ConfigError, match=rf"frontend '{name}' needs clips of at least 2048 samples \(0\.128 s at "
                                          r"16000 Hz\), but the clip length is 2047 samples"):
        registry.create("frontends", name, sample_rate=SR, clip_samples=2047, device=torch.device("cpu"))
    built = registry.create("frontends", name, sample_rate=SR, clip_samples=2048, device=torch.device("cpu"))
    assert built.extract(torch.zeros(1, 2048)).embedding.shape == (1, 8)


def test_a_training_clip_too_short_for_five_frames_is_named(tmp_path):
    clip = asdcore.Clip(tmp_path / "short.wav", "fan", "train", 0, asdcore.SOURCE, asdcore.NORMAL)
    with pytest.raises(AudioError, match=r"short\.wav: 2047 samples are fewer than the 2048 that frontend 'ae' needs"):
        long_enough(np.zeros(2047, np.float32), clip, "ae")
    assert len(long_enough(np.zeros(2048, np.float32), clip, "ae")) == 2048
