"""``knn_rescale``: nearest-neighbour distance rescaled by the local density of the references (§7)."""
from __future__ import annotations

import numpy as np
import pydantic

import asdcore

from .distances import smallest_distances
from .embeddings import Metric, prepare, require_fitted, single_threaded_blas

DENSITY_FLOOR = 1e-12  # a reference with k_ref exact duplicates would otherwise divide by zero


class KnnRescaleBackend(asdcore.Backend):
    """score(x) = mean of the ``k`` smallest values of ‖x − r_j‖ / c_j over all training embeddings
    r_j (source and target together), where c_j is the mean distance of r_j to its ``k_ref`` nearest
    other training embeddings (floored at 1e-12). No ½ factor. Usage::

        backends: [{name: knn_rescale, params: {k: 1, k_ref: 4, metric: cosine}}]
    """

    class Params(asdcore.Params):
        k: int = pydantic.Field(1, ge=1)
        k_ref: int = pydantic.Field(4, ge=1)
        metric: Metric = "cosine"

    @single_threaded_blas
    def fit(self, train: asdcore.FeatureSet) -> None:
        references = prepare(train, self.params.metric, "knn_rescale", "train")
        needed = max(self.params.k_ref + 1, self.params.k)
        if len(references) < needed:
            raise asdcore.AsdcoreError(
                f"knn_rescale: k={self.params.k}, k_ref={self.params.k_ref} need at least {needed} training "
                f"embeddings, got {len(references)}"
            )
        density = smallest_distances(references, references, self.params.k_ref, exclude_self=True).mean(axis=1)
        self.references = references
        self.density = np.maximum(density, DENSITY_FLOOR)

    @single_threaded_blas
    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        require_fitted(self, "references", "knn_rescale")
        embedding = prepare(test, self.params.metric, "knn_rescale", "test")
        return smallest_distances(embedding, self.references, self.params.k, scale=self.density).mean(axis=1)
