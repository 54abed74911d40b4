"""The toy components of :mod:`asdcore.testing`, registered only when ``ASDCORE_LOAD_PLUGINS`` names
``asdcore.testing`` (as :func:`asdcore.testing.only_plugins` does), so that a plugin's tests can run
pipelines with the core and the plugin alone."""
from ..hookspecs import hookimpl

MODULE = "asdcore.testing"


@hookimpl
def register_datasets(register):
    register("toy", f"{MODULE}:ToyDataset")


@hookimpl
def register_frontends(register):
    register("toy", f"{MODULE}:ToyFrontend")
    register("toy_trained", f"{MODULE}:ToyTrainedFrontend")


@hookimpl
def register_losses(register):
    register("toy", f"{MODULE}:ToyLoss")


@hookimpl
def register_backends(register):
    register("toy", f"{MODULE}:ToyBackend")
