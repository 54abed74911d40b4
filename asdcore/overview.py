"""The cross-run results table: one row per recipe (pipeline x backend), one column per dataset subset.

Each cell is the mean and standard deviation over seeds of one subset's score; the last two columns
are the harmonic and arithmetic mean of a row's per-subset means (mean over seeds first, then over
subsets). ``write_overview`` writes it as ``overview.csv`` and ``overview.md``.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactError, ConfigError, suggest
from .metrics import amean, hmean
from .store import write_text
from .table import ALL, read_summary

OVERVIEW_FIELDS = ("pipeline", "backend", "dataset", "subset", "metric", "mean", "std", "n")
# Seed folders lie 1, 2 or 3 levels below a dataset folder, a pipeline folder or an output root.
SEED_PATTERNS = ("seed*/summary.csv", "*/seed*/summary.csv", "*/*/seed*/summary.csv")
SUBSET_ORDER = {"dev": 0, "eval": 1}

Recipe = tuple[str, str]  # (pipeline, backend)
Column = tuple[str, str]  # (dataset, subset)


@dataclass(frozen=True)
class Row:
    """One value of a run's ``summary.csv``; ``run`` is its seed folder, ``<output>/<pipeline>/<dataset>/seed<k>``."""

    pipeline: str
    dataset: str
    run: Path
    backend: str
    machine: str
    section: str
    metric: str
    value: float


