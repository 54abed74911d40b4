import json
import subprocess
import sys
import textwrap

import pytest

import asdcore
from asdcore.errors import ConfigError, DuplicateNameError, PluginLoadError, UnknownComponentError
from asdcore.registry import Registry


class KnnLike(asdcore.Backend):
    class Params(asdcore.Params):
        k: int = 1


class OtherPlugin:
    @staticmethod
    @asdcore.hookimpl
    def register_backends(register):
        register("distance", KnnLike)
        register("other", KnnLike)


def test_in_test_plugin_components_are_listed_with_distribution(registry):
    assert registry.names("backends") == ["distance"]
    assert "hmean" in registry.names("scorers")
    entry = registry.get("datasets", "toy")
    assert (entry.distribution, entry.version) == ("toy-dist", "9.9")
    assert asdcore.registered("frontends") == ["centred", "spectrum", "tiny"]


def test_create_validates_params(registry):
    registry.add_plugin(OtherPlugin, name="other", distribution="other-dist")
    backend = registry.create("backends", "other", params={"k": "3"})
    assert backend.params.k == 3
    with pytest.raises(ConfigError, match=r"backends.other.params.k: .*integer"):
        registry.create("backends", "other", params={"k": "three"})
    with pytest.raises(ConfigError, match=r"unknown key 'kk'; allowed keys: k\. Did you mean 'k'\?"):
        asdcore.create("backends", "other", kk=1)


def test_duplicate_name_names_both_distributions(registry):
    registry.add_plugin(OtherPlugin, name="other", distribution="other-dist")
    with pytest.raises(DuplicateNameError, match="'distance' is registered by more than one distribution: toy-dist and other-dist"):
        registry.get("backends", "distance")
    assert registry.get("backends", "other").distribution == "other-dist"
    errors = registry.report()["errors"]
    assert any("toy-dist and other-dist" in e["error"] for e in errors)


def test_unknown_name_lists_registered_names(registry):
    with pytest.raises(UnknownComponentError, match=r"unknown backend 'distanse'; registered backends: distance\. Did you mean 'distance'\?"):
        registry.get("backends", "distanse")
    with pytest.raises(UnknownComponentError, match="unknown component kind 'backend'"):
        registry.names("backend")


def test_failing_registration_is_recorded_and_others_still_work(registry):
    class NotABackend:
        pass

    class Broken:
        @staticmethod
        @asdcore.hookimpl
        def register_backends(register):
            register("broken", NotABackend)

    class Raising:
        @staticmethod
        @asdcore.hookimpl
        def register_frontends(register):
            raise ImportError("missing dependency foo")

    registry.add_plugin(Broken, name="broken", distribution="broken-dist")
    registry.add_plugin(Raising, name="raising", distribution="raising-dist")
    assert registry.names("backends") == ["distance"]
    assert registry.names("frontends") == ["centred", "spectrum", "tiny"]
    errors = {e["distribution"]: e for e in registry.report()["errors"]}
    assert "must be a subclass of asdcore.Backend" in errors["broken-dist"]["error"]
    assert errors["raising-dist"]["error"] == "ImportError: missing dependency foo"
    assert errors["raising-dist"]["during"] == "register_frontends"
    with pytest.raises(UnknownComponentError, match="raising-dist"):
        registry.get("frontends", "nothing")


def test_misspelt_hook_is_rejected(registry):
    import pluggy

    class Misspelt:
        @staticmethod
        @asdcore.hookimpl
        def register_backend(register):
            pass

    with pytest.raises(pluggy.PluginValidationError, match="register_backend"):
        registry.add_plugin(Misspelt, name="misspelt")
    assert "misspelt" not in registry.plugins


