"""Vectorised nearest-neighbour distances, batched over queries to bound memory.

Candidates are found with float32 matrix products (‖q‖² + ‖r‖² − 2 q·r), then the distances of the
few best candidates are recomputed exactly in float64 from the differences, so the results equal a
brute-force float64 computation while the heavy part runs at float32 speed.
"""
from __future__ import annotations

import numpy as np

BATCH_ELEMENTS = 1 << 25  # query × reference distances held at once (128 MiB of float32)
CANDIDATE_MARGIN = 3  # extra float32 candidates re-checked exactly, against float32 rounding


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)


def smallest_distances(queries: np.ndarray, references: np.ndarray, k: int, *, scale: np.ndarray | None = None,
                       exclude_self: bool = False,
                       exclude_groups: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The ``k`` smallest values of ‖q − r_j‖ / scale_j per query, ascending, shape ``[N, k]`` (float64).

    ``scale`` defaults to 1. ``exclude_self`` skips reference ``i`` for query ``i`` (queries = references);
    ``exclude_groups = (query groups, reference groups)`` skips every reference of the query's group.
    """
    queries = np.asarray(queries, dtype=np.float64)
    references = np.asarray(references, dtype=np.float64)
    if exclude_self:
        exclude_groups = (np.arange(len(queries)), np.arange(len(references)))
    n_refs = len(references) - _largest_shared_group(exclude_groups)
    if not 1 <= k <= n_refs:
        raise ValueError(f"k={k} needs between 1 and {n_refs} references")
    ref32 = references.astype(np.float32)
    ref_sq = np.einsum("ij,ij->i", ref32, ref32)
    inv_scale = None if scale is None else (1.0 / np.asarray(scale, dtype=np.float64))
    inv_scale_sq = None if scale is None else (inv_scale**2).astype(np.float32)
    candidates = min(k + CANDIDATE_MARGIN, n_refs)
    batch = max(1, BATCH_ELEMENTS // max(len(references), candidates * references.shape[1]))
    out = np.empty((len(queries), k))
    for start in range(0, len(queries), batch):
        q = queries[start : start + batch]
        q32 = q.astype(np.float32)
        approx = (-2.0 * q32) @ ref32.T
        approx += ref_sq[None, :]  # ‖q‖² is the same along a row: ranking needs it only when rescaled
        if inv_scale is not None:
            approx += np.einsum("ij,ij->i", q32, q32)[:, None]
            approx *= inv_scale_sq[None, :]
        if exclude_groups is not None:
            approx[exclude_groups[0][start : start + batch, None] == exclude_groups[1][None, :]] = np.inf
        index = np.argpartition(approx, candidates - 1, axis=1)[:, :candidates]
        exact = np.linalg.norm(q[:, None, :] - references[index], axis=2)
        if inv_scale is not None:
            exact *= inv_scale[index]
        out[start : start + batch] = np.sort(exact, axis=1)[:, :k]
    return out


def _largest_shared_group(groups: tuple[np.ndarray, np.ndarray] | None) -> int:
    """How many references the query group with the most of them excludes."""
    if groups is None:
        return 0
    names, counts = np.unique(groups[1], return_counts=True)
    shared = counts[np.isin(names, groups[0])]
    return int(shared.max()) if len(shared) else 0


def mean_knn_distance(queries: np.ndarray, references: np.ndarray, k: int) -> np.ndarray:
    """For each query, the mean Euclidean distance to its ``k`` nearest references."""
    return smallest_distances(queries, references, k).mean(axis=1)
