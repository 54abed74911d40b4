"""The ``asdcore`` command line (click). Library errors become clean messages here."""
from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import click

from .errors import AsdcoreError
from .registry import get_registry


def _friendly(func):
    """Turn asdcore errors into click errors (message, exit code 1, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AsdcoreError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
@click.version_option(package_name="asdcore")
@click.option("-q", "--quiet", is_flag=True, help="Only print warnings and errors.")
def cli(quiet: bool) -> None:
    """Anomalous sound detection: train, extract, score and evaluate as the DCASE challenge does."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def _pipeline_command(stages: tuple[str, ...], help_text: str):
    @click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override a config value, e.g. --set dataset.root=data (repeatable).")
    @click.option("--seeds", default=None, help="Comma-separated seeds, e.g. 0,1,2 (overrides `seeds`).")
    @click.option("--force", is_flag=True, help="Redo every unit even if its recorded config matches.")
    @click.option("--no-progress", is_flag=True, help="Hide progress bars.")
    @_friendly
    def command(pipeline: Path, overrides: tuple[str, ...], seeds: str | None, force: bool, no_progress: bool) -> None:
        from .config import load_config
        from .engine import Pipeline

        resolved = load_config(pipeline, list(overrides), seeds)
        runner = Pipeline.create(resolved, progress=not no_progress)
        root = runner.run(stages, force=force)
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
cli.command("evaluate")(_pipeline_command(("evaluate",), "Stage 4: official scores per run and the table across seeds."))


@cli.command("table")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write table.csv/table.md (default: the runs' common parent folder).")
@_friendly
def table_command(runs: tuple[Path, ...], output: Path | None) -> None:
    """Mean and standard deviation across RUNS (seed folders holding summary.csv, or their parents)."""
    from .table import write_table

    seed_dirs = []
    for run in runs:
        found = [run] if (run / "summary.csv").exists() else sorted(p.parent for p in run.glob("seed*/summary.csv"))
        if not found:
            raise click.ClickException(f"{run}: no summary.csv here or in its seed* folders")
        seed_dirs += found
    if output is None:
        parents = {d.parent.resolve() for d in seed_dirs}
        output = parents.pop() if len(parents) == 1 else Path.cwd()
    click.echo(write_table(output, seed_dirs))
    click.echo(f"table: {output / 'table.csv'}")


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


def main() -> None:
    get_registry().add_commands(cli)
    cli(prog_name="asdcore")
