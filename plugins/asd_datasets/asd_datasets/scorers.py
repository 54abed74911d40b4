"""Official DCASE Task 2 scorers, 2020–2026 (metric code shared in :class:`asdcore.SectionScorer`)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from asdcore import Evaluation, HarmonicMeanScorer, SectionScorer, amean, scored, subsets_of

from .official import missing_groups, read_submission
from .years import YEARS


class OfficialFormat:
    """Reads submissions in the official file formats of ``year``."""

    year: int

    def read_submission(self, scores_dir, ground_truth_dir):
        return read_submission(YEARS[self.year], scores_dir, ground_truth_dir)

    def missing_groups(self, scores_dir, ground_truth_dir) -> list[str]:
        return missing_groups(YEARS[self.year], scores_dir, ground_truth_dir)


class Dcase2020Scorer(OfficialFormat, SectionScorer):
    """DCASE 2020: AUC and pAUC per machine ID; per machine type (mean AUC + mean pAUC) / 2 over the
    subset's IDs; subset score = arithmetic mean over machine types (the evaluator has no single
    score; this is the reference toolkit's). Files: ``anomaly_score_<machine>_id_<NN>.csv``."""

    year = 2020
    mean = staticmethod(amean)

    def groups(self, machine, test):
        return {f"{machine}_id_{s:02d}": np.flatnonzero(test.section == s) for s in sorted(set(test.section.tolist()))}

    def official_values(self, values: Mapping[str, float]) -> list[float]:
        return [values["s_auc"], values["s_pauc"]]

    def aggregate(self, evaluations: Sequence[Evaluation]) -> dict[str, dict[str, float]]:
        result = {}
        for subset in subsets_of(evaluations):
            kept, complete = scored(evaluations, subset)
            official = amean([evaluation.official[subset] for evaluation in kept]) if kept else math.nan
            result[subset] = {"official": official, "complete": float(complete)}
        return result


class Dcase2021Scorer(OfficialFormat, SectionScorer):
    """DCASE 2021: AUC and pAUC per section and domain (each domain's normals vs its anomalies);
    official score = harmonic mean over machine types × sections × domains of AUC and pAUC.
    Files: ``anomaly_score_<machine>_section_<NN>_<source|target>_test.csv``."""

    year = 2021

    def groups(self, machine, test):
        out = {}
        for section in sorted(set(test.section.tolist())):
            for domain, name in ((0, "source"), (1, "target")):
                index = np.flatnonzero((test.section == section) & (test.domain == domain))
                if len(index):
                    out[f"{machine}_section_{section:02d}_{name}_test"] = index
        return out

    def official_values(self, values: Mapping[str, float]) -> list[float]:
        return [values[k] for k in ("s_auc", "t_auc", "s_pauc", "t_pauc") if k in values]


class Dcase2022Scorer(OfficialFormat, HarmonicMeanScorer):
    """DCASE 2022: harmonic mean over AUC (source), AUC (target) and pAUC of every section
    (sections 00–02 dev, 03–05 eval), plus the evaluator's jackknife ci95."""

    year = 2022
    with_ci95 = True


class Dcase2023Scorer(Dcase2022Scorer):
    """DCASE 2023 Task 2: harmonic mean of AUC (source), AUC (target) and pAUC (max FPR 0.1) of
    section 00 over the subset's machine types, plus the jackknife ci95."""

    year = 2023


class Dcase2024Scorer(Dcase2023Scorer):
    """DCASE 2024 Task 2: as 2023 with the 2024 machine types."""

    year = 2024


class Dcase2025Scorer(Dcase2023Scorer):
    """DCASE 2025 Task 2: as 2023 with the 2025 machine types."""

    year = 2025


class Dcase2026Scorer(Dcase2023Scorer):
    """DCASE 2026 Task 2: as 2023 with the 2026 machine types (five eval types, 15 values)."""

    year = 2026

