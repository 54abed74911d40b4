"""The planner on toy pipelines: units, their dependencies, outputs and keys."""
import pickle

import toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore import Outcome
from asdcore.local_executor import LocalExecutor


def plan_of(registry, config):
    return Pipeline.create(load_config(config, registry=registry), registry, progress=False).plan()


def test_untrained_frontend_extracts_once_for_every_seed(registry, toy_root, tmp_path):
    plan = plan_of(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0, 1]))
    ids = [u.id for u in plan]
    assert ids == [
        "shared/extract/alpha", "shared/extract/beta",
        "seed0/score/alpha/distance", "seed0/evaluate/alpha/distance",
        "seed0/score/beta/distance", "seed0/evaluate/beta/distance", "seed0/summary",
        "seed1/score/alpha/distance", "seed1/evaluate/alpha/distance",
        "seed1/score/beta/distance", "seed1/evaluate/beta/distance", "seed1/summary",
        "table",
    ]
    assert plan["seed1/score/beta/distance"].deps == ("shared/extract/beta",)
    assert plan["seed0/summary"].deps == ("seed0/evaluate/alpha/distance", "seed0/evaluate/beta/distance")
    assert plan["table"].deps == ("seed0/summary", "seed1/summary")
    extract = plan["shared/extract/alpha"]
    assert extract.directory == tmp_path / "toyrun" / "toy" / "shared" / "alpha" and extract.outputs == ("features.h5",)
    assert set(extract.inputs) == {"frontend", "precision", "views", "clip samples", "dataset", "data alpha/train",
                                   "data alpha/test",
                                   "metadata alpha", "versions"}
    assert extract.inputs["versions"] == {"toy-dist": "9.9", "asdcore": registry.versions()["asdcore"]}
    # the seed is no input of untrained features; the score units of two seeds differ only by their folder
    assert plan["seed0/score/alpha/distance"].key == plan["seed1/score/alpha/distance"].key


def test_trained_frontend_units_per_seed_and_scope(registry, toy_root, tmp_path):
    shared = plan_of(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0, 1],
                                                   frontend={"name": "centred", "training": {"epochs": 2}}))
    assert [u.id for u in shared][:3] == ["seed0/train/shared", "seed0/extract/alpha", "seed0/extract/beta"]
    assert shared["seed0/extract/beta"].deps == ("seed0/train/shared",)
    assert shared["seed0/train/shared"].inputs["machines"] == ["alpha", "beta"]
    assert shared["seed0/train/shared"].key != shared["seed1/train/shared"].key
    assert shared["seed0/train/shared"].scratch == ("work",)
    per_machine = plan_of(registry, toy_plugin.pipeline(
        toy_root, tmp_path, seeds=[0], frontend={"name": "centred", "training": {"epochs": 1, "scope": "per_machine"}}))
    assert per_machine["seed0/extract/beta"].deps == ("seed0/train/beta",)
    assert set(per_machine["seed0/train/beta"].inputs) >= {"data beta/train", "class labels", "epochs", "seed"}
    assert "data alpha/train" not in per_machine["seed0/train/beta"].inputs


def test_plots_are_a_reduction_when_enabled(registry, toy_root, tmp_path):
    plan = plan_of(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0], evaluation={"plots": True}))
    assert plan["seed0/plots"].deps == plan["seed0/summary"].deps and plan["seed0/plots"].outputs == ("plots",)
    assert "seed0/plots" not in {u.id for u in plan_of(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0]))}


def test_keys_are_stable_and_a_change_moves_only_downstream_keys(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0], backends=[{"name": "distance"}, {"id": "far",
                                                                                                   "name": "distance"}])
    first = {u.id: u.key for u in plan_of(registry, config)}
    assert first == {u.id: u.key for u in plan_of(registry, config)}
    config["backends"][1]["params"] = {"scale": 2.0}
    second = {u.id: u.key for u in plan_of(registry, config)}
    assert {uid for uid in first if first[uid] != second[uid]} == {
        "seed0/score/alpha/far", "seed0/evaluate/alpha/far", "seed0/score/beta/far", "seed0/evaluate/beta/far",
        "seed0/summary", "table"}


def test_units_are_plain_data_and_the_local_executor_keeps_order(registry, toy_root, tmp_path):
    plan = plan_of(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0]))
    unit = pickle.loads(pickle.dumps(plan["seed0/evaluate/beta/distance"]))
    assert unit == plan["seed0/evaluate/beta/distance"] and unit.config["dataset"]["root"] == str(toy_root)
    seen = []
    outcomes = LocalExecutor().run(list(plan), lambda u: seen.append(u.id) or Outcome("skipped"))
    assert seen == [u.id for u in plan] and set(outcomes) == set(seen)


def test_loader_workers_are_no_input_of_training(registry, toy_root, tmp_path):
    frontend = {"name": "centred", "training": {"epochs": 1, "num_workers": 0}}
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0], frontend=frontend)
    before = {u.id: u.key for u in plan_of(registry, config)}
    frontend["training"]["num_workers"] = 2
    assert {u.id: u.key for u in plan_of(registry, config)} == before
    frontend["training"]["epochs"] = 2
    after = plan_of(registry, config)
    assert after["seed0/train/shared"].key != before["seed0/train/shared"]
    assert after["seed0/train/shared"].checkpoint_identity == plan_of(
        registry, {**config, "frontend": {**frontend, "training": {"epochs": 5}}})["seed0/train/shared"].checkpoint_identity


def test_precisions_and_devices_are_inputs_and_the_audio_cache_is_not(registry, toy_root, tmp_path):
    frontend = {"name": "centred", "training": {"epochs": 1}}
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0], frontend=frontend)
    before = {u.id: u.key for u in plan_of(registry, config)}
    assert {u.id: u.key for u in plan_of(registry, {**config, "audio_cache": False})} == before
    moved = {u.id: u.key for u in plan_of(registry, {**config, "extraction": {"precision": "bf16-mixed"}})}
    assert moved["seed0/train/shared"] == before["seed0/train/shared"]
    assert moved["seed0/extract/alpha"] != before["seed0/extract/alpha"]
    for key, value in (("precision", "bf16-mixed"), ("devices", 2), ("compile", True)):
        changed = plan_of(registry, {**config, "frontend": {**frontend, "training": {"epochs": 1, key: value}}})
        assert changed["seed0/train/shared"].key != before["seed0/train/shared"], key
