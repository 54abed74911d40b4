import pytest

from asdcore.testing import only_plugins


@pytest.fixture(autouse=True)
def only_this_plugin():
    """Every test sees the core, this plugin and the toy components only."""
    with only_plugins("asd_datasets") as registry:
        yield registry


@pytest.fixture
def registry(only_this_plugin):
    """The process-wide registry of :func:`only_this_plugin`."""
    return only_this_plugin
