"""The reductions: ``summary.csv`` and plots of one seed, and the table across seeds; summaries and
table are logged to MLflow when ``tracking.mlflow`` is set (:mod:`asdcore.tracking`)."""
from __future__ import annotations

import logging
import math
import shutil

from . import tracking
from .context import Context
from .plan import Unit
from .table import write_summary, write_table
from .units import EVALUATION_JSON, read_evaluation

log = logging.getLogger("asdcore")


def summary(unit: Unit, ctx: Context) -> list[str]:
    """Every machine type's evaluation and each subset's official score over machine types, per backend
    and fusion."""
    seed = unit.args["seed"]
    scorer = ctx.registry.create("scorers", ctx.resolved.scorer, path="scorer")
    results = {}
    for bid in ctx.resolved.result_ids:
        paths = [ctx.backend_dir(seed, machine, bid) / EVALUATION_JSON for machine in unit.args["machines"]]
        evaluations = [read_evaluation(path) for path in paths if path.exists()]
        results[bid] = (evaluations, scorer.aggregate(evaluations))
    write_summary(unit.directory / "summary.csv", results)
    for bid, (_, aggregate) in results.items():
        if not aggregate:
            log.warning("seed %d: %s: no labelled test clips, so no official score; the score files are written "
                        "(evaluate them with `asdcore evaluate --scores` once the ground truth is known)", seed, bid)
            continue
        scores = ", ".join(f"{subset} {100 * stats['official']:.2f}%" for subset, stats in aggregate.items())
        log.info("seed %d: %s official score: %s", seed, bid, scores)
        incomplete = [subset for subset, stats in aggregate.items() if not stats.get("complete", 1.0)
                      or not math.isfinite(stats["official"])]
        if incomplete:
            log.warning("seed %d: %s: the official score of %s is incomplete: some machine types could not be "
                        "evaluated (see the warnings above)", seed, bid, ", ".join(incomplete))
    tracking.log_seed(ctx, seed, unit.args["machines"])
    return list(unit.outputs)


def plots(unit: Unit, ctx: Context) -> list[str]:
    from .plots import plot_run

    seed_dir = unit.directory
    shutil.rmtree(seed_dir / "plots", ignore_errors=True)
    plot_run(seed_dir, features={m: ctx.features_path(unit.args["seed"], m) for m in unit.args["machines"]})
    return list(unit.outputs)


def table(unit: Unit, ctx: Context) -> list[str]:
    write_table(unit.directory, [ctx.seed_dir(seed) for seed in ctx.resolved.config.seeds])
    tracking.log_table(ctx)
    return list(unit.outputs)


RUNNERS = {"summary": summary, "plots": plots, "table": table}
