"""The same grid on every executor gives byte-identical tables."""
import os

import pytest

from asdcore import load_grid
from asdcore.testing import only_plugins

EXECUTORS = {
    "processes": {"workers": 2},
    "slurm-local": {"cluster": "local", "max_parallel": 2, "poll_seconds": 0.1},
    "slurm-debug": {"cluster": "debug"},
}


@pytest.mark.parametrize("name", list(EXECUTORS))
def test_every_executor_gives_the_tables_of_the_local_one(name, tmp_path, grid_file, read_tables, reference):
    executor = name.split("-")[0]
    overrides = [f"executor.params.{k}={v}" for k, v in EXECUTORS[name].items()]
    grid = load_grid(grid_file(tmp_path), overrides, executor=executor, progress=False)
    result = grid.run(progress=False)
    assert result.failure is None
    assert {o.status for o in result.outcomes.values()} == {"done"} and len(result.outcomes) == 32
    assert read_tables(tmp_path / "out") == reference
    again = load_grid(grid_file(tmp_path), overrides, executor=executor, progress=False)
    assert {o.status for o in again.run(progress=False).outcomes.values()} == {"skipped"}


def test_ray_on_a_local_instance_gives_the_tables_of_the_local_one(ray_instance, tmp_path, grid_file, read_tables,
                                                                  reference):
    selection = ray_instance.remote(lambda: os.environ.get("ASDCORE_LOAD_PLUGINS"))
    assert ray_instance.get(selection.remote()) == "asd_executors,asdcore.testing"  # the workers load the toys
    grid = load_grid(grid_file(tmp_path), executor="ray", progress=False)
    result = grid.run(progress=False)
    assert result.failure is None and len(result.outcomes) == 32
    assert read_tables(tmp_path / "out") == reference


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance whose workers load the core, asd_executors and the toys alone."""
    import ray

    with only_plugins("asd_executors"):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
        ray.shutdown()
