"""Plugin loading and the component tables ``kind -> name -> Entry``."""
from __future__ import annotations

import importlib
import logging
import os
import re
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs, interfaces
from .errors import DuplicateNameError, PluginLoadError, UnknownComponentError, suggest
from .params import validate

GROUP = "asdcore"
API_VERSION = 1  # of the plugin contract (hookspecs, base classes, public API); plugins declare ASDCORE_API
CORE_DISTRIBUTION = "asdcore"
STRICT_ENV = "ASDCORE_STRICT_PLUGINS"
LOAD_ENV = "ASDCORE_LOAD_PLUGINS"  # comma-separated entry point names: load only these plugins
TOYS = "asdcore.testing"  # named in LOAD_ENV, the toy components of asdcore.testing are registered too
# A plugin's code may raise anything, SystemExit included; only these still reach the caller.
PASS_THROUGH = (KeyboardInterrupt, GeneratorExit)
log = logging.getLogger("asdcore")

KINDS: dict[str, tuple[str, type]] = {
    "frontends": ("register_frontends", interfaces.Frontend),
    "losses": ("register_losses", interfaces.Loss),
    "backends": ("register_backends", interfaces.Backend),
    "datasets": ("register_datasets", interfaces.Dataset),
    "scorers": ("register_scorers", interfaces.Scorer),
    "augmentations": ("register_augmentations", interfaces.Augmentation),
    "executors": ("register_executors", interfaces.Executor),
}


SINGULAR = {"frontends": "frontend", "losses": "loss", "backends": "backend", "datasets": "dataset",
            "scorers": "scorer", "augmentations": "augmentation", "executors": "executor"}


