"""Every paper recipe of asd-frontends trains on tiny synthetic data (asd-datasets): a few steps lower its
training loss; the autoencoder recipes run end to end through the passthrough backend (asd-backends)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from asdcore import Registry, TrainData, load_config
from asdcore.training import train

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TRAINED = ["ae", "dis_multispec_scac_trainable", "dis_spec_adacos_fixed", "dis_spec_adacos_fixed_wo_mixup",
           "dis_spec_featex", "dis_spec_scac_fixed", "dis_spec_scac_trainable", "dis_spec_subspaceloss"]
BASELINE = ["dcase_baseline_ae_mse", "dcase_baseline_ae_mahalanobis"]  # own training loop: run end to end


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


def test_every_recipe_of_this_plugin_is_covered(registry):
    ours = {name for name in registry.names("frontends") if registry.get("frontends", name).distribution == "asd-frontends"}
    recipes = {p.stem for p in RECIPES.glob("*.yaml")
               if load_config(p, [], registry=registry).config.frontend.name in ours}
    untrained = {"demo", "raw_spec", "raw_spec_dcase2026"}  # run end to end by the core and asd-datasets tests
    assert recipes - untrained == set(TRAINED) | set(BASELINE)


@pytest.mark.parametrize("recipe", TRAINED)
def test_training_steps_lower_the_loss(registry, data_root, tmp_path, recipe):
    dataset_override = (f"dataset={{name: synth, root: {data_root}, machines: [fan, valve], n_train_source: 6, "
                        "n_train_target: 2, n_test: 4, clip_seconds: 5.0}")
    resolved = load_config(RECIPES / f"{recipe}.yaml", [dataset_override, "frontend.training.num_workers=0",
                                                         "frontend.training.batch_size=16"], registry=registry)
    dataset = registry.create("datasets", "synth", params=resolved.dataset_params)
    dataset.prepare(progress=False)
    cfg = resolved.config.frontend
    torch.manual_seed(0)
    frontend = registry.create("frontends", cfg.name, params=resolved.frontend_params,
                               sample_rate=dataset.sample_rate, clip_samples=dataset.clip_samples)
    clips = [c for m in dataset.machines() for c in dataset.clips(m, "train")]
    classes, num_classes = dataset.class_labels()

    def make_loss(d, c):
        return registry.create("losses", cfg.loss.name, params=resolved.loss_params, embedding_dim=d, num_classes=c)

    data = TrainData(
        clips=clips, load=dataset.load, clip_samples=dataset.clip_samples,
        labels=np.array([classes[c.path] for c in clips]), num_classes=num_classes,
        training=cfg.training.model_copy(update={"epochs": 3}), make_loss=make_loss if cfg.loss else None,
        augmentations=[registry.create("augmentations", a.name, params=p)
                       for a, p in zip(cfg.augmentations, resolved.augmentation_params)],
        device=torch.device("cpu"), seed=0, workdir=tmp_path,
    )
    dataset = frontend.training_dataset(data)
    keys = [(0, i) for i in range(16)] if getattr(dataset, "keyed_by_epoch", False) else range(16)
    batch = torch.utils.data.default_collate([dataset[k] for k in keys])
    torch.manual_seed(1)
    loss = make_loss(frontend.spec.embedding_dim, num_classes) if cfg.loss else None

    def measure():
        frontend.model.train()
        torch.manual_seed(7)
        with torch.no_grad():
            return frontend.training_loss(batch, loss).item()

    data.make_loss = (lambda d, c: loss) if loss is not None else None
    before = measure()
    train(frontend, data)
    assert [row["epoch"] for row in data.log] == [1, 2, 3]
    assert measure() < before


def test_ae_runs_end_to_end_through_passthrough(registry, tmp_path):
    from asdcore import Pipeline

    config = {
        "name": "ae", "dataset": {"name": "synth", "root": str(tmp_path / "data"), "machines": ["pump"],
                                  "n_train_source": 8, "n_train_target": 2, "n_test": 8, "clip_seconds": 1.0},
        "frontend": {"name": "ae", "training": {"epochs": 2, "batch_size": 64, "scope": "per_machine",
                                                "num_workers": 0}},
        "backends": [{"name": "passthrough"}], "seeds": [0], "output": str(tmp_path / "out"), "device": "cpu",
    }
    root = Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    assert (root / "seed0" / "frontend" / "pump" / "model" / "model.pt").exists()
    log = (root / "seed0" / "frontend" / "pump" / "train_log.csv").read_text().splitlines()
    assert log[0] == "epoch,loss,lr,seconds,data_seconds" and len(log) == 3
    scores = (root / "seed0" / "pump" / "passthrough" / "anomaly_score_pump_section_00_test.csv").read_text()
    assert len(scores.splitlines()) == 8
    assert "passthrough,all,dev,official," in (root / "seed0" / "summary.csv").read_text()


@pytest.mark.parametrize("recipe", BASELINE)
def test_dcase_baseline_recipe_runs_end_to_end(registry, data_root, tmp_path, recipe):
    from asdcore import Pipeline

    overrides = [
        f"dataset={{name: synth, root: {data_root}, machines: [fan, valve], n_train_source: 6, n_train_target: 2, "
        "n_test: 4, clip_seconds: 5.0}", f"output={tmp_path}", "device=cpu", "frontend.training.epochs=2",
    ]
    resolved = load_config(RECIPES / f"{recipe}.yaml", overrides, registry=registry)
    assert resolved.config.seeds == [13711]
    root = Pipeline.create(resolved, registry, progress=False).run()
    assert "passthrough,all,dev,official," in (root / "seed13711" / "summary.csv").read_text()
    for machine in ("fan", "valve"):
        log = (root / "seed13711" / "frontend" / machine / "train_log.csv").read_text().splitlines()
        assert log[0] == "epoch,loss,val_loss,seconds" and len(log) == 3
        scores = root / "seed13711" / machine / "passthrough" / f"anomaly_score_{machine}_section_00_test.csv"
        assert len(scores.read_text().splitlines()) == 4
