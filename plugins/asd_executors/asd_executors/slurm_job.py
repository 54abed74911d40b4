"""The callable submitit runs for a unit; preempted or timed-out jobs are requeued (submitit's checkpointing)."""
from __future__ import annotations

import submitit

import asdcore

from .common import limit_threads, worker_logging


class UnitJob(submitit.helpers.Checkpointable):
    """Runs ``job(unit)`` for each of its units, one after another, in the SLURM job. On preemption or
    time-out submitit calls :meth:`checkpoint`, whose default resubmits the same units: units are
    idempotent (finished ones are found up to date), and training continues from its last epoch checkpoint."""

    def __init__(self, job: asdcore.Job, threads: int | None):
        self.job = job
        self.threads = threads  # None: leave them (a debug job runs in the submitting process)

    def __call__(self, units: list) -> list[asdcore.Outcome]:
        worker_logging()
        if self.threads is not None:
            limit_threads(self.threads)
        return [self.job(unit) for unit in units]
