"""``mahalanobis``: squared Mahalanobis distance to the mean of each domain, the smaller one (methods-facts §1.6)."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic

import asdcore

from .embeddings import by_domain, prepare, require_fitted, single_threaded_blas


class MahalanobisBackend(asdcore.Backend):
    """score(x) = min over domains d of (x − μ_d)ᵀ P_d (x − μ_d), the squared Mahalanobis distance.

    The official baseline's selective Mahalanobis rule (min of the source and the target distance)
    for any embeddings: μ_d and Σ_d are the mean and covariance of domain d's training embeddings,
    and P_d is the pseudo-inverse of Σ_d (the inverse when Σ_d is invertible). ``covariance``:

    - ``ledoit_wolf`` (default) and ``oas``: scikit-learn's shrinkage estimators, well conditioned
      even with fewer embeddings than dimensions (10 target clips in 768-d);
    - ``empirical``: the sample covariance (divided by n − 1, as the baseline); singular with fewer
      embeddings than dimensions, where the pseudo-inverse ignores the directions it lacks.
      ``shrinkage: s`` shrinks it by a fixed amount: (1 − s)·Σ + s·tr(Σ)/D·I.

    A domain without training embeddings is left out of the minimum; a domain with a single one is
    centred on it and takes the covariance of all training embeddings (the baseline likewise gives
    the target domain the source covariance when it has seen no target data). Sections are pooled.
    Training scores are cross-fitted (the base class), not the baseline's in-sample batch scores.
    Usage::

        backends:
          - {name: mahalanobis}
          - {id: mahalanobis_fixed, name: mahalanobis, params: {covariance: empirical, shrinkage: 0.1}}
    """

    class Params(asdcore.Params):
        covariance: Literal["ledoit_wolf", "oas", "empirical"] = "ledoit_wolf"
        shrinkage: float | None = pydantic.Field(None, ge=0, le=1)

        @pydantic.model_validator(mode="after")
        def _fixed_shrinkage_is_for_empirical(self):
            if self.shrinkage is not None and self.covariance != "empirical":
                raise ValueError(f"shrinkage is a fixed shrinkage of the empirical covariance; covariance "
                                 f"{self.covariance!r} estimates its own, use covariance: empirical")
            return self

    @single_threaded_blas
    def fit(self, train: asdcore.FeatureSet) -> None:
        embedding = prepare(train, "euclidean", "mahalanobis", "train")
        if len(embedding) < 2:
            raise asdcore.AsdcoreError(f"mahalanobis: needs at least 2 training embeddings, got {len(embedding)}")
        self.domains = [(x.mean(axis=0), self._precision(x if len(x) > 1 else embedding))
                        for x in by_domain(train, embedding) if len(x)]

    @single_threaded_blas
    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        require_fitted(self, "domains", "mahalanobis")
        embedding = prepare(test, "euclidean", "mahalanobis", "test")
        return np.min([squared_mahalanobis(embedding, mean, precision) for mean, precision in self.domains], axis=0)

    def _precision(self, x: np.ndarray) -> np.ndarray:
        return np.linalg.pinv(self._covariance(x), hermitian=True)

    def _covariance(self, x: np.ndarray) -> np.ndarray:
        from sklearn.covariance import OAS, LedoitWolf, shrunk_covariance

        if self.params.covariance == "ledoit_wolf":
            return LedoitWolf(store_precision=False).fit(x).covariance_
        if self.params.covariance == "oas":
            return OAS(store_precision=False).fit(x).covariance_
        covariance = np.atleast_2d(np.cov(x, rowvar=False))
        return covariance if self.params.shrinkage is None else shrunk_covariance(covariance, self.params.shrinkage)


def squared_mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """(x_i − mean)ᵀ precision (x_i − mean) for every row, floored at 0 against rounding."""
    centred = x - mean
    return np.maximum(np.einsum("ij,ij->i", centred @ precision, centred), 0.0)
