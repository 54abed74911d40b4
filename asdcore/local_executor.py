"""``local``, the core's executor: the units one after another in this process."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pydantic

from .dispatch import Dispatch
from .interfaces import Executor, Job, Outcome
from .params import Params

if TYPE_CHECKING:
    from .plan import Unit


class LocalExecutor(Executor):
    """Runs the units one after another in this process, in plan order. Usage::

        executor: {name: local, params: {threads: 1}}

    ``threads``: torch's threads while the units run (default: as torch chose, all cores). Training on
    the CPU gives bitwise the same results only with the same number of threads, so give every executor
    whose results are compared the same count (``processes``: ``threads``; ``slurm``, ``ray``: ``cpus``).
    """

    class Params(Params):
        threads: int | None = pydantic.Field(None, ge=1)

    def __init__(self, params: Params | None = None):
        super().__init__(params or self.Params())

    def run(self, units: Sequence[Unit], job: Job, progress: bool = True) -> dict[str, Outcome]:
        with _torch_threads(self.params.threads):
            dispatch = Dispatch(units, progress)
            for unit in units:  # each comes after its upstream units
                if unit.id not in dispatch.outcomes:  # else blocked by a failed upstream unit
                    dispatch.started.add(unit.id)
                    dispatch.finish(unit.id, job(unit))
        return dispatch.outcomes


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
