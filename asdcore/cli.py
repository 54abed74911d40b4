"""The ``asdcore`` command line (click). Library errors become clean messages here."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path

import click

from .errors import EXIT_CODES, INTERRUPTED, AsdcoreError, translate
from .plots import plot_command
from .registry import get_registry


class _Cli(click.Group):
    """The command group whose commands, plugins' included, share one error path: every error a user can
    cause or meet ends in one message naming the file or key, the cause and what to do, with the exit code of
    its kind (:data:`asdcore.errors.EXIT_CODES`); ``--debug`` or ``ASDCORE_DEBUG=1`` adds the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except (KeyboardInterrupt, click.exceptions.Abort):
            _show_traceback()
            click.echo("\ninterrupted — rerun the same command to resume (finished work is kept)", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None
        except Exception as exc:
            known = translate(exc)
            if known is None:
                raise
            _show_traceback()
            error = click.ClickException(str(known))
            error.exit_code = known.exit_code
            raise error from None


def _debug() -> bool:
    return os.environ.get("ASDCORE_DEBUG", "") not in ("", "0")


def _show_traceback() -> None:
    if _debug():
        traceback.print_exc()


@click.group(cls=_Cli, epilog="Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()))
@click.version_option(package_name="asdcore")
@click.option("-q", "--quiet", is_flag=True, help="Only print warnings and errors.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error (also ASDCORE_DEBUG=1).")
def cli(quiet: bool, debug: bool) -> None:
    """Anomalous sound detection: train, extract, score and evaluate as the DCASE challenge does."""
    if debug:
        os.environ["ASDCORE_DEBUG"] = "1"
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING if quiet else logging.INFO)  # units still log INFO to their own log files
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler])


_executor_option = click.option(
    "--executor", default=None, metavar="NAME",
    help="Run the units with this executor (local, processes, slurm, ray, ...) instead of the config's; "
         "its params: --set executor.params.KEY=VALUE.")


def _pipeline_command(stages: tuple[str, ...], help_text: str):
    @click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override a config value, e.g. --set dataset.root=data (repeatable).")
    @click.option("--seeds", default=None, help="Comma-separated seeds, e.g. 0,1,2 (overrides `seeds`).")
    @click.option("--force", is_flag=True, help="Redo every unit even if it is up to date (and regenerate synthetic data).")
    @click.option("--dry-run", is_flag=True, help="Print the plan: each unit, whether it would run, and why; run nothing.")
    @click.option("--verify-content", is_flag=True,
                  help="Identify audio files by content hash instead of modification time (slower; for filesystems "
                       "whose times cannot be trusted).")
    @_executor_option
    @click.option("--no-progress", is_flag=True, help="Hide progress bars.")
    def command(pipeline: Path, overrides: tuple[str, ...], seeds: str | None, force: bool, dry_run: bool,
                verify_content: bool, executor: str | None, no_progress: bool) -> None:
        from .config import load_config
        from .distributed import is_main
        from .engine import Pipeline

        get_registry().warn_load_errors()
        resolved = load_config(pipeline, list(overrides), seeds, executor=executor)
        runner = Pipeline.create(resolved, progress=not no_progress)
        if stages == ("train",) and not runner.context.trains:
            click.echo(f"frontend {resolved.config.frontend.name!r} is not trained: nothing to train; "
                       "`asdcore run` extracts, scores and evaluates")
            return
        if dry_run:
            click.echo("\n".join(runner.explain(stages, force=force, verify_content=verify_content)))
            return
        root = runner.run(stages, force=force, verify_content=verify_content)
        if not is_main():  # another process of a torchrun/srun launch: rank 0 reports
            return
        if "evaluate" in stages:
            click.echo((root / "table.md").read_text())
        click.echo(f"results: {root}")

    command.__doc__ = help_text
    return command


cli.command("run")(_pipeline_command(
    ("train", "extract", "score", "evaluate"),
    "Run all four stages of PIPELINE (a YAML file) over its seeds; print the table.",
))
cli.command("train")(_pipeline_command(("train",), "Stage 1: train the frontend of PIPELINE."))
cli.command("extract")(_pipeline_command(("extract",), "Stage 2: extract train and test embeddings."))
cli.command("score")(_pipeline_command(("score",), "Stage 3: fit every backend and write official score files."))
_evaluate_stage = _pipeline_command(("evaluate",), "")


