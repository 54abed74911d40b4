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

from .common import KINDS, require, resource_table, unit_root

log = logging.getLogger("asdcore")
DEFAULT_PARALLEL = 64  # array tasks at once on a SLURM cluster


class Resources(asdcore.Params):
    """What one unit's job asks for."""

    cpus: int | None = pydantic.Field(None, ge=1)
    gpus: int | None = pydantic.Field(None, ge=0)
    mem_gb: float | None = pydantic.Field(None, gt=0)
    time_min: int | None = pydantic.Field(None, ge=1)
    partition: str | None = None
    account: str | None = None
    sbatch: dict[str, Any] = {}  # further #SBATCH options, e.g. {constraint: a100, qos: high}
    units_per_job: int | None = pydantic.Field(None, ge=1)  # light units share a job, one after another


# Per unit kind, before the config's `default` and per-kind resources; the reductions are light and
# take a fraction of a second each, so several share one job.
BUILT_IN = {
    "train": Resources(cpus=8, gpus=1, mem_gb=32, time_min=720, units_per_job=1),
    "extract": Resources(cpus=8, gpus=1, mem_gb=32, time_min=120, units_per_job=1),
    "score": Resources(cpus=4, gpus=0, mem_gb=16, time_min=60, units_per_job=1),
    **{kind: Resources(cpus=1, gpus=0, mem_gb=8, time_min=30, units_per_job=16)
       for kind in ("evaluate", "summary", "plots", "table")},
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
    (``max_parallel`` of its jobs at once; default 64, on a local cluster the number of cores), waits for them, then submits the units that depend on them:
    dependencies are honoured, a failed unit blocks only what depends on it. Up to ``units_per_job``
    units of a kind share a job (built in: 16 for evaluations and reductions, which take a fraction of
    a second each, else 1). Every unit's job has its
    own log (``folder``, default ``<output>/.submitit``, plus the unit's own log in ``logs/``). A unit
    whose job is preempted or times out is requeued by submitit and resumes (training from its last
    checkpoint); after any other end, a rerun submits exactly the units that are missing or failed.
    ``cluster``: ``slurm``, ``local`` (submitit's local processes, no cluster), ``debug`` (in this
    process) or ``auto`` (SLURM where ``sbatch`` exists, else local).
    """

    class Params(asdcore.Params):
        cluster: Literal["auto", "slurm", "local", "debug"] = "auto"
        folder: str | None = None
        max_parallel: int | None = pydantic.Field(None, ge=1)
        poll_seconds: float = pydantic.Field(10.0, gt=0)
        job_name: str = "asdcore"
        resources: resource_table(Resources) = {}

    def run(self, units: Sequence, job: asdcore.Job, progress: bool = True) -> dict[str, asdcore.Outcome]:
        submitit = require("submitit", "slurm")
        p = self.params
        folder = Path(p.folder) if p.folder else unit_root(units) / ".submitit"
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=None if p.cluster == "auto" else p.cluster)
        parallel = p.max_parallel or {"slurm": DEFAULT_PARALLEL, "local": os.cpu_count() or 1}.get(executor.cluster, 1)
        dispatch = asdcore.Dispatch(units, progress, parallel)
        running: dict[Any, list] = {}  # submitit job -> its units
        queue: list = []
        while not dispatch.finished:
            queue = self._start(executor, job, queue + dispatch.ready(), running, parallel)
            for submitted in self._finished(executor, running):
                chunk = running.pop(submitted)
                for unit, outcome in zip(chunk, _outcomes(submitted, chunk)):
                    dispatch.finish(unit.id, outcome)
        return dispatch.outcomes

    def _start(self, executor, job: asdcore.Job, queue: list, running: dict, parallel: int) -> list:
        """Submit the queued units, a job array per kind (``units_per_job`` units a job); on a local
        cluster, which starts every job it is given at once, only as many as may run. Returns the rest."""
        from .slurm_job import UnitJob  # needs submitit

        cluster = executor.cluster  # slurm, local (a process per job on this machine) or debug (in this process)
        for kind in KINDS:
            group = [u for u in queue if u.kind == kind]
            size = self.resources(kind).units_per_job
            jobs = [group[i:i + size] for i in range(0, len(group), size)]
            if cluster == "local":
                jobs = jobs[:max(0, parallel - len(running))]
            if jobs:
                threads = {"slurm": self.resources(kind).cpus,
                           "local": max(1, (os.cpu_count() or 1) // parallel)}.get(cluster)
                running.update(self._submit(executor, UnitJob(job, threads), kind, jobs, parallel))
                taken = {unit.id for chunk in jobs for unit in chunk}
                queue = [u for u in queue if u.id not in taken]
        return queue

    def _finished(self, executor, running: dict) -> list:
        """The jobs that ended (debug jobs run now, in this process); waits ``poll_seconds`` when none did."""
        if executor.cluster == "debug":
            return list(running)
        finished = [j for j in running if j.done()]
        if not finished:
            time.sleep(self.params.poll_seconds if executor.cluster == "slurm" else min(self.params.poll_seconds, 0.2))
        return finished

    def _submit(self, executor, unit_job, kind: str, jobs: list[list], parallel: int) -> dict:
        r = self.resources(kind)
        executor.update_parameters(
            name=f"{self.params.job_name}-{kind}", cpus_per_task=r.cpus, gpus_per_node=r.gpus, mem_gb=r.mem_gb,
            timeout_min=r.time_min, slurm_partition=r.partition, slurm_account=r.account,
            slurm_additional_parameters=dict(r.sbatch), slurm_array_parallelism=parallel,
        )
        with executor.batch():
            submitted = [executor.submit(unit_job, chunk) for chunk in jobs]
        log.info("submitted %d %s unit(s) in %d job(s) of array %s", sum(map(len, jobs)), kind, len(jobs),
                 submitted[0].job_id.split("_")[0])
        return dict(zip(submitted, jobs))

    def resources(self, kind: str) -> Resources:
        """Built-in resources of ``kind``, then the config's ``default``, then its ``kind`` entry."""
        merged: dict[str, Any] = BUILT_IN[kind].model_dump(exclude_none=True)
        for entry in ("default", kind):
            if entry in self.params.resources:
                merged.update(self.params.resources[entry].model_dump(exclude_none=True, exclude_defaults=True))
        return Resources(**merged)


def _outcomes(submitted, chunk: list) -> list[asdcore.Outcome]:
    try:
        return submitted.result()
    except Exception as exc:  # the job itself failed: killed, out of memory, cancelled, node failure
        error = f"its job {submitted.job_id} ended without a result ({type(exc).__name__}: {_first_line(exc)})"
        for unit in chunk:
            log.error("%s failed: %s", unit.id, error)
        return [asdcore.Outcome(asdcore.FAILED, error=error, log=os.fspath(submitted.paths.stderr))] * len(chunk)


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else "no message"
