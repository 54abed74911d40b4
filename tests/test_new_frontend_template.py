"""templates/new_frontend: render it, install the result, list it, run it in a pipeline, run its own tests."""
import csv
import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException

import test_new_backend_template as backend_template
from test_new_backend_template import asdcore, pip

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "new_frontend"
# Names no real plugin uses, so installing the result cannot clash with the environment's plugins.
PROBE = {"plugin_name": "asd-frontend-probe", "author": "Test Author", "description": "Probe of the template"}


def render(tmp: Path, template: Path = TEMPLATE, **context) -> Path:
    """Render ``template`` as the backend template's test renders its own (no prompts, replay and cache in ``tmp``)."""
    with mock.patch.object(backend_template, "TEMPLATE", template):
        return backend_template.render(tmp, **context)


def install(project: Path, target: Path) -> dict[str, str]:
    """Install ``project`` into ``target``; the environment of subprocesses that see it installed. The running
    environment stays as it is, so concurrent test processes never see the probe."""
    pip("install", "--no-deps", "--no-build-isolation", "--target", str(target), str(project))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH")) if p)}


def run_generated_tests(project: Path, env: dict[str, str]) -> None:
    """Run the generated project's own tests in a subprocess; all of them must pass, none be skipped."""
    result = subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
                            cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary


def listed(env: dict[str, str], distribution: str) -> dict:
    """The ``asdcore plugins --json`` entry of ``distribution``, checked to have no load error."""
    result = asdcore("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [entry] = [p for p in report["plugins"] if p["distribution"] == distribution]
    assert not [e for e in report["errors"] if distribution in json.dumps(e)]
    return entry


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The probe project and the environment that has it installed."""
    tmp = tmp_path_factory.mktemp("frontend_template")
    project = render(tmp, **PROBE)
    return project, install(project, tmp / "site")


def test_default_names_and_file_set(tmp_path):
    path = render(tmp_path)
    assert path.name == "asd-logmel"
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert files == ["CHANGELOG.md", "README.md", "asd_logmel/__init__.py", "asd_logmel/logmel.py",
                     "asd_logmel/plugin.py", "pyproject.toml", "tests/conftest.py", "tests/test_frontend.py"]
    for source in path.rglob("*.py"):
        py_compile.compile(str(source), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    pyproject = (path / "pyproject.toml").read_text()
    assert '[project.entry-points.asdcore]\nasd_logmel = "asd_logmel.plugin"' in pyproject
    assert 'dynamic = ["version"]' in pyproject
    assert '[tool.setuptools.dynamic]\nversion = {attr = "asd_logmel.__version__"}' in pyproject
    assert '"asdcore>=0.1,<0.2"' in pyproject
    assert 'register("logmel", "asd_logmel.logmel:LogmelFrontend")' in (path / "asd_logmel" / "plugin.py").read_text()
    assert "class LogmelFrontend(asdcore.Frontend):" in (path / "asd_logmel" / "logmel.py").read_text()
    assert "frontend: {name: logmel, params: {n_mels: 64}}" in (path / "README.md").read_text()
    assert "`logmel` frontend" in (path / "CHANGELOG.md").read_text()


@pytest.mark.parametrize(("context", "message"), [
    ({"frontend_name": "Log-Mel"}, "frontend_name 'Log-Mel' must be lower_snake_case"),
    ({"plugin_name": "asd logmel!"}, "plugin_name 'asd logmel!' is not a valid distribution name"),
])
def test_invalid_names_are_rejected_before_generating(tmp_path, capfd, context, message):
    with pytest.raises(FailedHookException):
        render(tmp_path, **context)
    assert message in capfd.readouterr().err
    assert not list((tmp_path / "out").glob("*"))


def test_installed_plugin_is_listed(installed):
    _, env = installed
    assert listed(env, PROBE["plugin_name"]) == {
        "name": "asd_frontend_probe", "distribution": "asd-frontend-probe", "version": "0.1.0",
        "hooks": ["register_frontends"], "components": {"frontends": ["frontend_probe"]}}


def test_installed_plugin_runs_in_a_pipeline(installed, tmp_path):
    _, env = installed
    pipeline = {
        "name": "probe",
        "dataset": {"name": "synth", "root": str(tmp_path / "data"), "machines": ["fan"], "n_train_source": 20,
                    "n_train_target": 4, "n_test": 16, "clip_seconds": 0.5},
        "frontend": {"name": "frontend_probe", "params": {"n_mels": 16, "n_fft": 512}},
        "backends": [{"name": "knn", "params": {}}],
        "seeds": [0],
        "output": str(tmp_path / "results"),
        "evaluation": {"plots": False},
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    result = asdcore("-q", "run", str(tmp_path / "pipeline.yaml"), "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    assert "| knn |" in result.stdout
    run = tmp_path / "results" / "probe" / "synth" / "seed0" / "fan"
    rows = list(csv.reader((run / "knn" / "anomaly_score_fan_section_00_test.csv").open()))
    assert len(rows) == 16 and all(float(score) >= 0 for _, score in rows)
    evaluation = {(r["section"], r["metric"]): float(r["value"]) for r in csv.DictReader((run / "knn" / "evaluation.csv").open())}
    assert 0.0 <= evaluation[("00", "s_auc")] <= 1.0 and ("dev", "official") in evaluation


def test_generated_tests_pass(installed):
    project, env = installed
    run_generated_tests(project, env)
