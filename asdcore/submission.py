"""Files in the official DCASE submission format: ``anomaly_score_<key>.csv`` (``file name,score``)
and ``decision_result_<key>.csv`` (``file name,0|1``), no header; ``<key>`` comes from the scorer
(e.g. ``fan_section_00_test``)."""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import ArtifactError
from .store import write_text

SCORES, DECISIONS = "anomaly_score", "decision_result"
TRAIN_KEY = "train"  # the score stage's training-clip scores: anomaly_score_train.csv


def write_groups(
    directory: Path, kind: str, groups: Mapping[str, np.ndarray], names: Sequence[str], values: np.ndarray
) -> list[str]:
    """Write one file per group; return the file names."""
    written = []
    for key, index in groups.items():
        if kind == DECISIONS:
            lines = [f"{names[i]},{int(values[i])}\n" for i in index]
        else:
            lines = [f"{names[i]},{float(values[i])!r}\n" for i in index]
        file_name = f"{kind}_{key}.csv"
        write_text(Path(directory) / file_name, "".join(lines))
        written.append(file_name)
    return written


def read_groups(
    directory: Path, kind: str, groups: Mapping[str, np.ndarray], names: Sequence[str],
    rename: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Values aligned with ``names``, joined by file name (``rename`` maps submitted names to
    expected ones first); missing, extra or duplicate names, header rows and malformed values are
    errors naming the file (and line)."""
    values = np.full(len(names), np.nan)
    for key, index in groups.items():
        path = Path(directory) / f"{kind}_{key}.csv"
        table = read_table(path, kind, rename)
        expected = {names[i]: i for i in index}
        missing = sorted(set(expected) - set(table))
        extra = sorted(set(table) - set(expected))
        if missing or extra:
            raise ArtifactError(
                f"{path}: file names do not match the test clips of {key}"
                + (f"; missing: {few(missing)}" if missing else "")
                + (f"; unexpected: {few(extra)}" if extra else "")
            )
        for name, value in table.items():
            values[expected[name]] = value
    return values


def read_table(path: Path, kind: str = SCORES, rename: Mapping[str, str] | None = None) -> dict[str, float]:
    """Rows ``file name,value`` of one official-format file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read {kind} file ({exc.strerror})") from None
    table: dict[str, float] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row:
            continue
        if len(row) != 2:
            raise ArtifactError(f"{path}:{number}: expected 'file name,value', got {','.join(row)!r}")
        name, raw = row[0].strip(), row[1].strip()
        name = (rename or {}).get(name, name)
        try:
            value = float(raw)
        except ValueError:
            hint = " (these files have no header row)" if number == 1 else ""
            raise ArtifactError(f"{path}:{number}: {raw!r} is not a number{hint}") from None
        if not math.isfinite(value):
            raise ArtifactError(f"{path}:{number}: {raw!r} is not finite")
        if kind == DECISIONS and value not in (0.0, 1.0):
            raise ArtifactError(f"{path}:{number}: a decision must be 0 or 1, got {raw!r}")
        if name in table:
            raise ArtifactError(f"{path}:{number}: duplicate file name {name!r}")
        table[name] = value
    return table


def few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … ({len(names)} in all)" if len(names) > limit else "")
