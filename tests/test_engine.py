import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

import toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.errors import ArtifactError, AsdcoreError, ConfigError, UnitsFailedError


FITS = 6  # one fit for the test scores + 5 cross-fitted folds for the train scores


def run(registry, config, stages=("train", "extract", "score", "evaluate"), force=False):
    pipeline = Pipeline.create(load_config(config, registry=registry), registry, progress=False)
    return pipeline.run(stages, force=force)


def read(path: Path) -> str:
    return Path(path).read_text()


def test_artifacts_and_formats(registry, toy_root, tmp_path):
    root = run(registry, toy_plugin.pipeline(toy_root, tmp_path))
    assert root == tmp_path / "toyrun" / "toy"
    assert "name: toyrun" in read(root / "config.yaml")
    assert '"toy-dist": "9.9"' in read(root / "versions.json")
    for seed in (0, 1):
        seed_dir = root / f"seed{seed}"
        with h5py.File(root / "shared" / "alpha" / "features.h5") as f:
            assert set(f) == {"train", "test"}
            assert f["train/embedding"].dtype == np.float32 and f["train/embedding"].shape == (15, 16)
            assert sorted(f["test"]) == ["attribute", "domain", "embedding", "frontend_score", "is_anomaly",
                                         "path", "section"]
            assert f["test/path"].asstr()[0] == "alpha/test/source_anomaly_000.wav"
        rows = list(csv.reader(read(seed_dir / "alpha" / "distance" / "anomaly_score_alpha_section_00_test.csv")
                               .splitlines()))
        assert len(rows) == 8 and rows[0][0] == "source_anomaly_000.wav"
        assert all(len(r) == 2 and float(r[1]) >= 0 for r in rows)
        evaluation = read(seed_dir / "alpha" / "distance" / "evaluation.csv").splitlines()
        assert evaluation[0] == "section,metric,value"
        assert {line.split(",")[1] for line in evaluation[1:]} >= {"s_auc", "t_auc", "smix_auc", "mix_pauc", "official"}
        summary = read(seed_dir / "summary.csv").splitlines()
        assert summary[0] == "backend,machine,section,metric,value"
        assert summary[1].startswith("distance,all,dev,official,")
    table = read(root / "table.csv").splitlines()
    assert table[0] == "backend,machine,section,metric,mean,std,n"
    official = [r for r in table if r.startswith("distance,all,dev,official,")][0].split(",")
    assert 0.5 < float(official[4]) <= 1.0 and float(official[5]) == 0.0 and official[6] == "2"
    assert "| distance |" in read(root / "table.md") and "alpha" in read(root / "table.md")
    assert not list(root.rglob(".tmp-*"))


def test_domains_and_labels_are_stored(registry, toy_root, tmp_path):
    root = run(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0]))
    with h5py.File(root / "shared" / "beta" / "features.h5") as f:
        paths = f["test/path"].asstr()[()]
        domain, anomaly = f["test/domain"][()], f["test/is_anomaly"][()]
    for p, d, a in zip(paths, domain, anomaly):
        assert d == ("target_" in p) and a == ("_anomaly_" in p)


def test_rerun_skips_finished_units_and_redoes_changed_ones(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path)
    root = run(registry, config)
    first = read(root / "seed0" / "summary.csv")
    assert toy_plugin.CALLS["extract"] > 0 and toy_plugin.CALLS["fit_backend"] == 4 * FITS
    toy_plugin.CALLS.clear()
    run(registry, config)
    assert toy_plugin.CALLS == {}
    assert read(root / "seed0" / "summary.csv") == first

    config["backends"] = [{"name": "distance", "params": {"scale": 2.0}}]
    run(registry, config)
    assert toy_plugin.CALLS == {"fit_backend": 4 * FITS}
    assert read(root / "seed0" / "summary.csv") == first  # a monotone rescaling keeps every AUC

    toy_plugin.CALLS.clear()
    run(registry, config, force=True)
    assert toy_plugin.CALLS["fit_backend"] == 4 * FITS and toy_plugin.CALLS["extract"] > 0


