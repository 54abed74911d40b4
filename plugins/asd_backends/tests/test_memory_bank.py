"""memory_bank against a brute-force GenRep (banks, MemMixup, leave-one-out and test statistics), hand-worked
examples and the group exclusion of the distance helper."""
import numpy as np
import pytest

import asd_backends.distances
from asd_backends.distances import smallest_distances
from asdcore import SOURCE, TARGET, AsdcoreError
from asdcore.testing import check_backend


def knn(query, bank, k):
    return np.mean(sorted(np.linalg.norm(query - b) for b in bank)[:k])


def brute_force(train, test, k=1, mixup_alpha=0.9, mixup_neighbors="all", normalize="train", z_scale="domain",
                metric="euclidean"):
    """GenRep written out: banks of (embedding, origin) pairs with the originals first, distances by loops."""
    def prep(x):
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=-1, keepdims=True) if metric == "cosine" else x

    x = prep(train.embedding)
    source, target = x[train.domain == SOURCE], x[train.domain == TARGET]
    banks = [(source, list(enumerate(source)))] if len(source) else []
    if len(target):
        bank = list(enumerate(target))
        count = len(source) if mixup_neighbors == "all" else min(mixup_neighbors, len(source))
        for i, t in enumerate(target):
            nearest = sorted(range(len(source)), key=lambda j: np.sum((t - source[j]) ** 2))[:count]
            bank += [(i, prep(mixup_alpha * t + (1 - mixup_alpha) * source[j])) for j in nearest]
        banks.append((target, bank))
    queries = prep(test.embedding)
    distances = [np.array([knn(q, [b for _, b in bank], k) for q in queries]) for _, bank in banks]
    if normalize == "none":
        return np.min(distances, axis=0)
    if normalize == "train":
        stats = []
        for originals, bank in banks:
            loo = [knn(o, [b for j, b in bank if j != i], k) for i, o in enumerate(originals)]
            stats.append((np.mean(loo), np.std(loo)))
    else:
        stats = [(d.mean(), d.std()) for d in distances]
    if z_scale == "target" and len(target):
        stats = [(mean, stats[-1][1]) for mean, _ in stats]
    return np.min([(d - mean) / std for d, (mean, std) in zip(distances, stats)], axis=0)


@pytest.fixture
def data(features):
    rng = np.random.default_rng(11)
    source = rng.normal(size=(30, 5))
    target = rng.normal(size=(4, 5)) * 0.7 + np.array([1.5, 0, 0, 0, 0])
    train = features(np.concatenate([source, target]), [SOURCE] * 30 + [TARGET] * 4)
    test = features(rng.normal(size=(15, 5)) * 1.3 + 0.4, [SOURCE, TARGET] * 7 + [SOURCE])
    return train, test


