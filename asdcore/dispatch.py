"""Dependency bookkeeping and the overall progress display shared by every executor."""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from .interfaces import BLOCKED, DONE, FAILED, Outcome

if TYPE_CHECKING:
    from .plan import Unit


class Dispatch:
    """Which units may start now, which finished, failed, or cannot run because an upstream unit failed.

    An executor asks :meth:`ready` for the units whose dependencies (among ``units``) are done, starts
    them, and reports each end with :meth:`finish`; a failed unit blocks everything downstream of it and
    nothing else. With ``progress`` a bar shows units done / running / failed / total and an estimate of
    the time left (per unit kind, the mean time of the units of that kind executed so far, spread over
    ``slots`` units running at once).
    """

    def __init__(self, units: Sequence[Unit], progress: bool = True, slots: int = 1):
        self.units = {u.id: u for u in units}
        self.waiting = {u.id: {d for d in u.deps if d in self.units} for u in units}
        self.downstream: dict[str, list[str]] = {uid: [] for uid in self.units}
        for unit in units:
            for dep in self.waiting[unit.id]:
                self.downstream[dep].append(unit.id)
        self.started: set[str] = set()
        self.outcomes: dict[str, Outcome] = {}
        self.slots = max(1, slots)
        self._bar = tqdm(total=len(self.units), desc="units", unit="unit", disable=not progress or not self.units,
                         file=sys.stderr, dynamic_ncols=True)
        self._began = time.monotonic()

    @property
    def finished(self) -> bool:
        return len(self.outcomes) == len(self.units)

    @property
    def running(self) -> list[str]:
        return [uid for uid in self.started if uid not in self.outcomes]

    def ready(self) -> list[Unit]:
        """The units that may start now (in plan order), each handed out once."""
        out = [u for uid, u in self.units.items() if uid not in self.started and not self.waiting[uid]]
        self.started.update(u.id for u in out)
        self._show()
        return out

    def finish(self, unit_id: str, outcome: Outcome) -> None:
        """Record the end of a unit; a failure blocks every unit downstream of it."""
        self.outcomes[unit_id] = outcome
        self._bar.update(1)
        if outcome.status == FAILED:
            self._block(unit_id)
        else:
            for child in self.downstream[unit_id]:
                self.waiting[child].discard(unit_id)
        self._show()
        if self.finished:
            self._bar.close()

    def _block(self, failed: str) -> None:
        stack = list(self.downstream[failed])
        while stack:
            uid = stack.pop()
            if uid in self.outcomes:
                continue
            self.outcomes[uid] = Outcome(BLOCKED, reason=f"upstream {failed} failed")
            self.started.add(uid)
            self._bar.update(1)
            stack.extend(self.downstream[uid])

    def estimate(self) -> float | None:
        """Seconds left: each unit not yet finished costs the mean time of executed units of its kind
        (of all kinds when none of its kind ran yet), spread over ``slots``; None before any unit ran."""
        durations: dict[str, list[float]] = {}
        for uid, outcome in self.outcomes.items():
            if outcome.status == DONE:
                durations.setdefault(self.units[uid].kind, []).append(outcome.seconds)
        if not durations:
            return None
        every = [s for values in durations.values() for s in values]
        overall = sum(every) / len(every)
        means = {kind: sum(v) / len(v) for kind, v in durations.items()}
        left = [means.get(u.kind, overall) for uid, u in self.units.items() if uid not in self.outcomes]
        return sum(left) / self.slots

    def _show(self) -> None:
        if self._bar.disable:
            return
        failed = sum(o.status == FAILED for o in self.outcomes.values())
        blocked = sum(o.status == BLOCKED for o in self.outcomes.values())
        done = len(self.outcomes) - failed - blocked
        left = self.estimate()
        eta = "?" if left is None else _duration(left)
        self._bar.set_postfix_str(f"done {done}, running {len(self.running)}, failed {failed}"
                                  + (f" (+{blocked} blocked)" if blocked else "")
                                  + f", of {len(self.units)}; ~{eta} left", refresh=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
