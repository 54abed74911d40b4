"""Extraction: inference mode, bf16 autocast, worker processes reading through the audio cache."""
import numpy as np
import pytest
import torch

import asdcore
import toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.features import load_features

MODES: list[tuple[bool, bool]] = []  # (inference mode, CPU autocast) of every extract call


class ProjectionFrontend(asdcore.Frontend):
    """A fixed random projection of the log spectrum (a matrix product, so that autocast changes it)."""

    class Params(asdcore.Params):
        dim: int = 8

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.weight = torch.randn(self.params.dim, 256, generator=torch.Generator().manual_seed(0))

    @property
    def spec(self):
        return asdcore.FrontendSpec(embedding_dim=self.params.dim, emits_scores=True)

    def extract(self, waves):
        MODES.append((torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu")))
        spectrum = torch.log1p(torch.fft.rfft(waves).abs()[:, :256])
        embedding = torch.nn.functional.linear(spectrum, self.weight)
        return asdcore.FrontendOutput(embedding, embedding.pow(2).sum(1))


class ProjectionPlugin:
    @staticmethod
    @asdcore.hookimpl
    def register_frontends(register):
        register("projection", ProjectionFrontend)


@pytest.fixture
def projection(registry):
    registry.add_plugin(ProjectionPlugin, name="projection")
    MODES.clear()
    return registry


def extract(registry, root, output, **changes):
    """The features of machine type ``alpha`` (train and test) extracted with ``changes`` to the pipeline."""
    config = toy_plugin.pipeline(root, output, frontend={"name": "projection"}, seeds=[0], **changes)
    base = Pipeline.create(load_config(config, registry=registry), registry, progress=False).run(("extract",))
    return {split: load_features(base / "shared" / "alpha" / "features.h5", split) for split in ("train", "test")}


def test_bf16_mixed_is_close_to_fp32(projection, toy_root, tmp_path):
    full = extract(projection, toy_root, tmp_path / "out", extraction={"batch_size": 5})
    assert set(MODES) == {(True, False)}
    MODES.clear()
    mixed = extract(projection, toy_root, tmp_path / "out", extraction={"batch_size": 5, "precision": "bf16-mixed"})
    assert set(MODES) == {(True, True)}
    for split in ("train", "test"):
        a, b = full[split], mixed[split]
        assert b.embedding.dtype == np.float32 and b.frontend_score.dtype == np.float64
        assert np.isfinite(b.embedding).all() and np.isfinite(b.frontend_score).all()
        assert not np.array_equal(a.embedding, b.embedding)  # the projection ran in bf16
        # bf16 keeps 8 significant bits (relative rounding 2^-9 per operand): within 2% of the largest value
        scale = np.abs(a.embedding).max()
        np.testing.assert_allclose(b.embedding, a.embedding, rtol=0, atol=0.02 * scale)
        np.testing.assert_allclose(b.frontend_score, a.frontend_score, rtol=0.02)


def test_worker_processes_read_through_the_cache_as_the_dataset_reads(projection, toy_root, tmp_path):
    direct = extract(projection, toy_root, tmp_path / "direct", audio_cache=False)
    cached = extract(projection, toy_root, tmp_path / "cached", extraction={"num_workers": 2, "batch_size": 4})
    assert (tmp_path / "cached" / "audio_cache" / "toy" / "alpha" / "test" / "index.json").is_file()
    for split in ("train", "test"):
        assert np.array_equal(direct[split].embedding, cached[split].embedding)
        assert np.array_equal(direct[split].frontend_score, cached[split].frontend_score)
        assert list(direct[split].path) == list(cached[split].path)
