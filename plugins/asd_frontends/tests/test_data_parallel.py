"""The dynamic scales of AdaCos, SCAC and AdaProj cover the global batch: a training step of two data-parallel
processes, which split an odd batch of 15 clips in three classes unevenly, has the loss of one process on the
whole batch (scales of each process's part would change it by more than 1e-5)."""
import csv
import math

import pytest

import asdcore
from asdcore.testing import ToyDataset, train_data_parallel

LOSSES = {"adacos": {}, "scac": {"k": 2}, "adaproj": {"basis_size": 2}}


def pipeline(root, output, loss, dynamic=True, devices=1):
    """One training step over all training clips of ``root``."""
    return {
        "name": f"{loss}_{dynamic}", "dataset": {"name": "toy", "root": str(root)},
        "frontend": {"name": "toy_trained", "params": {"bins": 8, "dim": 4},
                     "loss": {"name": loss, "params": {**LOSSES[loss], "dynamic": dynamic}},
                     "training": {"epochs": 1, "batch_size": 64, "num_workers": 0, "devices": devices}},
        "backends": [{"name": "toy"}], "evaluation": {"plots": False}, "output": str(output), "seeds": [0],
        "device": "cpu",
    }


def first_loss(output, name):
    with open(output / name / "toy" / "seed0" / "frontend" / "shared" / "train_log.csv") as log:
        rows = list(csv.DictReader(log))
    assert [row["epoch"] for row in rows] == ["1"]
    return float(rows[0]["loss"])


def trained_alone(root, output, loss, dynamic):
    config = pipeline(root, output, loss, dynamic)
    asdcore.Pipeline.create(asdcore.load_config(config), progress=False).run(stages=("train",))
    return first_loss(output, config["name"])


def test_dynamic_scales_cover_the_global_batch(tmp_path):
    root = ToyDataset.write(tmp_path / "data", machines=("alpha", "beta", "gamma"), n_train=4, n_target=1)
    alone = {loss: trained_alone(root, tmp_path / "alone", loss, True) for loss in LOSSES}
    fixed = {loss: trained_alone(root, tmp_path / "fixed", loss, False) for loss in LOSSES}
    train_data_parallel([(pipeline(root, tmp_path / "two", loss, devices=2), []) for loss in LOSSES], 2)
    for loss in LOSSES:
        two = first_loss(tmp_path / "two", f"{loss}_True")
        assert math.isfinite(two) and two == pytest.approx(alone[loss], rel=1e-6), loss
        assert fixed[loss] != pytest.approx(alone[loss], rel=1e-3), loss  # the step's scale is the batch's
