"""``knn``: k-nearest-neighbour distance with separate source and target references, optionally with
SMOTE oversampling of the target domain (asdkit-facts §7)."""
from __future__ import annotations

import logging

import numpy as np
import pydantic

import asdcore

from .distances import l2_normalize, mean_knn_distance
from .embeddings import Metric, by_domain, prepare, require_fitted, single_threaded_blas

log = logging.getLogger("asdcore")


class KnnBackend(asdcore.Backend):
    """score(x) = ½ · min(mean distance to the k_source nearest source training embeddings,
    mean distance to the k_target nearest target training embeddings).

    With ``metric: cosine`` embeddings are L2-normalised first (distance = √(2 − 2 cos)). A domain
    without training embeddings is left out of the minimum. Sections are pooled.

    ``smote_ratio`` (the paper's kNN + SMOTE): before the target references are built, SMOTE
    (imbalanced-learn, domain as class) raises the target count to ⌊ratio · |source|⌋ with
    ``smote_neighbors`` neighbours and a fixed ``smote_random_state``; with cosine the synthetic
    embeddings are re-normalised. Nothing is generated when the target domain is already that large
    or absent, nor (with a warning) when it has no more than ``smote_neighbors`` embeddings. Usage::

        backends:
          - {name: knn, params: {k_source: 1, k_target: 1, metric: cosine}}
          - {id: knn_smote, name: knn, params: {smote_ratio: 0.2}}
    """

    class Params(asdcore.Params):
        k_source: int = pydantic.Field(1, ge=1)
        k_target: int = pydantic.Field(1, ge=1)
        metric: Metric = "cosine"
        smote_ratio: float | None = pydantic.Field(None, gt=0, le=1)
        smote_neighbors: int = pydantic.Field(2, ge=1)
        smote_random_state: int = 0

    @single_threaded_blas
    def fit(self, train: asdcore.FeatureSet) -> None:
        embedding = prepare(train, self.params.metric, "knn", "train")
        source, target = by_domain(train, embedding)
        if self.params.smote_ratio is not None:
            target = self._oversample(source, target)
        self.references = []
        for name, refs, k in (("source", source, self.params.k_source), ("target", target, self.params.k_target)):
            if len(refs) == 0:
                continue
            if len(refs) < k:
                raise asdcore.AsdcoreError(f"knn: k_{name}={k} but only {len(refs)} {name} training embeddings")
            self.references.append((refs, k))

    @single_threaded_blas
    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        require_fitted(self, "references", "knn")
        embedding = prepare(test, self.params.metric, "knn", "test")
        distances = [mean_knn_distance(embedding, refs, k) for refs, k in self.references]
        return 0.5 * np.min(distances, axis=0)

    def _oversample(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Original target embeddings followed by SMOTE's synthetic ones."""
        from imblearn.over_sampling import SMOTE

        wanted = int(self.params.smote_ratio * len(source))
        if len(target) == 0 or len(target) >= wanted:
            return target
        if len(target) <= self.params.smote_neighbors:
            log.warning("knn: SMOTE with smote_neighbors=%d needs more target training embeddings than that, "
                        "got %d; using them without oversampling", self.params.smote_neighbors, len(target))
            return target
        smote = SMOTE(sampling_strategy=self.params.smote_ratio, k_neighbors=self.params.smote_neighbors,
                      random_state=self.params.smote_random_state)
        x = np.concatenate([source, target])
        y = np.repeat([asdcore.SOURCE, asdcore.TARGET], [len(source), len(target)])
        resampled, labels = smote.fit_resample(x, y)
        synthetic = resampled[len(x):]
        if self.params.metric == "cosine":
            synthetic = l2_normalize(synthetic)
        log.debug("knn: SMOTE added %d target embeddings to %d", len(synthetic), len(target))
        return np.concatenate([target, synthetic])
