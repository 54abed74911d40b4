"""``asdcore.create`` builds every kind, and ``import asdcore`` stays light."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import asdcore
from asdcore import ConfigError, Registry, use_registry


@pytest.fixture(scope="module")
def installed():
    """The registry of the installed plugins."""
    with use_registry(Registry()) as registry:
        yield registry


def test_create_passes_a_loss_its_context(installed):
    loss = asdcore.create("losses", "arcface", embedding_dim=8, num_classes=3, margin=0.2)
    assert isinstance(loss, asdcore.Loss)
    assert (loss.embedding_dim, loss.num_classes, loss.params.margin) == (8, 3, 0.2)
    value = loss(torch.randn(4, 8), torch.eye(3)[[0, 1, 2, 0]])
    assert value.shape == () and torch.isfinite(value)


def test_create_passes_a_frontend_its_context(installed):
    frontend = asdcore.create("frontends", "raw_spec", n_mels=32, sample_rate=8000, clip_samples=4000,
                              device=torch.device("cpu"))
    assert (frontend.sample_rate, frontend.clip_samples, frontend.params.n_mels) == (8000, 4000, 32)
    output = frontend.extract(torch.randn(2, 4000))
    assert output.embedding.shape == (2, frontend.spec.embedding_dim)


def test_create_passes_a_backend_its_seed(installed):
    backend = asdcore.create("backends", "knn", k_source=2)
    assert (backend.params.k_source, backend.seed) == (2, 0)
    assert asdcore.create("backends", "knn", seed=3).seed == 3


def test_create_builds_the_kinds_without_context(registry, toy_root):
    assert isinstance(asdcore.create("datasets", "toy", root=str(toy_root), gain=2.0), asdcore.Dataset)
    assert isinstance(asdcore.create("scorers", "hmean"), asdcore.Scorer)
    assert asdcore.create("augmentations", "toy_gain", low=0.25).params.low == 0.25
    assert isinstance(asdcore.create("executors", "local"), asdcore.Executor)
    with pytest.raises(ConfigError, match=r"unknown key 'seed'"):
        asdcore.create("datasets", "toy", root=str(toy_root), seed=1)


def test_create_without_a_loss_context_says_what_to_pass(registry):
    with pytest.raises(ConfigError, match=r"asdcore.create\('losses', 'softmax'\): embedding_dim and num_classes "
                                          r"missing; pass embedding_dim=..., num_classes=..."):
        asdcore.create("losses", "softmax", scale=2.0)
    loss = asdcore.create("losses", "softmax", scale=2.0, embedding_dim=4, num_classes=2)
    assert loss.head.weight.shape == (2, 4) and loss.params.scale == 2.0


def test_import_asdcore_loads_neither_torch_nor_scikit_learn():
    code = ("import sys, asdcore\n"
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n"
            "asdcore.TorchFrontend, asdcore.SectionScorer\n"
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["[]", "['sklearn', 'torch']"]


def test_lazy_names_are_the_defining_modules_objects():
    from asdcore.scoring import HarmonicMeanScorer
    from asdcore.training import TorchFrontend

    assert asdcore.TorchFrontend is TorchFrontend and asdcore.HarmonicMeanScorer is HarmonicMeanScorer
    assert asdcore.fit_length(np.arange(3), 5).tolist() == [0, 1, 2, 0, 1]
