"""DCASE 2026 end to end on a synthetic two-channel tree: synth -> format -> labels -> the raw_spec 2026
recipe (near, far and residual views, channel fusion) and raw_spec on the far channel alone, each ending
with the official 2026 score table."""
import csv
import json
from pathlib import Path

import h5py
import pytest

from asdcore.testing import run_cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
MACHINES = ["ToyCarEmu", "ToyDrone"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcase2026")
    for command in (["synth", "--year", "2026", "--machines", ",".join(MACHINES), "--n-train", "12", "--n-test", "4",
                     "--clip-seconds", "0.4"],
                    ["format", "--year", "2026"], ["labels", "--year", "2026"]):
        result = run_cli("data", *command, "--root", root)
        assert result.exit_code == 0, result.output
    return root


def run(recipe: str, root: Path, output: Path, *overrides: str):
    sets = [f"dataset.root={root}", f"dataset.machines=[{','.join(MACHINES)}]", f"output={output}", "device=cpu",
            "extraction.batch_size=16", *overrides]
    result = run_cli("run", RECIPES / recipe, "--no-progress", *[arg for item in sets for arg in ("--set", item)])
    assert result.exit_code == 0, result.output
    return result.output


def official(root: Path) -> dict[str, dict[str, float]]:
    rows = csv.DictReader((root / "seed0" / "summary.csv").open())
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["machine"] == "all" and row["metric"] == "official":
            out.setdefault(row["backend"], {})[row["section"]] = float(row["value"])
    return out


def test_labels_of_2026(data_root):
    labels = json.loads((data_root / "labels" / "dcase2026" / "main.json").read_text())
    assert labels["num_class"] == len(set(labels["path2idx_dict"].values()))
    assert {path.split("/")[2] for path in labels["path2idx_dict"]} == set(MACHINES)
    assert all(path.startswith("dcase2026/raw/") for path in labels["path2idx_dict"])


def test_views_residual_and_fusion_recipe(data_root, tmp_path):
    output = run("raw_spec_dcase2026.yaml", data_root, tmp_path)
    root = tmp_path / "raw_spec_dcase2026" / "dcase2026"
    scores = official(root)
    assert set(scores) == {"knn_near", "knn_far", "knn_residual", "knn_channel_fusion"}
    assert all(set(by_subset) == {"dev", "eval"} and all(0 < v <= 1 for v in by_subset.values())
               for by_subset in scores.values())
    for subset in ("dev", "eval"):
        assert f"Official score ({subset}), %" in output  # the table printed at the end
    for bid in scores:
        assert output.count(f"| {bid} |") == 2  # a row per subset
        for machine in MACHINES:
            assert (root / "seed0" / machine / bid / f"anomaly_score_{machine}_section_00_test.csv").exists()
            assert (root / "seed0" / machine / bid / f"decision_result_{machine}_section_00_test.csv").exists()


def test_far_channel_alone(data_root, tmp_path):
    output = run("raw_spec.yaml", data_root, tmp_path, "dataset.year=2026", "dataset.channels=far")
    root = tmp_path / "raw_spec" / "dcase2026"
    scores = official(root)
    assert set(scores) == {"knn", "kmeans", "knn_smote", "knn_rescale"}
    assert all(set(by_subset) == {"dev", "eval"} for by_subset in scores.values())
    assert "Official score (eval), %" in output and output.count("| knn |") == 2
    features = root / "shared" / "ToyDrone" / "features.h5"
    with h5py.File(features) as f:
        assert sorted(f) == ["test", "train"] and [str(v) for v in f.attrs["views"]] == ["far"]
