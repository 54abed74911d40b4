"""Grids: recipes (pipeline files) × datasets × seeds as one plan, run by one executor, ending with the
overview table (per recipe and backend, each dataset subset's mean ± std over seeds, hmean and amean).

```yaml
name: demo                     # the table goes to <output>/grids/<name>/overview.{csv,md}
recipes:                       # pipeline files, relative to this file; `set:` for one recipe alone
  - ../demo.yaml
  - {file: ../ae.yaml, set: {frontend.training.epochs: 5}}
datasets:                      # dataset blocks replacing each recipe's `dataset` (default: the recipe's own)
  - {name: synth, root: data/synth-demo}
seeds: [0, 1]                  # default: each recipe's own seeds
set: {evaluation.plots: false} # overrides applied to every pipeline (key path -> value)
output: results
executor: {name: processes, params: {workers: 2}}
metric: official               # the overview's metric
seed_ensemble: null            # mean_z, min_z, rank_mean or mean: each recipe's seeds also as one ensemble
```
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from .config import Component, DatasetConfig, Resolved, expand_path, load_config, read_yaml, set_value
from .context import Context
from .engine import STAGES, Pipeline, explain
from .ensemble import Member, run_ensemble
from .errors import ConfigError, UnitsFailedError
from .executors import execute
from .interfaces import Executor, Outcome
from .overview import collect, overview, write_overview
from .params import Params, validate
from .plan import Plan, Unit
from .registry import Registry, get_registry
from .store import fingerprint, write_text

log = logging.getLogger("asdcore")

GRIDS = "grids"


class Recipe(Params):
    file: str
    set: dict[str, Any] = {}


class GridConfig(Params):
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.-]+$")
    recipes: list[Recipe | str] = pydantic.Field(min_length=1)
    datasets: list[DatasetConfig] | None = pydantic.Field(None, min_length=1)
    seeds: list[int] | None = pydantic.Field(None, min_length=1)
    set: dict[str, Any] = {}
    output: str = "results"
    executor: Component = Component(name="local")
    metric: str = "official"
    seed_ensemble: Literal["mean", "mean_z", "min_z", "rank_mean"] | None = None


@dataclass
class GridResult:
    """What a grid run left: the overview (markdown, or None when no seed finished), where it is, the
    seed runs it lacks, every unit's outcome, and the failure (None when every unit succeeded)."""

    markdown: str | None
    folder: Path
    missing: list[str]
    outcomes: dict[str, Outcome]
    failure: UnitsFailedError | None = None


