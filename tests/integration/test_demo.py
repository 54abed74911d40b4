"""End-to-end runs of the installed distributions through the ``asdcore`` command line."""
import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--set", "dataset.n_train_source=60", "--set", "dataset.n_train_target=4", "--set", "dataset.n_test=40",
         "--set", "dataset.clip_seconds=1.0", "--no-progress"]


def asdcore(*args, **kwargs):
    return subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=REPO, **kwargs)


def demo_args(tmp_path, name):
    return ["run", "recipes/demo.yaml", "--set", f"dataset.root={tmp_path / 'data' / name}",
            "--set", f"output={tmp_path / name}", *SMALL]


def official(table_csv: Path) -> tuple[float, float]:
    for row in csv.DictReader(table_csv.open()):
        if row["machine"] == "all" and row["metric"] == "official":
            return float(row["mean"]), float(row["std"])
    raise AssertionError("no official row")


def test_plugins_are_installed_and_listed():
    result = asdcore("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "asd-datasets 0.1.0 (asd_datasets)" in lines
    for line in ("  datasets: dcase, own, synth",
                 "  scorers: dcase2020, dcase2021, dcase2022, dcase2023, dcase2024, dcase2025, dcase2026",
                 "  frontends: ae, dcase_baseline_ae, multibranch_cnn, raw_spec",
                 "  backends: kmeans, knn, knn_rescale, mahalanobis, memory_bank, passthrough"):
        assert line in lines


def test_demo_end_to_end(tmp_path):
    result = asdcore(*demo_args(tmp_path, "a"))
    assert result.returncode == 0, result.stderr
    assert "Official score (dev), % — mean ± std over 2 run(s)" in result.stdout
    for backend in ("knn", "kmeans", "knn_smote", "knn_rescale"):  # the four default backends, one score stage
        assert f"| {backend} |" in result.stdout
    root = tmp_path / "a" / "demo" / "synth"
    mean, std = official(root / "table.csv")
    assert 0.55 < mean < 0.97 and std == 0.0  # raw_spec + kNN is deterministic across seeds
    scores = root / "seed0" / "fan" / "knn" / "anomaly_score_fan_section_00_test.csv"
    rows = list(csv.reader(scores.open()))
    assert len(rows) == 40 and rows[0][0].startswith("section_00_source_test_")
    plots = sorted(p.name for p in (root / "seed0" / "plots").glob("*.png"))
    assert "roc_fan_knn.png" in plots and "hist_valve_knn.png" in plots and "embedding_pump.png" in plots
    assert (root / "seed0" / "fan" / "knn" / "decision_result_fan_section_00_test.csv").exists()
    for backend in ("kmeans", "knn_smote", "knn_rescale"):
        assert (root / "seed0" / "pump" / backend / "anomaly_score_pump_section_00_test.csv").exists()
    again = asdcore(*demo_args(tmp_path, "a"))
    assert again.returncode == 0 and "extracting" not in again.stderr


def test_killed_demo_resumes_to_identical_results(tmp_path):
    no_plots = ["--set", "evaluation.plots=false"]
    reference = asdcore(*demo_args(tmp_path, "ref"), *no_plots)
    assert reference.returncode == 0, reference.stderr
    args = demo_args(tmp_path, "killed") + no_plots
    proc = subprocess.Popen([sys.executable, "-c", "from asdcore.cli import main; main()", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = tmp_path / "data" / "killed"
    deadline = time.time() + 60
    while len(list(data.rglob("*.wav"))) < 100 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "demo" / "synth" / "table.csv").exists()
    resumed = asdcore(*args)
    assert resumed.returncode == 0, resumed.stderr
    ref_root, root = tmp_path / "ref" / "demo" / "synth", tmp_path / "killed" / "demo" / "synth"
    for name in ("seed0/summary.csv", "seed1/summary.csv", "table.csv"):
        assert (root / name).read_text() == (ref_root / name).read_text()
    assert not list(data.rglob(".*.part")) and not list(root.rglob(".tmp-*"))


def test_bad_inputs_give_clear_errors(tmp_path):
    missing = asdcore("run", "recipes/demo.yaml", "--set", "dataset.generate=false",
                      "--set", f"dataset.root={tmp_path / 'none'}", "--set", f"output={tmp_path}")
    assert missing.returncode == 3 and f"dataset root '{tmp_path / 'none'}' does not exist" in missing.stderr
    typo = asdcore("run", "recipes/demo.yaml", "--set", "frontend.name=raw_specc")
    assert typo.returncode == 2
    assert "frontend.name: unknown frontend 'raw_specc'; registered frontends: ae, " in typo.stderr
    assert "multibranch_cnn, " in typo.stderr and "raw_spec. Did you mean 'raw_spec'?" in typo.stderr


def test_evaluate_stage_equals_submission_evaluation(tmp_path):
    args = demo_args(tmp_path, "sub") + ["--set", "dataset.machines=[fan,gearbox,valve]", "--seeds", "0",
                                         "--set", "evaluation.plots=false"]
    assert asdcore(*args).returncode == 0
    seed0 = tmp_path / "sub" / "demo" / "synth" / "seed0"
    submission = tmp_path / "submission"
    submission.mkdir()
    for machine in ("fan", "gearbox", "valve"):
        for path in (seed0 / machine / "knn").glob("*_section_00_test.csv"):
            shutil.copy(path, submission / path.name)
    result = asdcore("evaluate", "--year", "2023", "--scores", str(submission), "--json", str(tmp_path / "r.json"),
                     "--allow-partial")  # the synthetic demo has 3 of the 7 DCASE 2023 dev machine types
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    summary = {(r["machine"], r["section"], r["metric"]): float(r["value"])
               for r in csv.DictReader((seed0 / "summary.csv").open()) if r["backend"] == "knn"}
    assert report["official_score"] == summary[("all", "dev", "official")]
    assert report["subsets"] == {"dev": summary[("all", "dev", "official")]}
    assert report["ci95"] == summary[("all", "dev", "ci95")]
    for machine in ("fan", "gearbox", "valve"):
        assert report["machines"][machine]["official"] == summary[(machine, "dev", "official")]
        for metric, value in report["machines"][machine]["sections"]["00"].items():
            assert value == summary[(machine, "00", metric)], (machine, metric)


def test_every_recipe_validates():
    from asdcore.config import load_config
    from asdcore.registry import Registry

    registry = Registry()
    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert len(recipes) >= 2
    for recipe in recipes:
        load_config(recipe, registry=registry)
