"""``memory_bank``: kNN against per-domain memory banks with MemMixup and domain z-normalisation (GenRep,
methods-facts §3)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pydantic

import asdcore

from .distances import l2_normalize, smallest_distances
from .embeddings import Metric, by_domain, prepare, require_fitted, single_threaded_blas

log = logging.getLogger("asdcore")

Statistics = tuple[float, float]


@dataclass(frozen=True)
class Bank:
    """A domain's memory bank: its training embeddings, then any mixups, row r belonging to original r mod n."""

    domain: int
    originals: np.ndarray
    references: np.ndarray

    def groups(self) -> np.ndarray:
        return np.arange(len(self.references)) % len(self.originals)


class MemoryBankBackend(asdcore.Backend):
    """score(x) = min over domains d of z_d(x), z_d = (d_d(x) − μ_d) / σ_d, where d_d(x) is the mean
    distance from x to its ``k`` nearest embeddings in domain d's memory bank (GenRep, Saengthong &
    Shinozaki, ICASSP 2025).

    Banks: the source bank holds the source training embeddings; the target bank the target ones
    followed by MemMixup samples α·t_i + (1 − α)·s for each target embedding t_i and each of its
    ``mixup_neighbors`` nearest source embeddings s (``all``: every source embedding, GenRep's best;
    ``0``: no MemMixup), α = ``mixup_alpha``. With ``metric: cosine`` embeddings are L2-normalised
    first and the mixups again.

    ``normalize`` sets μ_d and σ_d (standard deviation, ddof 0):

    - ``train`` (default): over the training embeddings' leave-one-out distances to their own
      domain's bank, each left out with its own mixups, as a new test clip is absent from the bank;
      a domain with too few embeddings for these (or a σ of 0) takes the other domain's statistics,
      and with neither the distances stay raw (logged);
    - ``test_transductive``: over the test clips given to :meth:`score` (GenRep's own variant; the
      scores then depend on the whole test set); a σ of 0 counts as 1;
    - ``none``: score = min over domains of d_d(x).

    ``z_scale: target`` divides every domain by the target σ (where there is one), as GenRep's DCASE
    2025 follow-up does. A domain without training embeddings is left out. Sections are pooled.
    Training scores are cross-fitted (the base class), so a held-out clip and its mixups are absent
    from the banks and statistics that score it. Usage::

        backends:
          - {name: memory_bank, params: {k: 1, mixup_alpha: 0.9, mixup_neighbors: all, normalize: train}}
    """

    class Params(asdcore.Params):
        k: int = pydantic.Field(1, ge=1)
        mixup_alpha: float = pydantic.Field(0.9, gt=0, le=1)
        mixup_neighbors: Annotated[int, pydantic.Field(ge=0)] | Literal["all"] = "all"
        normalize: Literal["train", "test_transductive", "none"] = "train"
        z_scale: Literal["domain", "target"] = "domain"
        metric: Metric = "euclidean"

    @single_threaded_blas
    def fit(self, train: asdcore.FeatureSet) -> None:
        embedding = prepare(train, self.params.metric, "memory_bank", "train")
        source, target = by_domain(train, embedding)
        banks = [Bank(asdcore.SOURCE, source, source), Bank(asdcore.TARGET, target, self._with_mixups(source, target))]
        self.banks = [bank for bank in banks if len(bank.originals)]
        for bank in self.banks:
            if len(bank.references) < self.params.k:
                raise asdcore.AsdcoreError(f"memory_bank: k={self.params.k} but the {_name(bank.domain)} bank holds "
                                           f"only {len(bank.references)} embeddings")
        if self.params.normalize == "train":
            self.statistics = self._scaled(self._train_statistics())

    @single_threaded_blas
    def score(self, test: asdcore.FeatureSet) -> np.ndarray:
        require_fitted(self, "banks", "memory_bank")
        embedding = prepare(test, self.params.metric, "memory_bank", "test")
        distances = [smallest_distances(embedding, bank.references, self.params.k).mean(axis=1) for bank in self.banks]
        if self.params.normalize == "none":
            return np.min(distances, axis=0)
        if self.params.normalize == "test_transductive":
            statistics = self._scaled([(d.mean(), d.std() or 1.0) for d in distances])
        else:
            statistics = self.statistics
        return np.min([(d - mean) / std for d, (mean, std) in zip(distances, statistics)], axis=0)

    def _with_mixups(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The target embeddings, then their mixups with the nearest source embeddings, neighbour-major."""
        from scipy.spatial.distance import cdist

        neighbors = self.params.mixup_neighbors
        count = len(source) if neighbors == "all" else min(neighbors, len(source))
        if count == 0 or len(target) == 0:
            return target
        nearest = np.argsort(cdist(target, source, "sqeuclidean"), axis=1, kind="stable")[:, :count]
        alpha = self.params.mixup_alpha
        mixups = (alpha * target[None] + (1 - alpha) * source[nearest.T]).reshape(-1, target.shape[1])
        if self.params.metric == "cosine":
            mixups = l2_normalize(mixups)
        return np.concatenate([target, mixups])

    def _train_statistics(self) -> list[Statistics]:
        """(μ, σ) of each bank's leave-one-out distances, borrowed from the other bank where missing."""
        own = [_leave_one_out_statistics(bank, self.params.k) for bank in self.banks]
        fallback = next((s for s in own if s is not None), None)
        for bank, statistics in zip(self.banks, own):
            if statistics is None:
                log.warning("memory_bank: no leave-one-out statistics of the %s domain (%d training embeddings: "
                            "too few, or all at one distance); %s", _name(bank.domain), len(bank.originals),
                            "using the other domain's" if fallback else "its distances stay raw")
        return [s or fallback or (0.0, 1.0) for s in own]

    def _scaled(self, statistics: list[Statistics]) -> list[Statistics]:
        """With ``z_scale: target``, every σ replaced by the target domain's."""
        domains = [bank.domain for bank in self.banks]
        if self.params.z_scale == "domain" or asdcore.TARGET not in domains:
            return statistics
        std = statistics[domains.index(asdcore.TARGET)][1]
        return [(mean, std) for mean, _ in statistics]


def _leave_one_out_statistics(bank: Bank, k: int) -> Statistics | None:
    """Mean and σ of each original's k-NN distance to the bank without itself and its mixups; None if undefined."""
    n = len(bank.originals)
    if len(bank.references) - len(bank.references) // n < k:
        return None
    distances = smallest_distances(bank.originals, bank.references, k,
                                   exclude_groups=(np.arange(n), bank.groups())).mean(axis=1)
    std = float(distances.std())
    return (float(distances.mean()), std) if std > 0 else None


def _name(domain: int) -> str:
    return "source" if domain == asdcore.SOURCE else "target"
