"""``kmeans``: distance to k-means centres of the source domain and to every target embedding (§7)."""
from __future__ import annotations

import logging

import numpy as np
import pydantic

import asdcore

from .distances import l2_normalize, smallest_distances
from .embeddings import Metric, by_domain, prepare, require_fitted, single_threaded_blas

log = logging.getLogger("asdcore")


class KmeansBackend(asdcore.Backend):
    """score(x) = ½ · min over references r of ‖x − r‖² (with cosine: 1 − the largest cosine similarity).

    References: the ``n_clusters`` centres of scikit-learn's KMeans (k-means++, ``n_init="auto"``,
    fixed ``random_state``) fitted on the source training embeddings — re-normalised with cosine —
    plus every target training embedding as it is. With fewer source embeddings than clusters, each
    source embedding is its own centre (logged). Usage::

        backends: [{name: kmeans, params: {n_clusters: 16, metric: cosine}}]
    """

    class Params(asdcore.Params):
        n_clusters: int = pydantic.Field(16, ge=1)
        metric: Metric = "cosine"
        random_state: int = 0

    @single_threaded_blas
    def fit(self, train: asdcore.FeatureSet) -> None:
        from sklearn.cluster import KMeans

        embedding = prepare(train, self.params.metric, "kmeans", "train")
        source, target = by_domain(train, embedding)
        centres = source
        if len(source) > self.params.n_clusters:
            kmeans = KMeans(self.params.n_clusters, init="k-means++", n_init="auto", random_state=self.params.random_state)
            centres = kmeans.fit(source).cluster_centers_.astype(np.float64)
            if self.params.metric == "cosine":
                centres = l2_normalize(centres)
        elif len(source):
            log.info("kmeans: %d source embeddings <= n_clusters=%d; each is its own centre",
                     len(source), self.params.n_clusters)
        self.references = np.concatenate([centres, target])

    @single_threaded_blas
    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        require_fitted(self, "references", "kmeans")
        embedding = prepare(test, self.params.metric, "kmeans", "test")
        return 0.5 * smallest_distances(embedding, self.references, 1)[:, 0] ** 2
