"""``ray``: units as Ray core tasks on a Ray cluster, or on a Ray instance started on this machine."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import pydantic

import asdcore

from .common import require, resource_table, worker_logging

log = logging.getLogger("asdcore")


class Resources(asdcore.Params):
    """What one unit's task asks Ray for."""

    cpus: float | None = pydantic.Field(None, gt=0)
    gpus: float | None = pydantic.Field(None, ge=0)


class RayExecutor(asdcore.Executor):
    """Runs every unit as a Ray task (``pip install 'asd-executors[ray]'``). Usage::

        executor:
          name: ray
          params: {address: auto, resources: {train: {cpus: 4, gpus: 1}, extract: {gpus: 0.5}}}

    ``address``: a running cluster (``auto``, ``ray://host:10001``, ``host:6379``); without it a Ray
    instance is started here with ``num_cpus``/``num_gpus`` and stopped at the end. Each unit asks for
    ``cpus`` (default 1) and ``gpus`` (default: 1 for units that run a model when the cluster has GPUs,
    else 0), per kind under ``resources`` (``default`` for all). A task starts once its upstream units are
    done; artifacts go through the filesystem, which every node must share. ``retries``: how often Ray
    retries a unit whose worker died (default 0: it is reported as failed, and a rerun redoes it).
    """

    class Params(asdcore.Params):
        address: str | None = None
        num_cpus: int | None = pydantic.Field(None, ge=1)
        num_gpus: int | None = pydantic.Field(None, ge=0)
        retries: int = pydantic.Field(0, ge=0)
        resources: resource_table(Resources) = {}

    def run(self, units: Sequence, job: asdcore.Job, progress: bool = True) -> dict[str, asdcore.Outcome]:
        ray = require("ray", "ray")
        p = self.params
        started_here = not ray.is_initialized()
        if started_here:
            options = {"address": p.address} if p.address else {"num_cpus": p.num_cpus, "num_gpus": p.num_gpus}
            ray.init(**options, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            return self._run(ray, units, job, progress)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray, units: Sequence, job: asdcore.Job, progress: bool) -> dict[str, asdcore.Outcome]:
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(_run_unit)
        dispatch = asdcore.Dispatch(units, progress, max(1, int(ray.cluster_resources().get("CPU", 1))))
        running: dict = {}  # object ref -> unit
        while not dispatch.finished:
            for unit in dispatch.ready():
                cpus, gpus = self.resources(unit, has_gpus)
                ref = task.options(num_cpus=cpus, num_gpus=gpus, max_retries=self.params.retries,
                                   name=unit.id).remote(job, unit)
                running[ref] = unit
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                unit = running.pop(ref)
                dispatch.finish(unit.id, _outcome(ray, ref, unit))
        return dispatch.outcomes

    def resources(self, unit, has_gpus: bool) -> tuple[float, float]:
        """(cpus, gpus) of ``unit``: built-in, then the config's ``default``, then its kind's entry."""
        cpus, gpus = 1.0, 1.0 if unit.needs_device and has_gpus else 0.0
        for entry in ("default", unit.kind):
            r = self.params.resources.get(entry)
            if r is not None:
                cpus = r.cpus if r.cpus is not None else cpus
                gpus = r.gpus if r.gpus is not None else gpus
        return cpus, gpus


def _run_unit(job: asdcore.Job, unit) -> asdcore.Outcome:
    worker_logging()
    return job(unit)


def _outcome(ray, ref, unit) -> asdcore.Outcome:
    try:
        return ray.get(ref)
    except Exception as exc:  # the worker died, the node was lost, or the task could not run
        error = f"its Ray task ended without a result ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        log.error("%s failed: %s", unit.id, error)
        return asdcore.Outcome(asdcore.FAILED, error=error, log=str(unit.log))
