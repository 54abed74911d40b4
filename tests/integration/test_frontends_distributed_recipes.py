"""Every recipe of asd-frontends trains in bf16-mixed as two data-parallel processes on tiny synthetic data
(asd-datasets); ``torchrun`` runs a whole pipeline (with the knn backend of asd-backends)."""
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asdcore import Registry, load_config
from asdcore.testing import train_data_parallel

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TRAINED = ["ae", "dis_multispec_scac_trainable", "dis_spec_adacos_fixed", "dis_spec_adacos_fixed_wo_mixup",
           "dis_spec_featex", "dis_spec_scac_fixed", "dis_spec_scac_trainable", "dis_spec_subspaceloss"]


@pytest.fixture(scope="module")
def registry():
    return Registry()


def tiny(data: Path, output: Path, *extra: str) -> list[str]:
    return [f"dataset={{name: synth, root: {data}, machines: [fan, valve], n_train_source: 6, n_train_target: 2, "
            "n_test: 4, clip_seconds: 5.0}", f"output={output}", "device=cpu", "seeds=[0]",
            "frontend.training.epochs=2", "frontend.training.batch_size=8", "frontend.training.num_workers=0", *extra]


def test_every_recipe_trains_in_bf16_on_two_processes(registry, tmp_path):
    data, output = tmp_path / "data", tmp_path / "out"
    recipes = [(RECIPES / f"{name}.yaml", tiny(data, output, "frontend.training.devices=2",
                                               "frontend.training.precision=bf16-mixed")) for name in TRAINED]
    resolved = load_config(*recipes[0], registry=registry)
    registry.create("datasets", "synth", params=resolved.dataset_params).prepare(progress=False)
    train_data_parallel(recipes, 2)
    for name in TRAINED:
        folders = list((output / name / "synth" / "seed0" / "frontend").iterdir())
        assert folders, name
        for folder in folders:
            assert (folder / "model" / "model.pt").exists(), name
            losses = [float(r.split(",")[1]) for r in (folder / "train_log.csv").read_text().splitlines()[1:]]
            assert len(losses) == 2 and all(math.isfinite(v) for v in losses), name


def test_torchrun_runs_a_pipeline_with_training_on_every_process(registry, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    shutil.copy(RECIPES / "dis_spec_adacos_fixed.yaml", recipe)
    overrides = tiny(tmp_path / "data", tmp_path / "out", "frontend.training.devices=2", "backends=[{name: knn}]")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
               str(Path(sys.executable).parent / "asdcore"), "run", str(recipe), "--no-progress",
               *[a for o in overrides for a in ("--set", o)]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("| knn |") == 1  # one table: rank 0 reports
    root = tmp_path / "out" / "dis_spec_adacos_fixed" / "synth"
    assert len((root / "seed0" / "frontend" / "shared" / "train_log.csv").read_text().splitlines()) == 3
    assert (root / "table.md").exists()
    training_log = (root / "logs" / "seed0--train--shared.log").read_text().splitlines()
    assert len({line.split()[2] for line in training_log}) == 1  # written by one process
