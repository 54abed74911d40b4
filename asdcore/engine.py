"""The four stages (train, extract, score, evaluate) of a pipeline as a plan of units run by an executor.

A rerun executes exactly the units whose inputs changed (see :mod:`asdcore.plan`), whose outputs are
missing or were changed, or whose upstream units were redone; every unit writes its artifacts
atomically, then its record, so an interrupted run resumes without losing finished work.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from . import distributed
from .config import Resolved
from .context import Context, remember
from .errors import ArtifactError, AudioError, DatasetError, UnitsFailedError
from .executors import execute
from .interfaces import Executor, Outcome
from .local_executor import LocalExecutor
from .plan import STAGES, Plan, plan_pipeline
from .registry import Registry
from .store import write_json, write_text

__all__ = ["STAGES", "Pipeline", "explain"]


class Pipeline:
    """A resolved pipeline bound to its dataset: plans its units and runs them."""

    def __init__(self, context: Context):
        self.context = context
        self.outcomes: dict[str, Outcome] = {}  # of the last run: unit id -> what became of it
        remember(context)

    @classmethod
    def create(cls, resolved: Resolved, registry: Registry | None = None, progress: bool = True) -> Pipeline:
        return cls(Context.create(resolved, registry, progress))

    @property
    def resolved(self) -> Resolved:
        return self.context.resolved

    @property
    def dataset(self):
        return self.context.dataset

    @property
    def root(self) -> Path:
        return self.context.root

    def plan(self, verify_content: bool = False, prefix: str = "", dry_run: bool = False) -> Plan:
        """Every unit of the pipeline with its inputs and key (the data must be prepared). With ``dry_run``,
        data that cannot be read yet give a plan whose units say so instead of an error."""
        try:
            return plan_pipeline(self.context, verify_content, prefix)
        except (DatasetError, AudioError, OSError) as exc:
            if not dry_run:
                raise
            why = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else str(exc)
            return plan_pipeline(self.context, verify_content, prefix, missing=why)

    def explain(self, stages: Sequence[str] = STAGES, force: bool = False, verify_content: bool = False) -> list[str]:
        """One line per unit of ``stages``: whether a run would execute or skip it, and why."""
        plan = self.plan(verify_content, dry_run=True)
        return explain(plan, plan.reasons(force), stages)

    def executor(self) -> Executor:
        """The executor the config names (``executor: {name, params}``)."""
        r = self.resolved
        return self.context.registry.create("executors", r.config.executor.name, params=r.executor_params,
                                            path="executor.params")

    def prepare(self, force: bool = False) -> None:
        """Make the data ready and write the run's resolved config and plugin versions."""
        self.dataset.prepare(progress=self.context.progress, force=force)
        self.write_run_files()

    def write_run_files(self) -> None:
        """The run's resolved config and plugin versions, beside its results."""
        write_text(self.root / "config.yaml", yaml.safe_dump(self.context.config, sort_keys=False))
        write_json(self.root / "versions.json", self.context.registry.versions())

    def run(self, stages: Sequence[str] = STAGES, force: bool = False, verify_content: bool = False,
            executor: Executor | None = None) -> Path:
        """Run the units of ``stages`` (after checking that the units they need are up to date) on ``executor``
        (default: the config's). Failed units raise :class:`UnitsFailedError` once every other unit ran.

        Started by ``torchrun``/``srun`` in several processes, every process trains (data parallel) and
        rank 0 alone runs the other units in this process and writes every artifact."""
        launched = distributed.launched_world() > 1
        if launched:  # torchrun/srun started this command in several processes: rank 0 prepares, all train
            distributed.connect(self.context.device.type)
            if distributed.is_main():
                self.prepare(force)
            distributed.barrier()
        else:
            self.prepare(force)
        plan = self.plan(verify_content)
        selected = [u for u in plan if u.stage in stages]
        self._require_upstream(plan, selected)
        reasons = plan.reasons(force)
        self.outcomes = {}
        try:
            if launched:  # the trainings on every rank in the same order, then the rest on rank 0 alone
                try:
                    self.outcomes = execute([u for u in selected if u.kind == "train"], reasons, LocalExecutor(),
                                            force, self.context.progress)
                finally:
                    distributed.leave()
                selected, executor = [u for u in selected if u.kind != "train"], LocalExecutor()
            self.outcomes.update(execute(selected, reasons, executor or self.executor(), force,
                                         self.context.progress))
        except UnitsFailedError as exc:
            self.outcomes.update(exc.outcomes)
            raise
        return self.root

    @staticmethod
    def _require_upstream(plan: Plan, selected: list) -> None:
        chosen = {u.id for u in selected}
        for unit in selected:
            for dep in unit.deps:
                upstream = plan[dep]
                reason = None if dep in chosen else upstream.stale_reason()
                if reason is not None:
                    raise ArtifactError(
                        f"{upstream.id}: the {upstream.stage} stage's output is missing or stale "
                        f"({upstream.record.path}: {reason}); run `asdcore {upstream.stage}` (or `asdcore run`) first"
                    )


def explain(plan: Plan, reasons: dict[str, str | None], stages: Sequence[str] = STAGES) -> list[str]:
    """``run|skip  <unit>  <why>`` for each unit of ``stages``."""
    units = [u for u in plan if u.stage in stages]
    width = max((len(u.id) for u in units), default=0)
    return [f"{'run ' if reasons[u.id] else 'skip'}  {u.id:<{width}}  {reasons[u.id] or 'up to date'}" for u in units]
