"""MLflow tracking: one MLflow run per seed with the config, the training log, the official scores and the
report; reruns replace it, and tracking settings are no input of any unit."""
import csv
import sys
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

import toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.errors import ConfigError, UnitsFailedError

EPOCHS = 3
SEEDS = ("toyrun/toy/seed0", "toyrun/toy/seed1")


@pytest.fixture(autouse=True)
def quick_report_and_clean_environment(monkeypatch):
    """Without matplotlib the report draws no figures (t-SNE maps take seconds); tracking sets
    MLFLOW_ALLOW_FILE_STORE for file stores, which monkeypatch takes away after each test."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)


def config(toy_root, tmp_path, store="mlruns", epochs=EPOCHS):
    return toy_plugin.pipeline(toy_root, tmp_path / "results",
                               frontend={"name": "centred", "params": {"noise": 0.5}, "training": {"epochs": epochs}},
                               tracking={"mlflow": {"uri": (tmp_path / store).as_uri()}})


def pipeline(registry, config):
    return Pipeline.create(load_config(config, registry=registry), registry, progress=False)


def seed_runs(tmp_path, store="mlruns"):
    """The client of the store and its active runs by name (each name once)."""
    client = MlflowClient((tmp_path / store).as_uri())
    runs = client.search_runs([client.get_experiment_by_name("toyrun").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert len(by_name) == len(runs)
    return client, by_name


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_each_seed_is_one_run_with_config_training_log_scores_and_report(registry, toy_root, tmp_path):
    root = pipeline(registry, config(toy_root, tmp_path)).run()
    client, runs = seed_runs(tmp_path)
    assert sorted(runs) == list(SEEDS)
    for seed, name in enumerate(SEEDS):
        run = runs[name]
        run_id, params = run.info.run_id, run.data.params
        assert run.info.status == "FINISHED"
        assert params["seed"] == str(seed) and params["dataset.name"] == "toy"
        assert params["frontend.name"] == "centred" and params["frontend.params.noise"] == "0.5"
        assert params["frontend.training.epochs"] == str(EPOCHS) and params["backends.0.name"] == "distance"
        assert not [k for k in params if k.split(".")[0] in ("output", "seeds", "executor", "tracking")]

        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "train/loss"))
        log = read_csv(root / f"seed{seed}" / "frontend" / "shared" / "train_log.csv")
        assert len(history) == EPOCHS
        assert history == [(int(row["epoch"]), float(row["loss"])) for row in log]

        official = {f"official/{r['backend']}/{r['section']}/{r['machine']}": float(r["value"])
                    for r in read_csv(root / f"seed{seed}" / "summary.csv") if r["metric"] == "official"}
        assert set(official) == {f"official/distance/dev/{m}" for m in ("all", "alpha", "beta")}
        assert {k: v for k, v in run.data.metrics.items() if k.startswith("official/")} == official

        assert {a.path for a in client.list_artifacts(run_id)} >= {"table.md", "report.html"}
        table = client.download_artifacts(run_id, "table.md", str(tmp_path / f"download{seed}"))
        assert Path(table).read_text() == (root / "table.md").read_text()


def test_a_rerun_writes_the_seed_runs_afresh_without_repeating_a_step(registry, toy_root, tmp_path):
    pipeline(registry, config(toy_root, tmp_path)).run()
    _, first = seed_runs(tmp_path)
    pipeline(registry, config(toy_root, tmp_path)).run()  # nothing to redo: nothing logged
    _, again = seed_runs(tmp_path)
    assert {n: r.info.run_id for n, r in again.items()} == {n: r.info.run_id for n, r in first.items()}

    pipeline(registry, config(toy_root, tmp_path, epochs=EPOCHS + 1)).run()  # retrains: every unit redone
    client, redone = seed_runs(tmp_path)
    assert sorted(redone) == list(SEEDS)
    assert not {r.info.run_id for r in redone.values()} & {r.info.run_id for r in first.values()}
    for run in redone.values():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == list(range(EPOCHS + 1))
        assert len(client.get_metric_history(run.info.run_id, "official/distance/dev/all")) == 1
        assert run.data.params["frontend.training.epochs"] == str(EPOCHS + 1)
    experiment = client.get_experiment_by_name("toyrun").experiment_id
    deleted = client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)
    assert {r.info.run_id for r in deleted} == {r.info.run_id for r in first.values()}


def test_tracking_settings_redo_no_unit_and_removed_summaries_log_finished_results(registry, toy_root, tmp_path):
    root = pipeline(registry, config(toy_root, tmp_path)).run()
    toy_plugin.CALLS.clear()
    elsewhere = config(toy_root, tmp_path, store="elsewhere")
    untracked = {k: v for k, v in elsewhere.items() if k != "tracking"}
    for changed in (elsewhere, untracked):
        assert set(pipeline(registry, changed).plan().reasons().values()) == {None}
    pipeline(registry, elsewhere).run()
    assert toy_plugin.CALLS == {} and not (tmp_path / "elsewhere").exists()

    for summary in root.glob("seed*/summary.csv"):  # what docs/tracking.md says to log finished results
        summary.unlink()
    pipeline(registry, elsewhere).run(("evaluate",))
    assert toy_plugin.CALLS == {} and sorted(seed_runs(tmp_path, "elsewhere")[1]) == list(SEEDS)


def test_a_store_that_refuses_fails_the_summaries_and_a_rerun_logs_without_retraining(registry, toy_root, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # MLflow 3 then refuses its file store
    with pytest.raises(UnitsFailedError) as failed:
        pipeline(registry, config(toy_root, tmp_path)).run()
    assert "seed0/summary" in str(failed.value) and "seed1/summary" in str(failed.value)
    assert f"tracking.mlflow.uri {(tmp_path / 'mlruns').as_uri()!r}: logging seed 0 failed" in str(failed.value)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    toy_plugin.CALLS.clear()
    pipeline(registry, config(toy_root, tmp_path)).run()
    assert "fit" not in toy_plugin.CALLS and sorted(seed_runs(tmp_path)[1]) == list(SEEDS)


def test_tracking_without_mlflow_installed_is_a_config_error(registry, toy_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"tracking\.mlflow: the mlflow package is not installed; "
                                          r"pip install 'asdcore\[mlflow\]'"):
        load_config(config(toy_root, tmp_path), registry=registry)
    untracked = {k: v for k, v in config(toy_root, tmp_path).items() if k != "tracking"}
    assert load_config(untracked, registry=registry).config.tracking.mlflow is None
