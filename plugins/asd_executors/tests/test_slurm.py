"""``slurm`` on submitit: job arrays per kind, resources from the config, failures that stop nothing else."""
import logging
import sys

import pytest

import asdcore
from asd_executors.slurm import SlurmExecutor
from asdcore.testing import ProbeUnit, check_executor


def test_debug_and_local_clusters_pass_the_conformance_check(tmp_path):
    check_executor("slurm", {"cluster": "debug"}, folder=tmp_path / "debug")
    records = check_executor("slurm", {"cluster": "local", "max_parallel": 2, "poll_seconds": 0.1,
                                       "folder": str(tmp_path / "jobs")}, folder=tmp_path / "local")
    assert len({r["pid"] for r in records.values()}) == len(records)  # a process (job) per unit
    assert len(list((tmp_path / "jobs").glob("*/*_log.err"))) == 8  # 7 done, 1 failed; 1 summary: 1 job


def test_units_that_can_start_together_go_as_one_array_per_kind(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="asdcore")
    check_executor("slurm", {"cluster": "debug"}, folder=tmp_path)
    submitted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("submitted")]
    assert [m.split(" of array")[0] for m in submitted] == [
        "submitted 2 train unit(s) in 2 job(s)", "submitted 1 extract unit(s) in 1 job(s)",
        "submitted 2 extract unit(s) in 2 job(s)", "submitted 2 score unit(s) in 2 job(s)",
        "submitted 1 summary unit(s) in 1 job(s)"]


def test_light_units_share_jobs(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="asdcore")
    units = [ProbeUnit(f"e{i}", "evaluate", (), str(tmp_path)) for i in range(5)]
    records = check_executor("slurm", {"cluster": "local", "max_parallel": 3, "poll_seconds": 0.1,
                                       "folder": str(tmp_path / "jobs"),
                                       "resources": {"evaluate": {"units_per_job": 2}}}, folder=tmp_path, units=units)
    assert [r.getMessage().split(" of array")[0] for r in caplog.records if "submitted" in r.getMessage()] == [
        "submitted 5 evaluate unit(s) in 3 job(s)"]
    assert len({r["pid"] for r in records.values()}) == 3


def test_resources_come_from_the_kind_then_the_default_then_the_kinds_entry():
    params = SlurmExecutor.Params(resources={"default": {"partition": "gpu", "account": "asd", "time_min": 90},
                                             "train": {"gpus": 2, "sbatch": {"constraint": "a100"}}})
    executor = SlurmExecutor(params)
    train, score = executor.resources("train"), executor.resources("score")
    assert (train.gpus, train.cpus, train.time_min, train.partition, train.sbatch) == (2, 8, 90, "gpu",
                                                                                       {"constraint": "a100"})
    assert (score.gpus, score.cpus, score.mem_gb, score.account) == (0, 4, 16, "asd")
    with pytest.raises(asdcore.ConfigError, match="unknown unit kind.*'trian'.*allowed: default, train"):
        asdcore.create("executors", "slurm", resources={"trian": {"gpus": 1}})


def test_without_submitit_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(asdcore.ConfigError, match=r"pip install 'asd-executors\[slurm\]'"):
        check_executor("slurm", {"cluster": "debug"}, folder=tmp_path)
