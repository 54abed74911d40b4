"""``asdcore data ...``: dataset tools."""
from __future__ import annotations

from pathlib import Path

import click


@click.group("data")
def data() -> None:
    """Dataset tools: synthetic data (and DCASE download/format)."""


@data.command("synth")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--machines", default=None, help="Comma-separated machine types (default: all).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--n-train-source", default=990, show_default=True, type=click.IntRange(min=1))
@click.option("--n-train-target", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--n-test", default=200, show_default=True, type=click.IntRange(min=4),
              help="Test clips per machine type (source/target x normal/anomaly, divisible by 4).")
@click.option("--clip-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0.1))
def synth_command(root: Path, machines: str | None, seed: int, n_train_source: int, n_train_target: int,
                  n_test: int, clip_seconds: float) -> None:
    """Write synthetic machine sounds in the DCASE 2023 layout and naming (deterministic for a seed)."""
    from . import synth

    selected = tuple(m.strip() for m in machines.split(",") if m.strip()) if machines else synth.MACHINE_TYPES
    try:
        options = synth.SynthOptions(machines=selected, n_train_source=n_train_source, n_train_target=n_train_target,
                                     n_test=n_test, clip_seconds=clip_seconds, seed=seed)
        paths = synth.generate(root, options, progress=True)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(paths)} clips of {', '.join(selected)} in {root}")
