"""The four stages (train, extract, score, evaluate) of a pipeline as a plan of units run by an executor.

A rerun executes exactly the units whose inputs changed (see :mod:`asdcore.plan`), whose outputs are
missing or were changed, or whose upstream units were redone; every unit writes its artifacts
atomically, then its record, so an interrupted run resumes without losing finished work.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import yaml

from .config import Resolved
from .context import Context, remember
from .errors import ArtifactError
from .executors import Executor, LocalExecutor, Outcome, job_for
from .plan import STAGES, Plan, plan_pipeline
from .registry import Registry
from .store import write_json, write_text

log = logging.getLogger("asdcore")

__all__ = ["STAGES", "Pipeline"]


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

    def plan(self, verify_content: bool = False) -> Plan:
        """Every unit of the pipeline with its inputs and key (the data must be prepared)."""
        return plan_pipeline(self.context, verify_content)

    def explain(self, stages: Sequence[str] = STAGES, force: bool = False, verify_content: bool = False) -> list[str]:
        """One line per unit of ``stages``: whether a run would execute or skip it, and why."""
        plan = self.plan(verify_content)
        reasons = plan.reasons(force)
        width = max(len(u.id) for u in plan)
        return [f"{'run ' if reasons[u.id] else 'skip'}  {u.id:<{width}}  {reasons[u.id] or 'up to date'}"
                for u in plan if u.stage in stages]

    def run(self, stages: Sequence[str] = STAGES, force: bool = False, verify_content: bool = False,
            executor: Executor | None = None) -> Path:
        """Run the units of ``stages`` (after checking that the units they need are up to date)."""
        self.dataset.prepare(progress=self.context.progress, force=force)
        write_text(self.root / "config.yaml", yaml.safe_dump(self.context.config, sort_keys=False))
        write_json(self.root / "versions.json", self.context.registry.versions())
        plan = self.plan(verify_content)
        selected = [u for u in plan if u.stage in stages]
        self._require_upstream(plan, selected)
        self.outcomes = (executor or LocalExecutor()).run(selected, job_for(force))
        _log_totals(self.outcomes)
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


def _log_totals(outcomes: dict[str, Outcome]) -> None:
    done = [o for o in outcomes.values() if o.status == "done"]
    log.info("%d units executed, %d up to date", len(done), len(outcomes) - len(done))
