import shutil
from pathlib import Path

import pytest

RAW = """name: raw
dataset: {name: synth, root: data}
frontend: {name: raw_spec, params: {n_fft: 512, hop_length: 256, n_mels: 32, pooling: time_mean}}
backends: [{name: knn, params: {k_source: 1, k_target: 1, metric: cosine}}]
evaluation: {plots: false}
"""
AE = """name: ae
dataset: {name: synth, root: data}
frontend:
  name: ae
  training: {epochs: 1, batch_size: 8, scope: per_machine}
backends: [{name: passthrough}]
evaluation: {plots: false}
"""
GRID = """name: small
recipes: [raw.yaml, ae.yaml]
datasets: [{{name: synth, root: {data}, machines: [fan, valve], n_train_source: 12, n_train_target: 4, n_test: 8,
            clip_seconds: 0.5}}]
seeds: [0, 1]
output: {output}
"""


def write_grid(folder: Path, data: Path, output: str = "out") -> Path:
    """A grid of two recipes (raw_spec features + kNN; a per-machine AE, 1 epoch) on two synthetic machine
    types, two seeds: 32 units, trained and untrained."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw.yaml").write_text(RAW)
    (folder / "ae.yaml").write_text(AE)
    path = folder / "grid.yaml"
    path.write_text(GRID.format(data=data, output=folder / output))
    return path


def tables(output: Path) -> dict[str, bytes]:
    """The overview and every pipeline's summaries and table, by relative path."""
    files = [*output.glob("grids/*/overview.*"), *output.glob("*/*/table.csv"), *output.glob("*/*/table.md"),
             *output.glob("*/*/seed*/summary.csv")]
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(files)}


@pytest.fixture(scope="session")
def grid_file(synth_data):
    """``grid_file(folder, data=None)``: write the small grid (on the shared synthetic data by default)."""
    return lambda folder, data=None: write_grid(folder, data or synth_data)


@pytest.fixture(scope="session")
def read_tables():
    return tables


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth") / "data"


@pytest.fixture(scope="session")
def reference(tmp_path_factory, synth_data) -> dict[str, bytes]:
    """The small grid's tables with the core's local executor."""
    from asdcore import load_grid

    folder = tmp_path_factory.mktemp("reference")
    result = load_grid(write_grid(folder, synth_data), progress=False).run(progress=False)
    assert result.failure is None
    return tables(folder / "out")


@pytest.fixture
def fresh_data(tmp_path, synth_data, reference) -> Path:
    """A copy of the generated data that a test may damage."""
    target = tmp_path / "data"
    shutil.copytree(synth_data, target)
    return target
