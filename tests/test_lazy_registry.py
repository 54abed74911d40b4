"""Components registered by path are imported on first use, so that listing plugins, scoring a submission and
tabulating results import no component they do not use (torch included)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import asdcore
from asdcore.errors import PluginLoadError
from asdcore.registry import Registry


class ByPath:
    @staticmethod
    @asdcore.hookimpl
    def register_backends(register):
        register("lazy", "lazy_backend_module:LazyBackend")
        register("missing", "no_such_module_here:Backend")
        register("not_a_backend", "lazy_backend_module:NotABackend")


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    (tmp_path / "lazy_backend_module.py").write_text(textwrap.dedent("""
        import asdcore

        class LazyBackend(asdcore.Backend):
            class Params(asdcore.Params):
                k: int = 1

        class NotABackend:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_backend_module", raising=False)
    registry = Registry(entry_points=False)
    registry.add_plugin(ByPath, name="by_path", distribution="lazy-dist")
    return registry


def test_a_path_is_imported_on_first_use(lazy_module):
    registry = lazy_module
    assert {"lazy", "missing", "not_a_backend"} <= set(registry.names("backends"))
    assert "lazy_backend_module" not in sys.modules and not registry.report()["errors"]
    backend = registry.create("backends", "lazy", params={"k": 3})
    assert type(backend).__name__ == "LazyBackend" and backend.params.k == 3
    assert "lazy_backend_module" in sys.modules


def test_a_wrong_path_is_an_error_naming_the_component_and_distribution(lazy_module):
    with pytest.raises(PluginLoadError, match=r"backend 'missing' of lazy-dist: cannot import "
                                              r"'no_such_module_here:Backend' \(ModuleNotFoundError"):
        lazy_module.create("backends", "missing")
    with pytest.raises(PluginLoadError, match=r"'lazy_backend_module:NotABackend' is not a subclass of "
                                              r"asdcore.Backend"):
        lazy_module.create("backends", "not_a_backend")


def test_a_malformed_path_is_a_registration_error():
    class Malformed:
        @staticmethod
        @asdcore.hookimpl
        def register_backends(register):
            register("bad", "module.without.class")

    registry = Registry(entry_points=False)
    registry.add_plugin(Malformed, name="malformed", distribution="bad-dist")
    assert "bad" not in registry.names("backends")
    error, = [e for e in registry.report()["errors"] if e["plugin"] == "malformed"]
    assert "written 'module:Class'" in error["error"] and error["during"] == "register_backends"


LEAN = """
import sys, atexit
atexit.register(lambda: print("HEAVY", sorted(m for m in ("torch", "torchaudio", "matplotlib", "lightning_fabric")
                                               if m in sys.modules)))
from asdcore.cli import main
sys.argv = ["asdcore", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", ["plugins", "--help", "recipes"])
def test_light_commands_import_no_torch(command):
    result = subprocess.run([sys.executable, "-c", LEAN, command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def fan_submission(folder: Path) -> Path:
    """Score and decision files of DCASE 2023's fan, section 00 (a partial submission of ten clips a class)."""
    folder.mkdir()
    rows = [(f"section_00_{domain}_test_{label}_{i:04d}_spd_1000.wav", 0.1 * i + (label == "anomaly"))
            for domain in ("source", "target") for label in ("normal", "anomaly") for i in range(5)]
    (folder / "anomaly_score_fan_section_00_test.csv").write_text("".join(f"{n},{v}\n" for n, v in rows))
    (folder / "decision_result_fan_section_00_test.csv").write_text("".join(f"{n},{int(v > 1)}\n" for n, v in rows))
    return folder


def test_evaluating_a_submission_and_tabulating_import_no_torch(tmp_path):
    scores = fan_submission(tmp_path / "submission")
    result = subprocess.run([sys.executable, "-c", LEAN, "evaluate", "--year", "2023", "--scores", str(scores),
                             "--allow-partial"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "fan: " in result.stdout and "HEAVY []" in result.stdout
    summary = tmp_path / "runs" / "p" / "synth" / "seed0" / "summary.csv"
    summary.parent.mkdir(parents=True)
    summary.write_text("backend,machine,section,metric,value\nknn,all,dev,official,0.75\n")
    result = subprocess.run([sys.executable, "-c", LEAN, "table", str(tmp_path / "runs")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "| p / knn | 75.00" in result.stdout and "HEAVY []" in result.stdout


WITHOUT_TORCH = """
import sys


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchaudio", "lightning_fabric", "matplotlib", "asd_frontends",
                                  "asd_frontends_ssl", "asd_backends", "asd_executors"):
            raise ModuleNotFoundError(f"No module named {name!r}")


sys.meta_path.insert(0, NotInstalled())
from asdcore.cli import main
sys.argv = ["asdcore", *sys.argv[1:]]
main()
"""


def test_a_submission_is_evaluated_where_torch_is_not_installed(tmp_path):
    """The core and asd-datasets (the DCASE scorers) alone, torch and the other plugins unimportable."""
    scores = fan_submission(tmp_path / "submission")
    env = {**os.environ, "ASDCORE_LOAD_PLUGINS": "asd_datasets"}
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "evaluate", "--year", "2023", "--scores",
                             str(scores), "--allow-partial"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "fan: " in result.stdout
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "evaluate", "--scorer", "hmean", "--scores",
                             str(scores)], capture_output=True, text=True, env={**env, "ASDCORE_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert "scorer 'hmean' reads no submission files; use --year YEAR" in result.stderr


def test_a_plugin_for_another_core_api_is_refused_naming_it(tmp_path):
    from test_registry import _fake_distribution

    _fake_distribution(tmp_path, "asd-future", "future_plugin", """
        import asdcore

        ASDCORE_API = 99

        @asdcore.hookimpl
        def register_backends(register):
            register("future", "future_plugin:Nothing")
    """)
    _fake_distribution(tmp_path, "asd-current", "current_plugin", """
        import asdcore

        ASDCORE_API = 1

        @asdcore.hookimpl
        def register_backends(register):
            register("current", "asd_backends.knn:KnnBackend")
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ASDCORE_LOAD_PLUGINS": "future_plugin,current_plugin"}
    result = subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", "plugins"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "asd-current 1.2.3 (current_plugin)\n  backends: current" in result.stdout
    assert ("asd-future (future_plugin), during import: PluginLoadError: plugin 'future_plugin' of asd-future is "
            "built for asdcore API 99, this asdcore") in result.stdout
    assert "has API 1: install the asd-future release made for it" in result.stdout
