"""The one family of errors asdcore raises; each message says what failed, where, and what to do.

Each kind has the exit code the command line ends with (:data:`EXIT_CODES`); :func:`translate` turns the
operating system's errors (permissions, paths, disk full) and running out of memory into asdcore errors.
"""
from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable

EXIT_CODES = {
    1: "a run finished with failed units of different kinds (each listed with its cause), or another error",
    2: "usage or configuration error: command line, pipeline or grid file, unknown component",
    3: "data error: missing, corrupt, truncated or unexpected audio; dataset layout",
    4: "plugin error: a plugin failed to load under ASDCORE_STRICT_PLUGINS=1, a name registered twice",
    5: "a result or score file is missing, damaged or unreadable (the message says how to redo it)",
    6: "operating system: permission denied, read-only file system, missing or wrong-type path, disk full",
    7: "out of memory on the host or the GPU",
    130: "interrupted (Ctrl-C): rerunning the same command resumes",
}
INTERRUPTED = 130


class AsdcoreError(Exception):
    """Base class of every asdcore error; ``exit_code`` is the command line's exit status for it."""

    exit_code = 1


class ConfigError(AsdcoreError):
    """A pipeline configuration is invalid (the message names the key path)."""

    exit_code = 2


class UnknownComponentError(ConfigError):
    """A component name is not registered for its kind."""


class DuplicateNameError(AsdcoreError):
    """Two distributions registered the same name for one kind."""

    exit_code = 4


class PluginLoadError(AsdcoreError):
    """A plugin failed to import or to register its components."""

    exit_code = 4


class AudioError(AsdcoreError):
    """An audio file is missing, corrupt, truncated or in an unexpected format."""

    exit_code = 3


class DatasetError(AsdcoreError):
    """A dataset root or its layout is missing or malformed."""

    exit_code = 3


class ArtifactError(AsdcoreError):
    """A stage artifact is missing, stale or malformed."""

    exit_code = 5


class SystemResourceError(AsdcoreError):
    """The operating system refused: permission denied, read-only file system, wrong-type path, disk full."""

    exit_code = 6


class OutOfMemoryError(AsdcoreError):
    """The host or the GPU ran out of memory."""

    exit_code = 7


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return a ' did you mean ...?' hint for a misspelt name, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class UnitsFailedError(AsdcoreError):
    """Units of a run failed; the message lists each with its error and log file. ``outcomes``: every unit's.
    The exit code is that of the failures' kind when they share one, else 1."""

    def __init__(self, message: str, outcomes: dict | None = None):
        super().__init__(message)
        self.outcomes = outcomes or {}
        codes = {o.exit_code for o in self.outcomes.values() if o.status == "failed"}
        self.exit_code = codes.pop() if len(codes) == 1 else 1


DISK_FULL_HINT = "free space or choose another `output`; rerun resumes"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NO_MEMORY = ("out of memory", "can't allocate memory")
_WRITER_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "No space left on device", "errno = 28")


def translate(exc: BaseException) -> AsdcoreError | None:
    """The asdcore error for an operating-system or memory error (None for others): what failed, on which
    path, and what to do."""
    if isinstance(exc, AsdcoreError):
        return exc
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(t in str(exc) for t in _NO_MEMORY)):
        where = "the GPU" if "CUDA" in str(exc) or type(exc).__name__ == "OutOfMemoryError" else "the host"
        return OutOfMemoryError(
            f"out of memory on {where}: lower `extraction.batch_size` or `frontend.training.batch_size`, use "
            f"fewer worker processes, or a smaller model; rerun resumes ({type(exc).__name__}: {exc})".rstrip())
    if disk_full(exc):
        path = getattr(exc, "filename", None)
        what = f"{path}: cannot write it" if path else "writing a file failed"
        return SystemResourceError(f"{what}, the disk (or quota) is full; {DISK_FULL_HINT}")
    if isinstance(exc, OSError):
        return SystemResourceError(_os_message(exc))
    return None


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says that a write failed for want of space: ENOSPC or EDQUOT (also as h5py words it),
    or the errors ``torch.save`` raises then."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return True
    return isinstance(exc, (OSError, RuntimeError)) and any(text in str(exc) for text in _WRITER_FAILURES)


def _os_message(exc: OSError) -> str:
    path = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None) or "(no path given)"
    code = exc.errno
    if code == errno.EROFS:
        return f"{path}: read-only file system: choose an `output` (or path) on a writable file system"
    if code in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied: make it writable (readable) for you, or choose another `output` (or path)"
    if code == errno.ENOTDIR:
        return f"{path}: part of this path is a file, not a folder: move that file away or choose another path"
    if code == errno.EISDIR:
        return f"{path}: is a folder where a file is expected: choose a file path"
    if code == errno.ENOENT:
        return f"{path}: no such file or folder: check the path"
    if code == errno.EEXIST:
        return f"{path}: already exists and is in the way: move it or choose another path"
    reason = exc.strerror or str(exc)
    return f"{path}: {reason}: check the path, its permissions and the free space"


def describe(exc: BaseException) -> str:
    """An error's message for a person: ours and translated ones as they are, others with their type."""
    known = translate(exc)
    return str(known) if known is not None else f"{type(exc).__name__}: {exc}"


def exit_code(exc: BaseException) -> int:
    """The command line's exit status for ``exc`` (:data:`EXIT_CODES`)."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    known = translate(exc)
    return known.exit_code if known is not None else 1
