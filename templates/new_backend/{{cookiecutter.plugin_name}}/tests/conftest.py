"""These tests load only asdcore and this plugin, with the toy components of ``asdcore.testing``
(dataset, frontends, loss and backend named ``toy``) to run pipelines around the plugin's component."""
import pytest

from asdcore.testing import only_plugins


@pytest.fixture(autouse=True)
def registry():
    """The process-wide registry while a test runs: the core, this plugin and the toys."""
    with only_plugins("{{ cookiecutter.package_name }}") as registry:
        yield registry
