"""mahalanobis against scipy's distance with covariances computed directly, its options and edge cases."""
import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis
from sklearn.covariance import OAS, LedoitWolf

from asdcore import SOURCE, TARGET, AsdcoreError, ConfigError
from asdcore.testing import check_backend


def covariance(x, kind, shrinkage=None):
    if kind == "ledoit_wolf":
        return LedoitWolf().fit(x).covariance_
    if kind == "oas":
        return OAS().fit(x).covariance_
    sample = np.cov(x, rowvar=False)
    if shrinkage is None:
        return sample
    return (1 - shrinkage) * sample + shrinkage * np.trace(sample) / len(sample) * np.eye(len(sample))


def brute_force(train, test, kind, shrinkage=None, invert=np.linalg.inv):
    x = train.embedding.astype(np.float64)
    domains = []
    for domain in (SOURCE, TARGET):
        rows = x[train.domain == domain]
        if len(rows):
            own = rows if len(rows) > 1 else x
            domains.append((rows.mean(axis=0), invert(covariance(own, kind, shrinkage))))
    return np.array([min(mahalanobis(q, mean, vi) ** 2 for mean, vi in domains)
                     for q in test.embedding.astype(np.float64)])


@pytest.fixture
def data(features):
    rng = np.random.default_rng(5)
    mixing = rng.normal(size=(6, 6))
    source = rng.normal(size=(50, 6)) @ mixing
    target = rng.normal(size=(9, 6)) @ mixing * 0.5 + 3.0
    train = features(np.concatenate([source, target]), [SOURCE] * 50 + [TARGET] * 9)
    test = features(rng.normal(size=(20, 6)) @ mixing + 1.0, [SOURCE, TARGET] * 10)
    return train, test


@pytest.mark.parametrize(("kind", "shrinkage"), [("ledoit_wolf", None), ("oas", None), ("empirical", None),
                                                 ("empirical", 0.3)])
def test_scores_equal_brute_force(data, kind, shrinkage, scores_of):
    train, test = data
    params = {"covariance": kind} | ({} if shrinkage is None else {"shrinkage": shrinkage})
    got = scores_of("mahalanobis", train, test, **params)
    np.testing.assert_allclose(got, brute_force(train, test, kind, shrinkage), rtol=1e-8)


def test_default_is_ledoit_wolf_and_zero_shrinkage_is_the_empirical_covariance(data, scores_of):
    train, test = data
    np.testing.assert_array_equal(scores_of("mahalanobis", train, test), scores_of("mahalanobis", train, test,
                                                                                covariance="ledoit_wolf"))
    np.testing.assert_allclose(scores_of("mahalanobis", train, test, covariance="empirical", shrinkage=0.0),
                               scores_of("mahalanobis", train, test, covariance="empirical"), rtol=1e-10)


def test_score_is_the_smaller_domain_distance(scores_of, features):
    train = features([[-1.0], [1.0], [9.0], [11.0]], [SOURCE, SOURCE, TARGET, TARGET])
    test = features([[0.0], [2.0], [8.0]], [SOURCE, SOURCE, TARGET])
    # both domains: variance 2 around 0 and 10; squared distances x²/2 and (x − 10)²/2
    np.testing.assert_allclose(scores_of("mahalanobis", train, test, covariance="empirical"), [0.0, 2.0, 2.0])


@pytest.mark.parametrize("kind", ["ledoit_wolf", "oas"])
def test_fewer_target_embeddings_than_dimensions(kind, scores_of, features):
    rng = np.random.default_rng(2)
    train = features(rng.normal(size=(43, 16)), [SOURCE] * 40 + [TARGET] * 3)
    test = features(rng.normal(size=(7, 16)), [TARGET] * 7)
    np.testing.assert_allclose(scores_of("mahalanobis", train, test, covariance=kind), brute_force(train, test, kind),
                               rtol=1e-8)


def test_empirical_covariance_of_too_few_embeddings_uses_the_pseudo_inverse(scores_of, features):
    rng = np.random.default_rng(4)
    train = features(rng.normal(size=(4, 8)), [SOURCE] * 4)
    test = features(rng.normal(size=(5, 8)), [SOURCE] * 5)
    got = scores_of("mahalanobis", train, test, covariance="empirical")
    np.testing.assert_allclose(got, brute_force(train, test, "empirical", invert=np.linalg.pinv), rtol=1e-6)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("present", [SOURCE, TARGET])
def test_one_training_domain_scores_with_it_alone(data, present, scores_of):
    train, test = data
    one = train.select(train.domain == present)
    np.testing.assert_allclose(scores_of("mahalanobis", one, test), brute_force(one, test, "ledoit_wolf"), rtol=1e-8)


def test_a_single_target_embedding_takes_the_covariance_of_all(data, scores_of):
    train, test = data
    single = train.select(np.arange(51))
    got = scores_of("mahalanobis", single, test, covariance="empirical")
    x = single.embedding.astype(np.float64)
    source_precision = np.linalg.inv(np.cov(x[:50], rowvar=False))
    all_precision = np.linalg.inv(np.cov(x, rowvar=False))
    expected = [min(mahalanobis(q, x[:50].mean(axis=0), source_precision), mahalanobis(q, x[50], all_precision)) ** 2
                for q in test.embedding.astype(np.float64)]
    np.testing.assert_allclose(got, expected, rtol=1e-8)


def test_shrinkage_needs_the_empirical_covariance(registry):
    with pytest.raises(ConfigError, match="shrinkage is a fixed shrinkage of the empirical covariance"):
        registry.create("backends", "mahalanobis", params={"shrinkage": 0.1})
    with pytest.raises(ConfigError, match="covariance"):
        registry.create("backends", "mahalanobis", params={"covariance": "graphical_lasso"})


def test_one_training_embedding_is_an_error(registry, data):
    train, _ = data
    with pytest.raises(AsdcoreError, match="mahalanobis: needs at least 2 training embeddings, got 1"):
        registry.create("backends", "mahalanobis").fit(train.select(np.arange(1)))


@pytest.mark.parametrize("params", [{}, {"covariance": "oas"}, {"covariance": "empirical"},
                                    {"covariance": "empirical", "shrinkage": 0.1}])
def test_conformance(params):
    check_backend("mahalanobis", params)