def test_seed_independent_features_are_computed_once(registry, toy_root, tmp_path):
    root = run(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0]))
    calls = toy_plugin.CALLS["extract"]
    toy_plugin.CALLS.clear()
    run(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0, 1, 2]))
    assert "extract" not in toy_plugin.CALLS and calls > 0
    assert not list(root.glob("seed*/*/features.h5"))  # one set in shared/, no copies per seed
    assert (root / "seed2" / "alpha" / "distance" / "anomaly_score_alpha_section_00_test.csv").read_text() == \
        (root / "seed0" / "alpha" / "distance" / "anomaly_score_alpha_section_00_test.csv").read_text()


def test_trainable_frontend(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0, 1],
                                 frontend={"name": "centred", "params": {"noise": 0.1}, "training": {"epochs": 3}})
    root = run(registry, config)
    model = root / "seed0" / "frontend" / "shared"
    assert (model / "model" / "weights.pt").exists()
    log = read(model / "train_log.csv").splitlines()
    assert log[0] == "epoch,loss" and len(log) == 4
    assert "epochs: 3" in read(model / "config.yaml")
    assert toy_plugin.CALLS["fit"] == 2
    # seeds differ because training is seeded by the run seed
    assert read(root / "seed0" / "alpha" / "distance" / "anomaly_score_alpha_section_00_test.csv") != \
        read(root / "seed1" / "alpha" / "distance" / "anomaly_score_alpha_section_00_test.csv")

    toy_plugin.CALLS.clear()
    run(registry, config)
    assert toy_plugin.CALLS == {}
    config["frontend"]["training"] = {"epochs": 2}
    run(registry, config)
    assert toy_plugin.CALLS["fit"] == 2 and toy_plugin.CALLS["fit_backend"] == 4 * FITS
    assert len(read(model / "train_log.csv").splitlines()) == 3


def test_per_machine_training_scope(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0],
                                 frontend={"name": "centred", "training": {"epochs": 1, "scope": "per_machine"}})
    root = run(registry, config)
    assert (root / "seed0" / "frontend" / "alpha" / "model" / "weights.pt").exists()
    assert (root / "seed0" / "frontend" / "beta" / "model" / "weights.pt").exists()
    assert toy_plugin.CALLS["fit"] == 2


def test_runs_are_deterministic(registry, toy_root, tmp_path):
    frontend = {"name": "centred", "params": {"noise": 0.5}, "training": {"epochs": 2}}
    a = run(registry, toy_plugin.pipeline(toy_root, tmp_path / "a", frontend=frontend))
    b = run(registry, toy_plugin.pipeline(toy_root, tmp_path / "b", frontend=frontend))
    assert read(a / "table.csv") == read(b / "table.csv")
    for seed in ("seed0", "seed1"):
        assert read(a / seed / "summary.csv") == read(b / seed / "summary.csv")


def test_failure_midway_keeps_finished_work_and_rerun_matches(registry, toy_root, tmp_path):
    reference = run(registry, toy_plugin.pipeline(toy_root, tmp_path / "ref"))
    failing = toy_plugin.pipeline(toy_root, tmp_path / "run", backends=[{"name": "distance", "params": {"fail_on": "beta"}}])
    with pytest.raises(UnitsFailedError, match="RuntimeError: backend failure on beta") as failed:
        run(registry, failing)
    outcomes = failed.value.outcomes
    assert {uid for uid, o in outcomes.items() if o.status == "failed"} == {"seed0/score/beta/distance",
                                                                            "seed1/score/beta/distance"}
    assert {uid for uid, o in outcomes.items() if o.status == "blocked"} == {
        "seed0/evaluate/beta/distance", "seed1/evaluate/beta/distance", "seed0/summary", "seed1/summary", "table"}
    assert outcomes["seed1/evaluate/alpha/distance"].status == "done"  # units not depending on the failure ran
    seed0 = tmp_path / "run" / "toyrun" / "toy" / "seed0"
    assert (seed0 / "alpha" / "distance" / "evaluate.record.json").exists()
    assert not (seed0 / "beta" / "distance").exists()
    log_file = Path(outcomes["seed0/score/beta/distance"].log)
    assert "RuntimeError: backend failure on beta" in log_file.read_text() and "Traceback" in log_file.read_text()
    assert not list((tmp_path / "run").rglob(".tmp-*"))
    toy_plugin.CALLS.clear()
    fixed = toy_plugin.pipeline(toy_root, tmp_path / "run")
    root = run(registry, fixed)
    assert "extract" not in toy_plugin.CALLS  # features survived the failure
    for name in ("seed0/summary.csv", "seed1/summary.csv", "table.csv"):
        assert read(root / name) == read(reference / name)


