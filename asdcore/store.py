"""Atomic artifact writing, fingerprints, and the clean-up of temporaries left by killed processes.

Artifacts get the mode the user's umask allows (as ``open`` would give them), so that others on a shared
machine read what the umask lets them; a write that fails because the disk or quota is full is a
:class:`SystemResourceError` naming the artifact.
"""
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

from .errors import DISK_FULL_HINT, ArtifactError, SystemResourceError, disk_full

TMP_PREFIX = ".tmp-"
REDO_HINT = "rerun with --force, or delete {path} and rerun"


def _read_umask() -> int:
    """The process's umask, from ``/proc/self/status`` where there is one (reading it does not change it,
    unlike the ``os.umask`` round trip, which another thread could observe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import
FILE_MODE = 0o666 & ~UMASK


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    The file gets :data:`FILE_MODE`; a full disk or quota is a :class:`SystemResourceError` naming ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
        tmp = Path(name)
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if disk_full(exc):
            raise SystemResourceError(f"{path}: cannot write it, the disk (or quota) is full; {DISK_FULL_HINT}") from exc
        raise


def unreadable(path: Path, exc: BaseException, what: str = "it") -> ArtifactError:
    """The error for an artifact the pipeline wrote that cannot be read back (``exc`` says why): that it is
    damaged or missing, and how to redo it."""
    return ArtifactError(f"{path}: cannot read {what} ({_cause(exc)}): the file is damaged or missing; "
                         f"{REDO_HINT.format(path=path)}")


def _cause(exc: BaseException) -> str:
    """What went wrong, briefly: an OS error's reason, else the error's type and the first line of its message."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


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
