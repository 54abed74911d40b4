"""``passthrough``: the frontend's own anomaly scores (e.g. the AE's reconstruction error)."""
from __future__ import annotations

import numpy as np

import asdcore


class PassthroughBackend(asdcore.Backend):
    """Scores = the frontend scores stored with the features; training scores likewise (in-sample,
    as the official AE baseline sets its decision threshold). Usage::

        backends: [{name: passthrough}]
    """

    def fit(self, train: asdcore.FeatureSet) -> None:
        self._require(train, "train")

    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        return self._require(test, "test")

    def train_scores(self, train: asdcore.FeatureSet, folds: int = 5) -> np.ndarray:
        return self._require(train, "train")

    @staticmethod
    def _require(features: asdcore.FeatureSet, split: str) -> np.ndarray:
        if features.frontend_score is None:
            raise asdcore.AsdcoreError(
                f"passthrough: the {split} features carry no frontend scores; use it with a frontend that "
                "scores clips itself (e.g. ae)"
            )
        if split == "train" and len(features) == 0:
            raise asdcore.AsdcoreError("passthrough: no training clips to fit on")
        for name, values in (("frontend scores", features.frontend_score), ("embeddings", features.embedding)):
            if not np.isfinite(values).all():
                raise asdcore.AsdcoreError(f"passthrough: the {split} {name} contain NaN or infinite values; check "
                                           "the frontend that extracted them")
        return np.asarray(features.frontend_score, dtype=np.float64)
