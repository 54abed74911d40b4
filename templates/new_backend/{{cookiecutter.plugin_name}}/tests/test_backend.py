import json

import numpy as np
import pytest

from asdcore import SOURCE, TARGET, AsdcoreError
from asdcore.testing import CHECKS, create_backend, run_cli, synthetic
from {{ cookiecutter.package_name }}.{{ cookiecutter.backend_name }} import {{ cookiecutter.class_name }}

NAME = "{{ cookiecutter.backend_name }}"
PARAMS = [{}, {"shrinkage": 0.2}, {"domains": "separate"}]


def test_entry_point_registers_the_backend(registry):
    entry = registry.get("backends", NAME)
    assert entry.cls is {{ cookiecutter.class_name }} and entry.distribution == "{{ cookiecutter.plugin_name }}"


@pytest.mark.parametrize("params", PARAMS, ids=str)
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(check, params):
    check(NAME, params)


def brute_force(train, test, shrinkage):
    """Mahalanobis distances with the shrunk covariance computed by hand."""
    x = train.astype(np.float64)
    mean = x.mean(axis=0)
    cov = (x - mean).T @ (x - mean) / len(x)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    return np.array([np.sqrt((q - mean) @ np.linalg.inv(cov) @ (q - mean)) for q in test.astype(np.float64)])


@pytest.mark.parametrize("domains", ["pooled", "separate"])
def test_scores_match_brute_force(domains):
    from sklearn.covariance import ledoit_wolf_shrinkage

    data = synthetic(seed=4)
    train, test = data.train, data.test
    groups = [train.embedding] if domains == "pooled" else [train.embedding[train.domain == d] for d in (SOURCE, TARGET)]
    for shrinkage in (0.2, None):
        backend = create_backend(NAME, {"shrinkage": shrinkage, "domains": domains})
        backend.fit(train)
        expected = np.min([brute_force(x, test.embedding, ledoit_wolf_shrinkage(x.astype(np.float64))
                                       if shrinkage is None else shrinkage) for x in groups], axis=0)
        np.testing.assert_allclose(backend.score(test), expected, rtol=1e-6)


def test_a_single_embedding_per_domain_is_an_error():
    train = synthetic().train
    one_target = train.select((train.domain == SOURCE) | (np.arange(len(train)) == np.flatnonzero(train.domain == TARGET)[0]))
    backend = create_backend(NAME, {"domains": "separate"})
    with pytest.raises(AsdcoreError, match="at least 2 training embeddings, target has 1; use domains: pooled"):
        backend.fit(one_target)
    create_backend(NAME).fit(one_target)


def test_scores_a_pipeline(tmp_path):
    """A whole run on the toy dataset and frontend of asdcore.testing, ending with the official score table."""
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(json.dumps({
        "name": "probe", "dataset": {"name": "toy", "root": str(tmp_path / "data"), "generate": True},
        "frontend": {"name": "toy", "params": {"bins": 8}}, "backends": [{"name": NAME}],
        "evaluation": {"plots": False}, "output": str(tmp_path / "results"), "seeds": [0],
    }))  # JSON is YAML
    result = run_cli("-q", "run", pipeline, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"| {NAME} |" in result.output
    scores = tmp_path / "results" / "probe" / "toy" / "seed0" / "alpha" / NAME / "anomaly_score_alpha_section_00_test.csv"
    assert len(scores.read_text().splitlines()) == 8  # the toy dataset's test clips of machine type alpha
