"""Vectorised nearest-neighbour distances, batched over queries to bound memory."""
from __future__ import annotations

import numpy as np

BATCH = 2048


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)


def mean_knn_distance(queries: np.ndarray, references: np.ndarray, k: int) -> np.ndarray:
    """For each query, the mean Euclidean distance to its ``k`` nearest references."""
    ref_sq = np.einsum("ij,ij->i", references, references)
    out = np.empty(len(queries))
    for start in range(0, len(queries), BATCH):
        q = queries[start : start + BATCH]
        sq = np.einsum("ij,ij->i", q, q)[:, None] + ref_sq[None, :] - 2.0 * (q @ references.T)
        nearest = np.partition(np.maximum(sq, 0.0), k - 1, axis=1)[:, :k]
        out[start : start + BATCH] = np.sqrt(nearest).mean(axis=1)
    return out
