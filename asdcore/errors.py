"""The one family of errors asdcore raises; each message says what failed, where, and what to do."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class AsdcoreError(Exception):
    """Base class of every asdcore error."""


class ConfigError(AsdcoreError):
    """A pipeline configuration is invalid (the message names the key path)."""


class UnknownComponentError(ConfigError):
    """A component name is not registered for its kind."""


class DuplicateNameError(AsdcoreError):
    """Two distributions registered the same name for one kind."""


class PluginLoadError(AsdcoreError):
    """A plugin failed to import or to register its components."""


class AudioError(AsdcoreError):
    """An audio file is missing, corrupt, truncated or in an unexpected format."""


class DatasetError(AsdcoreError):
    """A dataset root or its layout is missing or malformed."""


class ArtifactError(AsdcoreError):
    """A stage artifact is missing, stale or malformed."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return a ' did you mean ...?' hint for a misspelt name, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class UnitsFailedError(AsdcoreError):
    """Units of a run failed; the message lists each with its error and log file. ``outcomes``: every unit's."""

    def __init__(self, message: str, outcomes: dict | None = None):
        super().__init__(message)
        self.outcomes = outcomes or {}
