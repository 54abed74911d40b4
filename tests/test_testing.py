"""asdcore.testing: the installed knn passes every check; each check fails for a backend broken its way."""
import re

import numpy as np
import pydantic
import pytest

import asdcore
from asdcore import SOURCE, TARGET, AsdcoreError
from asdcore.registry import Registry, use_registry
from asdcore.testing import CHECKS, check_backend, check_constructible, create_backend, synthetic


class Centroid(asdcore.Backend):
    """A conforming backend: scaled Euclidean distance to the mean training embedding."""

    class Params(asdcore.Params):
        scale: float = 1.0

    def fit(self, train):
        x = self._finite(train, "train")
        if len(x) == 0:
            raise AsdcoreError("centroid: no training embeddings")
        self.centre = x.mean(axis=0)

    def score(self, test):
        return self.params.scale * np.linalg.norm(self._finite(test, "test") - self.centre, axis=1)

    @staticmethod
    def _finite(features, split):
        x = features.embedding.astype(np.float64)
        if not np.isfinite(x).all():
            raise AsdcoreError(f"centroid: {split} embeddings contain NaN or infinite values")
        return x


class NanScores(Centroid):
    def score(self, test):
        scores = super().score(test)
        scores[1] = np.nan
        return scores


class OneScoreShort(Centroid):
    def score(self, test):
        return super().score(test)[:-1]


class ListScores(Centroid):
    def score(self, test):
        return super().score(test).tolist()


class IntegerScores(Centroid):
    def score(self, test):
        return super().score(test).astype(np.int64)


class ScalesInPlace(Centroid):
    def fit(self, train):
        train.embedding *= 2.0
        super().fit(train)


class Unseeded(Centroid):
    def score(self, test):
        return super().score(test) + np.random.default_rng().uniform(0, 1e-3, len(test))


class Accumulates(Centroid):
    def fit(self, train):
        self.seen = np.concatenate([getattr(self, "seen", np.empty((0, train.embedding.shape[1]))), train.embedding])
        self.centre = self.seen.mean(axis=0)


class Inverted(Centroid):
    def score(self, test):
        return -super().score(test)


class NeedsTarget(Centroid):
    def fit(self, train):
        if not (train.domain == TARGET).any():
            raise ValueError("zero-size array to reduction operation")
        super().fit(train)


class ShortTrainScores(Centroid):
    def train_scores(self, train, folds=5):
        return np.zeros(len(train) - 1)


class AcceptsEmpty(Centroid):
    def fit(self, train):
        if len(train) == 0:
            self.centre = np.zeros(train.embedding.shape[1])
        else:
            super().fit(train)


class ValueErrorOnEmpty(Centroid):
    def fit(self, train):
        if len(train) == 0:
            raise ValueError("cannot fit")
        super().fit(train)


class VagueOnEmpty(Centroid):
    def fit(self, train):
        if len(train) == 0:
            raise AsdcoreError("centroid: fitting failed")
        super().fit(train)


class AcceptsNan(Centroid):
    @staticmethod
    def _finite(features, split):
        return np.nan_to_num(features.embedding.astype(np.float64))


class ChecksOnlyFit(Centroid):
    def score(self, test):
        return self.params.scale * np.linalg.norm(test.embedding - self.centre, axis=1)


class LooseParams(Centroid):
    class Params(pydantic.BaseModel):
        scale: float = 1.0


class CrashesInFit(Centroid):
    def fit(self, train):
        raise RuntimeError("boom")


BROKEN = {
    NanScores: (["check_fit_score", "check_deterministic", "check_anomalies_score_higher",
                 "check_missing_target_domain", "check_train_scores"], "1 of 48 scores are NaN or infinite"),
    OneScoreShort: (["check_fit_score", "check_deterministic", "check_anomalies_score_higher",
                     "check_missing_target_domain", "check_train_scores"], r"expected shape \(48,\)"),
    ListScores: (["check_fit_score", "check_deterministic", "check_anomalies_score_higher",
                  "check_missing_target_domain"], "expected a numpy array, got list"),
    IntegerScores: (["check_fit_score", "check_deterministic", "check_anomalies_score_higher",
                     "check_missing_target_domain"], "expected float scores, got dtype int64"),
    ScalesInPlace: (["check_fit_score"], "fit\\(\\) modified the train embeddings"),
    Unseeded: (["check_deterministic"], "two fresh instances with seed 3 gave different scores"),
    Accumulates: (["check_deterministic", "check_empty_training_is_an_error", "check_non_finite_is_an_error"],
                  "fitting the same instance again gave different scores"),
    Inverted: (["check_anomalies_score_higher"], "far-away embeddings should score higher than copies"),
    NeedsTarget: (["check_missing_target_domain", "check_empty_training_is_an_error"],
                  "ValueError raised: zero-size array"),
    ShortTrainScores: (["check_train_scores"], r"train_scores\(\): expected shape \(38,\)"),
    AcceptsEmpty: (["check_empty_training_is_an_error"], "fit\\(\\) on zero training clips: expected an asdcore"
                   ".AsdcoreError, nothing was raised"),
    ValueErrorOnEmpty: (["check_empty_training_is_an_error"], "expected an asdcore.AsdcoreError, got ValueError"),
    VagueOnEmpty: (["check_empty_training_is_an_error"], "does not name the problem: 'centroid: fitting failed'"),
    AcceptsNan: (["check_non_finite_is_an_error"], "fit\\(\\) on train embeddings containing nan: expected an"),
    ChecksOnlyFit: (["check_non_finite_is_an_error"], "score\\(\\) of test embeddings containing nan: expected an"),
    LooseParams: (["check_constructible"], "an unknown parameter was accepted"),
    CrashesInFit: ([c.__name__ for c in CHECKS if c.__name__ != "check_constructible"], "RuntimeError raised: boom"),
}


