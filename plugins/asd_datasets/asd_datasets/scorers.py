"""Official DCASE scorers."""
from asdcore.scoring import HarmonicMeanScorer


class Dcase2023Scorer(HarmonicMeanScorer):
    """DCASE 2023 Task 2: harmonic mean of AUC (source), AUC (target) and pAUC (max FPR 0.1) of section 00."""

    official_sections = frozenset({0})
