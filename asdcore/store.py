"""Atomic artifact writing and the stage records that make reruns skip finished work."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (the identity of a stage's inputs).

    Environment variables in strings count by their values (``checkpoint: $BEATS_CHECKPOINT``
    pointing at another file is another input).
    """
    blob = json.dumps(_expand_variables(parts), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _expand_variables(value: Any) -> Any:
    if isinstance(value, str):
        return os.path.expandvars(value)
    if isinstance(value, dict):
        return {k: _expand_variables(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_expand_variables(v) for v in value]
    return value


def clean_stale(directory: Path) -> None:
    """Remove temporary files left by a killed process."""
    if directory.is_dir():
        for stale in directory.rglob(TMP_PREFIX + "*"):
            stale.unlink(missing_ok=True)


class Record:
    """The record of one finished unit of a stage: its key and the artifacts it wrote."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def matches(self, key: str) -> bool:
        """True when the unit finished with this key and all its artifacts still exist."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False
        base = self.path.parent
        return data.get("key") == key and all((base / a).exists() for a in data.get("artifacts", []))

    def write(self, key: str, artifacts: list[str], config: Any) -> None:
        write_json(self.path, {"key": key, "artifacts": artifacts, "config": config})
