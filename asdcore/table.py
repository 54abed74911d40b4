"""``summary.csv`` per run and ``table.csv`` / ``table.md`` (mean and standard deviation across seeds)."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import ArtifactError
from .interfaces import Evaluation
from .store import write_text

SUMMARY_FIELDS = ("backend", "machine", "section", "metric", "value")
TABLE_FIELDS = ("backend", "machine", "section", "metric", "mean", "std", "n")
ALL = "all"


def write_summary(
    path: Path, results: Mapping[str, tuple[Sequence[Evaluation], Mapping[str, Mapping[str, float]]]]
) -> None:
    """One row per backend x machine x section x metric; ``machine=all`` rows hold the official
    score (and ci95 where defined) of each subset over all machine types."""
    rows = []
    for backend, (evaluations, aggregate) in results.items():
        for subset, stats in aggregate.items():
            rows += [(backend, ALL, subset, metric, value) for metric, value in stats.items()]
        for evaluation in evaluations:
            rows += [(backend, evaluation.machine, s, m, v) for s, m, v in evaluation.metrics]
    _write(path, SUMMARY_FIELDS, [(*row[:4], repr(float(row[4]))) for row in rows])


def read_summary(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read summary ({exc.strerror})") from None
    if rows and set(rows[0]) != set(SUMMARY_FIELDS):
        raise ArtifactError(f"{path}: not a summary.csv (columns {', '.join(rows[0])})")
    return rows


def write_table(directory: Path, seed_dirs: Sequence[Path]) -> str:
    """Aggregate the runs' summaries into ``table.csv`` and ``table.md`` in ``directory``; return the markdown."""
    values: dict[tuple[str, str, str, str], list[float]] = {}
    for seed_dir in seed_dirs:
        for row in read_summary(Path(seed_dir) / "summary.csv"):
            key = (row["backend"], row["machine"], row["section"], row["metric"])
            values.setdefault(key, []).append(float(row["value"]))
    stats = {key: _mean_std(v) for key, v in values.items()}
    _write(directory / "table.csv", TABLE_FIELDS,
           [(*key, repr(m), repr(s), len(values[key])) for key, (m, s) in stats.items()])
    markdown = _markdown(stats, len(seed_dirs))
    write_text(directory / "table.md", markdown)
    return markdown


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def _markdown(stats: dict[tuple[str, str, str, str], tuple[float, float]], n_runs: int) -> str:
    official = {k: v for k, v in stats.items() if k[3] == "official"}
    subsets = sorted({k[2] for k in official if k[1] == ALL})
    out = []
    for subset in subsets:
        machines = sorted({k[1] for k in official if k[2] == subset and k[1] != ALL}, key=str.lower)
        backends = list(dict.fromkeys(k[0] for k in official if k[2] == subset))
        out.append(f"Official score ({subset}), % — mean ± std over {n_runs} run(s)\n")
        out.append("| backend | " + " | ".join([ALL, *machines]) + " |")
        out.append("|---" * (len(machines) + 2) + "|")
        incomplete = False
        for backend in backends:
            cells = [_cell(official.get((backend, m, subset, "official"))) for m in [ALL, *machines]]
            if stats.get((backend, ALL, subset, "complete"), (1.0, 0.0))[0] < 1.0:
                cells[0] += " *"
                incomplete = True
            out.append(f"| {backend} | " + " | ".join(cells) + " |")
        if incomplete:
            out.append("\n\\* incomplete: some machine types could not be evaluated in some run (their metrics are NaN)")
        out.append("")
    return "\n".join(out)


def _cell(stat: tuple[float, float] | None) -> str:
    return "–" if stat is None else f"{100 * stat[0]:.2f} ± {100 * stat[1]:.2f}"


def _write(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
