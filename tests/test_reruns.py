"""What a rerun redoes: one test per identity input. Each changes one input, checks that the dry run
names exactly the dependent units (and why), that the rerun executes exactly those, and that the
results equal a fresh run with the new input."""
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asdcore
import toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.registry import Registry, use_registry

SEEDS = (0, 1)


def make(registry, config) -> Pipeline:
    return Pipeline.create(load_config(config, registry=registry), registry, progress=False)


def rerun(registry, config, **kwargs) -> dict[str, str]:
    """Run ``config``; return unit id -> reason of every unit that ran, checked against the dry run."""
    pipeline = make(registry, config)
    planned = {uid: why for uid, why in pipeline.plan(kwargs.get("verify_content", False)).reasons(
        kwargs.get("force", False)).items() if why}
    pipeline.run(**kwargs)
    ran = {uid for uid, outcome in pipeline.outcomes.items() if outcome.status == "done"}
    assert ran == set(planned), (ran, planned)
    return planned


def results(root: Path) -> dict[str, str]:
    """Every score, evaluation, summary and table file of a run, by relative path."""
    names = ("anomaly_score_*.csv", "evaluation.csv", "summary.csv", "table.csv", "train_log.csv")
    files = sorted(p for pattern in names for p in root.rglob(pattern))
    out = {str(p.relative_to(root)): p.read_text() for p in files}
    for name, text in out.items():
        if name.endswith("train_log.csv"):  # without the seconds per epoch and those spent waiting for data
            out[name] = [line.rsplit(",", 2)[0] for line in text.splitlines()]
    return out


def same_as_fresh(registry, config, tmp_path):
    """The results of ``config`` as they are now equal those of a run into a new folder."""
    fresh = dict(config, output=str(tmp_path / "fresh"))
    fresh_root = make(registry, fresh).run()
    root = make(registry, config).root
    assert results(root) == results(fresh_root)
    return root


def machine_units(machine: str, extract=("shared/extract/{m}",), seeds=SEEDS, backends=("distance",)) -> set[str]:
    """The units that depend on one machine type's data: its extraction, scores, evaluations, the reductions."""
    units = {e.format(m=machine, s=s) for e in extract for s in seeds}
    for s in seeds:
        units |= {f"seed{s}/{kind}/{machine}/{b}" for kind in ("score", "evaluate") for b in backends}
        units.add(f"seed{s}/summary")
    return units | {"table"}


def reduction_units(seeds=SEEDS) -> set[str]:
    return {f"seed{s}/summary" for s in seeds} | {"table"}


@pytest.fixture
def data(tmp_path):
    return toy_plugin.make_data(tmp_path / "data")


@pytest.fixture
def config(data, tmp_path):
    return toy_plugin.pipeline(data, tmp_path / "out")


def test_a_second_run_executes_nothing(registry, config):
    assert rerun(registry, config)  # everything, the first time
    assert rerun(registry, config) == {}


def test_clip_added(registry, config, data, tmp_path):
    rerun(registry, config)
    shutil.copy(data / "alpha" / "test" / "source_anomaly_000.wav", data / "alpha" / "test" / "source_anomaly_099.wav")
    reasons = rerun(registry, config)
    assert set(reasons) == machine_units("alpha")
    assert reasons["shared/extract/alpha"] == "changed: data alpha/test"
    assert reasons["seed0/score/alpha/distance"] == "changed: upstream shared/extract/alpha"
    root = same_as_fresh(registry, config, tmp_path)
    assert len((root / "seed0/alpha/distance/anomaly_score_alpha_section_00_test.csv").read_text().splitlines()) == 9


def test_clip_removed(registry, config, data, tmp_path):
    rerun(registry, config)
    (data / "beta" / "train" / "source_normal_004.wav").unlink()
    reasons = rerun(registry, config)
    assert set(reasons) == machine_units("beta")
    assert reasons["shared/extract/beta"] == "changed: data beta/train"
    same_as_fresh(registry, config, tmp_path)


def test_clip_modified(registry, config, data, tmp_path):
    rerun(registry, config)
    path = data / "alpha" / "train" / "source_normal_003.wav"
    sf.write(path, 0.9 * sf.read(path, dtype="float32")[0], toy_plugin.SR)
    assert set(rerun(registry, config)) == machine_units("alpha")
    same_as_fresh(registry, config, tmp_path)


def test_verify_content_catches_a_change_that_keeps_size_and_time(registry, config, data, tmp_path):
    path = data / "alpha" / "test" / "target_normal_001.wav"
    rerun(registry, config, verify_content=True)
    stat = path.stat()
    wave, rate = sf.read(path, dtype="int16")
    sf.write(path, wave[::-1].copy(), rate, subtype="PCM_16")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert rerun(registry, config) != {}  # another identity mode: keys differ
    assert rerun(registry, config) == {}  # size and time alone cannot see the change
    path.write_bytes(path.read_bytes())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rerun(registry, config, verify_content=True)
    wave[0] = wave[0] + 1
    sf.write(path, wave, rate, subtype="PCM_16")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    reasons = rerun(registry, config, verify_content=True)
    assert set(reasons) == machine_units("alpha") and reasons["shared/extract/alpha"] == "changed: data alpha/test"


