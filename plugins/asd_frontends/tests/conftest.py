import pytest

from asdcore.testing import only_plugins


@pytest.fixture(autouse=True)
def only_this_plugin():
    """Only the core, this plugin and the toy components are loaded."""
    with only_plugins("asd_frontends"):
        yield
