"""``knn``: k-nearest-neighbour distance with separate source and target references."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic

import asdcore

from .distances import l2_normalize, mean_knn_distance


class KnnBackend(asdcore.Backend):
    """score(x) = ½ · min(mean distance to the k_source nearest source training embeddings,
    mean distance to the k_target nearest target training embeddings).

    With ``metric: cosine`` embeddings are L2-normalised first (distance = √(2 − 2 cos)). A domain
    without training embeddings is left out of the minimum. Sections are pooled. Usage::

        backends: [{name: knn, params: {k_source: 1, k_target: 1, metric: cosine}}]
    """

    class Params(asdcore.Params):
        k_source: int = pydantic.Field(1, ge=1)
        k_target: int = pydantic.Field(1, ge=1)
        metric: Literal["cosine", "euclidean"] = "cosine"

    def fit(self, train: asdcore.FeatureSet) -> None:
        embedding = self._prepare(train, "train")
        if len(embedding) == 0:
            raise asdcore.AsdcoreError("knn: no training embeddings to fit on")
        self.references = []
        for domain, k in ((asdcore.SOURCE, self.params.k_source), (asdcore.TARGET, self.params.k_target)):
            refs = embedding[train.domain == domain]
            if len(refs) == 0:
                continue
            if len(refs) < k:
                name = "source" if domain == asdcore.SOURCE else "target"
                raise asdcore.AsdcoreError(f"knn: k_{name}={k} but only {len(refs)} {name} training embeddings")
            self.references.append((refs, k))

    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        if not hasattr(self, "references"):
            raise asdcore.AsdcoreError("knn: score() called before fit()")
        embedding = self._prepare(test, "test")
        distances = [mean_knn_distance(embedding, refs, k) for refs, k in self.references]
        return 0.5 * np.min(distances, axis=0)

    def _prepare(self, features: asdcore.FeatureSet, split: str) -> np.ndarray:
        embedding = features.embedding.astype(np.float64)
        if not np.isfinite(embedding).all():
            raise asdcore.AsdcoreError(f"knn: {split} embeddings contain NaN or infinite values")
        return l2_normalize(embedding) if self.params.metric == "cosine" else embedding