def test_report_lists_plugins_hooks_and_components(registry):
    report = registry.report()
    toy = next(p for p in report["plugins"] if p["distribution"] == "toy-dist")
    assert toy["hooks"] == ["register_augmentations", "register_backends", "register_datasets", "register_frontends",
                            "register_losses", "register_scorers"]
    assert toy["components"] == {"frontends": ["centred", "spectrum", "tiny"], "losses": ["softmax"],
                                 "backends": ["distance"], "datasets": ["toy", "toy_stereo"], "augmentations": ["toy_gain"],
                                 "scorers": ["slow_hmean"]}
    core = {p["name"]: p["components"] for p in report["plugins"] if p["distribution"] == "asdcore"}
    assert core == {"asdcore.default_plugins.executors": {"executors": ["local"]},
                    "asdcore.default_plugins.scorers": {"scorers": ["hmean"]}}


def _fake_distribution(site, dist, module, body):
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[asdcore]\n{module} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(body))


def _run_cli(site, *args, extra_env=None):
    code = "from asdcore.cli import main; main()"
    env = {"PYTHONPATH": str(site), "ASDCORE_LOAD_PLUGINS": "good_plugin,bad_plugin", **(extra_env or {})}
    import os

    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **env})


@pytest.fixture
def fake_site(tmp_path):
    _fake_distribution(tmp_path, "asd-bad", "bad_plugin", "import not_installed_dependency\n")
    _fake_distribution(tmp_path, "asd-good", "good_plugin", """
        import asdcore

        class Mean(asdcore.Backend):
            pass

        @asdcore.hookimpl
        def register_backends(register):
            register("mean", Mean)
    """)
    return tmp_path


def test_broken_entry_point_is_reported_not_fatal(fake_site):
    result = _run_cli(fake_site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    good = next(p for p in report["plugins"] if p["distribution"] == "asd-good")
    assert good["version"] == "1.2.3" and good["components"] == {"backends": ["mean"]}
    [error] = report["errors"]
    assert error["distribution"] == "asd-bad" and error["plugin"] == "bad_plugin"
    assert "ModuleNotFoundError: No module named 'not_installed_dependency'" == error["error"]

    text = _run_cli(fake_site, "plugins")
    assert "asd-good 1.2.3 (good_plugin)\n  backends: mean" in text.stdout
    assert "load errors:\n  asd-bad (bad_plugin), during import: ModuleNotFoundError" in text.stdout


def test_strict_mode_reraises(fake_site):
    result = _run_cli(fake_site, "plugins", extra_env={"ASDCORE_STRICT_PLUGINS": "1"})
    assert result.returncode != 0
    assert "bad_plugin" in result.stderr and "asd-bad" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(PluginLoadError):
        reg = Registry(entry_points=False, strict=True)
        reg._record("x", "x-dist", ImportError("boom"))


def test_every_hookspec_is_documented_and_tested():
    from pathlib import Path

    from asdcore import hookspecs

    names = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert len(names) == 8
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    tests += Path(__file__).parent.joinpath("toy_plugin.py").read_text()
    for name in names:
        doc = getattr(hookspecs, name).__doc__
        assert doc and len(doc.split()) > 8, f"{name} needs a docstring"
        assert f"def {name}(" in tests, f"{name} has no test"


def test_losses_augmentations_scorers_and_commands_register(registry):
    import click

    from asdcore.scoring import HarmonicMeanScorer

    class Gain(asdcore.Augmentation):
        class Params(asdcore.Params):
            db: float = 0.0

    class ToyLoss(asdcore.Loss):
        pass

    @click.command("hello")
    def hello():
        click.echo("hi")

    class Everything:
        @staticmethod
        @asdcore.hookimpl
        def register_losses(register):
            register("toy_loss", ToyLoss)

        @staticmethod
        @asdcore.hookimpl
        def register_augmentations(register):
            register("gain", Gain)

        @staticmethod
        @asdcore.hookimpl
        def register_scorers(register):
            register("strict_hmean", HarmonicMeanScorer)

        @staticmethod
        @asdcore.hookimpl
        def register_commands(cli):
            cli.add_command(hello)

    registry.add_plugin(Everything, name="everything", distribution="every-dist")
    assert registry.names("losses") == ["softmax", "toy_loss"]
    assert registry.create("augmentations", "gain", params={"db": 3}).params.db == 3.0
    assert registry.names("scorers") == ["hmean", "slow_hmean", "strict_hmean"]
    group = click.Group("root")
    registry.add_commands(group)
    assert "hello" in group.commands