def test_stage_verbs_need_upstream_artifacts(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0])
    with pytest.raises(ArtifactError, match="extract stage's output is missing"):
        run(registry, config, stages=("score",))
    run(registry, config, stages=("extract",))
    run(registry, config, stages=("score",))
    with pytest.raises(ArtifactError, match="score stage"):
        run(registry, {**config, "backends": [{"name": "distance", "params": {"scale": 3.0}}]}, stages=("evaluate",))
    run(registry, config, stages=("evaluate",))
    assert (tmp_path / "toyrun" / "toy" / "table.md").exists()


def test_nan_embeddings_and_scores_are_errors(registry, toy_root, tmp_path):
    with pytest.raises(AsdcoreError, match="NaN or infinite embeddings .*alpha"):
        run(registry, toy_plugin.pipeline(toy_root, tmp_path, frontend={"name": "spectrum", "params": {"nan": True}}))
    with pytest.raises(AsdcoreError, match=r"backend 'distance' on alpha \(test\): .*1 non-finite"):
        run(registry, toy_plugin.pipeline(toy_root, tmp_path, backends=[{"name": "distance", "params": {"nan": True}}]))


def test_bad_audio_names_the_file_and_keeps_finished_work(registry, toy_root, tmp_path):
    root = tmp_path / "data"
    toy_plugin.make_data(root)
    bad = root / "beta" / "train" / "source_normal_005.wav"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(UnitsFailedError, match=f"{bad}.*truncated"):
        run(registry, toy_plugin.pipeline(root, tmp_path / "out", seeds=[0]))
    assert (tmp_path / "out" / "toyrun" / "toy" / "shared" / "alpha" / "features.h5").exists()

    sf.write(bad, np.zeros(2000, dtype=np.float32), 16000)
    with pytest.raises(UnitsFailedError, match=f"{bad}: sample rate 16000 Hz, expected 8000 Hz"):
        run(registry, toy_plugin.pipeline(root, tmp_path / "out", seeds=[0]))
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(UnitsFailedError, match=f"{bad}: cannot read audio"):
        run(registry, toy_plugin.pipeline(root, tmp_path / "out", seeds=[0]))


def test_missing_dataset_root_names_the_path(registry, tmp_path):
    missing = tmp_path / "nowhere"
    from asdcore.errors import DatasetError

    with pytest.raises(DatasetError, match=str(missing)):
        run(registry, toy_plugin.pipeline(missing, tmp_path))


def test_loss_on_untrained_frontend_is_a_config_error(registry, toy_root, tmp_path):
    registry_config = toy_plugin.pipeline(toy_root, tmp_path)
    registry_config["frontend"] = {"name": "spectrum", "augmentations": []}
    run(registry, registry_config, stages=("extract",))
    from asdcore.interfaces import Loss

    class ToyLoss(Loss):
        pass

    class LossPlugin:
        @staticmethod
        @__import__("asdcore").hookimpl
        def register_losses(register):
            register("toyloss", ToyLoss)

    registry.add_plugin(LossPlugin, name="loss_plugin")
    registry_config["frontend"] = {"name": "spectrum", "loss": {"name": "toyloss"}}
    with pytest.raises(ConfigError, match="needs no training"):
        run(registry, registry_config)


