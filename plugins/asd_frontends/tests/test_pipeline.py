"""This plugin's components through the engine on the toy dataset and backend: the untrained ``raw_spec``
frontend, and the toy trained frontend with each of this plugin's losses and its augmentations."""
import csv
import math

import pytest

import asdcore

LOSSES = {"arcface": {}, "adacos": {}, "scac": {"k": 2}, "adaproj": {"basis_size": 2},
          "subspace": {"k": 2, "subspace_size": 4}, "featex": {"k": 2, "subspace_size": 4}}


def run(tmp_path, frontend):
    config = {"name": "run", "dataset": {"name": "toy", "root": str(tmp_path / "data"), "generate": True},
              "frontend": frontend, "backends": [{"name": "toy"}], "evaluation": {"plots": False},
              "output": str(tmp_path / "out"), "seeds": [0], "device": "cpu"}
    return asdcore.Pipeline.create(asdcore.load_config(config), progress=False).run() / "seed0"


def assert_scored(seed):
    assert "toy,all,dev,official," in (seed / "summary.csv").read_text()
    for machine in ("alpha", "beta"):
        scores = seed / machine / "toy" / f"anomaly_score_{machine}_section_00_test.csv"
        assert len(scores.read_text().splitlines()) == 8


def test_raw_spec_runs_end_to_end(tmp_path):
    seed = run(tmp_path, {"name": "raw_spec", "params": {"n_fft": 256, "hop_length": 128, "n_mels": 16}})
    assert_scored(seed)
    assert not (seed / "frontend").exists()


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_a_frontend_end_to_end(tmp_path, loss):
    seed = run(tmp_path, {"name": "toy_trained", "params": {"bins": 8, "dim": 8},
                          "loss": {"name": loss, "params": LOSSES[loss]},
                          "augmentations": [{"name": "mixup", "params": {"prob": 0.5}},
                                            {"name": "specaugment", "params": {"n_fft": 256, "max_time_width": 4,
                                                                               "max_freq_width": 8}}],
                          "training": {"epochs": 2, "batch_size": 8, "num_workers": 0}})
    assert_scored(seed)
    with open(seed / "frontend" / "shared" / "train_log.csv") as log:
        losses = [float(row["loss"]) for row in csv.DictReader(log)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
