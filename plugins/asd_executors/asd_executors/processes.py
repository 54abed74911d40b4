"""``processes``: units in worker processes on this machine, each unit that runs a model on a GPU slot."""
from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import pydantic

import asdcore

from .common import limit_threads

log = logging.getLogger("asdcore")

CPU = "cpu"
DIED = ("its worker process ended abruptly (killed, or out of memory) while it ran; "
        "the units running beside it on that pool were stopped too")


class ProcessesExecutor(asdcore.Executor):
    """Runs units in worker processes (started once, reused for many units) on this machine. Usage::

        executor: {name: processes, params: {workers: 4, units_per_gpu: 2}}

    ``workers`` processes run the units that need no device (scores, evaluations, reductions; every unit
    when there is no GPU). Where GPUs are present, each GPU gets ``units_per_gpu`` processes of its own
    that see only it (``CUDA_VISIBLE_DEVICES``) and run the units that run a model (train, extract), so
    small models can share a GPU. ``gpus`` overrides the number of GPUs found (0: use none);
    ``threads`` sets torch's threads per process (default: the cores divided among the processes
    that run at once). A worker that dies fails the units running on its pool; the run goes on.
    """

    class Params(asdcore.Params):
        workers: int | None = pydantic.Field(None, ge=1)
        units_per_gpu: int = pydantic.Field(1, ge=1)
        gpus: int | None = pydantic.Field(None, ge=0)
        threads: int | None = pydantic.Field(None, ge=1)

    def run(self, units: Sequence, job: asdcore.Job, progress: bool = True) -> dict[str, asdcore.Outcome]:
        slots = self.slots()
        dispatch = asdcore.Dispatch(units, progress, sum(s.capacity for s in slots))
        queue: deque = deque()
        running: dict[Future, tuple] = {}
        try:
            while not dispatch.finished:
                queue.extend(dispatch.ready())
                for unit in list(queue):
                    slot = _slot_for(unit, slots)
                    if slot is not None:
                        queue.remove(unit)
                        running[slot.submit(job, unit)] = (unit, slot)
                if not running:
                    raise RuntimeError(f"no unit can start; waiting: {', '.join(u.id for u in queue)}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    unit, slot = running.pop(future)
                    slot.busy -= 1
                    dispatch.finish(unit.id, _outcome(future, unit, slot))
        finally:
            for slot in slots:
                slot.close()
        return dispatch.outcomes

    def slots(self) -> list[Slot]:
        """One slot for the units without a device, and one per GPU for the units that run a model."""
        p = self.params
        gpus = visible_gpus(p.gpus)
        workers = p.workers or os.cpu_count() or 1
        threads = p.threads or max(1, (os.cpu_count() or 1) // (workers + len(gpus) * p.units_per_gpu))
        slots = [Slot(CPU, workers, {}, threads)]
        slots += [Slot(f"gpu{gpu}", p.units_per_gpu, {"CUDA_VISIBLE_DEVICES": gpu}, threads) for gpu in gpus]
        return slots


def visible_gpus(count: int | None) -> list[str]:
    """The ids to put in ``CUDA_VISIBLE_DEVICES`` for each GPU: those the parent may use (its own
    ``CUDA_VISIBLE_DEVICES``, or 0..n-1), the first ``count`` of them when ``count`` is given."""
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [g.strip() for g in inherited.split(",") if g.strip()] if inherited is not None else None
    if count is None:
        return ids if ids is not None else [str(i) for i in range(_device_count())]
    return (ids if ids is not None and len(ids) >= count else [str(i) for i in range(count)])[:count]


def _device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass
class Slot:
    """A pool of worker processes with its own environment; ``capacity`` units run on it at once."""

    name: str
    capacity: int
    env: dict[str, str]
    threads: int
    busy: int = 0
    pool: ProcessPoolExecutor | None = field(default=None, repr=False)

    def submit(self, job: asdcore.Job, unit) -> Future:
        if self.pool is None:
            context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked processes
            level = min((h.level for h in logging.getLogger().handlers), default=logging.WARNING)
            self.pool = ProcessPoolExecutor(self.capacity, context, initializer=_start_worker,
                                            initargs=(self.env, self.threads, level))
        self.busy += 1
        return self.pool.submit(job, unit)

    def restart(self) -> None:
        """Drop a pool whose worker died (the next unit starts a new one)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _slot_for(unit, slots: list[Slot]) -> Slot | None:
    """The GPU slot with the most room for a unit that runs a model (where there are GPUs), else the CPU slot."""
    gpu = [s for s in slots[1:] if s.busy < s.capacity]
    if unit.needs_device and len(slots) > 1:
        return min(gpu, key=lambda s: s.busy) if gpu else None
    return slots[0] if slots[0].busy < slots[0].capacity else None


def _outcome(future: Future, unit, slot: Slot) -> asdcore.Outcome:
    try:
        return future.result()
    except BrokenProcessPool:
        slot.restart()
        log.error("%s failed: %s", unit.id, DIED)
        return asdcore.Outcome(asdcore.FAILED, error=DIED, log=str(unit.log))
    except Exception as exc:  # the unit could not be sent to or returned from the worker
        log.error("%s failed: %s: %s", unit.id, type(exc).__name__, exc)
        return asdcore.Outcome(asdcore.FAILED, error=f"{type(exc).__name__}: {exc}", log=str(unit.log))


def _start_worker(env: dict[str, str], threads: int, level: int) -> None:
    os.environ.update(env)
    handler = logging.StreamHandler()
    handler.setLevel(level)  # what the console of the parent shows
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler])
    limit_threads(threads)
