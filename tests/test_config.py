import pytest
import yaml

import toy_plugin
from asdcore.config import load_config
from asdcore.errors import ConfigError, UnknownComponentError


def config(**changes):
    return toy_plugin.pipeline("/data/toy", "/tmp/out", **changes)


def test_valid_config_resolves_defaults(registry):
    resolved = load_config(config(), registry=registry)
    data = resolved.as_dict()
    assert data["backends"] == [{"id": "distance", "name": "distance", "view": "near", "alpha": None,
                                 "params": {"fail_on": "", "scale": 1.0, "nan": False, "delay": 0.0}}]
    assert data["frontend"]["params"] == {"bins": 16, "delay": 0.0, "nan": False}
    assert data["frontend"]["training"]["epochs"] == 16
    assert data["scorer"] == "hmean"
    assert data["dataset"] == {"name": "toy", "root": "/data/toy", "machines": "all", "channels": "near", "generate": False,
                               "truth": False,
                               "gain": 1.0,
                               "tag": ""}


def test_unknown_top_level_key(registry):
    with pytest.raises(ConfigError, match=r"seed: unknown key 'seed'; allowed keys: .*seeds.* Did you mean 'seeds'\?"):
        load_config({**config(), "seed": [0]}, registry=registry)


def test_unknown_nested_key_names_path(registry):
    bad = config(frontend={"name": "spectrum", "training": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"frontend.training.epoch: unknown key 'epoch'.*Did you mean 'epochs'\?"):
        load_config(bad, registry=registry)


def test_unknown_component_param(registry):
    bad = config(backends=[{"name": "distance", "params": {"scal": 2}}])
    with pytest.raises(ConfigError, match=r"backends.0.params.scal: unknown key 'scal'; allowed keys: fail_on, scale, nan"):
        load_config(bad, registry=registry)


def test_unknown_dataset_param(registry):
    with pytest.raises(ConfigError, match=r"dataset.rot: unknown key 'rot'; allowed keys: root, machines, channels, generate, truth, gain, tag\. Did you mean 'root'\?"):
        load_config(config(dataset={"name": "toy", "root": "x", "rot": 1}), registry=registry)


def test_wrong_types(registry):
    with pytest.raises(ConfigError, match=r"seeds.0: .*integer.*'a'"):
        load_config(config(seeds=["a"]), registry=registry)
    with pytest.raises(ConfigError, match=r"frontend.params.bins: .*integer"):
        load_config(config(frontend={"name": "spectrum", "params": {"bins": "many"}}), registry=registry)
    with pytest.raises(ConfigError, match=r"device: Input should be 'auto', 'cpu' or 'cuda' \(got 'gpu'\)"):
        load_config(config(device="gpu"), registry=registry)
    with pytest.raises(ConfigError, match=r"frontend.training.scope: .*'shared' or 'per_machine'"):
        load_config(config(frontend={"name": "spectrum", "training": {"scope": "global"}}), registry=registry)
    with pytest.raises(ConfigError, match=r"backends: List should have at least 1 item"):
        load_config(config(backends=[]), registry=registry)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"frontend": {"name": "spectrun"}}, r"frontend.name: unknown frontend 'spectrun'; registered frontends: centred, spectrum, tiny\. Did you mean 'spectrum'\?"),
        ({"backends": [{"name": "knn"}]}, r"backends.0.name: unknown backend 'knn'; registered backends: distance"),
        ({"dataset": {"name": "dcase"}}, r"dataset.name: unknown dataset 'dcase'; registered datasets: toy"),
        ({"scorer": "dcase2099"}, r"scorer: unknown scorer 'dcase2099'; registered scorers: hmean"),
        ({"frontend": {"name": "spectrum", "loss": {"name": "scac"}}}, r"frontend.loss.name: unknown loss 'scac'"),
    ],
)
def test_unknown_component_names(registry, changes, message):
    with pytest.raises(UnknownComponentError, match=message):
        load_config(config(**changes), registry=registry)


def test_duplicate_backend_ids(registry):
    with pytest.raises(ConfigError, match=r"backends.1: backend id 'distance' is used twice"):
        load_config(config(backends=[{"name": "distance"}, {"name": "distance"}]), registry=registry)
    resolved = load_config(config(backends=[{"name": "distance"}, {"name": "distance", "id": "d2", "params": {"scale": 2}}]),
                           registry=registry)
    assert list(resolved.backend_params) == ["distance", "d2"]


def test_set_overrides_and_seeds(registry, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config()))
    resolved = load_config(path, ["frontend.params.bins=8", "backends.0.params.scale=2.5", "dataset.machines=[alpha]",
                                  "frontend.training.epochs=3", "name=other"], seeds="3,4", registry=registry)
    c = resolved.config
    assert resolved.frontend_params["bins"] == 8 and resolved.backend_params["distance"][1]["scale"] == 2.5
    assert resolved.dataset_params["machines"] == ["alpha"] and c.frontend.training.epochs == 3
    assert c.name == "other" and c.seeds == [3, 4]
    with pytest.raises(ConfigError, match=r"--set 'backends.5.params.scale=1': backends.5 must be an index below 1"):
        load_config(path, ["backends.5.params.scale=1"], registry=registry)
    with pytest.raises(ConfigError, match=r"--set 'frontend': expected key=value"):
        load_config(path, ["frontend"], registry=registry)
    with pytest.raises(ConfigError, match=r"--seeds 'a,b': expected comma-separated integers"):
        load_config(path, seeds="a,b", registry=registry)


def test_environment_variables_in_paths(registry, monkeypatch):
    monkeypatch.setenv("ASD_DATA", "/mnt/data")
    resolved = load_config({**config(dataset={"name": "toy", "root": "$ASD_DATA/toy"}), "output": "${ASD_DATA}/results"},
                           registry=registry)
    assert resolved.dataset_params["root"] == "/mnt/data/toy" and resolved.config.output == "/mnt/data/results"
    monkeypatch.delenv("ASD_DATA")
    with pytest.raises(ConfigError, match=r"dataset.root: environment variable \$ASD_DATA in '\$ASD_DATA/toy' is not set"):
        load_config(config(dataset={"name": "toy", "root": "$ASD_DATA/toy"}), registry=registry)


def test_file_errors(registry, tmp_path):
    with pytest.raises(ConfigError, match="cannot read pipeline file"):
        load_config(tmp_path / "missing.yaml", registry=registry)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{bad}: invalid YAML"):
        load_config(bad, registry=registry)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(bad, registry=registry)


def test_unknown_machine_is_reported_with_allowed(registry, toy_root, tmp_path):
    from asdcore.engine import Pipeline

    resolved = load_config(toy_plugin.pipeline(toy_root, tmp_path, dataset={"name": "toy", "root": str(toy_root),
                                                                            "machines": ["alpha", "gamma"]}),
                           registry=registry)
    with pytest.raises(ConfigError, match=r"dataset.machines: unknown machine type 'gamma'.*allowed: alpha, beta"):
        Pipeline.create(resolved, registry, progress=False).run()
