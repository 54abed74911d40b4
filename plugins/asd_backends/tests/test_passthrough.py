import numpy as np
import pytest

from asdcore import AsdcoreError, FeatureSet
from asdcore.testing import check_backend


def features(scores):
    n = 3
    return FeatureSet(embedding=np.zeros((n, 2)), path=[f"{i}.wav" for i in range(n)], section=[0] * n,
                      domain=[0] * n, is_anomaly=[0] * n, attribute=[""] * n, frontend_score=scores)


def test_passthrough_returns_the_frontend_scores(registry):
    backend = registry.create("backends", "passthrough")
    train, test = features([0.1, 0.2, 0.3]), features([1.0, 2.0, 3.0])
    backend.fit(train)
    assert backend.score(test).tolist() == [1.0, 2.0, 3.0]
    assert backend.train_scores(train).tolist() == [0.1, 0.2, 0.3]


def test_passthrough_needs_frontend_scores(registry):
    backend = registry.create("backends", "passthrough")
    with pytest.raises(AsdcoreError, match="carry no frontend scores"):
        backend.fit(features(None))


@pytest.mark.parametrize(("where", "bad"), [("frontend_score", np.nan), ("frontend_score", np.inf),
                                            ("embedding", np.nan)])
def test_passthrough_rejects_non_finite_features(registry, where, bad):
    backend = registry.create("backends", "passthrough")
    broken = features([0.1, 0.2, 0.3])
    getattr(broken, where)[1] = bad
    name = "frontend scores" if where == "frontend_score" else "embeddings"
    with pytest.raises(AsdcoreError, match=f"the train {name} contain NaN or infinite values"):
        backend.fit(broken)
    with pytest.raises(AsdcoreError, match=f"the test {name} contain NaN or infinite values"):
        backend.score(broken)


def test_passthrough_rejects_empty_training_and_passes_the_conformance_checks(registry):
    backend = registry.create("backends", "passthrough")
    with pytest.raises(AsdcoreError, match="no training clips"):
        backend.fit(features([0.1, 0.2, 0.3]).select(np.zeros(3, dtype=bool)))
    check_backend("passthrough")
