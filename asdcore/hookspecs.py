"""Plugin hooks. Each hook receives a ``register`` callback; call it once per component.

Names are lower_snake_case and globally unique per kind. Hooks may gain arguments but never lose
or rename them; an implementation may accept any subset of the arguments.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("asdcore")
hookimpl = pluggy.HookimplMarker("asdcore")


@hookspec
def register_frontends(register):
    """Register frontends (feature extractors, trainable or not).

    Called once when the registry loads. ``register(name, cls)`` takes the public name used in
    pipelines (``frontend: {name: ...}``) and a subclass of :class:`asdcore.Frontend`.
    """


@hookspec
def register_losses(register):
    """Register training losses: ``register(name, cls)`` with a subclass of :class:`asdcore.Loss`."""


@hookspec
def register_backends(register):
    """Register backends that turn embeddings into anomaly scores.

    ``register(name, cls)`` with a subclass of :class:`asdcore.Backend`; pipelines list them
    under ``backends: [{name: ..., params: {...}}]``.
    """


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, cls)`` with a subclass of :class:`asdcore.Dataset`."""


@hookspec
def register_scorers(register):
    """Register evaluation scorers: ``register(name, cls)`` with a subclass of :class:`asdcore.Scorer`.

    A dataset names its scorer in ``Dataset.scorer``.
    """


@hookspec
def register_augmentations(register):
    """Register training augmentations: ``register(name, cls)`` with a subclass of :class:`asdcore.Augmentation`."""


@hookspec
def register_executors(register):
    """Register executors, the engines that run the units of a plan.

    ``register(name, cls)`` with a subclass of :class:`asdcore.Executor`; pipelines and grids choose one
    with ``executor: {name: ..., params: {...}}`` or ``--executor NAME``. ``cls.Params`` declares the
    params; ``cls(params).run(units, job, progress)`` must call ``job(unit)`` (anywhere that shares the
    filesystem) for every unit once its upstream units are done, keep going past failures, and return
    ``unit id -> Outcome``. The core registers ``local``.
    """


@hookspec
def register_commands(cli):
    """Add CLI verbs. ``cli`` is the root :class:`click.Group` of ``asdcore``; call ``cli.add_command``.

    Called once when the command line is built; heavy imports belong inside the commands.
    """
