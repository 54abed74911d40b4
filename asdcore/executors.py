"""Running units: :func:`perform` executes one unit under its lock, :func:`execute` runs a plan's units
on an executor and reports failures. The core's executor ``local`` is in :mod:`asdcore.local_executor`;
other executors (worker processes, SLURM job arrays, Ray tasks) come from plugins through the
``register_executors`` hook; each gets the units and a picklable ``job`` (see :class:`asdcore.Executor`).
"""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Mapping, Sequence
from functools import partial

from filelock import FileLock

from . import distributed
from .context import context_for
from .errors import UnitsFailedError, describe, exit_code
from .interfaces import BLOCKED, DONE, FAILED, SKIPPED, Executor, Job, Outcome
from .plan import Unit, upstream_runs
from .reductions import RUNNERS as REDUCTIONS
from .store import remove_temporaries
from .units import RUNNERS as STAGE_RUNNERS

log = logging.getLogger("asdcore")

RUNNERS = {**STAGE_RUNNERS, **REDUCTIONS}
LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(message)s"


def job_for(force: bool = False) -> Job:
    """The job that executors call: :func:`perform` with the run's ``force``."""
    return partial(perform, force=force)


def perform(unit: Unit, force: bool = False) -> Outcome:
    """Execute ``unit`` unless it is up to date, holding its lock: a second process on the same outputs
    waits for the lock and then finds the unit done. Temporaries of a killed earlier attempt are removed
    only under the lock, so a live process's temporaries are never touched. What it logs goes to
    ``unit.log`` too; an error becomes a ``failed`` outcome (the traceback is in the log)."""
    if distributed.launched_world() > 1 and not distributed.is_main():
        return _follow(unit)
    reason = "--force" if force else unit.stale_reason()
    if reason is None:
        return Outcome(SKIPPED)
    started = time.perf_counter()
    handler, level = None, log.level
    try:
        unit.log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(unit.log)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        log.addHandler(handler)
        if log.getEffectiveLevel() > logging.INFO:  # the unit's log has its progress whatever the console shows
            log.setLevel(logging.INFO)
        unit.lock.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(unit.lock):
            if not force and unit.stale_reason() is None:
                log.info("%s: done by another process", unit.id)
                return Outcome(SKIPPED)
            log.info("%s: running (%s)", unit.id, reason)
            remove_temporaries(unit.directory, (*unit.outputs, *unit.scratch))
            if force:
                for scratch in unit.scratch:
                    shutil.rmtree(unit.directory / scratch, ignore_errors=True)
            artifacts = _run(unit)
            unit.record.write(unit.key, unit.inputs, artifacts, upstream_runs(unit))
        return Outcome(DONE, time.perf_counter() - started, reason, log=str(unit.log))
    except Exception as exc:
        error = describe(exc)
        log.error("%s failed: %s", unit.id, error)
        if handler is not None:
            handler.stream.write(traceback.format_exc())
        return Outcome(FAILED, time.perf_counter() - started, reason, error, str(unit.log), exit_code(exc))
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        log.setLevel(level)


def _run(unit: Unit) -> list[str]:
    """The unit's runner in this process; a training on N > 1 devices in N new processes (rank 0 writes)."""
    context = context_for(unit.config, unit.config_key)
    devices = context.resolved.config.frontend.training.devices
    if unit.kind == "train" and devices > 1 and distributed.launched_world() == 1:
        distributed.spawn(_train_rank, (unit,), devices)
        return list(unit.outputs)
    return RUNNERS[unit.kind](unit, context)


def _train_rank(unit: Unit) -> None:
    """One process of a data-parallel training started by :func:`_run`; rank 0 logs to the unit's log."""
    if distributed.is_main():
        handler = logging.FileHandler(unit.log)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    RUNNERS["train"](unit, context_for(unit.config, unit.config_key))


def _follow(unit: Unit) -> Outcome:
    """A process other than rank 0 of a ``torchrun``/``srun`` launch: it takes part in the trainings and
    leaves every other unit, the records and the logs to rank 0."""
    if unit.kind != "train":
        return Outcome(SKIPPED)
    started = time.perf_counter()
    try:
        RUNNERS["train"](unit, context_for(unit.config, unit.config_key))
    except Exception as exc:
        return Outcome(FAILED, time.perf_counter() - started, error=f"rank {distributed.rank()}: {describe(exc)}",
                       exit_code=exit_code(exc))
    return Outcome(DONE, time.perf_counter() - started)


def execute(units: Sequence[Unit], reasons: Mapping[str, str | None], executor: Executor, force: bool = False,
            progress: bool = True) -> dict[str, Outcome]:
    """Run ``units`` on ``executor``: units that are up to date (``reasons``, from :meth:`Plan.reasons`, says
    None) are skipped here, the others are handed to the executor. Raises :class:`UnitsFailedError` naming
    every failed unit, its error and log file, after every unit that does not depend on a failed one has run."""
    stale = [u for u in units if reasons[u.id] is not None]
    outcomes = {u.id: Outcome(SKIPPED) for u in units if reasons[u.id] is None}
    outcomes.update(executor.run(stale, job_for(force), progress) if stale else {})
    outcomes = {u.id: outcomes[u.id] for u in units}
    done = sum(o.status == DONE for o in outcomes.values())
    log.info("%d units executed, %d up to date", done, sum(o.status == SKIPPED for o in outcomes.values()))
    failed = {uid: o for uid, o in outcomes.items() if o.status == FAILED}
    if failed:
        raise UnitsFailedError(failure_report(outcomes), outcomes)
    return outcomes


def failure_report(outcomes: dict[str, Outcome]) -> str:
    """The failed units (id, error, log file), the units they kept from running, and what to do."""
    failed = {uid: o for uid, o in outcomes.items() if o.status == FAILED}
    blocked = [uid for uid, o in outcomes.items() if o.status == BLOCKED]
    lines = [f"{len(failed)} of {len(outcomes)} units failed"
             + (f" and {len(blocked)} were not run because they depend on them" if blocked else "") + ":"]
    for uid, outcome in failed.items():
        lines.append(f"  {uid}: {outcome.error}" + (f"\n    log: {outcome.log}" if outcome.log else ""))
    lines.append("Units that do not depend on them have finished. Fix the cause and run the same command again: "
                 "it executes only the units that are missing or failed.")
    return "\n".join(lines)