@dataclass(frozen=True)
class Cell:
    """Mean and sample standard deviation (0 for one seed) over the ``n`` seeds of one subset."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Cell:
        array = np.asarray(values, dtype=np.float64)
        return cls(float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0, len(array))


@dataclass(frozen=True)
class Overview:
    """The table of one metric: ``cells[recipe][column]``, columns sorted by dataset, then dev before eval."""

    metric: str
    columns: list[Column]
    cells: dict[Recipe, dict[Column, Cell]]

    def hmean(self, recipe: Recipe) -> float:
        return hmean(cell.mean for cell in self.cells[recipe].values())

    def amean(self, recipe: Recipe) -> float:
        return amean(cell.mean for cell in self.cells[recipe].values())


def collect(paths: Sequence[Path]) -> list[Row]:
    """Read every ``seed*/summary.csv`` under ``paths`` (output roots, pipeline, dataset or seed folders);
    a seed folder reached twice is read once."""
    runs: dict[Path, None] = {}
    for path in map(Path, paths):
        found = _seed_dirs(path)
        if not found:
            raise ArtifactError(
                f"{path}: no summary.csv in it or in its seed* folders "
                "(expected <output>/<pipeline>/<dataset>/seed<k>/summary.csv; run `asdcore evaluate` first)"
            )
        runs.update(dict.fromkeys(found))
    return [row for run in runs for row in _read(run)]


def overview(rows: Iterable[Row], metric: str = "official") -> Overview:
    """The table of ``metric`` over ``rows`` (from ``collect``).

    A seed's subset score is its ``machine=all`` row of that subset. A per-machine metric without such
    rows (e.g. ``smix_auc``) is averaged arithmetically over every (machine type, section) row of the
    subset; a machine belongs to the subset of its own ``official`` row (machines without one count
    nowhere). A seed missing a subset just lowers that cell's ``n``.
    """
    rows = list(rows)
    runs: dict[tuple[Path, str], list[Row]] = {}
    for row in rows:
        runs.setdefault((row.run, row.backend), []).append(row)
    values: dict[Recipe, dict[Column, list[float]]] = {}
    for (_, backend), group in runs.items():
        recipe = values.setdefault((group[0].pipeline, backend), {})
        for subset, value in _subset_scores(group, metric).items():
            recipe.setdefault((group[0].dataset, subset), []).append(value)
    cells = {recipe: {column: Cell.of(v) for column, v in columns.items()}
             for recipe, columns in values.items() if columns}
    if not cells:
        available = sorted({row.metric for row in rows})
        raise ConfigError(
            f"metric {metric!r} is in none of the summaries; available: {', '.join(available)}."
            + suggest(metric, available)
        )
    columns = sorted({column for row in cells.values() for column in row}, key=_column_order)
    return Overview(metric, columns, cells)


def write_overview(table: Overview, out_dir: Path) -> str:
    """Write ``overview.csv`` and ``overview.md`` to ``out_dir``; return the markdown.

    CSV: one row per cell, then per recipe ``dataset=all`` rows with ``subset=hmean`` and ``amean``
    (``mean`` = the value, ``std`` empty, ``n`` = the number of subsets averaged).
    """
    rows = []
    for recipe, cells in table.cells.items():
        rows += [(*recipe, *column, table.metric, repr(cells[column].mean), repr(cells[column].std), cells[column].n)
                 for column in table.columns if column in cells]
        rows += [(*recipe, ALL, "hmean", table.metric, repr(table.hmean(recipe)), "", len(cells)),
                 (*recipe, ALL, "amean", table.metric, repr(table.amean(recipe)), "", len(cells))]
    write_text(Path(out_dir) / "overview.csv", _csv(OVERVIEW_FIELDS, rows))
    markdown = _markdown(table)
    write_text(Path(out_dir) / "overview.md", markdown)
    return markdown


def _seed_dirs(path: Path) -> list[Path]:
    if (path / "summary.csv").is_file():
        return [path.resolve()]
    return sorted({found.parent.resolve() for pattern in SEED_PATTERNS for found in path.glob(pattern)})


def _read(run: Path) -> list[Row]:
    path = run / "summary.csv"
    rows = []
    for row in read_summary(path):
        try:
            value = float(row["value"])
        except ValueError:
            raise ArtifactError(
                f"{path}: value {row['value']!r} ({row['machine']}, {row['metric']}) is not a number"
            ) from None
        rows.append(Row(run.parent.parent.name, run.parent.name, run,
                        row["backend"], row["machine"], row["section"], row["metric"], value))
    return rows


def _column_order(column: Column) -> tuple:
    dataset, subset = column
    return dataset, SUBSET_ORDER.get(subset, len(SUBSET_ORDER)), subset


def _subset_scores(group: list[Row], metric: str) -> dict[str, float]:
    """Subset -> score of one seed and backend."""
    subset_rows = {row.section: row.value for row in group if row.machine == ALL and row.metric == metric}
    if subset_rows:
        return subset_rows
    subsets: dict[str, set[str]] = {}
    for row in group:
        if row.machine != ALL and row.metric == "official":
            subsets.setdefault(row.machine, set()).add(row.section)
    pooled: dict[str, list[float]] = {}
    for row in group:
        if row.machine == ALL or row.metric != metric or row.machine not in subsets:
            continue
        if len(subsets[row.machine]) > 1:
            raise ArtifactError(
                f"{row.run / 'summary.csv'}: machine {row.machine!r} has official scores in subsets "
                f"{', '.join(sorted(subsets[row.machine]))}, and summary.csv does not say which of its sections "
                f"belong to which, so {metric!r} cannot be split by subset"
            )
        pooled.setdefault(next(iter(subsets[row.machine])), []).append(row.value)
    return {subset: amean(values) for subset, values in pooled.items()}


def _markdown(table: Overview) -> str:
    """The cells' seed count goes in the title when it is the same everywhere, else into every cell."""
    counts = {cell.n for cells in table.cells.values() for cell in cells.values()}
    uniform = len(counts) == 1
    seeds = f"{min(counts)} seed(s)" if uniform else "n seeds per cell"
    header = [f"{dataset} {subset}" for dataset, subset in table.columns] + ["hmean", "amean"]
    out = [
        f"{table.metric} (%): mean ± std over {seeds}; hmean/amean: over each row's subset means\n",
        "| pipeline / backend | " + " | ".join(header) + " |",
        "|---" * (len(header) + 1) + "|",
    ]
    for recipe, cells in table.cells.items():
        values = [_cell(cells.get(column), show_n=not uniform) for column in table.columns]
        values += [f"{100 * table.hmean(recipe):.2f}", f"{100 * table.amean(recipe):.2f}"]
        out.append(f"| {recipe[0]} / {recipe[1]} | " + " | ".join(values) + " |")
    return "\n".join(out) + "\n"


def _cell(cell: Cell | None, show_n: bool) -> str:
    if cell is None:
        return "–"
    text = f"{100 * cell.mean:.2f} ± {100 * cell.std:.2f}"
    return f"{text} (n={cell.n})" if show_n else text


def _csv(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
