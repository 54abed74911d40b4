"""templates/new_backend: render it, install the result, list it, run it in a pipeline, run its own tests."""
import csv
import json
import py_compile
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "new_backend"
# Names no real plugin uses, so installing the result cannot clash with the environment's plugins.
PROBE = {"plugin_name": "asd-template-probe", "author": "Test Author", "description": "Probe of the template"}


def render(tmp: Path, **context) -> Path:
    """Render the template without prompts; cookiecutter's replay and cache go under ``tmp`` too."""
    config = tmp / "cookiecutter.yaml"
    config.write_text(yaml.safe_dump({"replay_dir": str(tmp / "replay"), "cookiecutters_dir": str(tmp / "cache")}))
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=context, output_dir=str(tmp / "out"),
                             config_file=str(config)))


def asdcore(*args, **kwargs):
    return subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", *args],
                          capture_output=True, text=True, **kwargs)


def pip(*args):
    result = subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The probe project, installed into the running environment for this module only."""
    path = render(tmp_path_factory.mktemp("template"), **PROBE)
    pip("install", "--no-deps", "--no-build-isolation", str(path))
    try:
        yield path
    finally:
        pip("uninstall", "-y", PROBE["plugin_name"])
        with pytest.raises(metadata.PackageNotFoundError):
            metadata.version(PROBE["plugin_name"])


def test_default_names_and_file_set(tmp_path):
    path = render(tmp_path)
    assert path.name == "asd-mahalanobis"
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert files == ["CHANGELOG.md", "README.md", "asd_mahalanobis/__init__.py", "asd_mahalanobis/mahalanobis.py",
                     "asd_mahalanobis/plugin.py", "pyproject.toml", "tests/conftest.py", "tests/test_backend.py"]
    for source in path.rglob("*.py"):
        py_compile.compile(str(source), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    pyproject = (path / "pyproject.toml").read_text()
    assert '[project.entry-points.asdcore]\nasd_mahalanobis = "asd_mahalanobis.plugin"' in pyproject
    assert 'register("mahalanobis", MahalanobisBackend)' in (path / "asd_mahalanobis" / "plugin.py").read_text()
    assert "backends: [{name: mahalanobis, params: {}}]" in (path / "README.md").read_text()
    assert "`mahalanobis` backend" in (path / "CHANGELOG.md").read_text()


@pytest.mark.parametrize(("context", "message"), [
    ({"backend_name": "Mahal-anobis"}, "backend_name 'Mahal-anobis' must be lower_snake_case"),
    ({"package_name": "class"}, "package_name 'class' must be lower_snake_case"),
    ({"plugin_name": "asd mahalanobis!"}, "plugin_name 'asd mahalanobis!' is not a valid distribution name"),
])
def test_invalid_names_are_rejected_before_generating(tmp_path, capfd, context, message):
    with pytest.raises(FailedHookException):
        render(tmp_path, **context)
    assert message in capfd.readouterr().err
    assert not list((tmp_path / "out").glob("*"))


def test_installed_plugin_is_listed(project):
    result = asdcore("plugins", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [probe] = [p for p in report["plugins"] if p["distribution"] == PROBE["plugin_name"]]
    assert probe == {"name": "asd_template_probe", "distribution": "asd-template-probe", "version": "0.1.0",
                     "hooks": ["register_backends"], "components": {"backends": ["template_probe"]}}
    assert not [e for e in report["errors"] if "template_probe" in json.dumps(e)]


def test_installed_plugin_runs_in_a_pipeline(project, tmp_path):
    pipeline = {
        "name": "probe",
        "dataset": {"name": "synth", "root": str(tmp_path / "data"), "machines": ["fan"], "n_train_source": 20,
                    "n_train_target": 4, "n_test": 16, "clip_seconds": 0.5},
        "frontend": {"name": "raw_spec", "params": {"n_mels": 32}},
        "backends": [{"name": "template_probe", "params": {}},
                     {"name": "template_probe", "id": "separate", "params": {"domains": "separate", "shrinkage": 0.1}}],
        "seeds": [0],
        "output": str(tmp_path / "results"),
        "evaluation": {"plots": False},
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    result = asdcore("-q", "run", str(tmp_path / "pipeline.yaml"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "| template_probe |" in result.stdout and "| separate |" in result.stdout
    run = tmp_path / "results" / "probe" / "synth" / "seed0" / "fan"
    for backend in ("template_probe", "separate"):
        rows = list(csv.reader((run / backend / "anomaly_score_fan_section_00_test.csv").open()))
        assert len(rows) == 16 and all(float(score) >= 0 for _, score in rows)
        assert len(list(csv.reader((run / backend / "anomaly_score_train.csv").open()))) == 24
        rows = csv.DictReader((run / backend / "evaluation.csv").open())
        evaluation = {(r["section"], r["metric"]): float(r["value"]) for r in rows}
        assert 0.0 <= evaluation[("00", "s_auc")] <= 1.0 and ("dev", "official") in evaluation
        assert (run / backend / "decision_result_fan_section_00_test.csv").exists()


def test_generated_tests_pass(project):
    result = subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
                            cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
