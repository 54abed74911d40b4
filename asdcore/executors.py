"""Executors run the units of a plan; :func:`perform` runs one unit under its lock.

The interface is small so that other engines can plug in (worker processes, SLURM job arrays, Ray
tasks): an executor gets the units, in an order where each comes after its ``deps``, and a
picklable ``job``; it calls ``job(unit)`` for each unit once its upstream units have finished and
returns ``unit id -> Outcome``. A unit needs nothing but itself to execute (its config is plain
data, its artifacts and records go through the filesystem), so ``job`` may run in another process or
on another host that shares the filesystem.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from filelock import FileLock

from .context import context_for
from .plan import Unit, upstream_runs
from .reductions import RUNNERS as REDUCTIONS
from .store import remove_temporaries
from .units import RUNNERS as STAGE_RUNNERS

log = logging.getLogger("asdcore")

RUNNERS = {**STAGE_RUNNERS, **REDUCTIONS}
DONE, SKIPPED = "done", "skipped"


@dataclass(frozen=True)
class Outcome:
    """What became of a unit: ``done`` (executed) or ``skipped`` (up to date), and its seconds."""

    status: str
    seconds: float = 0.0
    reason: str | None = None


Job = Callable[[Unit], Outcome]


class Executor:
    """Runs units in dependency order. Subclasses implement :meth:`run`."""


    def run(self, units: Sequence[Unit], job: Job) -> dict[str, Outcome]:
        raise NotImplementedError


class LocalExecutor(Executor):
    """Runs the units one after another in this process; the first failure stops the run and is raised."""


    def run(self, units: Sequence[Unit], job: Job) -> dict[str, Outcome]:
        return {unit.id: job(unit) for unit in units}


def job_for(force: bool = False) -> Job:
    """The job that executors call: :func:`perform` with the run's ``force``."""
    return partial(perform, force=force)


def perform(unit: Unit, force: bool = False) -> Outcome:
    """Execute ``unit`` unless it is up to date, holding its lock: a second process on the same outputs
    waits for the lock and then finds the unit done. Temporaries of a killed earlier attempt are removed
    only under the lock, so a live process's temporaries are never touched."""
    reason = "--force" if force else unit.stale_reason()
    if reason is None:
        return Outcome(SKIPPED)
    unit.lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(unit.lock):
        if not force and unit.stale_reason() is None:
            log.info("%s: done by another process", unit.id)
            return Outcome(SKIPPED)
        log.info("%s: running (%s)", unit.id, reason)
        started = time.perf_counter()
        remove_temporaries(unit.directory, (*unit.outputs, *unit.scratch))
        if force:
            for scratch in unit.scratch:
                shutil.rmtree(unit.directory / scratch, ignore_errors=True)
        artifacts = RUNNERS[unit.kind](unit, context_for(unit.config, unit.config_key))
        unit.record.write(unit.key, unit.inputs, artifacts, upstream_runs(unit))
        return Outcome(DONE, time.perf_counter() - started, reason)
