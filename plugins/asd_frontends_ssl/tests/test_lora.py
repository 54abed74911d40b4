"""LoRA through peft: defaults of the fact sheet (§3.1), frozen base weights, the trainable state."""
import pytest
import torch

import asdcore
from asd_frontends_ssl.beats import load_beats
from asd_frontends_ssl.eat import load_eat
from asd_frontends_ssl.heads import projection_head
from asd_frontends_ssl.lora import add_lora, linear_names, load_trainable_state, trainable_state
from asd_frontends_ssl.frontends import EncoderWithHead


def waves(batch=2, seconds=0.6, seed=0):
    return 0.1 * torch.randn(batch, int(16000 * seconds), generator=torch.Generator().manual_seed(seed))


def test_beats_lora_names_shapes_defaults_and_frozen_base(beats_checkpoint):
    encoder = add_lora(load_beats(beats_checkpoint), ["q_proj", "v_proj"], 8)
    trainable = {n: tuple(p.shape) for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable == {
        f"encoder.layers.{i}.self_attn.{proj}.lora_{ab}.default.weight": shape
        for i in range(2) for proj in ("q_proj", "v_proj") for ab, shape in (("A", (8, 64)), ("B", (64, 8)))
    }
    q_proj = encoder.encoder.layers[0].self_attn.q_proj
    assert q_proj.scaling["default"] == 8 / 8  # peft's lora_alpha 8 over rank 8
    assert isinstance(q_proj.lora_dropout["default"], torch.nn.Identity)
    assert not q_proj.base_layer.weight.requires_grad and not q_proj.base_layer.bias.requires_grad
    assert "encoder.layers.0.self_attn.k_proj.weight" in dict(encoder.named_parameters())  # untouched, frozen


def test_rank_64_scaling_is_one_eighth_as_in_asdkit(eat_checkpoint):
    encoder = add_lora(load_eat(eat_checkpoint), ["qkv"], 64)
    qkv = encoder.blocks[1].attn.qkv
    assert qkv.scaling["default"] == 0.125
    assert tuple(qkv.lora_A["default"].weight.shape) == (64, 64)
    assert tuple(qkv.lora_B["default"].weight.shape) == (3 * 64, 64)  # one update for q, k and v together
    assert sum(p.requires_grad for p in encoder.parameters()) == 2 * 2


@pytest.mark.parametrize("kind", ["beats", "eat"])
def test_adapted_model_starts_equal_to_the_base(kind, beats_checkpoint, eat_checkpoint):
    load = (lambda: load_beats(beats_checkpoint)) if kind == "beats" else (lambda: load_eat(eat_checkpoint))
    base = load()
    torch.manual_seed(0)
    adapted = add_lora(load(), ["q_proj", "v_proj"] if kind == "beats" else ["qkv"], 4).eval()
    b_weights = [p for n, p in adapted.named_parameters() if "lora_B" in n]
    assert b_weights and all(torch.count_nonzero(p) == 0 for p in b_weights)
    assert all(torch.count_nonzero(p) > 0 for n, p in adapted.named_parameters() if "lora_A" in n)
    x = waves()
    with torch.no_grad():
        assert torch.equal(adapted(x), base(x))


def test_training_changes_only_lora_and_head(beats_checkpoint):
    torch.manual_seed(0)
    encoder = add_lora(load_beats(beats_checkpoint), ["q_proj", "v_proj"], 4)
    model = EncoderWithHead(encoder, projection_head("attentive_stats", 64, 8))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and all(n.startswith("projection_net.") or ".lora_" in n for n in trained)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for step in range(3):  # B starts at zero, so A only gets a gradient from the second step on
        optimizer.zero_grad()
        model(waves(4, seed=step)).square().mean().backward()
        optimizer.step()
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], value) for n, value in frozen.items())
    assert all(not torch.equal(after[n], value) for n, value in trained.items())


def test_unknown_target_names_the_linear_layers(beats_checkpoint):
    with pytest.raises(asdcore.ConfigError, match="lora_targets: no Linear layer named 'query' in the BEATs") as info:
        add_lora(load_beats(beats_checkpoint), ["q_proj", "query"], 4, what="BEATs encoder")
    assert all(name in str(info.value) for name in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"))
    assert set(linear_names(load_beats(beats_checkpoint))) >= {"q_proj", "k_proj", "v_proj", "out_proj", "fc1"}


def test_dotted_targets_select_by_suffix(eat_checkpoint):
    encoder = add_lora(load_eat(eat_checkpoint), ["mlp.fc1"], 2)
    assert {n.split(".lora_")[0] for n, p in encoder.named_parameters() if p.requires_grad} == {
        "blocks.0.mlp.fc1", "blocks.1.mlp.fc1"}


def test_trainable_state_holds_lora_head_and_head_statistics_only(beats_checkpoint):
    torch.manual_seed(0)
    model = EncoderWithHead(add_lora(load_beats(beats_checkpoint), ["q_proj"], 4),
                            projection_head("attentive_stats", 64, 8))
    state = trainable_state(model)
    assert {k for k in state if not k.startswith("projection_net.")} == {
        f"encoder.encoder.layers.{i}.self_attn.q_proj.lora_{ab}.default.weight" for i in range(2) for ab in "AB"}
    assert {k for k in state if k.startswith("projection_net.")} == {
        f"projection_net.{k}" for k in model.projection_net.state_dict()}
    model.train()
    model(waves(4))  # moves the BatchNorm statistics
    saved = {k: v.clone() for k, v in trainable_state(model).items()}
    torch.manual_seed(1)
    other = EncoderWithHead(add_lora(load_beats(beats_checkpoint), ["q_proj"], 4),
                            projection_head("attentive_stats", 64, 8))
    load_trainable_state(other, saved)
    assert all(torch.equal(v, trainable_state(other)[k]) for k, v in saved.items())
    with pytest.raises(asdcore.AsdcoreError, match="missing .*lora_A"):
        load_trainable_state(other, {k: v for k, v in saved.items() if "lora_A" not in k})
