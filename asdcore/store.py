"""Atomic artifact writing, fingerprints, and the clean-up of temporaries left by killed processes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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


def remove_temporaries(base: Path, names: Iterable[str]) -> None:
    """Remove the temporaries of the artifacts ``names`` under ``base`` (``.tmp-<name>…`` beside each, and
    any ``.tmp-*`` inside artifact folders), left by a killed process. Call it only while holding the
    unit's lock, so that no live process's temporaries are removed."""
    for name in names:
        path = Path(base) / name
        stale = list(path.parent.glob(TMP_PREFIX + path.name + "*")) if path.parent.is_dir() else []
        if path.is_dir():
            stale += path.rglob(TMP_PREFIX + "*")
        for item in stale:
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
