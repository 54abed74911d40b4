"""templates/new_dataset: render it, install the result, list it, run it in a pipeline, run its own tests."""
import csv
import py_compile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from cookiecutter.exceptions import FailedHookException

from test_new_backend_template import asdcore
from test_new_frontend_template import install, listed, render, run_generated_tests

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "new_dataset"
# Names no real plugin uses, so installing the result cannot clash with the environment's plugins.
PROBE = {"plugin_name": "asd-dataset-probe", "author": "Test Author", "description": "Probe of the template"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The probe project and the environment that has it installed."""
    tmp = tmp_path_factory.mktemp("dataset_template")
    project = render(tmp, TEMPLATE, **PROBE)
    return project, install(project, tmp / "site")


def test_default_names_and_file_set(tmp_path):
    path = render(tmp_path, TEMPLATE)
    assert path.name == "asd-wav-folders"
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert files == ["CHANGELOG.md", "README.md", "asd_wav_folders/__init__.py", "asd_wav_folders/plugin.py",
                     "asd_wav_folders/wav_folders.py", "pyproject.toml", "tests/conftest.py", "tests/test_dataset.py"]
    for source in path.rglob("*.py"):
        py_compile.compile(str(source), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    pyproject = (path / "pyproject.toml").read_text()
    assert '[project.entry-points.asdcore]\nasd_wav_folders = "asd_wav_folders.plugin"' in pyproject
    assert 'dynamic = ["version"]' in pyproject
    assert '[tool.setuptools.dynamic]\nversion = {attr = "asd_wav_folders.__version__"}' in pyproject
    assert '"asdcore>=0.1,<0.2"' in pyproject
    plugin = (path / "asd_wav_folders" / "plugin.py").read_text()
    assert 'register("wav_folders", "asd_wav_folders.wav_folders:WavFoldersDataset")' in plugin
    assert "class Params(asdcore.DatasetParams):" in (path / "asd_wav_folders" / "wav_folders.py").read_text()
    assert "dataset: {name: wav_folders, root: data/mine, machines: all}" in (path / "README.md").read_text()
    assert "`wav_folders` dataset" in (path / "CHANGELOG.md").read_text()


@pytest.mark.parametrize(("context", "message"), [
    ({"dataset_name": "2wavs"}, "dataset_name '2wavs' must be lower_snake_case"),
    ({"package_name": "import"}, "package_name 'import' must be lower_snake_case"),
])
def test_invalid_names_are_rejected_before_generating(tmp_path, capfd, context, message):
    with pytest.raises(FailedHookException):
        render(tmp_path, TEMPLATE, **context)
    assert message in capfd.readouterr().err
    assert not list((tmp_path / "out").glob("*"))


def test_installed_plugin_is_listed(installed):
    _, env = installed
    assert listed(env, PROBE["plugin_name"]) == {
        "name": "asd_dataset_probe", "distribution": "asd-dataset-probe", "version": "0.1.0",
        "hooks": ["register_datasets"], "components": {"datasets": ["dataset_probe"]}}


def test_installed_plugin_runs_in_a_pipeline(installed, tmp_path):
    """Normal clips hum at 300 Hz, anomalies at 900 Hz: the probe's labels must make the score perfect."""
    _, env = installed
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    for split, names in (("train", [f"normal_{i}" for i in range(8)]),
                         ("test", [f"{label}_{i}" for label in ("normal", "anomaly") for i in range(4)])):
        (tmp_path / "data" / "fan" / split).mkdir(parents=True)
        for name in names:
            freq = (900.0 if name.startswith("anomaly") else 300.0) + rng.uniform(-5, 5)
            sf.write(tmp_path / "data" / "fan" / split / f"{name}.wav", 0.3 * np.sin(2 * np.pi * freq * t), 16000)
    pipeline = {
        "name": "probe",
        "dataset": {"name": "dataset_probe", "root": str(tmp_path / "data")},
        "frontend": {"name": "raw_spec", "params": {"n_fft": 512, "hop_length": 256, "n_mels": 32}},
        "backends": [{"name": "knn", "params": {}}],
        "seeds": [0],
        "output": str(tmp_path / "results"),
        "evaluation": {"plots": False},
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    result = asdcore("-q", "run", str(tmp_path / "pipeline.yaml"), "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    assert "| backend | all | fan |" in result.stdout and "| knn | 100.00 ± 0.00 | 100.00 ± 0.00 |" in result.stdout
    knn = tmp_path / "results" / "probe" / "dataset_probe" / "seed0" / "fan" / "knn"
    rows = list(csv.reader((knn / "anomaly_score_fan_section_00_test.csv").open()))
    assert sorted(name for name, _ in rows) == sorted(f"{label}_{i}.wav" for label in ("normal", "anomaly")
                                                      for i in range(4))


def test_generated_tests_pass(installed):
    project, env = installed
    run_generated_tests(project, env)
