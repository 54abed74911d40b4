"""``local``, the core's executor: the units one after another in this process."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .dispatch import Dispatch
from .interfaces import Executor, Job, Outcome
from .params import Params

if TYPE_CHECKING:
    from .plan import Unit


class LocalExecutor(Executor):
    """Runs the units one after another in this process, in plan order. Usage: ``executor: {name: local}``."""

    class Params(Params):
        pass

    def __init__(self, params: Params | None = None):
        super().__init__(params or self.Params())

    def run(self, units: Sequence[Unit], job: Job, progress: bool = True) -> dict[str, Outcome]:
        dispatch = Dispatch(units, progress)
        for unit in units:  # each comes after its upstream units
            if unit.id not in dispatch.outcomes:  # else blocked by a failed upstream unit
                dispatch.started.add(unit.id)
                dispatch.finish(unit.id, job(unit))
        return dispatch.outcomes
