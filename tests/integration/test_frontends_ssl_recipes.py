"""The SSL recipes of asd-frontends-ssl run end to end through the engine on tiny synthetic data (asd-datasets)
and tiny random checkpoints (given through the recipes' environment variables), with the losses, augmentations
and backends of the other plugins; only the scale is overridden."""
import math
from pathlib import Path

import pytest
import torch
import yaml

from asdcore import Pipeline, Registry, load_config
from asdcore.testing import train_data_parallel
from asdcore.training import CHECKPOINT

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TRAINED = ["dis_beats_scac_trainable", "dis_eat_scac_trainable"]
RAW = ["raw_beats", "raw_eat", "raw_beats_memory_bank"]
BEATS_TINY = {"encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128,
              "encoder_attention_heads": 4, "embed_dim": 32, "conv_pos": 16, "conv_pos_groups": 4}
EAT_TINY = {"depth": 2, "embed_dim": 64, "num_heads": 4, "max_length": 64}


@pytest.fixture(scope="module")
def registry():
    """The installed plugins."""
    return Registry()


@pytest.fixture(scope="module")
def beats_checkpoint(tmp_path_factory):
    from asd_frontends_ssl.beats import write_random_checkpoint

    return str(write_random_checkpoint(tmp_path_factory.mktemp("beats") / "beats.pt", BEATS_TINY))


@pytest.fixture(scope="module")
def eat_checkpoint(tmp_path_factory):
    from asd_frontends_ssl.eat import write_random_checkpoint

    path = tmp_path_factory.mktemp("eat") / "eat.pt"
    write_random_checkpoint(path, EAT_TINY)
    return str(path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


@pytest.fixture
def environment(monkeypatch, beats_checkpoint, eat_checkpoint):
    monkeypatch.setenv("BEATS_CHECKPOINT", beats_checkpoint)
    monkeypatch.setenv("EAT_CHECKPOINT", eat_checkpoint)


def test_paper_hyperparameters():
    for name in TRAINED:
        recipe = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        frontend = recipe["frontend"]
        assert frontend["training"] | {"scope": "shared"} == {
            "epochs": 25, "batch_size": 8, "lr": 1e-4, "warmup_steps": 5000, "scope": "shared", "num_workers": 0}
        assert frontend["loss"] == {"name": "scac", "params": {"k": 16, "trainable": True, "dynamic": False}}
        assert frontend["augmentations"] == [{"name": "mixup", "params": {"prob": 0.5}}]
        assert frontend["params"]["lora_rank"] == 64 and frontend["params"]["embedding_dim"] == 256
    beats = yaml.safe_load((RECIPES / "dis_beats_scac_trainable.yaml").read_text())["frontend"]["params"]
    eat = yaml.safe_load((RECIPES / "dis_eat_scac_trainable.yaml").read_text())["frontend"]["params"]
    assert beats["lora_targets"] == ["q_proj", "v_proj"] and beats["checkpoint"] == "$BEATS_CHECKPOINT"
    assert eat["lora_targets"] == ["qkv"] and eat["drop_path"] == 0.1 and eat["checkpoint"] == "$EAT_CHECKPOINT"


@pytest.mark.parametrize("recipe", TRAINED + RAW)
def test_recipe_runs_end_to_end(registry, environment, data_root, tmp_path, recipe):
    overrides = [
        f"dataset={{name: synth, root: {data_root}, machines: [fan, valve], n_train_source: 6, n_train_target: 2, "
        "n_test: 4, clip_seconds: 1.0}",
        f"output={tmp_path}", "device=cpu", "extraction.batch_size=16",
    ]
    if recipe in TRAINED:
        overrides += ["frontend.training.epochs=1", "frontend.training.warmup_steps=1",
                      "frontend.training.keep_checkpoints=true"]
    resolved = load_config(RECIPES / f"{recipe}.yaml", overrides, seeds="0", registry=registry)
    root = Pipeline.create(resolved, registry, progress=False).run()
    summary = (root / "seed0" / "summary.csv").read_text()
    for backend in resolved.backend_params:
        assert f"{backend},all,dev,official," in summary
        for machine in ("fan", "valve"):
            scores = root / "seed0" / machine / backend / f"anomaly_score_{machine}_section_00_test.csv"
            assert len(scores.read_text().splitlines()) == 4
    frontend = root / "seed0" / "frontend" / "shared"
    if recipe in RAW:
        assert not frontend.exists()
        return
    assert len((frontend / "train_log.csv").read_text().splitlines()) == 2
    saved = torch.load(frontend / "model" / "model.pt", weights_only=True)
    assert set(torch.load(frontend / "work" / CHECKPOINT, weights_only=False)["model"]) == set(saved)
    assert any(".lora_A." in k for k in saved) and any(k.startswith("projection_net.") for k in saved)
    assert all(".lora_" in k or k.startswith("projection_net.") for k in saved)


def test_trained_recipes_train_in_bf16_on_two_processes(registry, environment, data_root, tmp_path):
    overrides = [
        f"dataset={{name: synth, root: {data_root}, machines: [fan, valve], n_train_source: 6, n_train_target: 2, "
        "n_test: 4, clip_seconds: 1.0}", f"output={tmp_path}", "device=cpu", "seeds=[0]",
        "frontend.training.epochs=2", "frontend.training.warmup_steps=1", "frontend.training.devices=2",
        "frontend.training.precision=bf16-mixed",
    ]
    resolved = load_config(RECIPES / f"{TRAINED[0]}.yaml", overrides, registry=registry)
    registry.create("datasets", "synth", params=resolved.dataset_params).prepare(progress=False)
    train_data_parallel([(RECIPES / f"{name}.yaml", overrides) for name in TRAINED], 2)
    for name in TRAINED:
        frontend = tmp_path / name / "synth" / "seed0" / "frontend" / "shared"
        losses = [float(r.split(",")[1]) for r in (frontend / "train_log.csv").read_text().splitlines()[1:]]
        assert len(losses) == 2 and all(math.isfinite(v) for v in losses), name
        saved = torch.load(frontend / "model" / "model.pt", weights_only=True)
        assert all(".lora_" in k or k.startswith("projection_net.") for k in saved), name


def test_raw_beats_2026_recipe_with_views_and_channel_fusion(registry, environment, tmp_path):
    from asd_datasets.format import format_year
    from asd_datasets.original_synth import write_original

    machines = ["fan", "Sander"]
    write_original(2026, tmp_path, machines, n_train=6, n_test=4, clip_seconds=0.5)
    format_year(2026, tmp_path, progress=False)
    overrides = [f"dataset.root={tmp_path}", f"dataset.machines=[{','.join(machines)}]", f"output={tmp_path / 'out'}",
                 "device=cpu", "extraction.batch_size=16"]
    resolved = load_config(RECIPES / "raw_beats_dcase2026.yaml", overrides, registry=registry)
    assert resolved.views == ("near", "far") and resolved.scorer == "dcase2026"
    root = Pipeline.create(resolved, registry, progress=False).run()
    summary = (root / "seed0" / "summary.csv").read_text()
    for result in resolved.result_ids:
        assert f"{result},all,dev,official," in summary and f"{result},all,eval,official," in summary
