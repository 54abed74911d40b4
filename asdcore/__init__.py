"""asdcore: anomalous sound detection research toolkit (core: interfaces, registry, engine, metrics).

The public API is what this module exports (``__all__``) and the modules in :data:`PUBLIC_MODULES`
(docs/public-api.md); every other module is private. ``import asdcore`` stays light: names whose
modules need torch or scikit-learn (``TorchFrontend``, ``SectionScorer``, ``Pipeline``, ...) are
imported on first use.
"""
from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

# PyTorch's CPU allocator backs large tensors with transparent huge pages when this is set before its
# first allocation (PyTorch's CPU tuning guide). Page faults of fresh 4 KiB pages took a third of the
# CPU time of training on 18-s clips; with huge pages training runs ~1.3x, extraction ~1.8x faster at
# the same peak memory. THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from .dispatch import Dispatch
from .errors import (
    ArtifactError, AsdcoreError, AudioError, ConfigError, DatasetError, DuplicateNameError, OutOfMemoryError,
    PluginLoadError, SystemResourceError, UnitsFailedError, UnknownComponentError,
)
from .features import FeatureSet
from .hookspecs import hookimpl
from .interfaces import (
    ANOMALY, BLOCKED, DONE, FAILED, NORMAL, SKIPPED, SOURCE, TARGET, UNKNOWN, Augmentation, Backend, Clip, Dataset,
    DatasetParams, Evaluation, Executor, Frontend, FrontendOutput, FrontendSpec, Job, Loss, Outcome, Scorer,
    Submission, TrainData,
)
from .params import Params
from .registry import API_VERSION, KINDS, SINGULAR, Registry, get_registry, use_registry
from .store import fingerprint, write_json, write_text

__version__ = "0.1.0"

# The modules plugins, templates and scripts may import besides the top level; every other is private.
PUBLIC_MODULES = ("asdcore", "asdcore.errors", "asdcore.hookspecs", "asdcore.testing")

# Public names imported on first use, by the private module that defines them (torch, scikit-learn,
# soundfile and the engine load only when a plugin or script uses one of these).
_LAZY = {
    "TorchFrontend": "training", "save_artifact": "training", "load_artifact": "training",
    "SectionScorer": "scoring", "HarmonicMeanScorer": "scoring", "scored": "scoring", "subsets_of": "scoring",
    "amean": "metrics", "hmean": "metrics",
    "read_table": "submission", "SCORES": "submission", "DECISIONS": "submission",
    "read_audio": "audio", "duration": "audio", "fit_length": "audio", "warn_tiling": "audio",
    "require_clip_samples": "audio",
    "TrainingConfig": "config", "NOT_IN_IDENTITY": "config", "expand_path": "config", "load_config": "config",
    "Pipeline": "engine", "load_grid": "grid",
}

# Keyword arguments of :func:`create` that go to a component's constructor as its context (what the
# engine passes when it builds one), per kind; all other keyword arguments are the component's params.
CONTEXT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "frontends": ("sample_rate", "clip_samples", "device"),
    "losses": ("embedding_dim", "num_classes"),
    "backends": ("seed",),
}

__all__ = [
    "ANOMALY", "API_VERSION", "BLOCKED", "CONTEXT_KEYWORDS", "DONE", "FAILED", "NORMAL", "PUBLIC_MODULES", "SKIPPED", "SOURCE",
    "TARGET", "UNKNOWN", "ArtifactError", "AsdcoreError", "AudioError", "Augmentation", "Backend", "Clip",
    "ConfigError", "Dataset", "DatasetError", "DatasetParams", "Dispatch", "DuplicateNameError", "Evaluation",
    "Executor", "FeatureSet", "Frontend", "FrontendOutput", "FrontendSpec", "Job", "Loss", "Outcome",
    "OutOfMemoryError", "Params", "PluginLoadError", "Registry", "Scorer", "Submission", "SystemResourceError",
    "TrainData", "UnitsFailedError", "UnknownComponentError", "create", "fingerprint", "gather", "get_registry",
    "hookimpl", "registered", "use_registry", "write_json", "write_text", *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    """The lazily imported public names, and ``asdcore.testing`` without an explicit import."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if f"{__name__}.{name}" in PUBLIC_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; the public names are asdcore.__all__ "
                         "(docs/public-api.md)")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """A validated component instance of the process-wide registry.

    Keyword arguments named in :data:`CONTEXT_KEYWORDS` for ``kind`` go to the constructor as context
    (frontends: ``sample_rate``, ``clip_samples``, ``device``; losses: ``embedding_dim``, ``num_classes``,
    both required; backends: ``seed``); the others are the component's params, validated against its
    ``Params``. Datasets, scorers, augmentations and executors take params only::

        create("backends", "knn", k_source=2, seed=1)
        create("losses", "arcface", embedding_dim=8, num_classes=3)
        create("frontends", "raw_spec", n_mels=64, sample_rate=16000, clip_samples=32000)
    """
    keywords = CONTEXT_KEYWORDS.get(kind, ())
    context = {key: kwargs.pop(key) for key in keywords if key in kwargs}
    missing = [key for key in _required_context(kind) if key not in context]
    if missing:
        raise ConfigError(f"asdcore.create({kind!r}, {name!r}): {' and '.join(missing)} missing; pass "
                          f"{', '.join(f'{key}=...' for key in missing)}, the context every {SINGULAR[kind]} "
                          "is built with")
    return get_registry().create(kind, name, params=kwargs, **context)


def _required_context(kind: str) -> list[str]:
    """The context keywords the base class of ``kind`` has no default for."""
    if kind not in KINDS:
        return []
    parameters = inspect.signature(KINDS[kind][1].__init__).parameters.values()
    return [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]


def registered(kind: str) -> list[str]:
    """The registered names of one kind (``frontends``, ``losses``, ``backends``, ...)."""
    return get_registry().names(kind)


def gather(tensor: Any) -> Any:
    """The tensors of every process of a data-parallel training concatenated along dim 0 (rank order);
    ``tensor`` itself in a single process. For batch statistics that must cover the global batch."""
    from .distributed import gather as gather_tensors

    return gather_tensors(tensor)
