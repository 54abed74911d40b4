"""``asdcore data ...``: dataset tools (synthetic data, DCASE download, format, labels)."""
from __future__ import annotations

from pathlib import Path

import click

from asdcore.errors import DatasetError

from .download import download_command
from .format import format_command
from .labels import labels_command
from .original_synth import SUBSETS, synth_year_command


@click.group("data")
def data() -> None:
    """Dataset tools: synthetic data, DCASE download, format and labels."""


@data.command("synth")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--year", type=int, default=None,
              help="Write this DCASE year's ORIGINAL layout and naming under ROOT/original/dcase<YEAR> "
                   "(with eval ground truth) instead of the unified demo layout.")
@click.option("--machines", default=None, help="Comma-separated machine types (default: all).")
@click.option("--subset", default="all", show_default=True, type=click.Choice([*SUBSETS, "all"]),
              help="With --year: which subsets to write.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--n-train-source", "--n-train", "n_train_source", default=None, type=click.IntRange(min=1),
              help="Source train clips per machine type [990]; with --year per section [20].")
@click.option("--n-train-target", default=10, show_default=True, type=click.IntRange(min=1),
              help="Target train clips per machine type (with --year: a tenth of the source clips).")
@click.option("--n-test", default=None, type=click.IntRange(min=2),
              help="Test clips per machine type, divisible by 4 [200]; with --year per section and domain [8].")
@click.option("--clip-seconds", default=None, type=click.FloatRange(min=0.1),
              help="Clip length [2.0; 1.0 with --year; 2026: of the 10-s machine types, the others scaled].")
@click.option("--force", is_flag=True,
              help="Delete the clips generated before in ROOT (the machine types of its synth.json record; with "
                   "--year also the ground truth) and generate anew, e.g. with other parameters.")
@click.pass_context
def synth_command(ctx: click.Context, root: Path, year: int | None, machines: str | None, subset: str, seed: int,
                  n_train_source: int | None, n_train_target: int, n_test: int | None,
                  clip_seconds: float | None, force: bool) -> None:
    """Write synthetic machine sounds (deterministic for a seed; the parameters are recorded in ROOT/synth.json)."""
    if year is not None:
        ctx.invoke(synth_year_command, year=year, root=root, machines=machines, subset=subset,
                   n_train=n_train_source or 20, n_test=n_test or 8, clip_seconds=clip_seconds or 1.0, seed=seed,
                   force=force)
        return
    from . import synth

    selected = tuple(m.strip() for m in machines.split(",") if m.strip()) if machines else synth.MACHINE_TYPES
    try:
        options = synth.SynthOptions(machines=selected, n_train_source=n_train_source or 990,
                                     n_train_target=n_train_target, n_test=n_test or 200,
                                     clip_seconds=clip_seconds or 2.0, seed=seed)
        paths = synth.generate(root, options, progress=True, force=force)
    except (ValueError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(paths)} clips of {', '.join(selected)} in {root}")


data.add_command(download_command)
data.add_command(format_command)
data.add_command(labels_command)
