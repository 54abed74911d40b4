"""Files in the official DCASE submission format: ``anomaly_score_<key>.csv`` (``file name,score``)
and ``decision_result_<key>.csv`` (``file name,0|1``), no header; ``<key>`` comes from the scorer
(e.g. ``fan_section_00_test``).

The readers serve both the pipeline's own files and submissions: an error names the file, the line and
the cause; for files the pipeline wrote (``written=True``) it also says how to redo them."""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ArtifactError
from .store import REDO_HINT, write_text

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
    rename: Mapping[str, str] | None = None, *, written: bool = False,
) -> np.ndarray:
    """Values aligned with ``names``, joined by file name (``rename`` maps submitted names to
    expected ones first); missing, extra or duplicate names, header rows and malformed values are
    errors naming the file (and line); ``written``: the pipeline wrote the files (see the module)."""
    values = np.full(len(names), np.nan)
    for key, index in groups.items():
        path = Path(directory) / f"{kind}_{key}.csv"
        table = read_table(path, kind, rename, written=written)
        expected = {names[i]: i for i in index}
        missing = sorted(set(expected) - set(table))
        extra = sorted(set(table) - set(expected))
        if missing or extra:
            with _redo_hint(path, written):
                raise ArtifactError(
                    f"{path}: file names do not match the test clips of {key}"
                    + (f"; missing: {few(missing)}" if missing else "")
                    + (f"; unexpected: {few(extra)}" if extra else "")
                )
        for name, value in table.items():
            values[expected[name]] = value
    return values


def read_table(path: Path, kind: str = SCORES, rename: Mapping[str, str] | None = None, *,
               written: bool = False) -> dict[str, float]:
    """Rows ``file name,value`` of one official-format file (at least one); ``written``: the pipeline
    wrote it (see the module)."""
    with _redo_hint(path, written):
        return _parse_table(path, kind, rename)


def _parse_table(path: Path, kind: str, rename: Mapping[str, str] | None) -> dict[str, float]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read {kind} file ({exc.strerror})") from None
    except ValueError as exc:  # UnicodeDecodeError
        raise ArtifactError(f"{path}: not a text file ({exc})") from None
    table: dict[str, float] = {}
    rows = csv.reader(text.splitlines())
    try:
        for number, row in enumerate(rows, start=1):
            if not row:
                continue
            if len(row) != 2:
                raise ArtifactError(f"{path}:{number}: expected 'file name,value', got {_shown(','.join(row))}")
            name, raw = row[0].strip(), row[1].strip()
            name = (rename or {}).get(name, name)
            try:
                value = float(raw)
            except ValueError:
                hint = " (these files have no header row)" if number == 1 else ""
                raise ArtifactError(f"{path}:{number}: {_shown(raw)} is not a number{hint}") from None
            if not math.isfinite(value):
                raise ArtifactError(f"{path}:{number}: {_shown(raw)} is not finite")
            if kind == DECISIONS and value not in (0.0, 1.0):
                raise ArtifactError(f"{path}:{number}: a decision must be 0 or 1, got {_shown(raw)}")
            if name in table:
                raise ArtifactError(f"{path}:{number}: duplicate file name {_shown(name)}")
            table[name] = value
    except csv.Error as exc:
        raise ArtifactError(f"{path}:{rows.line_num}: not CSV ({exc})") from None
    if not table:
        raise ArtifactError(f"{path}: no 'file name,value' rows (the file is empty or blank)")
    return table


@contextmanager
def _redo_hint(path: Path, written: bool) -> Iterator[None]:
    """Adds to an error about ``path`` how to redo it, when the pipeline wrote it."""
    try:
        yield
    except ArtifactError as exc:
        if not written:
            raise
        raise ArtifactError(f"{exc}; the file is damaged: {REDO_HINT.format(path=path)}") from None


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted, cut short when long (a damaged file's line may be anything)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f" … ({len(text)} characters)"


def few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … ({len(names)} in all)" if len(names) > limit else "")
