"""Plugins that exit, interrupt or fail never take the CLI down; failures are reported, once, by name."""
import json
import logging

import pytest

import asdcore
from asdcore.errors import PluginLoadError
from asdcore.registry import Registry
from test_registry import _fake_distribution, _run_cli

EXITING = "import sys\nsys.exit(3)\n"
HOOK_EXITING = """
    import sys

    import asdcore

    @asdcore.hookimpl
    def register_backends(register):
        raise SystemExit("bye")

    @asdcore.hookimpl
    def register_commands(cli):
        sys.exit(4)
"""


@pytest.fixture
def faulty_site(tmp_path):
    _fake_distribution(tmp_path, "asd-exit", "exit_plugin", EXITING)
    _fake_distribution(tmp_path, "asd-hook-exit", "hook_exit_plugin", HOOK_EXITING)
    return tmp_path


def _cli(site, *args, plugins="exit_plugin,hook_exit_plugin", **env):
    return _run_cli(site, *args, extra_env={"ASDCORE_LOAD_PLUGINS": plugins, **env})


def _registry_from(site, monkeypatch, plugins, **kwargs):
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("ASDCORE_LOAD_PLUGINS", plugins)
    return Registry(**kwargs)


def test_plugin_exiting_at_import_does_not_stop_the_cli(faulty_site):
    help_ = _cli(faulty_site, "--help")
    assert help_.returncode == 0, help_.stderr
    assert "Usage:" in help_.stdout

    listing = _cli(faulty_site, "plugins")
    assert listing.returncode == 0, listing.stderr
    assert "load errors:\n  asd-exit (exit_plugin), during import: SystemExit: 3" in listing.stdout


def test_plugin_exiting_in_register_hooks_is_recorded(faulty_site):
    result = _cli(faulty_site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    errors = {(e["plugin"], e["during"]): e for e in json.loads(result.stdout)["errors"]}
    assert errors[("hook_exit_plugin", "register_backends")]["error"] == "SystemExit: bye"
    assert errors[("hook_exit_plugin", "register_commands")]["error"] == "SystemExit: 4"
    assert errors[("hook_exit_plugin", "register_backends")]["distribution"] == "asd-hook-exit"
    assert "sys.exit(4)" in errors[("hook_exit_plugin", "register_commands")]["details"]


def test_strict_mode_prints_a_message_naming_the_plugin(faulty_site):
    result = _cli(faulty_site, "plugins", plugins="exit_plugin", ASDCORE_STRICT_PLUGINS="1")
    output = result.stdout + result.stderr
    assert result.returncode not in (0, 3), output
    assert "'exit_plugin' (distribution asd-exit) failed during import: SystemExit: 3" in output
    assert "unset ASDCORE_STRICT_PLUGINS" in output
    assert "Traceback" not in output


def test_strict_mode_raises_plugin_load_error_without_chained_traceback(faulty_site, monkeypatch):
    with pytest.raises(PluginLoadError, match="fix or uninstall asd-exit, or unset ASDCORE_STRICT_PLUGINS") as info:
        _registry_from(faulty_site, monkeypatch, "exit_plugin", strict=True)
    assert info.value.__suppress_context__ and info.value.__cause__ is None


def test_warn_load_errors_logs_one_warning_however_often_called(faulty_site, monkeypatch, caplog):
    registry = _registry_from(faulty_site, monkeypatch, "exit_plugin,hook_exit_plugin")
    with caplog.at_level(logging.WARNING, logger="asdcore"):
        registry.warn_load_errors()
        registry.warn_load_errors()
    [record] = [r for r in caplog.records if r.name == "asdcore"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "asd-exit (entry point exit_plugin, during import): SystemExit: 3" in message
    assert "asd-hook-exit (entry point hook_exit_plugin, during register_backends): SystemExit: bye" in message
    assert "`asdcore plugins` shows details" in message


def test_warn_load_errors_is_silent_without_failures(registry, caplog):
    with caplog.at_level(logging.WARNING, logger="asdcore"):
        registry.warn_load_errors()
    assert not [r for r in caplog.records if r.name == "asdcore"]


def test_keyboard_interrupt_at_import_propagates(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "asd-interrupt", "interrupt_plugin", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        _registry_from(tmp_path, monkeypatch, "interrupt_plugin")


def test_keyboard_interrupt_in_register_hook_propagates(registry):
    class Interrupting:
        @staticmethod
        @asdcore.hookimpl
        def register_backends(register):
            raise KeyboardInterrupt

    registry.add_plugin(Interrupting, name="interrupting")
    with pytest.raises(KeyboardInterrupt):
        registry.names("backends")