@cli.command("evaluate")
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a pipeline config value.")
@click.option("--seeds", default=None, help="Comma-separated seeds (pipeline mode).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--year", type=int, default=None, help="DCASE year of a submission (scorer dcase<YEAR>).")
@click.option("--scorer", "scorer_name", default=None, help="Scorer name instead of --year.")
@click.option("--scores", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder with anomaly_score_*.csv (and decision_result_*.csv) files.")
@click.option("--ground-truth", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Official ground truth (ground_truth_data/, ground_truth_domain/, ...; 2020: eval_data_list.csv).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as JSON to this file.")
@click.option("--allow-partial", is_flag=True,
              help="Score a submission that lacks machine types or sections of the ground truth (said in the report).")
@click.pass_context
def evaluate_command(ctx, pipeline, overrides, seeds, no_progress, year, scorer_name, scores, ground_truth,
                     json_path, allow_partial) -> None:
    """Stage 4 of PIPELINE (official scores per run, table across seeds), or, with --scores,
    the official scores of any submission in the official DCASE formats."""
    if scores is not None and pipeline is not None:
        raise click.UsageError("give either a PIPELINE file or --scores DIR, not both")
    if scores is None:
        if pipeline is None:
            raise click.UsageError("give a PIPELINE file, or --scores DIR with --year")
        ctx.invoke(_evaluate_stage, pipeline=pipeline, overrides=overrides, seeds=seeds, force=False, dry_run=False,
                   verify_content=False, executor=None, no_progress=no_progress)
        return
    from .evaluation import evaluate_submission

    name = scorer_name or (f"dcase{year}" if year else None)
    if name is None:
        raise click.UsageError("--scores needs --year (or --scorer)")
    scorer = get_registry().create("scorers", name, path="--year" if scorer_name is None else "--scorer")
    if not scorer.reads_submissions:
        raise click.UsageError(f"scorer {name!r} reads no submission files; use --year YEAR (the dcase<YEAR> "
                               f"scorers of asd-datasets read the official formats)")
    result = evaluate_submission(scorer, scores, ground_truth, allow_partial=allow_partial)
    text = json.dumps(_finite_or_none(result), indent=2, allow_nan=False)
    if json_path is not None:
        from .store import write_text

        write_text(json_path, text + "\n")
    click.echo(_submission_report(result))


def _finite_or_none(value):
    """``value`` with NaN (metrics undefined for single-class clips) as None: JSON has no NaN."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _submission_report(result: dict) -> str:
    lines = [f"INCOMPLETE, scored without: {'; '.join(result['missing'])}"] if not result["complete"] else []
    lines += [f"official score: {100 * result['official_score']:.2f}%"
             + (f" (ci95 ± {100 * result['ci95']:.2f})" if "ci95" in result else "")]
    lines += [f"  {subset}: {100 * value:.2f}%" for subset, value in result["subsets"].items()]
    for machine, data in result["machines"].items():
        lines.append(f"{machine}: {100 * data['official']:.2f}%")
        for section, metrics in data["sections"].items():
            lines.append(f"  {section}: " + ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items()))
    return "\n".join(lines)


@cli.command("grid")
@click.argument("grid_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value of every pipeline, e.g. --set frontend.training.epochs=2 (repeatable).")
@click.option("--seeds", default=None, help="Comma-separated seeds, e.g. 0,1,2 (overrides the grid's).")
@click.option("--force", is_flag=True, help="Redo every unit even if it is up to date.")
@click.option("--dry-run", is_flag=True,
              help="Print every unit, whether it would run and why (missing data included); run nothing.")
@click.option("--verify-content", is_flag=True, help="Identify audio files by content hash (see `asdcore run`).")
@_executor_option
@click.option("--no-progress", is_flag=True, help="Hide the progress display.")
def grid_command(grid_file: Path, overrides: tuple[str, ...], seeds: str | None, force: bool, dry_run: bool,
                 verify_content: bool, executor: str | None, no_progress: bool) -> None:
    """Run GRID_FILE: recipes × datasets × seeds as one plan on one executor, then print the overview
    table (per recipe and backend, each dataset subset's mean ± std over seeds, hmean and amean)."""
    from .grid import load_grid

    get_registry().warn_load_errors()
    grid = load_grid(grid_file, list(overrides), seeds, executor, progress=not no_progress)
    if dry_run:
        click.echo("\n".join(grid.explain(force=force, verify_content=verify_content)))
        return
    result = grid.run(force=force, verify_content=verify_content, progress=not no_progress)
    if result.markdown is not None:
        click.echo(result.markdown)
        click.echo(f"overview: {result.folder / 'overview.csv'}, {result.folder / 'overview.md'}")
    if result.failure is not None:
        raise result.failure


@cli.command("table")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--metric", default="official", show_default=True,
              help="Subset-level metric, or a per-machine one (e.g. smix_auc) averaged over machines and sections.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write overview.csv/overview.md (default: PATH if one, else the paths' common "
                   "parent folder, else the current folder).")
def table_command(paths: tuple[Path, ...], metric: str, output: Path | None) -> None:
    """Results across runs: one row per pipeline and backend, one column per dataset subset (mean ± std over
    seeds), then harmonic and arithmetic mean. PATHS: output roots, pipeline, dataset or seed folders."""
    from .overview import collect, overview, write_overview

    table = overview(collect(paths), metric)
    if output is None:
        parents = {p.resolve().parent for p in paths}
        if len(paths) == 1:
            output = paths[0]
        elif len(parents) == 1:
            output = parents.pop()
        else:
            output = Path.cwd()
    click.echo(write_overview(table, output))
    click.echo(f"overview: {output / 'overview.csv'}, {output / 'overview.md'}")


@cli.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--metric", default="official", show_default=True, help="The overview table's metric (see `table`).")
def report_command(paths: tuple[Path, ...], output: Path, metric: str) -> None:
    """One self-contained HTML page of PATHS (output roots, grid, pipeline, dataset or seed folders): the
    overview table, every metric per machine type and section, ROC curves, score histograms, t-SNE maps
    and training-loss curves."""
    from .report import write_report

    click.echo(f"report: {write_report(paths, output, metric)}")


@cli.command("ensemble")
@click.argument("members", nargs=-1, metavar="[SEED_DIR:BACKEND[=WEIGHT]]...")
@click.option("--seeds", "seeds_of", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              metavar="RUN_DIR", help="The seed ensemble of a run (<output>/<pipeline>/<dataset>): every backend's "
                                      "seeds combined, one ensemble per backend.")
@click.option("--rule", type=click.Choice(["mean", "mean_z", "min_z", "rank_mean"]), default="mean_z",
              show_default=True)
@click.option("--name", default=None, help="Pipeline folder of the ensemble [ensemble; with --seeds "
                                          "<pipeline>_seeds].")
@click.option("--id", "result_id", default=None, help="Result folder (backend column) of the ensemble [the rule].")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output root [the members' output root].")
def ensemble_command(members: tuple[str, ...], seeds_of: Path | None, rule: str, name: str | None,
                     result_id: str | None, output: Path | None) -> None:
    """Combine the score files of several runs, backends or seeds per machine type (mean, mean_z, min_z or
    rank_mean), write them in the official formats and evaluate them like a backend.

    \b
    asdcore ensemble results/raw_spec/dcase2023/seed0:knn results/ae/dcase2023/seed0:passthrough
    asdcore ensemble --seeds results/dis_spec_scac_trainable/dcase2023
    """
    from .ensemble import Member, run_backends, run_ensemble, seed_members

    if bool(members) == bool(seeds_of):
        raise click.UsageError("give MEMBERS or --seeds RUN_DIR")
    if members:
        folder = run_ensemble([Member.parse(m) for m in members], rule, output, name, result_id)
    else:
        name = name or f"{seeds_of.resolve().parent.name}_seeds"
        for backend in run_backends(seeds_of):
            folder = run_ensemble(seed_members(seeds_of, backend), rule, output, name, backend)
    click.echo((folder.parent / "table.md").read_text())
    click.echo(f"results: {folder}")


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_command(as_json: bool) -> None:
    """List plugin distributions, versions, registered names per kind, and load errors."""
    report = get_registry().report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for plugin in report["plugins"]:
        click.echo(f"{plugin['distribution']} {plugin['version']} ({plugin['name']})")
        for kind, names in plugin["components"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
        if "register_commands" in plugin["hooks"]:
            click.echo("  commands: yes")
    if report["errors"]:
        click.echo("\nload errors:")
        for error in report["errors"]:
            where = f"{error['distribution']} ({error['plugin']}), during {error['during']}: " if error["plugin"] else ""
            click.echo(f"  {where}{error['error']}")


@cli.command("recipes")
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def recipes_command(folder: Path | None) -> None:
    """List the recipes (pipeline and grid files) of FOLDER with the first line of each one's description.
    FOLDER: default ./recipes, else the recipes shipped with asdcore's source tree."""
    from .recipes import describe_recipes, recipes_folder

    click.echo(describe_recipes(folder or recipes_folder()))


cli.add_command(plot_command)


def main() -> None:
    """The ``asdcore`` program: plugins' commands added, then the command line (:class:`_Cli`)."""
    try:
        get_registry().add_commands(cli)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except AsdcoreError as exc:  # a plugin failed under ASDCORE_STRICT_PLUGINS=1
        _show_traceback()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    cli(prog_name="asdcore")
