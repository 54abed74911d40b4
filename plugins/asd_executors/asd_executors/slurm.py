"""``slurm``: units as SLURM job arrays through submitit (its local and debug executors for testing)."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pydantic

import asdcore

from .common import KINDS, check_kinds, missing_extra, unit_root

log = logging.getLogger("asdcore")


class Resources(asdcore.Params):
    """What one unit's job asks for."""

    cpus: int | None = pydantic.Field(None, ge=1)
    gpus: int | None = pydantic.Field(None, ge=0)
    mem_gb: float | None = pydantic.Field(None, gt=0)
    time_min: int | None = pydantic.Field(None, ge=1)
    partition: str | None = None
    account: str | None = None
    sbatch: dict[str, Any] = {}  # further #SBATCH options, e.g. {constraint: a100, qos: high}


# Per unit kind, before the config's `default` and per-kind resources; the reductions are light.
BUILT_IN = {
    "train": Resources(cpus=8, gpus=1, mem_gb=32, time_min=720),
    "extract": Resources(cpus=8, gpus=1, mem_gb=32, time_min=120),
    "score": Resources(cpus=4, gpus=0, mem_gb=16, time_min=60),
    **{kind: Resources(cpus=1, gpus=0, mem_gb=8, time_min=30) for kind in ("evaluate", "summary", "plots", "table")},
}


class SlurmExecutor(asdcore.Executor):
    """Submits the units as SLURM job arrays with submitit (``pip install 'asd-executors[slurm]'``). Usage::

        executor:
          name: slurm
          params:
            max_parallel: 64
            resources:
              default: {partition: gpu, account: myproject}
              train: {gpus: 1, cpus: 8, mem_gb: 32, time_min: 720}

    This process submits each set of units that can start together, grouped by kind, as one job array
    (``max_parallel`` of its jobs at once), waits for them, then submits the units that depend on them:
    dependencies are honoured, a failed unit blocks only what depends on it. Every unit's job has its
    own log (``folder``, default ``<output>/.submitit``, plus the unit's own log in ``logs/``). A unit
    whose job is preempted or times out is requeued by submitit and resumes (training from its last
    checkpoint); after any other end, a rerun submits exactly the units that are missing or failed.
    ``cluster``: ``slurm``, ``local`` (submitit's local processes, no cluster), ``debug`` (in this
    process) or ``auto`` (SLURM where ``sbatch`` exists, else local).
    """

    class Params(asdcore.Params):
        cluster: Literal["auto", "slurm", "local", "debug"] = "auto"
        folder: str | None = None
        max_parallel: int = pydantic.Field(64, ge=1)
        poll_seconds: float = pydantic.Field(10.0, gt=0)
        job_name: str = "asdcore"
        resources: dict[str, Resources] = {}

        @pydantic.field_validator("resources")
        @classmethod
        def _known_kinds(cls, value: dict) -> dict:
            return check_kinds(value)

    def run(self, units: Sequence, job: asdcore.Job, progress: bool = True) -> dict[str, asdcore.Outcome]:
        try:
            import submitit

            from .slurm_job import UnitJob
        except ImportError:
            raise asdcore.ConfigError(missing_extra("slurm", "submitit")) from None
        p = self.params
        folder = Path(p.folder) if p.folder else unit_root(units) / ".submitit"
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=None if p.cluster == "auto" else p.cluster)
        local = executor.cluster != "slurm"
        dispatch = asdcore.Dispatch(units, progress, p.max_parallel)
        running: dict[Any, Any] = {}  # submitit job -> unit
        queue: list = []
        while not dispatch.finished:
            queue += dispatch.ready()
            room = p.max_parallel - len(running) if local else len(queue)
            start, queue = queue[:room], queue[room:]
            for kind in KINDS:
                group = [u for u in start if u.kind == kind]
                if group:
                    running.update(self._submit(executor, UnitJob(job), kind, group))
            if executor.cluster == "debug":
                finished = list(running)
            else:
                finished = [j for j in running if j.done()]
                if not finished:
                    time.sleep(min(p.poll_seconds, 0.2) if local else p.poll_seconds)
            for submitted in finished:
                unit = running.pop(submitted)
                dispatch.finish(unit.id, _outcome(submitted, unit))
        return dispatch.outcomes

    def _submit(self, executor, unit_job, kind: str, units: list) -> dict:
        r = self.resources(kind)
        executor.update_parameters(
            name=f"{self.params.job_name}-{kind}", cpus_per_task=r.cpus, gpus_per_node=r.gpus, mem_gb=r.mem_gb,
            timeout_min=r.time_min, slurm_partition=r.partition, slurm_account=r.account,
            slurm_additional_parameters=dict(r.sbatch), slurm_array_parallelism=self.params.max_parallel,
        )
        with executor.batch():
            jobs = [executor.submit(unit_job, unit) for unit in units]
        log.info("submitted %d %s unit(s) as job %s", len(units), kind, jobs[0].job_id.split("_")[0])
        return dict(zip(jobs, units))

    def resources(self, kind: str) -> Resources:
        """Built-in resources of ``kind``, then the config's ``default``, then its ``kind`` entry."""
        merged: dict[str, Any] = BUILT_IN[kind].model_dump(exclude_none=True)
        for entry in ("default", kind):
            if entry in self.params.resources:
                merged.update(self.params.resources[entry].model_dump(exclude_none=True, exclude_defaults=True))
        return Resources(**merged)


def _outcome(submitted, unit) -> asdcore.Outcome:
    try:
        return submitted.result()
    except Exception as exc:  # the job itself failed: killed, out of memory, cancelled, node failure
        error = f"its job {submitted.job_id} ended without a result ({type(exc).__name__}: {_first_line(exc)})"
        log.error("%s failed: %s", unit.id, error)
        return asdcore.Outcome(asdcore.FAILED, error=error, log=os.fspath(submitted.paths.stderr))


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else "no message"
