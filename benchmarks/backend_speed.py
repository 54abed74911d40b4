"""Time the score stage's backend work: asd-backends against scikit-learn's NearestNeighbors.

    python benchmarks/backend_speed.py [--machines 14] [--train 1000] [--test 200] [--dim 256]
                                       [--features RUN_DIR]

For every machine type and each of the four default backends (knn, kmeans, knn + SMOTE,
knn_rescale) the work of one score stage is done: fit on the train embeddings, score the test
embeddings and the 5-fold cross-fitted train scores (for the decision threshold). The same work is
then done with the neighbour searches of scikit-learn's ``NearestNeighbors`` (and ``pairwise_distances``
where all distances are needed), with identical k-means and SMOTE steps. Prints seconds per backend
and side, the ratios and the largest score difference. ``--features RUN_DIR`` uses the ``features.h5`` files of
a finished run (e.g. ``results/demo/synth/seed0``) instead of random embeddings.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

import asdcore
from asd_backends.distances import l2_normalize
from asd_backends.kmeans import KmeansBackend
from asd_backends.knn import KnnBackend
from asd_backends.rescale import KnnRescaleBackend
from asdcore.features import load_features

BACKENDS = {
    "knn": (KnnBackend, {}),
    "kmeans": (KmeansBackend, {}),
    "knn_smote": (KnnBackend, {"smote_ratio": 0.2}),
    "knn_rescale": (KnnRescaleBackend, {}),
}


def nearest(queries: np.ndarray, references: np.ndarray, k: int) -> np.ndarray:
    return NearestNeighbors(n_neighbors=k).fit(references).kneighbors(queries)[0]


class SklearnKnn(KnnBackend):
    def score(self, test):
        x = l2_normalize(test.embedding.astype(np.float64))
        return 0.5 * np.min([nearest(x, refs, k).mean(axis=1) for refs, k in self.references], axis=0)


class SklearnKmeans(KmeansBackend):
    def score(self, test):
        x = l2_normalize(test.embedding.astype(np.float64))
        return 0.5 * nearest(x, self.references, 1)[:, 0] ** 2


class SklearnRescale(KnnRescaleBackend):
    def fit(self, train):
        self.references = l2_normalize(train.embedding.astype(np.float64))
        self.density = nearest(self.references, self.references, self.params.k_ref + 1)[:, 1:].mean(axis=1)

    def score(self, test):
        x = l2_normalize(test.embedding.astype(np.float64))
        ratio = pairwise_distances(x, self.references) / self.density[None, :]
        return np.sort(ratio, axis=1)[:, : self.params.k].mean(axis=1)


SKLEARN = {"knn": SklearnKnn, "kmeans": SklearnKmeans, "knn_smote": SklearnKnn, "knn_rescale": SklearnRescale}


def random_machines(n: int, n_train: int, n_test: int, dim: int) -> list[tuple[asdcore.FeatureSet, asdcore.FeatureSet]]:
    rng = np.random.default_rng(0)
    machines = []
    for _ in range(n):
        centre = rng.normal(size=dim)
        n_target = max(1, n_train // 100)

        def split(size: int, target: int) -> asdcore.FeatureSet:
            domain = np.r_[np.zeros(size - target), np.ones(target)]
            embedding = centre + rng.normal(size=(size, dim)) + domain[:, None] * rng.normal(size=dim)
            return asdcore.FeatureSet(embedding=embedding, path=np.arange(size).astype(str), section=np.zeros(size),
                                      domain=domain, is_anomaly=np.zeros(size), attribute=[""] * size)

        machines.append((split(n_train, n_target), split(n_test, n_test // 2)))
    return machines


def run_features(run_dir: Path) -> list[tuple[asdcore.FeatureSet, asdcore.FeatureSet]]:
    files = sorted(run_dir.glob("*/features.h5"))
    if not files:
        raise SystemExit(f"no */features.h5 under {run_dir}")
    return [(load_features(f, "train"), load_features(f, "test")) for f in files]


def score_stage(classes: dict, machines) -> tuple[dict[str, float], list[np.ndarray]]:
    """Seconds per backend id for the whole score stage, and every score array in a fixed order."""
    outputs, seconds = [], dict.fromkeys(BACKENDS, 0.0)
    for train, test in machines:
        for bid, (_, params) in BACKENDS.items():
            start = time.perf_counter()
            cls = classes[bid]
            backend = cls(cls.Params(**params))
            backend.fit(train)
            outputs += [backend.score(test), backend.train_scores(train)]
            seconds[bid] += time.perf_counter() - start
    return seconds, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=14)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--features", type=Path, help="a run's seed folder with <machine>/features.h5")
    args = parser.parse_args()
    if args.features:
        machines = run_features(args.features)
        what = f"{len(machines)} machine types of {args.features}"
    else:
        machines = random_machines(args.machines, args.train, args.test, args.dim)
        what = f"{args.machines} machine types, {args.train} train / {args.test} test embeddings of dim {args.dim}"
    score_stage({bid: cls for bid, (cls, _) in BACKENDS.items()}, machines[:1])  # imports and warm-up
    ours, ours_out = score_stage({bid: cls for bid, (cls, _) in BACKENDS.items()}, machines)
    theirs, theirs_out = score_stage(SKLEARN, machines)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours_out, theirs_out))
    print(f"{what}, 4 backends (fit + test scores + 5-fold train scores)")
    print("| backend | asd-backends (s) | scikit-learn NearestNeighbors (s) | ratio |\n|---|---|---|---|")
    for bid in [*BACKENDS, "all"]:
        a, b = (sum(ours.values()), sum(theirs.values())) if bid == "all" else (ours[bid], theirs[bid])
        print(f"| {bid} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    print(f"largest score difference {diff:.2e}")

if __name__ == "__main__":
    main()
