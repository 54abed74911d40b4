"""Score ensembles: the score files of several runs, backends or seeds on one dataset, combined per machine
type, written in the official formats and evaluated like a backend.

A member is one backend's results in one seed folder (``<output>/<pipeline>/<dataset>/seed<k>`` and backend
id); the rules (``mean``, ``mean_z``, ``min_z``, ``rank_mean``, with weights) are those of
:mod:`asdcore.combination`, applied to the members' test scores and cross-fitted training scores
(``anomaly_score_train.csv``).

The ensemble goes to ``<output>/<name>/<dataset>/<seeds>/<machine>/<id>/`` (``<seeds>``: ``seed<k>`` when
every member is of seed k, else e.g. ``seed0+1+2``), with decisions from the gamma threshold of the combined
training scores, ``evaluation.csv``, the seed folder's ``summary.csv`` and ``ensembles.json`` (rule and
members of each ensemble there), and the run's ``table.csv``/``table.md``, so that ``asdcore table`` shows it
next to the members.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import load_config, read_yaml
from .combination import check_rule, combine
from .context import Context
from .errors import ArtifactError, ConfigError
from .features import FeatureSet
from .registry import Registry, get_registry
from .store import write_text
from .submission import SCORES, TRAIN_KEY, read_groups, read_table, write_groups
from .table import write_summary, write_table
from .units import EVALUATION_JSON, TRAIN_SCORES, evaluate_scores, read_evaluation

ENSEMBLES_JSON = "ensembles.json"
_SEED = re.compile(r"^seed(\d+)$")


@dataclass(frozen=True)
class Member:
    """One backend's results in one seed folder; ``weight`` None: equal weights."""

    seed_dir: Path
    backend: str
    weight: float | None = None

    @classmethod
    def parse(cls, text: str) -> Member:
        """``SEED_DIR:BACKEND`` or ``SEED_DIR:BACKEND=WEIGHT``."""
        path, sep, rest = text.rpartition(":")
        backend, has_weight, weight = rest.partition("=")
        if not sep or not path or not backend:
            raise ConfigError(f"ensemble member {text!r}: expected SEED_DIR:BACKEND[=WEIGHT], "
                              "e.g. results/raw_spec/dcase2023/seed0:knn")
        try:
            return cls(Path(path), backend, float(weight) if has_weight else None)
        except ValueError:
            raise ConfigError(f"ensemble member {text!r}: weight {weight!r} is not a number") from None

    @property
    def seed(self) -> int:
        match = _SEED.match(self.seed_dir.name)
        if match is None:
            raise ArtifactError(f"{self.seed_dir}: not a seed folder <output>/<pipeline>/<dataset>/seed<k>")
        return int(match[1])

    def directory(self, machine: str) -> Path:
        return self.seed_dir / machine / self.backend

    def describe(self) -> dict:
        return {"seed_dir": str(self.seed_dir), "backend": self.backend, "weight": self.weight}


def seed_members(run_root: Path, backend: str) -> list[Member]:
    """Every seed folder of a run (``<output>/<pipeline>/<dataset>``) as members of ``backend``'s seed ensemble."""
    seeds = sorted((p for p in Path(run_root).iterdir() if _SEED.match(p.name) and p.is_dir()),
                   key=lambda p: int(p.name[4:]))
    if not seeds:
        raise ArtifactError(f"{run_root}: no seed<k> folders (expected <output>/<pipeline>/<dataset>)")
    return [Member(seed, backend) for seed in seeds]


def run_backends(run_root: Path) -> list[str]:
    """The backend (and fusion) ids of a run, from its saved config."""
    config = read_yaml(Path(run_root) / "config.yaml", "run config")
    return [b["id"] for b in config.get("backends", [])] + [f["id"] for f in config.get("fusions", [])]


