"""Every test runs with the core, asd_backends and the toys alone; fixtures shared by the test modules."""
import numpy as np
import pytest

from asdcore import FeatureSet
from asdcore.testing import only_plugins


@pytest.fixture(autouse=True)
def only_this_plugin():
    with only_plugins("asd_backends") as registry:
        yield registry


@pytest.fixture
def registry(only_this_plugin):
    """The process-wide registry of the test: the core, asd_backends and the toys."""
    return only_this_plugin


def _features(embedding, domain):
    n = len(embedding)
    return FeatureSet(embedding=embedding, path=[f"c{i}.wav" for i in range(n)], section=np.zeros(n),
                      domain=domain, is_anomaly=np.zeros(n), attribute=[""] * n)


@pytest.fixture
def features():
    """``features(embedding, domain)``: normal clips of section 0 with these embeddings and domains."""
    return _features


@pytest.fixture
def scores_of(registry):
    """``scores_of(name, train, test, **params)``: the scores of ``test`` by a new backend fitted on ``train``."""
    def scores(name, train, test, **params):
        backend = registry.create("backends", name, params=params)
        backend.fit(train)
        return backend.score(test)

    return scores
