"""Every test runs with the core, asd_executors and the toys alone; a small grid that every executor runs."""
import shutil
from pathlib import Path

import pytest

from asdcore import load_grid
from asdcore.testing import ToyDataset, only_plugins

UNTRAINED = """name: untrained
dataset: {name: toy, root: data}
frontend: {name: toy, params: {bins: 8}}
backends: [{name: toy}]
evaluation: {plots: false}
"""
TRAINED = """name: trained
dataset: {name: toy, root: data}
frontend:
  name: toy_trained
  params: {bins: 8, dim: 4}
  loss: {name: toy}
  training: {epochs: 1, batch_size: 8, scope: per_machine}
backends: [{name: toy}]
evaluation: {plots: false}
"""
GRID = """name: small
recipes: [untrained.yaml, trained.yaml]
datasets: [{{name: toy, root: {data}, machines: [alpha, beta]}}]
seeds: [0, 1]
output: {output}
"""


@pytest.fixture(autouse=True)
def only_this_plugin():
    with only_plugins("asd_executors"):
        yield


def write_grid(folder: Path, data: Path, output: str = "out") -> Path:
    """A grid of two recipes (untrained toy features; a per-machine trained toy frontend, 1 epoch), both
    with the toy backend, on two toy machine types, two seeds: 32 units, trained and untrained."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "untrained.yaml").write_text(UNTRAINED)
    (folder / "trained.yaml").write_text(TRAINED)
    path = folder / "grid.yaml"
    path.write_text(GRID.format(data=data, output=folder / output))
    return path


def tables(output: Path) -> dict[str, bytes]:
    """The overview and every pipeline's summaries and table, by relative path."""
    files = [*output.glob("grids/*/overview.*"), *output.glob("*/*/table.csv"), *output.glob("*/*/table.md"),
             *output.glob("*/*/seed*/summary.csv")]
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(files)}


@pytest.fixture(scope="session")
def grid_file(toy_data):
    """``grid_file(folder, data=None)``: write the small grid (on the shared toy data by default)."""
    return lambda folder, data=None: write_grid(folder, data or toy_data)


@pytest.fixture(scope="session")
def read_tables():
    return tables


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    return ToyDataset.write(tmp_path_factory.mktemp("toy") / "data")


@pytest.fixture(scope="session")
def reference(tmp_path_factory, toy_data) -> dict[str, bytes]:
    """The small grid's tables with the core's local executor."""
    folder = tmp_path_factory.mktemp("reference")
    with only_plugins("asd_executors"):
        result = load_grid(write_grid(folder, toy_data), progress=False).run(progress=False)
    assert result.failure is None
    return tables(folder / "out")


@pytest.fixture
def fresh_data(tmp_path, toy_data) -> Path:
    """A copy of the toy data that a test may damage."""
    target = tmp_path / "data"
    shutil.copytree(toy_data, target)
    return target