@dataclass
class Grid:
    """The pipelines of a grid, bound to their datasets; plans them as one graph and runs it."""

    config: GridConfig
    pipelines: list[Pipeline]

    @property
    def folder(self) -> Path:
        """``<output>/grids/<name>``, in the output of the pipelines (``--set output=…`` moves both)."""
        return Path(self.resolved.config.output) / GRIDS / self.config.name

    @property
    def resolved(self) -> Resolved:
        """The first pipeline's resolved config (every pipeline has the grid's executor and output)."""
        return self.pipelines[0].resolved

    def executor(self) -> Executor:
        return self.pipelines[0].executor()

    def prepare(self, force: bool = False) -> None:
        """Make each distinct dataset ready once, then write every pipeline's config and versions."""
        prepared: set[str] = set()
        for pipeline in self.pipelines:
            key = fingerprint(pipeline.context.config["dataset"])
            if key not in prepared:
                pipeline.dataset.prepare(progress=pipeline.context.progress, force=force)
                prepared.add(key)
        for pipeline in self.pipelines:
            pipeline.write_run_files()

    def plan(self, force: bool = False, verify_content: bool = False) -> tuple[Plan, dict]:
        """Every unit of every pipeline (ids ``<pipeline>/<dataset>/<unit>``) and why each would run."""
        units: list[Unit] = []
        reasons: dict[str, str | None] = {}
        for pipeline in self.pipelines:
            plan = pipeline.plan(verify_content, prefix=_prefix(pipeline.context))
            units += plan.units
            reasons.update(plan.reasons(force))
        return Plan(units), reasons

    def explain(self, force: bool = False, verify_content: bool = False) -> list[str]:
        """``run|skip <unit> <why>`` for every unit; units of data that are missing say so."""
        plans = [p.plan(verify_content, prefix=_prefix(p.context), dry_run=True) for p in self.pipelines]
        plan, reasons = Plan([u for p in plans for u in p]), {k: v for p in plans for k, v in p.reasons(force).items()}
        lines = explain(plan, reasons, STAGES)
        done = sum(r is None for r in reasons.values())
        missing = sorted({p.missing for p in plans if p.missing is not None})
        return (lines + [f"{len(plan)} units: {len(plan) - done} to run, {done} up to date"]
                + [f"data missing: {why}" for why in missing])

    def run(self, force: bool = False, verify_content: bool = False, executor: Executor | None = None,
            progress: bool = True) -> GridResult:
        """Run every unit that is not up to date, then write the overview of the seed runs that finished."""
        self.prepare(force)
        plan, reasons = self.plan(force, verify_content)
        failure = None
        try:
            outcomes = execute(plan.units, reasons, executor or self.executor(), force, progress)
        except UnitsFailedError as exc:
            outcomes, failure = exc.outcomes, exc
        markdown, missing = self.write_overview(plan)
        return GridResult(markdown, self.folder, missing, outcomes, failure)

    def write_overview(self, plan: Plan) -> tuple[str | None, list[str]]:
        """``overview.csv``/``overview.md`` over the grid's seed runs whose summary unit (in ``plan``) is up
        to date; the markdown says which seed runs it lacks (a failed unit, or a stale summary of an
        earlier run)."""
        runs, missing = [], []
        for pipeline in self.pipelines:
            ctx = pipeline.context
            finished = []
            for seed in ctx.resolved.config.seeds:
                if plan[f"{_prefix(ctx)}seed{seed}/summary"].stale_reason() is None:
                    finished.append(ctx.seed_dir(seed))
                else:
                    missing.append(f"{_prefix(ctx)}seed{seed}")
            runs += finished
            if self.config.seed_ensemble and len(finished) == len(ctx.resolved.config.seeds) > 1:
                runs.append(self._seed_ensemble(ctx, finished))
        write_text(self.folder / "grid.yaml", yaml.safe_dump(self.describe(), sort_keys=False))
        if not runs:
            return None, missing
        table = overview(collect(runs), self.config.metric)
        markdown = write_overview(table, self.folder)
        if missing:
            markdown = f"INCOMPLETE: without {', '.join(missing)}\n\n{markdown}"
            write_text(self.folder / "overview.md", markdown)
        return markdown, missing

    def _seed_ensemble(self, ctx: Context, seed_dirs: list[Path]) -> Path:
        """The seed ensemble of every backend of one pipeline (``<pipeline>_seeds``); its seed folder."""
        rule = self.config.seed_ensemble
        for backend in ctx.resolved.result_ids:
            members = [Member(seed_dir, backend) for seed_dir in seed_dirs]
            folder = run_ensemble(members, rule, Path(ctx.resolved.config.output),
                                  f"{ctx.resolved.config.name}_seeds", backend, ctx.registry)
        log.info("%s: seed ensemble (%s) in %s", _prefix(ctx).rstrip("/"), rule, folder)
        return folder

    def describe(self) -> dict:
        """The grid as run: its settings and every pipeline's resolved config."""
        return {"grid": self.config.model_dump(mode="json"),
                "pipelines": [p.context.config for p in self.pipelines]}


def load_grid(path: str | Path, overrides: list[str] = (), seeds: str | None = None, executor: str | None = None,
              registry: Registry | None = None, progress: bool = True) -> Grid:
    """Read a grid file and resolve each recipe × dataset as a pipeline with the grid's seeds, overrides
    (the file's ``set``, then the recipe's own ``set``, then ``overrides``), output and executor; every
    error names the grid file."""
    path = Path(path)
    registry = registry or get_registry()
    config = validate(GridConfig, read_yaml(path, "grid"), f"{path}:")
    config = config.model_copy(update={"output": expand_path(config.output, "output")})
    datasets = [d.model_dump() for d in config.datasets] if config.datasets else [None]
    pipelines, seen = [], {}
    for entry in config.recipes:
        recipe = entry if isinstance(entry, Recipe) else Recipe(file=entry)
        recipe_path = (path.parent / expand_path(recipe.file, "recipes")).resolve()
        for index, dataset in enumerate(datasets):
            where = f"{path}: recipe {recipe.file}" + (f" × datasets.{index}" if dataset else "")
            data = read_yaml(recipe_path)
            if dataset is not None:
                data["dataset"] = copy.deepcopy(dataset)
            data["output"] = config.output
            data["executor"] = config.executor.model_dump()
            if config.seeds is not None:
                data["seeds"] = list(config.seeds)
            try:
                for key, value in [*config.set.items(), *recipe.set.items()]:
                    set_value(data, key, copy.deepcopy(value), f"set {key!r}")
                resolved = load_config(data, list(overrides), seeds, registry, executor)
                context = Context.create(resolved, registry, progress)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            folder = _prefix(context)
            if folder in seen:
                raise ConfigError(f"{where}: writes to {folder} as {seen[folder]} does; give the recipes other names")
            seen[folder] = where
            pipelines.append(Pipeline(context))
    return Grid(config, pipelines)


def _prefix(context: Context) -> str:
    return f"{context.resolved.config.name}/{context.dataset.id}/"