@pytest.mark.parametrize("edit", ["labels", "domain"])
def test_label_and_ground_truth_files(registry, data, tmp_path, edit):
    config = toy_plugin.pipeline(data, tmp_path / "out", dataset={"name": "toy", "root": str(data), "truth": True})
    for machine in ("alpha", "beta"):
        toy_plugin.write_truth(data, machine)
    rerun(registry, config)
    before = (tmp_path / "out/toyrun/toy/seed0/summary.csv").read_text()
    truth = data / "beta" / "truth.csv"
    if edit == "labels":
        toy_plugin.write_truth(data, "beta", flip=True)
    else:
        truth.write_text(truth.read_text().replace("source_normal_000.wav,normal,source",
                                                   "source_normal_000.wav,normal,target"))
    reasons = rerun(registry, config)
    assert set(reasons) == machine_units("beta")
    assert reasons["shared/extract/beta"] == "changed: data beta/test, metadata beta"
    root = same_as_fresh(registry, config, tmp_path)
    assert (root / "seed0/summary.csv").read_text() != before


def test_dataset_params(registry, config, data, tmp_path):
    rerun(registry, config)
    config["dataset"] = {"name": "toy", "root": str(data), "gain": 2.0}
    reasons = rerun(registry, config)
    assert set(reasons) == machine_units("alpha") | machine_units("beta")
    assert reasons["shared/extract/alpha"] == "changed: dataset"
    same_as_fresh(registry, config, tmp_path)


def test_selecting_machines_keeps_the_features_of_the_others(registry, config, data):
    rerun(registry, config)
    config["dataset"] = {"name": "toy", "root": str(data), "machines": ["beta"]}
    assert set(rerun(registry, config)) == reduction_units()  # the summaries now cover beta only


def test_frontend_params(registry, config, tmp_path):
    rerun(registry, config)
    config["frontend"] = {"name": "spectrum", "params": {"bins": 8}}
    reasons = rerun(registry, config)
    assert set(reasons) == machine_units("alpha") | machine_units("beta")
    assert reasons["shared/extract/beta"] == "changed: frontend"
    same_as_fresh(registry, config, tmp_path)


def test_backend_params(registry, config, tmp_path):
    rerun(registry, config)
    config["backends"] = [{"name": "distance", "params": {"scale": 3.0}}]
    toy_plugin.CALLS.clear()
    reasons = rerun(registry, config)
    assert "extract" not in toy_plugin.CALLS
    assert set(reasons) == {f"seed{s}/{k}/{m}/distance" for s in SEEDS for k in ("score", "evaluate")
                            for m in ("alpha", "beta")} | reduction_units()
    assert reasons["seed1/score/beta/distance"] == "changed: backend"
    same_as_fresh(registry, config, tmp_path)


def trained_units(seeds=SEEDS, machines=("alpha", "beta")) -> set[str]:
    units = {f"seed{s}/train/shared" for s in seeds}
    for m in machines:
        units |= machine_units(m, extract=("seed{s}/extract/{m}",), seeds=seeds)
    return units


@pytest.mark.parametrize("change", ["loss", "augmentations", "training"])
def test_loss_augmentation_and_training_params(registry, data, tmp_path, change):
    frontend = {"name": "centred", "params": {"noise": 0.2}, "loss": {"name": "softmax", "params": {"scale": 1.0}},
                "augmentations": [{"name": "toy_gain", "params": {"low": 0.5}}], "training": {"epochs": 2}}
    config = toy_plugin.pipeline(data, tmp_path / "out", frontend=frontend)
    rerun(registry, config)
    if change == "loss":
        frontend["loss"]["params"]["scale"] = 2.0
    elif change == "augmentations":
        frontend["augmentations"][0]["params"]["low"] = 0.9
    else:
        frontend["training"]["lr"] = 0.01
    reasons = rerun(registry, config)
    assert set(reasons) == trained_units()
    assert reasons["seed1/train/shared"] == f"changed: {change}"
    assert reasons["seed1/extract/alpha"] == "changed: upstream seed1/train/shared"
    same_as_fresh(registry, config, tmp_path)


def test_epochs_lowered_retrains_and_raised_continues(registry, data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="asdcore")
    frontend = {"name": "tiny", "loss": {"name": "softmax"}, "training": {"epochs": 3, "batch_size": 8, "lr": 0.05,
                                                                     "keep_checkpoints": True}}
    config = toy_plugin.pipeline(data, tmp_path / "out", frontend=frontend, seeds=[0])
    rerun(registry, config)
    log = tmp_path / "out/toyrun/toy/seed0/frontend/shared/train_log.csv"
    assert len(log.read_text().splitlines()) == 4

    frontend["training"]["epochs"] = 2
    caplog.clear()
    reasons = rerun(registry, config)
    assert reasons["seed0/train/shared"] == "changed: epochs"
    assert set(reasons) == trained_units(seeds=(0,))
    assert "past the 2 configured; starting afresh" in caplog.text
    assert len(log.read_text().splitlines()) == 3
    same_as_fresh(registry, config, tmp_path / "two")

    frontend["training"]["epochs"] = 4
    caplog.clear()
    assert rerun(registry, config)["seed0/train/shared"] == "changed: epochs"
    assert "resuming training after epoch 2" in caplog.text
    assert len(log.read_text().splitlines()) == 5
    same_as_fresh(registry, config, tmp_path / "four")


