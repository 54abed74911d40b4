"""Scorers built on the shared metric code: per-section AUC types, decisions, official means."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import ClassVar

import numpy as np

from .interfaces import SOURCE, TARGET, Evaluation, Scorer
from .metrics import MAX_FPR, decision_metrics, hmean, jackknife_ci95, roc_auc_unchecked, section_metrics


class SectionScorer(Scorer):
    """Every AUC type per section (and precision/recall/F1 per domain from decisions); subclasses
    choose which values form the official score (:meth:`official_values`) and how they are averaged."""

    mean = staticmethod(hmean)
    with_ci95: ClassVar[bool] = False

    def evaluate(self, machine, test, scores, subsets, decisions=None) -> Evaluation:
        metrics: list[tuple[str, str, float]] = []
        pooled: dict[str, list[float]] = {}
        clips: dict[str, list[np.ndarray]] = {}
        for section in sorted(np.unique(test.section).tolist()):
            mask = test.section == section
            where = f"{machine} section {section:02d}"
            values = section_metrics(test.domain[mask], test.is_anomaly[mask], scores[mask], where=where)
            if decisions is not None:
                values.update(_decision_values(test.domain[mask], test.is_anomaly[mask], decisions[mask]))
            metrics += [(f"{section:02d}", name, value) for name, value in values.items()]
            if section in subsets:
                pooled.setdefault(subsets[section], []).extend(self.official_values(values))
                clips.setdefault(subsets[section], []).append(mask)
        official = {subset: self.machine_score(values) for subset, values in pooled.items()}
        metrics += self._subset_means(metrics, subsets)
        metrics += [(subset, "official", value) for subset, value in sorted(official.items())]
        pooled_clips = {}
        for subset, masks in clips.items():
            mask = np.logical_or.reduce(masks)
            pooled_clips[subset] = (test.is_anomaly[mask], np.asarray(scores)[mask])
        return Evaluation(machine, metrics, official, pooled, pooled_clips)

    def _subset_means(self, metrics: list[tuple[str, str, float]], subsets: Mapping[int, str]) -> list[tuple]:
        """Each metric averaged (with this scorer's mean) over the official sections of each subset."""
        grouped: dict[tuple[str, str], list[float]] = {}
        for section, name, value in metrics:
            subset = subsets.get(int(section))
            if subset is not None:
                grouped.setdefault((subset, name), []).append(value)
        return [(subset, name, self.mean(values)) for (subset, name), values in sorted(grouped.items())]

    def official_values(self, values: Mapping[str, float]) -> list[float]:
        raise NotImplementedError

    def machine_score(self, values: list[float]) -> float:
        return self.mean(values)

    def aggregate(self, evaluations: Sequence[Evaluation]) -> dict[str, dict[str, float]]:
        """Per subset: the official score pooled over the machine types whose official values are all
        finite (ci95 likewise), and ``complete`` (0.0 when a machine type was left out)."""
        result = {}
        for subset in subsets_of(evaluations):
            kept, complete = scored(evaluations, subset)
            values = [value for evaluation in kept for value in evaluation.pooled[subset]]
            stats = {"official": self.mean(values) if values else math.nan}
            if self.with_ci95:
                stats["ci95"] = _ci95(kept, subset)
            stats["complete"] = float(complete)
            result[subset] = stats
        return result


def subsets_of(evaluations: Sequence[Evaluation]) -> list[str]:
    return sorted({subset for evaluation in evaluations for subset in evaluation.pooled})


def scored(evaluations: Sequence[Evaluation], subset: str) -> tuple[list[Evaluation], bool]:
    """The evaluations that enter ``subset``'s official score (official values all finite), and
    whether that is every evaluation of the subset."""
    having = [evaluation for evaluation in evaluations if subset in evaluation.pooled]
    kept = [evaluation for evaluation in having if np.all(np.isfinite(evaluation.pooled[subset]))]
    return kept, len(kept) == len(having)


def _ci95(evaluations: Sequence[Evaluation], subset: str) -> float:
    """Mean jackknife half-width of AUC and pAUC over the subset's clips, pooled."""
    if not evaluations:
        return math.nan
    y = np.concatenate([evaluation.clips[subset][0] for evaluation in evaluations])
    s = np.concatenate([evaluation.clips[subset][1] for evaluation in evaluations])
    half_widths = [jackknife_ci95(partial(roc_auc_unchecked, max_fpr=m), y, s) for m in (None, MAX_FPR)]
    return float(np.mean(half_widths))


class HarmonicMeanScorer(SectionScorer):
    """Official score = harmonic mean over [AUC (source)] + [AUC (target)] + [pAUC] of every section.

    AUC (source) = smix_auc, AUC (target) = tmix_auc, pAUC = mix_pauc, as DCASE 2022–2025 define them;
    a section with a single domain contributes that domain's AUC and pAUC. Each subset (dev/eval) is
    scored separately, over the sections the dataset assigns to it.
    """

    def official_values(self, values: Mapping[str, float]) -> list[float]:
        if "smix_auc" in values:
            return [values["smix_auc"], values["tmix_auc"], values["mix_pauc"]]
        prefix = "s" if "s_auc" in values else "t"
        return [values[f"{prefix}_auc"], values[f"{prefix}_pauc"]]


def _decision_values(domain: np.ndarray, is_anomaly: np.ndarray, decisions: np.ndarray) -> dict[str, float]:
    out = {}
    for d, name in ((SOURCE, "source"), (TARGET, "target")):
        mask = domain == d
        if mask.any():
            out.update({f"{k}_{name}": v for k, v in decision_metrics(is_anomaly[mask], decisions[mask]).items()})
    return out

