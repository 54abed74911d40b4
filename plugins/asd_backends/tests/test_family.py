"""kmeans, kNN + SMOTE and knn_rescale against brute-force references, and the distance helper."""
import numpy as np
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.cluster import KMeans

import asd_backends.distances
from asd_backends.distances import smallest_distances
from asdcore import SOURCE, TARGET, AsdcoreError
from asdcore.testing import check_backend


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def data(features):
    rng = np.random.default_rng(7)
    source = rng.normal(size=(60, 6)) + np.array([2.0, 0, 0, 0, 0, 0])
    target = rng.normal(size=(5, 6)) + np.array([0, 2.0, 0, 0, 0, 0])
    train = features(np.concatenate([source, target]), [SOURCE] * 60 + [TARGET] * 5)
    test = features(rng.normal(size=(25, 6)) * 1.5, [SOURCE, TARGET] * 12 + [SOURCE])
    return train, test


def test_the_four_default_backends_are_registered(registry):
    for name in ("knn", "kmeans", "knn_rescale", "passthrough"):
        assert registry.get("backends", name).distribution == "asd-backends"


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("scaled", [False, True])
def test_smallest_distances_equal_brute_force(exclude_self, scaled, monkeypatch):
    rng = np.random.default_rng(3)
    refs = rng.normal(size=(30, 4))
    queries = refs if exclude_self else rng.normal(size=(17, 4))
    scale = rng.uniform(0.5, 2.0, size=30) if scaled else np.ones(30)
    expected = []
    for i, q in enumerate(queries):
        values = [np.linalg.norm(q - r) / s for j, (r, s) in enumerate(zip(refs, scale)) if not (exclude_self and i == j)]
        expected.append(sorted(values)[:3])
    for batch_elements in (1, 500, 1 << 25):
        monkeypatch.setattr(asd_backends.distances, "BATCH_ELEMENTS", batch_elements)
        got = smallest_distances(queries, refs, 3, scale=scale if scaled else None, exclude_self=exclude_self)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_smallest_distances_are_exact_for_near_duplicates():
    rng = np.random.default_rng(0)
    refs = unit(rng.normal(size=(50, 64)))
    queries = unit(refs[:10] + 1e-6 * rng.normal(size=(10, 64)))
    got = smallest_distances(queries, refs, 1)[:, 0]
    np.testing.assert_allclose(got, np.linalg.norm(queries - refs[:10], axis=1), rtol=1e-10)
    assert got.max() < 1e-5  # float32 cancellation alone would give errors around 1e-4


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_kmeans_equals_brute_force_with_sklearn_centres(data, metric, scores_of):
    train, test = data
    prep = unit if metric == "cosine" else (lambda x: np.asarray(x, dtype=np.float64))
    source, target = prep(train.embedding[train.domain == SOURCE]), prep(train.embedding[train.domain == TARGET])
    centres = KMeans(16, init="k-means++", n_init="auto", random_state=0).fit(source).cluster_centers_
    refs = np.concatenate([unit(centres) if metric == "cosine" else centres, target])
    expected = [0.5 * min(np.sum((q - r) ** 2) for r in refs) for q in prep(test.embedding)]
    got = scores_of("kmeans", train, test, metric=metric)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    if metric == "cosine":
        np.testing.assert_allclose(got, 1 - (prep(test.embedding) @ refs.T).max(axis=1), atol=1e-12)


def test_kmeans_is_reproducible_and_uses_the_random_state(data, scores_of):
    train, test = data
    first = scores_of("kmeans", train, test)
    np.testing.assert_array_equal(first, scores_of("kmeans", train, test))
    assert not np.array_equal(first, scores_of("kmeans", train, test, random_state=5))


def test_kmeans_keeps_target_embeddings_as_references(data, scores_of, features):
    train, _ = data
    target = features(train.embedding[train.domain == TARGET], [TARGET] * 5)
    np.testing.assert_allclose(scores_of("kmeans", train, target), 0.0, atol=1e-12)


def test_kmeans_with_fewer_source_embeddings_than_clusters_uses_them_all(data, scores_of):
    train, test = data
    few = train.select(np.r_[np.arange(5), np.arange(60, 65)])
    np.testing.assert_allclose(scores_of("kmeans", few, test, metric="euclidean"),
                               [0.5 * min(np.sum((q - r) ** 2) for r in few.embedding.astype(np.float64))
                                for q in test.embedding.astype(np.float64)], rtol=1e-9)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_smote_equals_brute_force_with_imblearn(data, metric, scores_of):
    train, test = data
    prep = unit if metric == "cosine" else (lambda x: np.asarray(x, dtype=np.float64))
    x = prep(train.embedding)
    resampled, labels = SMOTE(sampling_strategy=0.2, k_neighbors=2, random_state=0).fit_resample(x, train.domain)
    synthetic = resampled[len(x):]
    assert len(synthetic) == 60 // 5 - 5 and (labels[len(x):] == TARGET).all()
    target = np.concatenate([x[train.domain == TARGET], unit(synthetic) if metric == "cosine" else synthetic])
    source = x[train.domain == SOURCE]
    expected = [0.5 * min(np.linalg.norm(source - q, axis=1).min(), np.linalg.norm(target - q, axis=1).min())
                for q in prep(test.embedding)]
    got = scores_of("knn", train, test, metric=metric, smote_ratio=0.2)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert not np.allclose(got, scores_of("knn", train, test, metric=metric))