def test_another_dataset_root_retrains_from_scratch(registry, data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="asdcore")
    other = toy_plugin.make_data(tmp_path / "other", seed=5)
    frontend = {"name": "tiny", "loss": {"name": "softmax"},
                "training": {"epochs": 2, "batch_size": 8, "keep_checkpoints": True}}
    config = toy_plugin.pipeline(data, tmp_path / "out", frontend=frontend, seeds=[0])
    rerun(registry, config)
    config["dataset"] = {"name": "toy", "root": str(other)}
    caplog.clear()
    reasons = rerun(registry, config)
    assert reasons["seed0/train/shared"].startswith("changed: dataset, data alpha/train, data beta/train")
    assert "resuming" not in caplog.text and "belongs to other training inputs" in caplog.text
    same_as_fresh(registry, config, tmp_path)


class OtherBackends:
    """The toy backend, registered by a distribution of its own (to change that version alone)."""

    @staticmethod
    @asdcore.hookimpl
    def register_backends(register):
        register("other_distance", toy_plugin.DistanceBackend)


def registry_with(backend_version: str) -> Registry:
    registry = Registry(entry_points=False)
    registry.add_plugin(toy_plugin, name="toy_plugin", distribution="toy-dist", version="9.9")
    registry.add_plugin(OtherBackends, name="other", distribution="other-dist", version=backend_version)
    return registry


def test_component_distribution_version(data, tmp_path):
    config = toy_plugin.pipeline(data, tmp_path / "out", backends=[{"name": "other_distance"}])
    with use_registry(registry_with("1.0")) as registry:
        rerun(registry, config)
        assert rerun(registry, config) == {}
    with use_registry(registry_with("1.1")) as registry:
        reasons = rerun(registry, config)
    assert set(reasons) == {f"seed{s}/{k}/{m}/other_distance" for s in SEEDS for k in ("score", "evaluate")
                            for m in ("alpha", "beta")} | reduction_units()
    assert reasons["seed0/score/alpha/other_distance"] == "changed: versions"
    with use_registry(registry_with("2.0")) as registry:
        assert set(rerun(registry, {**config, "frontend": {"name": "spectrum", "params": {}}})) == set(reasons)


def test_changed_or_missing_outputs_are_redone(registry, config, tmp_path):
    root = make(registry, config).run()
    (root / "seed1/beta/distance/anomaly_score_beta_section_00_test.csv").unlink()
    reasons = rerun(registry, config)
    assert reasons["seed1/score/beta/distance"] == "outputs missing"
    assert reasons["seed1/evaluate/beta/distance"] == "upstream seed1/score/beta/distance runs"
    assert set(reasons) == {"seed1/score/beta/distance", "seed1/evaluate/beta/distance", "seed1/summary", "table"}
    features = root / "shared/alpha/features.h5"
    features.write_bytes(features.read_bytes())
    assert rerun(registry, config)["shared/extract/alpha"].startswith("outputs changed since its record")
    same_as_fresh(registry, config, tmp_path)


def test_dry_run_explains_and_changes_nothing(registry, config):
    pipeline = make(registry, config)
    lines = pipeline.explain()
    assert lines[0].split() == ["run", "shared/extract/alpha", "not", "done", "yet"]
    assert not (Path(config["output"]) / "toyrun").exists()
    pipeline.run()
    config["backends"] = [{"name": "distance", "params": {"scale": 2.0}}]
    lines = make(registry, config).explain()
    assert [line.split()[:2] for line in lines[:3]] == [["skip", "shared/extract/alpha"],
                                                        ["skip", "shared/extract/beta"],
                                                        ["run", "seed0/score/alpha/distance"]]
    assert lines[2].endswith("changed: backend") and lines[-1].split()[:2] == ["run", "table"]
    assert make(registry, config).explain(stages=("train", "extract"))[0].endswith("up to date")
    assert all(line.split()[0] == "run" for line in make(registry, config).explain(force=True))


def test_score_files_match_the_test_clips_after_every_change(registry, config, data):
    """The scenario of a score file with 16 rows for 17 clips cannot happen: every rerun rescores."""
    rerun(registry, config)
    for i in range(3):
        shutil.copy(data / "alpha" / "test" / "target_normal_000.wav", data / "alpha" / "test" / f"target_normal_1{i}.wav")
        rerun(registry, config)
        rows = (Path(config["output"]) / "toyrun/toy/seed1/alpha/distance/anomaly_score_alpha_section_00_test.csv")
        assert len(rows.read_text().splitlines()) == 9 + i
        assert np.isfinite([float(r.split(",")[1]) for r in rows.read_text().splitlines()]).all()