def test_cuda_request_without_cuda(registry, toy_root, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA device"):
        run(registry, toy_plugin.pipeline(toy_root, tmp_path, device="cuda"))
    from asdcore.context import pick_device

    assert pick_device("auto").type == "cpu"


def test_selecting_fewer_machines_reuses_their_features(registry, toy_root, tmp_path):
    run(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0]))
    toy_plugin.CALLS.clear()
    root = run(registry, toy_plugin.pipeline(toy_root, tmp_path, seeds=[0],
                                             dataset={"name": "toy", "root": str(toy_root), "machines": ["beta"]}))
    assert toy_plugin.CALLS == {}
    assert "beta" in (root / "table.md").read_text() and "alpha" not in (root / "table.md").read_text()


def test_unlabelled_test_clips_are_scored_but_not_evaluated(registry, tmp_path):
    root = toy_plugin.make_data(tmp_path / "data")
    for path in (root / "beta" / "test").glob("*.wav"):
        domain, label, index = path.stem.split("_")
        path.rename(path.with_name(f"{domain}_unknown_{label[0]}{index}.wav"))
    out = run(registry, toy_plugin.pipeline(root, tmp_path / "out", seeds=[0]))
    beta = out / "seed0" / "beta" / "distance"
    assert len((beta / "anomaly_score_beta_section_00_test.csv").read_text().splitlines()) == 8
    assert (beta / "decision_result_beta_section_00_test.csv").exists()
    assert not (beta / "evaluation.csv").exists()
    summary = read(out / "seed0" / "summary.csv")
    assert "distance,alpha,00,s_auc" in summary and ",beta," not in summary


def test_force_retrains_from_scratch(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0], frontend={"name": "centred", "training": {"epochs": 1}})
    root = run(registry, config)
    stale = root / "seed0" / "frontend" / "shared" / "work" / "checkpoint.pt"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text("a checkpoint from an earlier training")
    toy_plugin.CALLS.clear()
    run(registry, config, force=True)
    assert toy_plugin.CALLS["fit"] == 1 and not stale.exists()


def test_fingerprints_count_environment_variables_by_value(monkeypatch):
    from asdcore.store import fingerprint

    monkeypatch.setenv("ASDCORE_TEST_CHECKPOINT", "/models/a.pt")
    first = fingerprint({"checkpoint": "$ASDCORE_TEST_CHECKPOINT", "layers": ["${ASDCORE_TEST_CHECKPOINT}"]})
    assert first == fingerprint({"checkpoint": "/models/a.pt", "layers": ["/models/a.pt"]})
    monkeypatch.setenv("ASDCORE_TEST_CHECKPOINT", "/models/b.pt")
    assert fingerprint({"checkpoint": "$ASDCORE_TEST_CHECKPOINT", "layers": ["${ASDCORE_TEST_CHECKPOINT}"]}) != first


def test_a_machine_type_with_only_normal_test_clips(registry, tmp_path, caplog):
    root = toy_plugin.make_data(tmp_path / "data")
    for path in (root / "beta" / "test").glob("*_anomaly_*.wav"):
        path.unlink()
    caplog.set_level("WARNING", logger="asdcore")
    out = run(registry, toy_plugin.pipeline(root, tmp_path / "out", seeds=[0]))
    alone = run(registry, toy_plugin.pipeline(root, tmp_path / "alone", seeds=[0],
                                              dataset={"name": "toy", "root": str(root), "machines": ["alpha"]}))
    assert "beta" in caplog.text and "incomplete" in caplog.text
    rows = list(csv.DictReader((out / "seed0" / "summary.csv").open()))
    values = {(r["machine"], r["metric"]): float(r["value"]) for r in rows}
    assert np.isnan(values["beta", "official"]) and np.isnan(values["beta", "s_auc"])
    assert values["all", "complete"] == 0.0
    alone_rows = {(r["machine"], r["metric"]): float(r["value"])
                  for r in csv.DictReader((alone / "seed0" / "summary.csv").open())}
    assert values["all", "official"] == alone_rows["all", "official"] == values["alpha", "official"]
    assert (out / "seed0" / "beta" / "distance" / "evaluation.csv").exists()
    assert "| distance | " in read(out / "table.md") and " *" in read(out / "table.md")
    assert "incomplete" in read(out / "table.md") and "incomplete" not in read(alone / "table.md")
