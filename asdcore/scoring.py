"""Scorers built on the shared metric code: the DCASE 2022–2025 harmonic-mean scheme."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .interfaces import Evaluation, Scorer
from .metrics import hmean, section_metrics


class HarmonicMeanScorer(Scorer):
    """Official score = harmonic mean over [AUC (source)] + [AUC (target)] + [pAUC] of every section.

    AUC (source) = smix_auc, AUC (target) = tmix_auc, pAUC = mix_pauc, as DCASE 2022–2025 define them;
    a section with a single domain contributes that domain's AUC and pAUC. Subsets (dev/eval) are
    scored separately; ``official_sections`` (if set) restricts which sections count.
    """

    official_sections: frozenset[int] | None = None

    def evaluate(self, machine: str, test, scores: np.ndarray, subsets: Mapping[int, str]) -> Evaluation:
        metrics: list[tuple[str, str, float]] = []
        pooled: dict[str, list[float]] = {}
        for section in sorted(np.unique(test.section).tolist()):
            mask = test.section == section
            values = section_metrics(
                test.domain[mask], test.is_anomaly[mask], scores[mask], where=f"{machine} section {section:02d}"
            )
            metrics += [(f"{section:02d}", name, value) for name, value in values.items()]
            if self.official_sections is None or section in self.official_sections:
                pooled.setdefault(subsets[section], []).extend(self.official_values(values))
        official = {subset: hmean(values) for subset, values in pooled.items()}
        metrics += [(subset, "official", value) for subset, value in sorted(official.items())]
        return Evaluation(machine, metrics, official, pooled)

    @staticmethod
    def official_values(values: Mapping[str, float]) -> list[float]:
        if "smix_auc" in values:
            return [values["smix_auc"], values["tmix_auc"], values["mix_pauc"]]
        prefix = "s" if "s_auc" in values else "t"
        return [values[f"{prefix}_auc"], values[f"{prefix}_pauc"]]

    def aggregate(self, evaluations: Sequence[Evaluation]) -> dict[str, float]:
        pooled: dict[str, list[float]] = {}
        for evaluation in evaluations:
            for subset, values in evaluation.pooled.items():
                pooled.setdefault(subset, []).extend(values)
        return {subset: hmean(values) for subset, values in sorted(pooled.items())}
