"""The toy components of asdcore.testing and the isolation of a plugin's tests: only_plugins and run_cli."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import asdcore
from asdcore import testing
from asdcore.testing import only_plugins, run_cli

TOYS = {"datasets": ["toy"], "frontends": ["toy", "toy_trained"], "losses": ["toy"], "backends": ["toy"]}
CORE = {"executors": ["local"], "scorers": ["hmean"]}


def components(registry: asdcore.Registry) -> dict[str, list[str]]:
    return {kind: names for kind in ("datasets", "frontends", "losses", "backends", "executors", "scorers")
            if (names := registry.names(kind))}


def test_only_plugins_loads_the_core_the_named_plugins_and_the_toys(monkeypatch):
    monkeypatch.delenv("ASDCORE_LOAD_PLUGINS", raising=False)
    with only_plugins() as registry:
        assert os.environ["ASDCORE_LOAD_PLUGINS"] == "asdcore.testing"
        assert asdcore.get_registry() is registry
        assert components(registry) == {**TOYS, **CORE}
        assert {p.distribution for p in registry.plugins.values()} == {"asdcore"}
    assert "ASDCORE_LOAD_PLUGINS" not in os.environ
    assert asdcore.get_registry() is not registry


def test_only_plugins_with_a_plugin_and_without_toys(monkeypatch):
    monkeypatch.setenv("ASDCORE_LOAD_PLUGINS", "before")
    with only_plugins("asd_backends", toys=False) as registry:
        assert os.environ["ASDCORE_LOAD_PLUGINS"] == "asd_backends"
        assert set(registry.plugins) - {"asdcore.default_plugins.executors", "asdcore.default_plugins.scorers"} == {
            "asd_backends"}
        assert "toy" not in registry.names("backends") and "knn" in registry.names("backends")
        assert registry.names("datasets") == [] and registry.names("frontends") == []
    with pytest.raises(RuntimeError), only_plugins("asd_backends"):
        raise RuntimeError
    assert os.environ["ASDCORE_LOAD_PLUGINS"] == "before"


def test_users_never_see_the_toys():
    """Without the selection the toys are not registered: ``asdcore plugins`` lists no component named toy."""
    env = {k: v for k, v in os.environ.items() if k != "ASDCORE_LOAD_PLUGINS"}
    listing = subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", "plugins", "--json"],
                             env=env, capture_output=True, text=True, check=True)
    report = json.loads(listing.stdout)
    assert all("toy" not in names for plugin in report["plugins"] for names in plugin["components"].values())
    assert {p["distribution"] for p in report["plugins"]} > {"asdcore", "asd-backends"}


def test_toy_backend_is_the_distance_to_the_nearest_training_embedding():
    data = testing.synthetic(seed=3)
    backend = testing.ToyBackend(testing.ToyBackend.Params())
    backend.fit(data.train)
    train, test = data.train.embedding.astype(np.float64), data.test.embedding.astype(np.float64)
    expected = [min(np.linalg.norm(q - t) for t in train) for q in test]
    np.testing.assert_allclose(backend.score(data.test), expected, rtol=1e-9)
    testing.check_backend(testing.ToyBackend)


def test_toy_frontends_conform():
    testing.check_frontend(testing.ToyFrontend, {"bins": 8}, sample_rate=8000, clip_samples=2000)
    testing.check_frontend(testing.ToyTrainedFrontend, {"bins": 8, "dim": 4}, sample_rate=8000, clip_samples=2000)


def test_toy_trained_frontend_is_the_band_spectrum_through_a_linear_layer():
    frontend = testing.ToyTrainedFrontend(testing.ToyTrainedFrontend.Params(bins=4, dim=3), sample_rate=8000,
                                          clip_samples=64)
    waves = torch.from_numpy(testing.toy_waves(2, 64, 8000))
    spectrum = torch.log1p(torch.fft.rfft(waves).abs())  # 33 frequencies in bands of 9, 8, 8, 8
    bands = torch.stack([spectrum[:, :9].mean(1), spectrum[:, 9:17].mean(1), spectrum[:, 17:25].mean(1),
                         spectrum[:, 25:].mean(1)], dim=1)
    linear = frontend.model[1]
    with torch.no_grad():
        torch.testing.assert_close(frontend.extract(waves).embedding, bands @ linear.weight.T + linear.bias)
    assert frontend.spec == asdcore.FrontendSpec(embedding_dim=3, needs_training=True)
    with pytest.raises(asdcore.ConfigError, match="frontend.params.bins: 40 bands exceed the 33 frequencies"):
        testing.ToyTrainedFrontend(testing.ToyTrainedFrontend.Params(bins=40), clip_samples=64)


def test_a_pipeline_of_toys_runs_through_run_cli(tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(json.dumps({
        "name": "toys", "dataset": {"name": "toy", "root": str(tmp_path / "data"), "generate": True},
        "frontend": {"name": "toy_trained", "params": {"bins": 8, "dim": 4}, "loss": {"name": "toy"},
                     "training": {"epochs": 2, "batch_size": 8}},
        "backends": [{"name": "toy"}], "evaluation": {"plots": False}, "output": str(tmp_path / "out"),
        "seeds": [0],
    }))
    with only_plugins():
        result = run_cli("-q", "run", pipeline, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "| backend | all | alpha | beta |" in result.output and "| toy |" in result.output
    run = tmp_path / "out" / "toys" / "toy" / "seed0"
    assert (run / "frontend" / "shared" / "model" / "model.pt").is_file()
    assert len((run / "beta" / "toy" / "anomaly_score_beta_section_00_test.csv").read_text().splitlines()) == 8
    with only_plugins(toys=False):
        result = run_cli("-q", "run", pipeline, "--no-progress")
    assert result.exit_code == 2 and "unknown dataset 'toy'" in result.output