def test_knn_smote_is_reproducible_and_skips_when_not_needed(data, scores_of):
    train, test = data
    first = scores_of("knn", train, test, smote_ratio=0.2)
    np.testing.assert_array_equal(first, scores_of("knn", train, test, smote_ratio=0.2))
    assert not np.array_equal(first, scores_of("knn", train, test, smote_ratio=0.2, smote_random_state=1))
    plain = scores_of("knn", train, test)
    np.testing.assert_array_equal(scores_of("knn", train, test, smote_ratio=0.05), plain)  # 5 >= 0.05·60
    source_only = train.select(train.domain == SOURCE)
    np.testing.assert_array_equal(scores_of("knn", source_only, test, smote_ratio=0.2),
                                  scores_of("knn", source_only, test))


def test_knn_smote_with_too_few_target_embeddings_warns_and_keeps_them(data, caplog, scores_of):
    train, test = data
    two_targets = train.select(np.r_[np.arange(60), [60, 61]])
    with caplog.at_level("WARNING", logger="asdcore"):
        scores = scores_of("knn", two_targets, test, smote_ratio=0.2)
    assert "smote_neighbors=2 needs more target training embeddings than that, got 2" in caplog.text
    np.testing.assert_array_equal(scores, scores_of("knn", two_targets, test))


@pytest.mark.parametrize(("name", "params"), [
    ("knn", {}), ("knn", {"smote_ratio": 0.2}), ("kmeans", {}), ("knn_rescale", {}),
    ("knn", {"metric": "euclidean"}), ("kmeans", {"metric": "euclidean"}), ("knn_rescale", {"metric": "euclidean"}),
])
def test_conformance(name, params):
    check_backend(name, params)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(("k", "k_ref"), [(1, 4), (3, 2)])
def test_knn_rescale_equals_brute_force(data, metric, k, k_ref, scores_of):
    train, test = data
    prep = unit if metric == "cosine" else (lambda x: np.asarray(x, dtype=np.float64))
    refs = prep(train.embedding)
    density = np.array([np.mean(sorted(np.linalg.norm(refs[j] - r) for i, r in enumerate(refs) if i != j)[:k_ref])
                        for j in range(len(refs))])
    expected = [np.mean(sorted(np.linalg.norm(q - refs, axis=1) / density)[:k]) for q in prep(test.embedding)]
    got = scores_of("knn_rescale", train, test, metric=metric, k=k, k_ref=k_ref)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_knn_rescale_pools_domains_and_has_no_half_factor(scores_of, features):
    train = features(np.array([[0.0], [1.0], [3.0], [10.0]]), [SOURCE, SOURCE, SOURCE, TARGET])
    test = features(np.array([[0.5], [12.0]]), [SOURCE, TARGET])
    # densities (k_ref 1): 1, 1, 2, 7 -> 0.5 is 0.5/1 from 0 and 1; 12 is 2/7 from the target point
    np.testing.assert_allclose(scores_of("knn_rescale", train, test, metric="euclidean", k_ref=1),
                               [0.5, 2 / 7], rtol=1e-12)


@pytest.mark.parametrize("name", ["kmeans", "knn_rescale"])
def test_errors_name_the_backend(registry, data, name, features):
    train, test = data
    with pytest.raises(AsdcoreError, match=f"{name}: no training embeddings"):
        registry.create("backends", name).fit(train.select(np.zeros(len(train), dtype=bool)))
    broken = test.embedding.copy()
    broken[2, 3] = np.nan
    backend = registry.create("backends", name)
    with pytest.raises(AsdcoreError, match=f"{name}: score\\(\\) called before fit"):
        backend.score(test)
    backend.fit(train)
    with pytest.raises(AsdcoreError, match=f"{name}: test embeddings contain NaN"):
        backend.score(features(broken, test.domain))


def test_knn_rescale_needs_more_references_than_k_ref(registry, data):
    train, _ = data
    with pytest.raises(AsdcoreError, match="k_ref=4 need at least 5 training embeddings, got 4"):
        registry.create("backends", "knn_rescale").fit(train.select(np.arange(4)))


@pytest.mark.parametrize("present", [SOURCE, TARGET])
def test_kmeans_and_rescale_with_one_training_domain(data, present, scores_of):
    train, test = data
    one = train.select(train.domain == present)
    refs, queries = unit(one.embedding), unit(test.embedding)
    if present == SOURCE:
        refs = unit(KMeans(16, init="k-means++", n_init="auto", random_state=0).fit(refs).cluster_centers_)
    np.testing.assert_allclose(scores_of("kmeans", one, test),
                               [0.5 * np.min(np.sum((refs - q) ** 2, axis=1)) for q in queries], rtol=1e-9)
    rescaled = scores_of("knn_rescale", one, test)
    assert rescaled.shape == (len(test),) and np.isfinite(rescaled).all()
