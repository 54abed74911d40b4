"""FeatureSet: what flows from ``extract`` to ``score``, stored as groups of ``features.h5``."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import h5py
import numpy as np

from .errors import ArtifactError
from .store import atomic_path, unreadable

_STR = h5py.string_dtype("utf-8")
SHARED = "shared"  # <run>/shared/<machine>/features.h5: features of untrained frontends, one set for all seeds


@dataclass
class FeatureSet:
    """Embeddings and metadata of one split of one machine type.

    ``domain``: 0 source, 1 target; ``is_anomaly``: 0 normal, 1 anomaly, -1 unknown;
    ``path``: clip path relative to the dataset root.
    """

    embedding: np.ndarray
    path: np.ndarray
    section: np.ndarray
    domain: np.ndarray
    is_anomaly: np.ndarray
    attribute: np.ndarray
    frontend_score: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.embedding = np.asarray(self.embedding, dtype=np.float32)
        self.path = np.asarray(self.path, dtype=object)
        self.section = np.asarray(self.section, dtype=np.int64)
        self.domain = np.asarray(self.domain, dtype=np.int8)
        self.is_anomaly = np.asarray(self.is_anomaly, dtype=np.int8)
        self.attribute = np.asarray(self.attribute, dtype=object)
        if self.frontend_score is not None:
            self.frontend_score = np.asarray(self.frontend_score, dtype=np.float64)
        n = len(self.embedding)
        if self.embedding.ndim != 2:
            raise ValueError(f"embedding must be 2-D [N, D], got shape {self.embedding.shape}")
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and len(value) != n:
                raise ValueError(f"FeatureSet.{f.name} has {len(value)} rows, embedding has {n}")

    def __len__(self) -> int:
        return len(self.embedding)

    @property
    def names(self) -> list[str]:
        """File names (base names) of the clips."""
        return [Path(p).name for p in self.path]

    def select(self, mask: np.ndarray) -> FeatureSet:
        """The rows where ``mask`` is true (or the given indices)."""
        return FeatureSet(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[mask]
                             for f in fields(self)})

    def to_group(self, group: h5py.Group) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            dtype = _STR if value.dtype == object else value.dtype
            group.create_dataset(f.name, data=value.astype(dtype) if dtype is not _STR else list(value), dtype=dtype)

    @classmethod
    def from_group(cls, group: h5py.Group) -> FeatureSet:
        data = {}
        for f in fields(cls):
            if f.name in group:
                raw = group[f.name]
                data[f.name] = raw.asstr()[()] if raw.dtype == _STR or h5py.check_string_dtype(raw.dtype) else raw[()]
        return cls(**data)


def group_name(split: str, view: str, views: Sequence[str]) -> str:
    """The group of ``split`` in ``view``: ``train``/``test`` for the first view, else ``<split>@<view>``."""
    return split if view == views[0] else f"{split}@{view}"


def save_features(path: Path, splits: dict[str, FeatureSet], views: Sequence[str] = ()) -> None:
    """Write ``features.h5`` atomically with one group per split (and view; see :func:`group_name`); ``views``
    names the views in order."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            if views:
                f.attrs["views"] = list(views)
            for split, features in splits.items():
                features.to_group(f.create_group(split))


def load_features(path: Path, split: str, view: str | None = None) -> FeatureSet:
    """One split of ``features.h5``: of its first view, or of ``view``. A file that cannot be read (missing,
    truncated, overwritten) is an :class:`ArtifactError` saying how to redo it."""
    try:
        with h5py.File(path, "r") as f:
            views = [v.decode() if isinstance(v, bytes) else str(v) for v in f.attrs.get("views", [])]
            if view is not None and views and view not in views:
                raise ArtifactError(f"{path}: no {view!r} view (views: {', '.join(views)}); extract it first")
            return FeatureSet.from_group(f[group_name(split, view, views) if view and views else split])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # what h5py raises on a damaged file
        raise unreadable(path, exc, f"split {split!r}") from None


def load_view(path: Path, split: str, view: str, alpha: float | None = None) -> FeatureSet:
    """The embeddings a backend sees: an extracted view, ``concat`` (near and far side by side) or
    ``residual`` (near − alpha·far, the noise the far microphone hears partly taken out)."""
    if view not in ("concat", "residual"):
        return load_features(path, split, view)
    near, far = load_features(path, split, "near"), load_features(path, split, "far")
    if not np.array_equal(near.path, far.path) or near.embedding.shape != far.embedding.shape:
        raise ArtifactError(f"{path}: the near and far views of {split!r} differ in clips or embedding size")
    embedding = (np.hstack([near.embedding, far.embedding]) if view == "concat"
                 else near.embedding - np.float32(alpha) * far.embedding)
    return dataclasses.replace(near, embedding=embedding, frontend_score=None)
