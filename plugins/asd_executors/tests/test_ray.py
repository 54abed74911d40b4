"""``ray``: units as tasks on a local Ray instance; resources per kind; GPUs only where the cluster has them."""
import sys

import pytest

import asdcore
from asd_executors.raytasks import RayExecutor
from asdcore.testing import ProbeUnit, check_executor


def test_ray_passes_the_conformance_check_on_an_instance_it_starts(tmp_path):
    import ray

    records = check_executor("ray", {"num_cpus": 2}, folder=tmp_path)
    assert not ray.is_initialized()  # it stopped the instance it started
    assert len({r["pid"] for r in records.values()}) >= 2


def test_units_that_run_a_model_ask_for_a_gpu_where_there_are_gpus():
    executor = RayExecutor(RayExecutor.Params(resources={"default": {"cpus": 2}, "extract": {"gpus": 0.5}}))
    train, extract = ProbeUnit("t", "train", (), "."), ProbeUnit("e", "extract", (), ".")
    score = ProbeUnit("s", "score", (), ".")
    assert executor.resources(train, has_gpus=True) == (2, 1.0)
    assert executor.resources(train, has_gpus=False) == (2, 0.0)
    assert executor.resources(extract, has_gpus=True) == (2, 0.5)
    assert executor.resources(score, has_gpus=True) == (2, 0.0)


def test_without_ray_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(asdcore.ConfigError, match=r"pip install 'asd-executors\[ray\]'"):
        check_executor("ray", folder=tmp_path)