@dataclass(frozen=True)
class Entry:
    """One registered component. ``target`` is its class, or ``"module:Class"`` imported on first use of
    :attr:`cls` (so that listing plugins or scoring a submission imports no component it does not use)."""

    name: str
    target: type | str
    distribution: str
    version: str
    plugin: str = ""  # the plugin (entry point or module) that registered it
    kind: str = ""

    @cached_property
    def cls(self) -> type:
        """The component class (imported now when registered by its path)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            raise PluginLoadError(
                f"{SINGULAR[self.kind]} {self.name!r} of {self.distribution}: cannot import {self.target!r} "
                f"({type(exc).__name__}: {exc}); fix or reinstall {self.distribution}") from None
        base = KINDS[self.kind][1]
        if not (isinstance(found, type) and issubclass(found, base)):
            raise PluginLoadError(f"{SINGULAR[self.kind]} {self.name!r} of {self.distribution}: {self.target!r} is "
                                  f"not a subclass of asdcore.{base.__name__}")
        return found


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)


@dataclass
class LoadError:
    plugin: str
    distribution: str
    error: str
    during: str = "import"
    details: str = ""


class Registry:
    """Loads plugins through pluggy and keeps the tables of registered components.

    ``Registry(entry_points=False)`` starts with the core's default plugins only; tests add
    in-test plugins with :meth:`add_plugin`.
    """

    def __init__(self, entry_points: bool = True, strict: bool | None = None):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict if strict is not None else os.environ.get(STRICT_ENV) == "1"
        self.plugins: dict[str, PluginInfo] = {}
        self.errors: list[LoadError] = []
        self._warned = False
        self._tables: dict[str, dict[str, Entry]] | None = None
        self._conflicts: dict[tuple[str, str], list[Entry]] = {}
        from .default_plugins import DEFAULT_PLUGINS

        for module in DEFAULT_PLUGINS:
            self.add_plugin(module, name=module.__name__, distribution=CORE_DISTRIBUTION)
        if entry_points:
            self._load_entry_points()

    def add_plugin(self, plugin: Any, name: str, distribution: str = "<test>", version: str = "") -> None:
        """Register a plugin object (a module or any object with hookimpls)."""
        if not version and distribution == CORE_DISTRIBUTION:
            version = _version(CORE_DISTRIBUTION)
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            self.pm.unregister(plugin)
            raise
        hooks = sorted(impl.name for impl in self.pm.get_hookcallers(plugin) or [])
        self.plugins[name] = PluginInfo(name, distribution, version, hooks)
        self._tables = None

    def _load_entry_points(self) -> None:
        selected = os.environ.get(LOAD_ENV)
        wanted = {n.strip() for n in selected.split(",") if n.strip()} if selected is not None else None
        if wanted is not None and TOYS in wanted:
            from .default_plugins import toys

            self.add_plugin(toys, name=TOYS, distribution=CORE_DISTRIBUTION)
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            if wanted is not None and ep.name not in wanted:
                continue
            dist = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else ""
            try:
                plugin = ep.load()
                _check_api(plugin, ep.name, dist)
                self.add_plugin(plugin, name=ep.name, distribution=dist, version=version)
            except PASS_THROUGH:
                raise
            except BaseException as exc:
                self._record(ep.name, dist, exc)

    def _record(self, plugin: str, distribution: str, exc: BaseException, during: str = "import") -> None:
        """Keep a plugin's failure (call inside the ``except``); in strict mode raise it as PluginLoadError."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        error = LoadError(plugin, distribution, text, during, traceback.format_exc())
        if self.strict:
            raise PluginLoadError(
                f"plugin {plugin!r} (distribution {distribution}) failed during {during}: {error.error}; "
                f"fix or uninstall {distribution}, or unset {STRICT_ENV} to skip it and load the other plugins"
            ) from None
        self.errors.append(error)

    def warn_load_errors(self) -> None:
        """Log one warning listing the plugins that failed to load or register; later calls stay silent."""
        if self._tables is None:
            self._build_tables()  # register hooks run here; their failures belong in the list
        if self._warned or not self.errors:
            return
        self._warned = True
        lines = [
            f"  {e.distribution} (entry point {e.plugin}, during {e.during}): {' '.join(e.error.split())}"
            for e in self.errors
        ]
        log.warning("plugins that failed to load (their components are missing; `asdcore plugins` shows details):\n%s",
                    "\n".join(lines))

    def _call_each(self, hook_name: str, make_kwargs: Callable[[PluginInfo], dict]) -> None:
        """Call one hook plugin by plugin, so that what each registers is attributed to it."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            info = self.plugins[self.pm.get_name(impl.plugin)]
            kwargs = make_kwargs(info)
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except PASS_THROUGH:
                raise
            except BaseException as exc:
                self._record(info.name, info.distribution, exc, during=hook_name)

    @property
    def tables(self) -> dict[str, dict[str, Entry]]:
        if self._tables is None:
            self._build_tables()
        return self._tables

    def _build_tables(self) -> None:
        tables: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._conflicts = {}
        self.errors = [e for e in self.errors if e.during in ("import", "register_commands")]
        for kind, (hook_name, base) in KINDS.items():
            def registrar(info: PluginInfo, kind: str = kind, base: type = base) -> dict:
                def register(name: str, cls: type | str) -> None:
                    if isinstance(cls, str):
                        if not re.fullmatch(r"[\w.]+:\w+", cls):
                            raise TypeError(f"{kind} {name!r}: a path to a class is written 'module:Class', "
                                            f"got {cls!r}")
                    elif not (isinstance(cls, type) and issubclass(cls, base)):
                        raise TypeError(f"{kind} {name!r} must be a subclass of asdcore.{base.__name__}")
                    entry = Entry(name, cls, info.distribution, info.version, info.name, kind)
                    if name in tables[kind]:
                        self._conflicts.setdefault((kind, name), [tables[kind][name]]).append(entry)
                    else:
                        tables[kind][name] = entry

                return {"register": register}

            self._call_each(hook_name, registrar)
        self._tables = tables

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its CLI verbs; failures are recorded, never fatal."""
        self._call_each("register_commands", lambda info: {"cli": cli})

    def names(self, kind: str) -> list[str]:
        """The registered names of one kind, sorted."""
        return sorted(self._table(kind))

    def conflicts(self) -> list[DuplicateNameError]:
        """One error per name that several distributions registered."""
        if self._tables is None:
            self._build_tables()
        return [self._duplicate(kind, name) for kind, name in sorted(self._conflicts)]

    def get(self, kind: str, name: str) -> Entry:
        """The entry registered as ``name``; unknown or duplicate names are errors."""
        table = self._table(kind)
        if (kind, name) in self._conflicts:
            raise self._duplicate(kind, name)
        if name not in table:
            raise UnknownComponentError(self._unknown_message(kind, name))
        return table[name]

    def create(self, kind: str, name: str, path: str = "", **kwargs: Any) -> Any:
        """Instantiate ``name`` with validated ``params`` (a mapping) and keyword arguments."""
        entry = self.get(kind, name)
        params = validate(entry.cls.Params, kwargs.pop("params", None), path or f"{kind}.{name}.params")
        return entry.cls(params, **kwargs)

    def _table(self, kind: str) -> dict[str, Entry]:
        if kind not in KINDS:
            raise UnknownComponentError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.tables[kind]

    def _duplicate(self, kind: str, name: str) -> DuplicateNameError:
        dists = [entry.distribution for entry in self._conflicts[(kind, name)]]
        return DuplicateNameError(
            f"{SINGULAR[kind]} name {name!r} is registered by more than one distribution: {' and '.join(dists)}; "
            "uninstall one of them or rename the component"
        )

    def _unknown_message(self, kind: str, name: str) -> str:
        names = self.names(kind)
        message = (
            f"unknown {SINGULAR[kind]} {name!r}; registered {kind}: {', '.join(names) or '(none)'}."
            f"{suggest(name, names)}"
        )
        if self.errors:
            failed = "; ".join(f"{e.distribution} ({e.error})" for e in self.errors)
            message += f" Plugins that failed to load: {failed}."
        return message

    def report(self) -> dict:
        """Distributions, versions, hooks, registered names and load errors, as plain data."""
        tables = self.tables
        plugins = []
        for info in sorted(self.plugins.values(), key=lambda i: (i.distribution, i.name)):
            components = {
                kind: sorted(n for n, e in tables[kind].items() if e.plugin == info.name)
                for kind in KINDS
            }
            plugins.append(
                {
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "hooks": info.hooks,
                    "components": {k: v for k, v in components.items() if v},
                }
            )
        errors = [vars(e) for e in self.errors] + [
            {"plugin": "", "distribution": "", "error": str(err), "during": "registration", "details": ""}
            for err in self.conflicts()
        ]
        return {"plugins": plugins, "errors": errors}

    def versions(self) -> dict[str, str]:
        """Distribution name -> version of every loaded plugin distribution."""
        return {info.distribution: info.version for info in self.plugins.values()}


def _check_api(plugin: Any, name: str, distribution: str) -> None:
    """Refuse a plugin module that declares (``ASDCORE_API = N``) another core API version than :data:`API_VERSION`."""
    declared = getattr(plugin, "ASDCORE_API", API_VERSION)
    if declared != API_VERSION:
        raise PluginLoadError(
            f"plugin {name!r} of {distribution} is built for asdcore API {declared}, this asdcore "
            f"{_version(CORE_DISTRIBUTION)} has API {API_VERSION}: install the {distribution} release made for it "
            f"(or an asdcore with API {declared})")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


_current: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loading installed plugins on first use."""
    global _current
    if _current is None:
        _current = Registry()
    return _current


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the process-wide one inside the block (for tests and embedding)."""
    global _current
    previous, _current = _current, registry
    try:
        yield registry
    finally:
        _current = previous
