"""Metric code shared by every scorer: AUC, McClish-standardised pAUC, means, per-section AUC types.

AUC and pAUC are scikit-learn's ``roc_auc_score`` with anomaly = 1 (pAUC with ``max_fpr``), exactly
as the official DCASE evaluators compute them.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.metrics import roc_auc_score

from .errors import AsdcoreError
from .interfaces import ANOMALY, NORMAL, SOURCE, TARGET

MAX_FPR = 0.1
EPS = np.finfo(np.float64).eps
METRICS = ("s_auc", "s_pauc", "t_auc", "t_pauc", "smix_auc", "tmix_auc", "mix_auc", "mix_pauc")


def auc(is_anomaly: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(is_anomaly, score))


def pauc(is_anomaly: np.ndarray, score: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    return float(roc_auc_score(is_anomaly, score, max_fpr=max_fpr))


def hmean(values: Iterable[float]) -> float:
    """Harmonic mean, each value clamped to machine epsilon first (as the official evaluators do)."""
    array = np.maximum(np.asarray(list(values), dtype=np.float64), EPS)
    return float(len(array) / np.sum(1.0 / array))


def amean(values: Iterable[float]) -> float:
    return float(np.mean(np.asarray(list(values), dtype=np.float64)))


def section_metrics(domain: np.ndarray, is_anomaly: np.ndarray, score: np.ndarray, where: str = "") -> dict[str, float]:
    """Every AUC type of one section whose domains are present (see METRICS for the names).

    s_/t_: one domain's normals and anomalies; smix_/tmix_: one domain's normals plus every
    anomaly of the section; mix_: the whole section.
    """
    domain, is_anomaly, score = np.asarray(domain), np.asarray(is_anomaly), np.asarray(score, dtype=np.float64)
    if np.any((is_anomaly != NORMAL) & (is_anomaly != ANOMALY)):
        raise AsdcoreError(f"{where}: some test clips have no normal/anomaly label; they cannot be evaluated")
    if not np.all(np.isfinite(score)):
        raise AsdcoreError(f"{where}: anomaly scores contain NaN or infinity")
    out: dict[str, float] = {}
    present = {d for d in (SOURCE, TARGET) if np.any(domain == d)}
    anomalies = is_anomaly == ANOMALY
    for d, prefix in ((SOURCE, "s"), (TARGET, "t")):
        if d in present:
            mask = domain == d
            out[f"{prefix}_auc"] = _checked(auc, is_anomaly[mask], score[mask], f"{where} {prefix}_auc")
            out[f"{prefix}_pauc"] = _checked(pauc, is_anomaly[mask], score[mask], f"{where} {prefix}_pauc")
    if present == {SOURCE, TARGET}:
        for d, prefix in ((SOURCE, "smix"), (TARGET, "tmix")):
            mask = (domain == d) | anomalies
            out[f"{prefix}_auc"] = _checked(auc, is_anomaly[mask], score[mask], f"{where} {prefix}_auc")
        out["mix_auc"] = _checked(auc, is_anomaly, score, f"{where} mix_auc")
        out["mix_pauc"] = _checked(pauc, is_anomaly, score, f"{where} mix_pauc")
    return {name: out[name] for name in METRICS if name in out}


def _checked(metric, is_anomaly: np.ndarray, score: np.ndarray, where: str) -> float:
    if len(np.unique(is_anomaly)) < 2:
        raise AsdcoreError(f"{where.strip()}: needs both normal and anomalous clips")
    return metric(is_anomaly, score)
