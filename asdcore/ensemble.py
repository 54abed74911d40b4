"""Score ensembles: the score files of several runs, backends or seeds on one dataset, combined per machine
type, written in the official formats and evaluated like a backend.

A member is one backend's results in one seed folder (``<output>/<pipeline>/<dataset>/seed<k>`` and backend
id). Per machine type and clip, with member m's test scores s_m and training scores t_m (the cross-fitted
``anomaly_score_train.csv``) and weights w_m normalised to sum 1:

* ``mean``: Σ w_m s_m, the raw scores.
* ``mean_z``: Σ w_m z_m with z_m = (s_m − mean(t_m)) / std(t_m), each member z-normalised by its own
  training scores.
* ``min_z``: min_m z_m (no weights).
* ``rank_mean``: Σ w_m r_m with r_m = (rank of s_m among member m's test scores − 1) / (n − 1), ties
  averaged. Training scores are placed on the same scale by their position among the test scores, which
  uses the test scores' distribution (never their labels).

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
from .context import Context
from .errors import ArtifactError, ConfigError
from .features import FeatureSet
from .registry import Registry, get_registry
from .store import write_text
from .submission import SCORES, TRAIN_KEY, read_groups, read_table, write_groups
from .table import write_summary, write_table
from .units import EVALUATION_JSON, TRAIN_SCORES, evaluate_scores, read_evaluation

RULES = ("mean", "mean_z", "min_z", "rank_mean")
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


def combine(rule: str, test: Sequence[np.ndarray], train: Sequence[np.ndarray],
            weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The combined (test, train) scores of members' score arrays by ``rule`` (see the module docstring)."""
    w = check_rule(rule, weights, len(test))
    if rule == "mean":
        parts = [(s, t) for s, t in zip(test, train)]
    elif rule == "rank_mean":
        parts = [_ranks(s, t) for s, t in zip(test, train)]
    else:
        parts = [_z(s, t) for s, t in zip(test, train)]
    if rule == "min_z":
        return np.min([p[0] for p in parts], axis=0), np.min([p[1] for p in parts], axis=0)
    return (np.tensordot(w, np.asarray([p[0] for p in parts]), axes=1),
            np.tensordot(w, np.asarray([p[1] for p in parts]), axes=1))


def check_rule(rule: str, weights: Sequence[float] | None, n: int) -> np.ndarray:
    """The weights of ``n`` members normalised to sum 1 (equal when None); an unknown rule, weights for
    ``min_z`` or unusable weights are a ConfigError."""
    if rule not in RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}; rules: {', '.join(RULES)}")
    if weights is None:
        return np.full(n, 1.0 / n)
    if rule == "min_z":
        raise ConfigError("the min_z rule takes no weights")
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != n or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"ensemble weights {list(weights)}: need {n} non-negative numbers with a positive sum")
    return w / w.sum()


def _z(test: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = float(np.mean(train)), float(np.std(train))
    if not std > 0:
        raise ArtifactError("a member's training scores are constant, so they cannot be z-normalised")
    return (test - mean) / std, (train - mean) / std


def _ranks(test: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank − 1) / (n − 1) with ties averaged; a training score's rank is its average insertion position
    among the sorted test scores, on the same scale."""
    ordered = np.sort(test)
    scale = max(len(test) - 1, 1)

    def position(values: np.ndarray) -> np.ndarray:
        below = np.searchsorted(ordered, values, side="left")
        upto = np.searchsorted(ordered, values, side="right")
        return (below + upto - 1) / 2 / scale

    return position(test), position(train)


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
    train_names = list(read_table(members[0].directory(machine) / TRAIN_SCORES))
    index = {TRAIN_KEY: np.arange(len(train_names))}
    test_scores = [read_groups(m.directory(machine), SCORES, groups, test.names) for m in members]
    train_scores = [read_groups(m.directory(machine), SCORES, index, train_names) for m in members]
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