@pytest.mark.parametrize("normalize", ["train", "test_transductive", "none"])
@pytest.mark.parametrize("mixup_neighbors", ["all", 3, 0])
def test_scores_equal_brute_force(data, normalize, mixup_neighbors, scores_of):
    train, test = data
    params = {"normalize": normalize, "mixup_neighbors": mixup_neighbors}
    np.testing.assert_allclose(scores_of("memory_bank", train, test, **params), brute_force(train, test, **params),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("params", [
    {"k": 3}, {"mixup_alpha": 0.6}, {"z_scale": "target"}, {"metric": "cosine"},
    {"k": 2, "metric": "cosine", "mixup_neighbors": 5, "z_scale": "target", "normalize": "test_transductive"},
])
def test_options_equal_brute_force(data, params, scores_of):
    train, test = data
    np.testing.assert_allclose(scores_of("memory_bank", train, test, **params), brute_force(train, test, **params),
                               rtol=1e-9, atol=1e-12)


def test_defaults_are_genreps(registry):
    params = registry.create("backends", "memory_bank").params
    assert (params.k, params.mixup_alpha, params.mixup_neighbors, params.normalize, params.metric) == (
        1, 0.9, "all", "train", "euclidean")


def test_memmixup_adds_target_points_toward_the_nearest_sources(scores_of, features):
    train = features([[0.0], [12.0], [5.0]], [SOURCE, SOURCE, TARGET])
    test = features([[5.6]], [TARGET])
    # mixups of 5 (α = 0.9): 4.5 with 0, 5.7 with 12; only 4.5 with one neighbour (0 is the nearer source)
    for neighbors, expected in (("all", 0.1), (2, 0.1), (1, 0.6), (0, 0.6)):
        got = scores_of("memory_bank", train, test, mixup_neighbors=neighbors, normalize="none")
        np.testing.assert_allclose(got, [expected], rtol=1e-6)


def test_leave_one_out_statistics_leave_out_each_clips_own_mixups(scores_of, features):
    train = features([[0.0], [1.0], [3.0], [10.0], [20.0]], [SOURCE] * 3 + [TARGET] * 2)
    test = features([[15.0], [0.5]], [SOURCE, SOURCE])
    # source: 1-NN distances 1, 1, 2. target bank: 10, 9, 9.1, 9.3 and 20, 18, 18.1, 18.3; without
    # its own group 10 is 8 from 18 and 20 is 10 from 10: μ_t = 9, σ_t = 1 (with its mixups 10 would be 0.7)
    mean_s, std_s = 4 / 3, np.std([1, 1, 2])
    expected = [min((12 - mean_s) / std_s, (3 - 9) / 1), min((0.5 - mean_s) / std_s, (8.5 - 9) / 1)]
    np.testing.assert_allclose(scores_of("memory_bank", train, test), expected, rtol=1e-6)
    expected_target_scale = [min((12 - mean_s) / 1, -6.0), min((0.5 - mean_s) / 1, -0.5)]
    np.testing.assert_allclose(scores_of("memory_bank", train, test, z_scale="target"), expected_target_scale,
                               rtol=1e-6)


def test_a_domain_without_statistics_borrows_the_other_domains(data, caplog, scores_of):
    train, test = data
    one_target = train.select(np.arange(31))
    with caplog.at_level("WARNING", logger="asdcore"):
        got = scores_of("memory_bank", one_target, test)
    assert "no leave-one-out statistics of the target domain (1 training embeddings" in caplog.text
    source = train.embedding[:30].astype(np.float64)
    loo = [knn(s, np.delete(source, i, axis=0), 1) for i, s in enumerate(source)]
    raw = scores_of("memory_bank", one_target, test, normalize="none")
    np.testing.assert_allclose(got, (raw - np.mean(loo)) / np.std(loo), rtol=1e-9)


def test_without_statistics_in_either_domain_distances_stay_raw(data, scores_of):
    train, test = data
    two = train.select(np.array([0, 30]))
    np.testing.assert_allclose(scores_of("memory_bank", two, test),
                               scores_of("memory_bank", two, test, normalize="none"))


@pytest.mark.parametrize("present", [SOURCE, TARGET])
@pytest.mark.parametrize("normalize", ["train", "test_transductive"])
def test_one_training_domain_scores_with_it_alone(data, present, normalize, scores_of):
    train, test = data
    one = train.select(train.domain == present)
    np.testing.assert_allclose(scores_of("memory_bank", one, test, normalize=normalize),
                               brute_force(one, test, normalize=normalize), rtol=1e-9)


def test_only_the_transductive_variant_depends_on_the_other_test_clips(data, scores_of):
    train, test = data
    part = test.select(np.arange(6))
    np.testing.assert_array_equal(scores_of("memory_bank", train, part), scores_of("memory_bank", train, test)[:6])
    assert not np.allclose(scores_of("memory_bank", train, part, normalize="test_transductive"),
                           scores_of("memory_bank", train, test, normalize="test_transductive")[:6])


def test_k_larger_than_a_bank_is_an_error(registry, data):
    train, _ = data
    few = train.select(np.r_[np.arange(3), [30]])
    with pytest.raises(AsdcoreError, match="memory_bank: k=4 but the source bank holds only 3 embeddings"):
        registry.create("backends", "memory_bank", params={"k": 4}).fit(few)


def test_mixup_params_are_validated(registry):
    from asdcore import ConfigError

    for params in ({"mixup_alpha": 0.0}, {"mixup_neighbors": -1}, {"mixup_neighbors": "some"},
                   {"normalize": "test"}):
        with pytest.raises(ConfigError):
            registry.create("backends", "memory_bank", params=params)


@pytest.mark.parametrize("batch_elements", [1, 40, 1 << 25])
def test_smallest_distances_exclude_groups(monkeypatch, batch_elements):
    rng = np.random.default_rng(8)
    refs, queries = rng.normal(size=(24, 3)), rng.normal(size=(6, 3))
    ref_groups, query_groups = np.arange(24) % 6, np.array([0, 1, 2, 3, 7, 0])
    expected = [sorted(np.linalg.norm(q - r) for r, g in zip(refs, ref_groups) if g != qg)[:2]
                for q, qg in zip(queries, query_groups)]
    monkeypatch.setattr(asd_backends.distances, "BATCH_ELEMENTS", batch_elements)
    got = smallest_distances(queries, refs, 2, exclude_groups=(query_groups, ref_groups))
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    with pytest.raises(ValueError, match="k=21 needs between 1 and 20 references"):
        smallest_distances(queries, refs, 21, exclude_groups=(query_groups, ref_groups))


@pytest.mark.parametrize("params", [
    {}, {"normalize": "test_transductive"}, {"normalize": "none"}, {"mixup_neighbors": 0},
    {"metric": "cosine", "z_scale": "target", "mixup_neighbors": 3, "k": 2},
])
def test_conformance(params):
    check_backend("memory_bank", params)
