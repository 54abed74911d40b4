"""Rules that combine several score arrays of the same clips into one (ensembles, channel fusion).

Per clip, with member m's test scores s_m, training scores t_m and weights w_m normalised to sum 1:
``mean`` Σ w_m s_m; ``mean_z`` Σ w_m z_m with z_m = (s_m − mean(t_m)) / std(t_m); ``min_z`` min_m z_m;
``rank_mean`` Σ w_m r_m with r_m = (rank of s_m among member m's test scores − 1) / (n − 1), ties averaged,
training scores placed on the same scale by their position among the test scores.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ArtifactError, ConfigError

RULES = ("mean", "mean_z", "min_z", "rank_mean")


def combine(rule: str, test: Sequence[np.ndarray], train: Sequence[np.ndarray],
            weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The combined (test, train) scores of members' score arrays by ``rule`` (see the module docstring)."""
    w = check_rule(rule, weights, len(test))
    if rule == "mean":
        parts = [(s, t) for s, t in zip(test, train)]
    elif rule == "rank_mean":
        parts = [_ranks(s, t) for s, t in zip(test, train)]
    else:
        parts = [_z(s, t) for s, t in zip(test, train)]
    if rule == "min_z":
        return np.min([p[0] for p in parts], axis=0), np.min([p[1] for p in parts], axis=0)
    return (np.tensordot(w, np.asarray([p[0] for p in parts]), axes=1),
            np.tensordot(w, np.asarray([p[1] for p in parts]), axes=1))


def check_rule(rule: str, weights: Sequence[float] | None, n: int) -> np.ndarray:
    """The weights of ``n`` members normalised to sum 1 (equal when None); an unknown rule, weights for
    ``min_z`` or unusable weights are a ConfigError."""
    if rule not in RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}; rules: {', '.join(RULES)}")
    if weights is None:
        return np.full(n, 1.0 / n)
    if rule == "min_z":
        raise ConfigError("the min_z rule takes no weights")
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != n or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"ensemble weights {list(weights)}: need {n} non-negative numbers with a positive sum")
    return w / w.sum()


def _z(test: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = float(np.mean(train)), float(np.std(train))
    if not std > 0:
        raise ArtifactError("a member's training scores are constant, so they cannot be z-normalised")
    return (test - mean) / std, (train - mean) / std


def _ranks(test: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank − 1) / (n − 1) with ties averaged; a training score's rank is its average insertion position
    among the sorted test scores, on the same scale."""
    ordered = np.sort(test)
    scale = max(len(test) - 1, 1)

    def position(values: np.ndarray) -> np.ndarray:
        below = np.searchsorted(ordered, values, side="left")
        upto = np.searchsorted(ordered, values, side="right")
        return (below + upto - 1) / 2 / scale

    return position(test), position(train)
