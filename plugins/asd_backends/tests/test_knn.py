import numpy as np
import pytest

import asd_backends.distances
from asdcore import SOURCE, TARGET, AsdcoreError


def brute_force(train, test, k_source, k_target, metric):
    def prepare(x):
        x = x.astype(np.float64)
        return [v / np.linalg.norm(v) for v in x] if metric == "cosine" else list(x)

    refs = prepare(train.embedding)
    scores = []
    for query in prepare(test.embedding):
        per_domain = []
        for domain, k in ((SOURCE, k_source), (TARGET, k_target)):
            dists = sorted(np.linalg.norm(query - ref) for ref, d in zip(refs, train.domain) if d == domain)
            if dists:
                per_domain.append(sum(dists[:k]) / k)
        scores.append(0.5 * min(per_domain))
    return np.array(scores)


@pytest.fixture
def data(features):
    rng = np.random.default_rng(1)
    train = features(rng.normal(size=(14, 5)), [SOURCE] * 10 + [TARGET] * 4)
    test = features(rng.normal(size=(11, 5)) + 0.3, [SOURCE, TARGET] * 5 + [SOURCE])
    return train, test


def test_entry_point_registers_knn(registry):
    assert "knn" in registry.names("backends")
    assert registry.get("backends", "knn").distribution == "asd-backends"


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(("k_source", "k_target"), [(1, 1), (3, 2), (10, 4)])
def test_scores_match_brute_force(data, metric, k_source, k_target, scores_of):
    train, test = data
    scores = scores_of("knn", train, test, k_source=k_source, k_target=k_target, metric=metric)
    assert scores.shape == (len(test),)
    np.testing.assert_allclose(scores, brute_force(train, test, k_source, k_target, metric), rtol=1e-9, atol=1e-9)


def test_default_params_are_cosine_k1(data, scores_of):
    train, test = data
    np.testing.assert_allclose(scores_of("knn", train, test), brute_force(train, test, 1, 1, "cosine"), rtol=1e-9)


def test_cosine_is_scale_invariant_euclidean_is_not(data, scores_of, features):
    train, test = data
    scaled = features(test.embedding * 7.0, test.domain)
    np.testing.assert_allclose(scores_of("knn", train, scaled), scores_of("knn", train, test), rtol=1e-6)
    assert not np.allclose(scores_of("knn", train, scaled, metric="euclidean"),
                           scores_of("knn", train, test, metric="euclidean"))


def test_half_factor_and_minimum_over_domains(scores_of, features):
    train = features(np.array([[0.0, 0.0], [10.0, 0.0]]), [SOURCE, TARGET])
    test = features(np.array([[1.0, 0.0], [7.0, 0.0], [0.0, 4.0]]), [SOURCE, SOURCE, TARGET])
    scores = scores_of("knn", train, test, metric="euclidean")
    np.testing.assert_allclose(scores, [0.5, 1.5, 2.0], atol=1e-12)


def test_query_on_a_reference_scores_zero(data, scores_of):
    train, _ = data
    scores = scores_of("knn", train, train, metric="euclidean")
    np.testing.assert_allclose(scores, 0.0, atol=1e-6)


@pytest.mark.parametrize("present", [SOURCE, TARGET])
def test_missing_domain_in_training_uses_the_other(data, present, scores_of):
    train, test = data
    one_domain = train.select(train.domain == present)
    for metric in ("cosine", "euclidean"):
        scores = scores_of("knn", one_domain, test, k_source=2, k_target=2, metric=metric)
        np.testing.assert_allclose(scores, brute_force(one_domain, test, 2, 2, metric), rtol=1e-9)
        assert np.all(np.isfinite(scores))


@pytest.mark.parametrize(("params", "message"), [
    ({"k_source": 11}, "k_source=11 but only 10 source"),
    ({"k_target": 5}, "k_target=5 but only 4 target"),
])
def test_k_larger_than_references_is_an_error(registry, data, params, message):
    backend = registry.create("backends", "knn", params=params)
    with pytest.raises(AsdcoreError, match=message):
        backend.fit(data[0])


def test_empty_training_set_is_an_error(registry, data):
    backend = registry.create("backends", "knn", params={})
    with pytest.raises(AsdcoreError, match="no training embeddings"):
        backend.fit(data[0].select(np.zeros(len(data[0]), dtype=bool)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_embeddings_are_errors(registry, data, bad, features):
    train, test = data
    broken = train.embedding.copy()
    broken[3, 1] = bad
    with pytest.raises(AsdcoreError, match="train embeddings contain NaN"):
        registry.create("backends", "knn", params={}).fit(features(broken, train.domain))
    backend = registry.create("backends", "knn", params={})
    backend.fit(train)
    broken = test.embedding.copy()
    broken[0, 0] = bad
    with pytest.raises(AsdcoreError, match="test embeddings contain NaN"):
        backend.score(features(broken, test.domain))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_batching_gives_the_same_results(data, monkeypatch, metric, scores_of):
    train, test = data
    expected = scores_of("knn", train, test, k_source=3, k_target=2, metric=metric)
    for batch_elements in (1, 100, 200):
        monkeypatch.setattr(asd_backends.distances, "BATCH_ELEMENTS", batch_elements)
        np.testing.assert_allclose(scores_of("knn", train, test, k_source=3, k_target=2, metric=metric),
                                   expected, rtol=1e-12)


def test_score_before_fit_is_an_error(registry, data):
    with pytest.raises(AsdcoreError, match="before fit"):
        registry.create("backends", "knn").score(data[1])