class InTestPlugin:
    @asdcore.hookimpl
    def register_backends(self, register):
        register("centroid", Centroid)
        register("unseeded", Unseeded)
        register("BadName", Centroid)


@pytest.fixture(scope="module")
def installed():
    """The registry of the installed distributions (knn comes from asd-backends)."""
    with use_registry(Registry()) as registry:
        yield registry


@pytest.fixture
def in_test():
    registry = Registry(entry_points=False)
    registry.add_plugin(InTestPlugin(), name="in_test")
    with use_registry(registry):
        yield registry


def failing(backend, params=None):
    """Names of the checks that fail, and the message of each."""
    failures = {}
    for check in CHECKS:
        try:
            check(backend, params)
        except AssertionError as exc:
            failures[check.__name__] = str(exc)
    return failures


@pytest.mark.parametrize("params", [None, {"k_source": 2, "k_target": 2, "metric": "euclidean"}])
def test_installed_knn_passes_every_check(installed, params):
    assert "knn" in installed.names("backends")
    check_backend("knn", params)


def test_conforming_backend_passes_by_class_and_by_name(in_test):
    check_backend(Centroid)
    check_backend(Centroid, {"scale": 2.0})
    check_backend("centroid")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the broken backends average empty arrays
@pytest.mark.parametrize("cls", list(BROKEN), ids=lambda cls: cls.__name__)
def test_each_check_fails_for_its_kind_of_breakage(cls):
    expected, message = BROKEN[cls]
    failures = failing(cls)
    assert sorted(failures) == sorted(expected), failures
    first = failures[expected[0]]
    assert first.startswith(f"backend class {cls.__name__}: ")
    assert any(re.search(message, text) for text in failures.values()), failures


def test_check_backend_lists_every_failure(in_test):
    with pytest.raises(AssertionError) as info:
        check_backend(NeedsTarget)
    text = str(info.value)
    assert text.startswith("backend class NeedsTarget failed 2 of 8 conformance checks:\n"
                           "- check_missing_target_domain: ")
    assert text.endswith("\n- check_empty_training_is_an_error: backend class NeedsTarget: fit() on zero training "
                         "clips: expected an asdcore.AsdcoreError, got ValueError: zero-size array to reduction "
                         "operation")


def test_registration_checks(in_test):
    assert failing("unseeded").keys() == {"check_deterministic"}
    with pytest.raises(AssertionError, match="'knnn' is not registered; registered backends: BadName, centroid, uns"):
        check_constructible("knnn")
    with pytest.raises(AssertionError, match="backend 'BadName': registered names must be lower_snake_case"):
        check_constructible("BadName")
    with pytest.raises(AssertionError, match="backend class int is not a subclass of asdcore.Backend"):
        check_constructible(int)
    with pytest.raises(AssertionError, match="ConfigError raised: backends.centroid.params.scale"):
        check_constructible("centroid", {"scale": "big"})


def test_create_backend_validates_params_and_passes_the_seed(in_test):
    backend = create_backend("centroid", {"scale": 3}, seed=7)
    assert isinstance(backend, Centroid) and backend.params.scale == 3.0 and backend.seed == 7
    backend = create_backend(Centroid, seed=2)
    assert backend.params.scale == 1.0 and backend.seed == 2
    with pytest.raises(asdcore.ConfigError, match="backends.Centroid.params.k: unknown key 'k'; allowed keys: scale"):
        create_backend(Centroid, {"k": 1})


def test_synthetic_data_is_seeded_and_covers_sections_domains_and_anomalies():
    a, b, other = synthetic(seed=1), synthetic(seed=1), synthetic(seed=2)
    assert np.array_equal(a.train.embedding, b.train.embedding) and np.array_equal(a.test.embedding, b.test.embedding)
    assert not np.allclose(a.train.embedding, other.train.embedding)
    assert a.train.embedding.shape == (38, 12) and a.test.embedding.shape == (48, 12)
    assert set(a.train.section) == {0, 1} and set(a.train.domain) == {SOURCE, TARGET}
    assert set(a.train.is_anomaly) == {0} and np.count_nonzero(a.test.is_anomaly == 1) == 24
    probe = a.copies_and_outliers
    assert np.array_equal(probe.embedding[: len(a.train)], a.train.embedding)
    assert np.array_equal(probe.domain[: len(a.train)], a.train.domain) and set(probe.is_anomaly[len(a.train):]) == {1}
    far = probe.is_anomaly == 1
    assert probe.frontend_score[far].min() > probe.frontend_score[~far].max()
    assert len(set(a.test.names)) == len(a.test)
