"""``{{ cookiecutter.backend_name }}``: Mahalanobis distance to a Gaussian of the training embeddings."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic

import asdcore

NAME = "{{ cookiecutter.backend_name }}"


class {{ cookiecutter.class_name }}(asdcore.Backend):
    """score(x) = √((x − μ)ᵀ Σ⁻¹ (x − μ)), with μ the mean and Σ the shrunk covariance of the training
    embeddings: Σ = (1 − s)·C + s·tr(C)/D·I, where C is the empirical covariance and s is estimated by
    Ledoit–Wolf (``shrinkage: null``) or fixed. With ``domains: separate`` one Gaussian is fitted per
    domain present in training and the smaller distance counts. Sections are pooled. Usage::

        backends: [{name: {{ cookiecutter.backend_name }}, params: {shrinkage: null, domains: pooled}}]
    """

    class Params(asdcore.Params):
        shrinkage: float | None = pydantic.Field(None, ge=0.0, le=1.0)
        domains: Literal["pooled", "separate"] = "pooled"

    def fit(self, train: asdcore.FeatureSet) -> None:
        embedding = _finite(train, "train")
        if len(embedding) == 0:
            raise asdcore.AsdcoreError(f"{NAME}: no training embeddings to fit on")
        if self.params.domains == "pooled":
            groups = {"all": embedding}
        else:
            groups = {name: embedding[train.domain == domain]
                      for name, domain in (("source", asdcore.SOURCE), ("target", asdcore.TARGET))}
        self.gaussians = [self._gaussian(x, name) for name, x in groups.items() if len(x)]

    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        if not hasattr(self, "gaussians"):
            raise asdcore.AsdcoreError(f"{NAME}: score() called before fit()")
        embedding = _finite(test, "test")
        distances = []
        for mean, precision in self.gaussians:
            centred = embedding - mean
            squared = np.einsum("ij,jk,ik->i", centred, precision, centred)
            distances.append(np.sqrt(np.maximum(squared, 0.0)))
        return np.min(distances, axis=0)

    def _gaussian(self, x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and precision matrix of one group of training embeddings."""
        from sklearn.covariance import LedoitWolf, ShrunkCovariance

        if len(x) < 2:
            raise asdcore.AsdcoreError(
                f"{NAME}: a covariance needs at least 2 training embeddings, {name} has 1"
                + ("; use domains: pooled" if name != "all" else "")
            )
        shrinkage = self.params.shrinkage
        estimator = LedoitWolf() if shrinkage is None else ShrunkCovariance(shrinkage=shrinkage)
        estimator.fit(x)
        return estimator.location_, estimator.precision_


def _finite(features: asdcore.FeatureSet, split: str) -> np.ndarray:
    embedding = features.embedding.astype(np.float64)
    if not np.isfinite(embedding).all():
        raise asdcore.AsdcoreError(f"{NAME}: {split} embeddings contain NaN or infinite values")
    return embedding
