import numpy as np
import pytest

from asdcore import AsdcoreError, FeatureSet
from asdcore.registry import Registry


def features(scores):
    n = 3
    return FeatureSet(embedding=np.zeros((n, 2)), path=[f"{i}.wav" for i in range(n)], section=[0] * n,
                      domain=[0] * n, is_anomaly=[0] * n, attribute=[""] * n, frontend_score=scores)


def test_passthrough_returns_the_frontend_scores():
    backend = Registry().create("backends", "passthrough")
    train, test = features([0.1, 0.2, 0.3]), features([1.0, 2.0, 3.0])
    backend.fit(train)
    assert backend.score(test).tolist() == [1.0, 2.0, 3.0]
    assert backend.train_scores(train).tolist() == [0.1, 0.2, 0.3]


def test_passthrough_needs_frontend_scores():
    backend = Registry().create("backends", "passthrough")
    with pytest.raises(AsdcoreError, match="carry no frontend scores"):
        backend.fit(features(None))
