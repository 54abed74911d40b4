"""What executing a unit needs besides the unit: the resolved pipeline, its registry, dataset and device,
and where the artifacts live (``<output>/<name>/<dataset id>/…``)."""
from __future__ import annotations

import functools
import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio_cache import AudioCache, open_cache
from .config import Resolved, load_config
from .errors import ConfigError
from .features import SHARED
from .interfaces import Clip, Dataset, Frontend
from .params import validate
from .registry import Entry, Registry, get_registry
from .store import fingerprint

BACKEND_SEED = 0  # backends are seeded like the reference's scoring step, independent of the run seed
_CACHE_SIZE = 256  # contexts kept per process: a grid's pipelines, e.g. 13 recipes × 10 datasets


def pick_device(choice: str) -> torch.device:
    """CUDA when present (``auto``), else CPU; asking for CUDA without one is an error."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device("cuda")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Context:
    """A resolved pipeline bound to its registry, dataset and device."""

    resolved: Resolved
    registry: Registry
    dataset: Dataset
    device: torch.device
    progress: bool = True

    @classmethod
    def create(cls, resolved: Resolved, registry: Registry | None = None, progress: bool = True) -> Context:
        registry = registry or get_registry()
        cfg = resolved.config
        dataset = registry.create("datasets", cfg.dataset.name, params=resolved.dataset_params, path="dataset")
        context = cls(resolved, registry, dataset, pick_device(cfg.device), progress)
        if not context.trains and (cfg.frontend.loss or cfg.frontend.augmentations):
            raise ConfigError(
                f"frontend.loss/augmentations: frontend {cfg.frontend.name!r} needs no training; remove them"
            )
        return context

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved pipeline as plain data (what a unit carries to rebuild this context elsewhere)."""
        return self.resolved.as_dict()

    @cached_property
    def key(self) -> str:
        return fingerprint(self.config)

    @property
    def root(self) -> Path:
        cfg = self.resolved.config
        return Path(cfg.output) / cfg.name / self.dataset.id

    def audio_cache_dir(self, machine: str, split: str, channels: str = "near") -> Path:
        """``<output>/audio_cache/<dataset id>/<machine>/<split>`` (``<split>-<channels>`` for other channel
        choices than near): shared by every pipeline writing to ``output``."""
        folder = split if channels == "near" else f"{split}-{channels}"
        return Path(self.resolved.config.output) / "audio_cache" / self.dataset.id / machine / folder

    def audio_cache(self, machine: str, split: str, planned: str | None = None,
                    channels: str | None = None) -> AudioCache:
        """The decoded clips of ``machine``/``split`` as channel choice ``channels`` gives them (default: the
        dataset's), built on first use (``planned``: see :func:`open_cache`)."""
        r = self.resolved
        choice = channels or self.dataset.params.channels
        params = {k: v for k, v in r.dataset_params.items() if k != "machines"} | {"channels": choice}
        return open_cache(self.dataset, self.dataset.clips(machine, split),
                          self.audio_cache_dir(machine, split, choice), {"name": r.config.dataset.name,
                                                                          "params": params},
                          planned, self.progress, self.channel_load(choice))

    def channel_load(self, channels: str | None = None) -> Callable[[Clip], np.ndarray]:
        """``load(clip)`` of the dataset for channel choice ``channels`` (default: the dataset's)."""
        if channels in (None, self.dataset.params.channels):
            return self.dataset.load
        return functools.partial(self.dataset.load, channels=channels)

    def clip_samples(self, machines: list[str]) -> int:
        """The clip length a model of ``machines`` sees: the longest of their clip lengths."""
        return max(self.dataset.clip_samples_of(m) for m in machines)

    def seed_dir(self, seed: int) -> Path:
        return self.root / f"seed{seed}"

    def entry(self, kind: str, name: str) -> Entry:
        return self.registry.get(kind, name)

    @cached_property
    def trains(self) -> bool:
        """Whether the frontend is trained (asked of its class, without building it)."""
        cls: type[Frontend] = self.entry("frontends", self.resolved.config.frontend.name).cls
        return cls.trains(validate(cls.Params, self.resolved.frontend_params, "frontend.params"))

    def training_units(self, machines: list[str]) -> list[tuple[str, list[str]]]:
        """(name, machine types) of each training unit: one shared model, or one per machine type."""
        if self.resolved.config.frontend.training.scope == "shared":
            return [("shared", list(machines))]
        return [(m, [m]) for m in machines]

    def train_dir(self, seed: int, unit: str) -> Path:
        return self.seed_dir(seed) / "frontend" / unit

    def model_dir(self, seed: int, machine: str) -> Path:
        scope = self.resolved.config.frontend.training.scope
        return self.train_dir(seed, scope if scope == "shared" else machine) / "model"

    def features_path(self, seed: int, machine: str) -> Path:
        """``seed<k>/<machine>/features.h5``; untrained frontends' features are shared by the seeds."""
        base = self.seed_dir(seed) if self.trains else self.root / SHARED
        return base / machine / "features.h5"

    def backend_dir(self, seed: int, machine: str, backend: str) -> Path:
        return self.seed_dir(seed) / machine / backend

    def new_frontend(self, clip_samples: int) -> Frontend:
        r = self.resolved
        frontend = self.registry.create(
            "frontends", r.config.frontend.name, params=r.frontend_params, path="frontend.params",
            sample_rate=self.dataset.sample_rate, clip_samples=clip_samples, device=self.device,
        )
        if frontend.spec.needs_training != self.trains:
            raise ConfigError(
                f"frontend {r.config.frontend.name!r}: its spec says needs_training={frontend.spec.needs_training} "
                f"but its class says {self.trains}; set `needs_training` (or `trains`) on the class to match"
            )
        return frontend


_contexts: OrderedDict[str, Context] = OrderedDict()


def remember(context: Context) -> None:
    """Keep ``context`` for units of its pipeline executed in this process."""
    _contexts[context.key] = context
    _contexts.move_to_end(context.key)
    while len(_contexts) > _CACHE_SIZE:
        _contexts.popitem(last=False)


def context_for(config: Mapping[str, Any], key: str) -> Context:
    """The context of a unit's pipeline: the one this process already has, or one built from ``config``
    with the process-wide registry (in a worker process or on another host)."""
    context = _contexts.get(key)
    if context is None:
        registry = get_registry()
        context = Context.create(load_config(dict(config), registry=registry), registry, progress=False)
        remember(context)
    return context
