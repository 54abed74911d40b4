"""Anomaly score files in the official DCASE submission format (``file name,score``, no header)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .errors import ArtifactError
from .features import FeatureSet
from .store import write_text


def score_file_name(machine: str, section: int) -> str:
    return f"anomaly_score_{machine}_section_{section:02d}_test.csv"


def write_scores(directory: Path, machine: str, test: FeatureSet, scores: np.ndarray) -> list[str]:
    """Write one score file per test section; return their names."""
    names = np.asarray(test.names, dtype=object)
    written = []
    for section in sorted(np.unique(test.section).tolist()):
        mask = test.section == section
        lines = [f"{name},{float(score)!r}\n" for name, score in zip(names[mask], scores[mask])]
        file_name = score_file_name(machine, section)
        write_text(directory / file_name, "".join(lines))
        written.append(file_name)
    return written


def read_scores(directory: Path, machine: str, test: FeatureSet) -> np.ndarray:
    """Scores aligned with ``test``, joined by file name; missing, extra or duplicate names,
    header rows and non-numeric scores are errors naming the file (and line)."""
    names = np.asarray(test.names, dtype=object)
    scores = np.full(len(test), np.nan)
    for section in sorted(np.unique(test.section).tolist()):
        path = Path(directory) / score_file_name(machine, section)
        table = _read_table(path)
        index = np.flatnonzero(test.section == section)
        expected = {names[i]: i for i in index}
        missing = sorted(set(expected) - set(table))
        extra = sorted(set(table) - set(expected))
        if missing or extra:
            raise ArtifactError(
                f"{path}: file names do not match the test clips of section {section:02d}"
                + (f"; missing: {_few(missing)}" if missing else "")
                + (f"; unexpected: {_few(extra)}" if extra else "")
            )
        for name, value in table.items():
            scores[expected[name]] = value
    return scores


def _read_table(path: Path) -> dict[str, float]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read score file ({exc.strerror})") from None
    table: dict[str, float] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row:
            continue
        if len(row) != 2:
            raise ArtifactError(f"{path}:{number}: expected 'file name,score', got {','.join(row)!r}")
        name, raw = row[0].strip(), row[1].strip()
        try:
            value = float(raw)
        except ValueError:
            hint = " (score files have no header row)" if number == 1 else ""
            raise ArtifactError(f"{path}:{number}: score {raw!r} is not a number{hint}") from None
        if not math.isfinite(value):
            raise ArtifactError(f"{path}:{number}: score {raw!r} is not finite")
        if name in table:
            raise ArtifactError(f"{path}:{number}: duplicate file name {name!r}")
        table[name] = value
    return table


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … ({len(names)} in all)" if len(names) > limit else "")
