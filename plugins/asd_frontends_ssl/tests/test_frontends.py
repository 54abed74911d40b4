"""The frontends: entry point, what trains, what checkpoints hold, round trips, resume and errors."""
from pathlib import Path

import pytest
import torch

import asdcore
from asd_frontends_ssl.beats import load_beats
from asd_frontends_ssl.eat import load_eat
from asd_frontends_ssl.lora import trainable_state

SECONDS = 0.6
NAMES = ["beats", "eat", "hf_encoder", "raw_beats", "raw_eat"]


@pytest.fixture
def checkpoints(beats_checkpoint, eat_checkpoint):
    return {"beats": beats_checkpoint, "eat": eat_checkpoint}


def create(registry, name, seed=0, sample_rate=16000, **params):
    torch.manual_seed(seed)
    return registry.create("frontends", name, params=params, sample_rate=sample_rate,
                           clip_samples=int(sample_rate * SECONDS))


def waves(batch=3, seed=0):
    return 0.1 * torch.randn(batch, int(16000 * SECONDS), generator=torch.Generator().manual_seed(seed))


def test_entry_point_registers_every_frontend(registry):
    entries = {name: registry.get("frontends", name) for name in NAMES}
    assert {entry.distribution for entry in entries.values()} == {"asd-frontends-ssl"}


@pytest.mark.parametrize("name", ["beats", "eat"])
def test_only_lora_and_head_train(registry, checkpoints, name):
    frontend = create(registry, name, checkpoint=checkpoints[name], lora_rank=4, embedding_dim=16)
    assert frontend.spec == asdcore.FrontendSpec(embedding_dim=16, needs_training=True)
    trainable = [n for n, p in frontend.model.named_parameters() if p.requires_grad]
    assert any(".lora_A." in n for n in trainable) and any(".lora_B." in n for n in trainable)
    assert all(".lora_" in n or n.startswith("projection_net.") for n in trainable)
    assert frontend.extract(waves()).embedding.shape == (3, 16)


@pytest.mark.parametrize("name", ["beats", "eat"])
def test_checkpoints_hold_only_trained_tensors_and_restore_identical_embeddings(registry, checkpoints, name, tmp_path,
                                                                                   train_data):
    params = {"checkpoint": checkpoints[name], "lora_rank": 4, "embedding_dim": 16}
    frontend = create(registry, name, **params)
    frontend.fit(train_data(tmp_path / "work", epochs=2))
    trained = set(trainable_state(frontend.model))
    assert not any("base_layer" in key or key.startswith("encoder.") and ".lora_" not in key for key in trained)
    assert set(frontend.checkpoint_state()) == trained  # what training checkpoints hold
    frontend.save(tmp_path / "model")
    assert set(torch.load(tmp_path / "model" / "model.pt", weights_only=True)) == trained
    restored = create(registry, name, seed=1, **params)
    x = waves()
    assert not torch.equal(restored.extract(x).embedding, frontend.extract(x).embedding)
    restored.load(tmp_path / "model")
    assert torch.equal(restored.extract(x).embedding, frontend.extract(x).embedding)


def test_resumed_training_equals_an_uninterrupted_one(registry, beats_checkpoint, tmp_path, train_data):
    params = {"checkpoint": beats_checkpoint, "lora_rank": 4, "embedding_dim": 16}
    whole = create(registry, "beats", **params)
    whole.fit(train_data(tmp_path / "whole", epochs=3))
    create(registry, "beats", **params).fit(train_data(tmp_path / "parts", epochs=1))
    resumed = create(registry, "beats", seed=5, **params)
    data = train_data(tmp_path / "parts", epochs=3)
    resumed.fit(data)
    assert [row["epoch"] for row in data.log] == [1, 2, 3]
    final, expected = resumed.checkpoint_state(), whole.checkpoint_state()
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def test_raw_frontends_pool_the_frozen_tokens(registry, beats_checkpoint, eat_checkpoint):
    x = waves()
    with torch.no_grad():
        beats_tokens, eat_tokens = load_beats(beats_checkpoint)(x), load_eat(eat_checkpoint)(x)
    raw_beats = create(registry, "raw_beats", checkpoint=beats_checkpoint)
    assert raw_beats.spec == asdcore.FrontendSpec(embedding_dim=64, needs_training=False)
    torch.testing.assert_close(raw_beats.extract(x).embedding, beats_tokens.mean(1))
    raw_eat = create(registry, "raw_eat", checkpoint=eat_checkpoint)
    assert raw_eat.spec.embedding_dim == 64 and not raw_eat.spec.needs_training
    torch.testing.assert_close(raw_eat.extract(x).embedding, eat_tokens[:, 0])
    tokens_mean = create(registry, "raw_eat", checkpoint=eat_checkpoint, pooling="tokens_mean")
    torch.testing.assert_close(tokens_mean.extract(x).embedding, eat_tokens[:, 1:].mean(1))
    assert not any(p.requires_grad for p in raw_beats.model.parameters())


def test_checkpoint_path_from_an_environment_variable(registry, beats_checkpoint, monkeypatch):
    monkeypatch.setenv("ASD_SSL_TEST_DIR", str(Path(beats_checkpoint).parent))
    frontend = create(registry, "raw_beats", checkpoint=f"$ASD_SSL_TEST_DIR/{Path(beats_checkpoint).name}")
    assert frontend.spec.embedding_dim == 64
    monkeypatch.delenv("ASD_SSL_TEST_DIR")
    with pytest.raises(asdcore.ConfigError, match=r"\$ASD_SSL_TEST_DIR .* is not set.*BEATs_iter3"):
        create(registry, "beats", checkpoint="$ASD_SSL_TEST_DIR/beats.pt")


@pytest.mark.parametrize("name, params, message", [
    ("beats", {"checkpoint": "/nonexistent/BEATs_iter3.pt"}, "BEATs checkpoint not found.*unilm"),
    ("eat", {"checkpoint": "/nonexistent/EAT.pt"}, "EAT checkpoint not found.*cwx-worst-one/EAT"),
    ("beats", {"lora_targets": ["qkv"]}, "no Linear layer named 'qkv'.*q_proj"),
    ("eat", {"lora_targets": ["q_proj"]}, "no Linear layer named 'q_proj'.*qkv"),
    ("eat", {"drop_path": 1.5}, "drop_path"),
    ("beats", {"lora_rank": 0}, "lora_rank"),
    ("raw_eat", {"pooling": "max"}, "pooling"),
])
def test_bad_params_are_config_errors(registry, checkpoints, name, params, message):
    params = {"checkpoint": checkpoints[name.removeprefix("raw_")], **params}
    with pytest.raises(asdcore.ConfigError, match=message):
        create(registry, name, **params)


@pytest.mark.parametrize("name", ["beats", "raw_eat"])
def test_other_sample_rates_are_refused(registry, checkpoints, name):
    with pytest.raises(asdcore.ConfigError, match="16000 Hz audio only; the dataset is at 8000 Hz"):
        create(registry, name, sample_rate=8000, checkpoint=checkpoints[name.removeprefix("raw_")])
