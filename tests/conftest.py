from pathlib import Path

import pytest

from asdcore.registry import Registry, use_registry

import toy_plugin


@pytest.fixture
def registry():
    """A registry with the core's default plugins and the in-test toy plugin, installed entry points not loaded."""
    reg = Registry(entry_points=False)
    reg.add_plugin(toy_plugin, name="toy_plugin", distribution="toy-dist", version="9.9")
    toy_plugin.CALLS.clear()
    with use_registry(reg):
        yield reg


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    return toy_plugin.make_data(tmp_path_factory.mktemp("toy"))
