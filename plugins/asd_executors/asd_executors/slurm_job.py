"""The callable submitit runs for a unit; preempted or timed-out jobs are requeued (submitit's checkpointing)."""
from __future__ import annotations

import submitit

import asdcore

from .common import worker_logging


class UnitJob(submitit.helpers.Checkpointable):
    """Runs ``job(unit)`` in the SLURM job. On preemption or time-out submitit calls :meth:`checkpoint`,
    whose default resubmits the same unit: units are idempotent, and training continues from its last
    epoch checkpoint."""

    def __init__(self, job: asdcore.Job):
        self.job = job

    def __call__(self, unit) -> asdcore.Outcome:
        worker_logging()
        return self.job(unit)
