import json
import math

import pytest
import torch

import asdcore
from asdcore.testing import check_frontend, run_cli
from {{ cookiecutter.package_name }}.{{ cookiecutter.frontend_name }} import {{ cookiecutter.class_name }}

NAME = "{{ cookiecutter.frontend_name }}"


def extract(frontend: asdcore.Frontend, waves: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = frontend.extract(waves)
    assert out.score is None
    return out.embedding


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_entry_point_registers_the_frontend():
    assert NAME in asdcore.registered("frontends")
    assert isinstance(asdcore.create("frontends", NAME), {{ cookiecutter.class_name }})


@pytest.mark.parametrize("params", [None, {"n_mels": 16, "n_fft": 512}], ids=str)
def test_conformance(params):
    check_frontend(NAME, params=params, sample_rate=16000, clip_samples=16000)


def test_embedding_shape_and_spec():
    frontend = asdcore.create("frontends", NAME, n_mels=16, n_fft=512)
    assert frontend.spec == asdcore.FrontendSpec(embedding_dim=32)
    embedding = extract(frontend, noise(3, 8000))
    assert embedding.shape == (3, 32) and embedding.dtype == torch.float32
    assert torch.isfinite(embedding).all()


def test_gain_shifts_the_mean_and_leaves_the_spread():
    """10x the amplitude is 100x the power: + ln(100) on every band's mean, the same standard deviation."""
    frontend = asdcore.create("frontends", NAME, n_mels=16, n_fft=512)
    waves = noise(2, 8000)
    quiet, loud = extract(frontend, waves), extract(frontend, 10 * waves)
    torch.testing.assert_close(loud[:, :16] - quiet[:, :16], torch.full((2, 16), math.log(100.0)))
    torch.testing.assert_close(loud[:, 16:], quiet[:, 16:], rtol=1e-4, atol=1e-4)


def test_a_sound_that_stops_spreads_more_than_a_steady_one():
    frontend = asdcore.create("frontends", NAME, n_mels=16, n_fft=512)
    steady = noise(1, 8000)
    stopping = steady * (torch.arange(8000) < 4000)
    spread = extract(frontend, torch.cat([steady, stopping]))[:, 16:]
    assert (spread[1] > spread[0]).all()


def test_window_longer_than_the_clips_is_a_config_error():
    params = {{ cookiecutter.class_name }}.Params(n_fft=2048)
    with pytest.raises(asdcore.ConfigError, match="frontend.params.n_fft: a window of 2048 samples is longer"):
        {{ cookiecutter.class_name }}(params, sample_rate=16000, clip_samples=1000)


def test_scores_a_pipeline(tmp_path):
    """A whole run with the toy dataset and backend of asdcore.testing, ending with the official score table."""
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(json.dumps({
        "name": "probe", "dataset": {"name": "toy", "root": str(tmp_path / "data"), "generate": True},
        "frontend": {"name": NAME, "params": {"n_mels": 16, "n_fft": 256}}, "backends": [{"name": "toy"}],
        "evaluation": {"plots": False}, "output": str(tmp_path / "results"), "seeds": [0],
    }))  # JSON is YAML
    result = run_cli("-q", "run", pipeline, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "| toy |" in result.output
    features = tmp_path / "results" / "probe" / "toy" / "shared" / "alpha" / "features.h5"
    assert features.is_file()