def run_ensemble(members: Sequence[Member], rule: str, output: Path | None = None, name: str | None = None,
                 result_id: str | None = None, registry: Registry | None = None) -> Path:
    """Combine ``members`` by ``rule`` for every machine type they share, write and evaluate it; return the
    ensemble's seed folder (see the module docstring). ``output`` defaults to the first member's output
    root, ``name`` to ``ensemble``, ``result_id`` to the rule."""
    if not members:
        raise ConfigError("an ensemble needs at least one member")
    registry = registry or get_registry()
    context = _context(members, registry)
    first = members[0].seed_dir
    run_root = Path(output or first.parent.parent.parent) / (name or "ensemble") / first.parent.name
    seeds = sorted({m.seed for m in members})
    seed_dir = run_root / ("seed" + "+".join(map(str, seeds)))
    result_id = result_id or rule
    weights = None if all(m.weight is None for m in members) else [1.0 if m.weight is None else m.weight
                                                                    for m in members]
    check_rule(rule, weights, len(members))
    scorer = context.registry.create("scorers", context.resolved.scorer, path="scorer")
    for machine in _machines(members, context):
        _write_machine(context, scorer, members, rule, weights, machine, seed_dir / machine / result_id)
    _record(seed_dir, result_id, rule, members)
    _summarise(seed_dir, scorer)
    write_table(run_root, sorted(p for p in run_root.iterdir() if (p / "summary.csv").is_file()))
    return seed_dir


def _context(members: Sequence[Member], registry: Registry) -> Context:
    """The context of the first member's run; every member's run must be of the same dataset and scorer."""
    configs = {m.seed_dir.parent: read_yaml(m.seed_dir.parent / "config.yaml", "run config") for m in members}
    (first_root, first), *others = configs.items()
    for root, config in others:
        for key in ("dataset", "scorer"):
            if config.get(key) != first.get(key):
                raise ArtifactError(f"{root}: its {key} differs from that of {first_root}; an ensemble combines "
                                    f"results of one dataset and scorer")
    return Context.create(load_config(first, registry=registry), registry, progress=False)


def _machines(members: Sequence[Member], context: Context) -> list[str]:
    """The dataset's machine types that every member has scores of; a type some members lack is an error."""
    available = context.dataset.machines()
    have = {m: [machine for machine in available if (m.directory(machine) / TRAIN_SCORES).is_file()]
            for m in members}
    every = [machine for machine in available if all(machine in found for found in have.values())]
    partial = sorted({machine for found in have.values() for machine in found} - set(every))
    if partial:
        lacking = next(m for m in members if partial[0] not in have[m])
        raise ArtifactError(f"{lacking.directory(partial[0])}: no scores of {partial[0]}, which other members "
                            f"have (also missing somewhere: {', '.join(partial)}); run it first")
    if not every:
        raise ArtifactError(f"no machine type has scores of every member (looked for {TRAIN_SCORES} in "
                            f"{members[0].directory('<machine>')})")
    return every


def _write_machine(context: Context, scorer, members: Sequence[Member], rule: str, weights, machine: str,
                   directory: Path) -> None:
    clips = context.dataset.clips(machine, "test")
    test = FeatureSet(embedding=np.zeros((len(clips), 0)), path=[c.name for c in clips],
                      section=[c.section for c in clips], domain=[c.domain for c in clips],
                      is_anomaly=[c.is_anomaly for c in clips], attribute=[c.attribute for c in clips])
    groups = scorer.groups(machine, test)
    train_names = list(read_table(members[0].directory(machine) / TRAIN_SCORES, written=True))
    index = {TRAIN_KEY: np.arange(len(train_names))}
    test_scores = [read_groups(m.directory(machine), SCORES, groups, test.names, written=True) for m in members]
    train_scores = [read_groups(m.directory(machine), SCORES, index, train_names, written=True) for m in members]
    combined_test, combined_train = combine(rule, test_scores, train_scores, weights)
    shutil.rmtree(directory, ignore_errors=True)
    write_groups(directory, SCORES, groups, test.names, combined_test)
    write_groups(directory, SCORES, index, train_names, combined_train)
    evaluate_scores(directory, scorer, machine, test, lambda: context.dataset.subsets(machine),
                    context.resolved.config.evaluation.decision_percentile, f"ensemble {directory.name}")


def _record(seed_dir: Path, result_id: str, rule: str, members: Sequence[Member]) -> None:
    path = seed_dir / ENSEMBLES_JSON
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded[result_id] = {"rule": rule, "members": [m.describe() for m in members]}
    write_text(path, json.dumps(recorded, indent=1))


def _summarise(seed_dir: Path, scorer) -> None:
    """``summary.csv`` of every ensemble recorded in the seed folder."""
    results = {}
    for result_id in json.loads((seed_dir / ENSEMBLES_JSON).read_text()):
        paths = sorted(seed_dir.glob(f"*/{result_id}/{EVALUATION_JSON}"))
        evaluations = [read_evaluation(path) for path in paths]
        results[result_id] = (evaluations, scorer.aggregate(evaluations))
    write_summary(seed_dir / "summary.csv", results)
