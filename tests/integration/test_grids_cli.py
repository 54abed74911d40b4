"""The shipped grid files through the ``asdcore`` command line."""
import csv
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def asdcore(*args):
    return subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=REPO)


def test_the_demo_grid_runs_and_prints_the_overview(tmp_path):
    small = ["--set", f"dataset.root={tmp_path / 'data'}", "--set", f"output={tmp_path / 'out'}",
             "--set", "dataset.n_train_source=20", "--set", "dataset.n_test=8", "--set", "dataset.machines=[fan,pump]",
             "--set", "frontend.training.epochs=1", "--no-progress"]
    result = asdcore("grid", "recipes/grids/demo.yaml", *small)
    assert result.returncode == 0, result.stderr
    rows = {f"{r['pipeline']} / {r['backend']}" for r in csv.DictReader((tmp_path / "out/grids/demo/overview.csv").open())}
    assert rows == {"raw_spec / knn", "raw_spec / kmeans", "raw_spec / knn_smote", "raw_spec / knn_rescale",
                    "dis_spec_scac_trainable / knn", "dis_spec_scac_trainable / kmeans",
                    "dis_spec_scac_trainable / knn_smote", "dis_spec_scac_trainable / knn_rescale", "ae / passthrough"}
    assert "| dis_spec_scac_trainable / knn_smote | " in result.stdout and "over 2 seed(s)" in result.stdout
    assert "units executed" in result.stderr


def test_the_paper_grid_validates_without_its_data(tmp_path):
    result = asdcore("grid", "recipes/grids/paper_fig2.yaml", "--dry-run", "--set", f"dataset.root={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-6] == "8055 units: 8055 to run, 0 up to date"  # 13 recipes × 5 years × 4 seeds
    for year in range(2020, 2025):
        assert any(line.startswith(f"data missing: no formatted DCASE {year} data") for line in lines[-5:])
    assert any(line.startswith("run   dis_beats_scac_trainable/dcase2023/seed3/train/shared ") for line in lines)
    assert any(line.startswith("run   ae/dcase2021/seed0/score/ToyCar/passthrough ") for line in lines)
    assert sum(" raw_spec/dcase2022/shared/extract/" in line for line in lines) == 7  # DCASE 2022: 7 machine types
