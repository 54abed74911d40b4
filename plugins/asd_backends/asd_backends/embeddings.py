"""Preparation shared by the nearest-neighbour backends: checks, metric and per-domain split."""
from __future__ import annotations

import functools
from typing import Literal

import numpy as np

import asdcore

from .distances import l2_normalize

Metric = Literal["cosine", "euclidean"]


def prepare(features: asdcore.FeatureSet, metric: Metric, backend: str, split: str) -> np.ndarray:
    """float64 embeddings, L2-normalised for ``cosine``; non-finite or empty input is an error."""
    embedding = features.embedding.astype(np.float64)
    if split == "train" and len(embedding) == 0:
        raise asdcore.AsdcoreError(f"{backend}: no training embeddings to fit on")
    if not np.isfinite(embedding).all():
        raise asdcore.AsdcoreError(f"{backend}: {split} embeddings contain NaN or infinite values")
    return l2_normalize(embedding) if metric == "cosine" else embedding


def by_domain(features: asdcore.FeatureSet, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source rows, target rows) of ``embedding``."""
    return embedding[features.domain == asdcore.SOURCE], embedding[features.domain == asdcore.TARGET]


def require_fitted(backend: asdcore.Backend, attribute: str, name: str) -> None:
    if not hasattr(backend, attribute):
        raise asdcore.AsdcoreError(f"{name}: score() called before fit()")


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas(method):
    """Run ``method`` with one BLAS thread.

    The matrices here are small and k-means/SMOTE run on OpenMP threads: idle BLAS threads spinning
    between calls take the cores from them (on 2 cores the score stage ran 1.5x slower).
    """
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _threadpools().limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper
