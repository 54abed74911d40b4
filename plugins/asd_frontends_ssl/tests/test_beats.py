"""Tests of the BEATs re-implementation against the checkpoint facts (ssl-checkpoint-facts.md §1, §4).

All but the full-size tests use a tiny cfg. The expected iter3 key list is the fixture
``fixtures/beats_iter3_keys.json`` (names and shapes of ``BEATs_iter3.pt["model"]``, in file order).
"""
import json
from pathlib import Path

import pytest
import torch
import torchaudio

from asdcore.errors import ConfigError
from asd_frontends_ssl.beats import (
    ITER3_CFG,
    BeatsConfig,
    BeatsEncoder,
    load_beats,
    preprocess,
    relative_position_bucket,
    write_random_checkpoint,
)

SR = 16000
FIXTURE = Path(__file__).parent / "fixtures" / "beats_iter3_keys.json"

# §1.2 iter3 values, restated here so that the module constant is checked against the fact sheet.
ITER3 = {
    "input_patch_size": 16, "embed_dim": 512, "conv_bias": False, "encoder_layers": 12,
    "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "activation_fn": "gelu", "layer_wise_gradient_decay_ratio": 0.6, "layer_norm_first": False,
    "deep_norm": True, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05, "dropout_input": 0.0, "conv_pos": 128, "conv_pos_groups": 16,
    "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800, "gru_rel_pos": True,
    "finetuned_model": False, "predictor_dropout": 0.0, "predictor_class": 527,
}
TINY = {
    **ITER3, "embed_dim": 32, "encoder_layers": 2, "encoder_embed_dim": 48, "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 4, "conv_pos": 16, "conv_pos_groups": 4,
}


def tiny_model(**overrides) -> BeatsEncoder:
    torch.manual_seed(0)
    return BeatsEncoder(BeatsConfig.from_dict({**TINY, **overrides})).eval()


def noise(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(seconds * SR), generator=gen)


# --- configuration ------------------------------------------------------------------------------

def test_iter3_cfg_matches_fact_sheet():
    assert ITER3_CFG == ITER3


def test_config_defaults_overrides_and_unknown_keys():
    default = BeatsConfig()
    assert (default.input_patch_size, default.max_distance, default.deep_norm, default.dropout) == (
        -1, 1280, False, 0.1)
    cfg = BeatsConfig.from_dict({**ITER3, "some_future_key": 3})
    assert (cfg.input_patch_size, cfg.max_distance, cfg.deep_norm, cfg.dropout) == (16, 800, True, 0.0)
    assert cfg.extra == {"some_future_key": 3}
    assert cfg.to_dict() == {**ITER3, "some_future_key": 3}
    assert BeatsConfig.from_dict({"encoder_layers": 3}).max_distance == 1280


@pytest.mark.parametrize("bad", [{"input_patch_size": -1}, {"encoder_attention_heads": 5},
                                 {"layer_norm_first": True}, {"activation_fn": "swish"}])
def test_invalid_cfg_raises_config_error(bad):
    with pytest.raises(ConfigError, match="invalid BEATs cfg"):
        BeatsEncoder(BeatsConfig.from_dict({**TINY, **bad}))


# --- preprocessing ------------------------------------------------------------------------------

def test_preprocess_equals_kaldi_fbank_with_stated_options():
    waves = noise(2, 1.5)
    expected = torch.stack([
        torchaudio.compliance.kaldi.fbank(
            w.unsqueeze(0) * 32768, num_mel_bins=128, sample_frequency=16000, frame_length=25.0,
            frame_shift=10.0, window_type="povey", dither=0.0, preemphasis_coefficient=0.97,
            remove_dc_offset=True, snip_edges=True, round_to_power_of_two=True, low_freq=20.0,
            high_freq=0.0, use_power=True, use_log_fbank=True, use_energy=False, htk_compat=False,
        )
        for w in waves
    ])
    expected = (expected - 15.41663) / (2 * 6.55582)
    torch.testing.assert_close(preprocess(waves), expected, rtol=0, atol=0)


@pytest.mark.parametrize(("seconds", "frames"), [(3, 298), (10, 998), (11, 1098), (12, 1198), (18, 1798)])
def test_frame_counts(seconds, frames):
    assert preprocess(noise(1, seconds)).shape == (1, frames, 128)
    assert frames == 1 + (seconds * SR - 400) // 160


def test_preprocess_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        preprocess(torch.zeros(SR))


# --- architecture -------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "tokens"), [(3, 144), (10, 496), (18, 896)])
def test_forward_shapes_and_token_counts(seconds, tokens):
    model = tiny_model()
    with torch.no_grad():
        out = model(noise(2, seconds))
    assert out.shape == (2, tokens, 48)
    assert model.embed_dim == 48
    assert torch.isfinite(out).all()


def test_forward_equals_from_fbank_and_is_per_clip():
    model = tiny_model()
    waves = noise(2, 2)
    with torch.no_grad():
        out = model(waves)
        torch.testing.assert_close(out, model.from_fbank(preprocess(waves)))
        torch.testing.assert_close(out[1:], model(waves[1:]), rtol=1e-5, atol=1e-5)


def test_tokens_are_time_major():
    model = tiny_model()
    captured = {}
    model.layer_norm.register_forward_hook(lambda mod, inp, out: captured.update(x=inp[0]))
    fbank = torch.zeros(1, 48, 128)
    fbank[0, 16:32, 48:64] = 1.0  # time patch 1, frequency patch 3
    with torch.no_grad():
        model.from_fbank(fbank)
    x = captured["x"][0]
    changed = (x - x[0]).abs().sum(-1) > 0
    assert x.shape[0] == 3 * 8 and changed.nonzero().flatten().tolist() == [1 * 8 + 3]


def test_incomplete_patches_are_dropped_and_short_input_rejected():
    model = tiny_model()
    fbank = torch.randn(1, 40, 128)
    with torch.no_grad():
        torch.testing.assert_close(model.from_fbank(fbank), model.from_fbank(fbank[:, :32]))
    with pytest.raises(ValueError, match="at least 16"):
        model.from_fbank(torch.randn(1, 15, 128))


def test_relative_position_buckets():
    r = torch.tensor([0, -1, 1, -80, 80, 100, -500, 500, 800, -800, 5000, -5000])
    assert relative_position_bucket(r, 320, 800).tolist() == [0, 1, 161, 80, 240, 247, 143, 303, 319, 159, 319, 159]


def test_relative_bias_is_one_shared_module():
    model = tiny_model()
    tables = [layer.self_attn.relative_attention_bias for layer in model.encoder.layers]
    assert all(t is tables[0] for t in tables)
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.numel() for v in model.state_dict().values()) - 320 * 4


def test_deep_norm_alpha_and_layer_variants():
    assert tiny_model(encoder_layers=12).encoder.layers[0].alpha == pytest.approx(2.21336, abs=1e-5)
    assert tiny_model(deep_norm=False).encoder.layers[0].alpha == 1.0
    for variant in ({"deep_norm": False}, {"deep_norm": False, "layer_norm_first": True},
                    {"gru_rel_pos": False}, {"relative_position_embedding": False, "gru_rel_pos": False},
                    {"embed_dim": 48}, {"activation_fn": "relu"}):
        with torch.no_grad():
            assert tiny_model(**variant)(noise(1, 1)).shape == (1, 48, 48)


def test_dropout_free_train_mode_only_differs_by_layerdrop():
    model = tiny_model(encoder_layerdrop=0.0)
    waves = noise(1, 1)
    with torch.no_grad():
        eval_out = model(waves)
        torch.testing.assert_close(model.train()(waves), eval_out)
    dropping = tiny_model(encoder_layerdrop=1.0)
    with torch.no_grad():
        torch.testing.assert_close(dropping(waves), eval_out)
        assert not torch.allclose(dropping.train()(waves), eval_out)


def test_layer_wise_gradient_decay_scales_gradients_only():
    grads, outs = [], []
    for ratio in (1.0, 0.5):
        model = tiny_model(layer_wise_gradient_decay_ratio=ratio)
        out = model.from_fbank(torch.randn(1, 32, 128, generator=torch.Generator().manual_seed(1)))
        out.sum().backward()
        grads.append(model.patch_embedding.weight.grad)
        outs.append(out.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(grads[1], 0.25 * grads[0])  # two layers → 0.5²


def test_padding_mask_reduction_matches_fact_sheet():
    model = tiny_model()
    waves = noise(1, 10)
    mask = torch.zeros(1, 10 * SR, dtype=torch.bool)
    mask[:, 5 * SR:] = True
    captured = {}
    model.encoder.register_forward_pre_hook(lambda mod, args: captured.update(mask=args[1]))
    with torch.no_grad():
        masked = model(waves, padding_mask=mask)
        assert captured["mask"].shape == (1, 496) and int(captured["mask"].sum()) == 246
        assert not torch.allclose(masked, model(waves))


def test_lora_can_target_q_and_v_projections():
    peft = pytest.importorskip("peft")
    model = tiny_model()
    waves = noise(1, 1)
    with torch.no_grad():
        before = model(waves)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    lora = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert len(lora) == 2 * 2 * 2 and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in lora)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(waves), before)


# --- checkpoints --------------------------------------------------------------------------------

def tiny_checkpoint(tmp_path: Path, name: str = "tiny.pt", **overrides) -> Path:
    return write_random_checkpoint(tmp_path / name, {**TINY, **overrides}, seed=3)


def test_random_checkpoint_round_trip(tmp_path):
    path = tiny_checkpoint(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"cfg", "model"} and raw["cfg"]["encoder_layerdrop"] == 0.05
    model = load_beats(path)
    assert not model.training
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" and p.requires_grad for p in model.parameters())
    tables = [layer.self_attn.relative_attention_bias for layer in model.encoder.layers]
    assert tables[1] is tables[0]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, raw["model"][key], rtol=0, atol=0)
    reference = BeatsEncoder(BeatsConfig.from_dict(raw["cfg"])).eval()
    reference.load_state_dict(raw["model"], strict=True)
    waves = noise(2, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(waves), reference(waves), rtol=0, atol=0)
        torch.testing.assert_close(load_beats(path)(waves), model(waves), rtol=0, atol=0)


def test_random_checkpoints_depend_on_seed_and_keep_global_rng(tmp_path):
    state = torch.random.get_rng_state()
    a = torch.load(write_random_checkpoint(tmp_path / "a.pt", TINY, seed=1), weights_only=True)["model"]
    b = torch.load(write_random_checkpoint(tmp_path / "b.pt", TINY, seed=1), weights_only=True)["model"]
    c = torch.load(write_random_checkpoint(tmp_path / "c.pt", TINY, seed=2), weights_only=True)["model"]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.layer_norm.weight"], c["encoder.layer_norm.weight"])
    assert not torch.equal(a["encoder.layers.0.self_attn.grep_a"], torch.ones(1, 4, 1, 1))


def test_half_precision_checkpoint_is_cast_to_float32(tmp_path):
    path = tiny_checkpoint(tmp_path)
    raw = torch.load(path, weights_only=True)
    torch.save({"cfg": raw["cfg"], "model": {k: v.half() for k, v in raw["model"].items()}}, tmp_path / "half.pt")
    model = load_beats(tmp_path / "half.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(model.patch_embedding.weight, raw["model"]["patch_embedding.weight"].half().float())


def test_shared_bias_is_read_from_layer_0(tmp_path):
    raw = torch.load(tiny_checkpoint(tmp_path), weights_only=True)
    layer0 = raw["model"]["encoder.layers.0.self_attn.relative_attention_bias.weight"].clone()
    raw["model"]["encoder.layers.1.self_attn.relative_attention_bias.weight"] = torch.zeros_like(layer0)
    torch.save(raw, tmp_path / "edited.pt")
    model = load_beats(tmp_path / "edited.pt")
    torch.testing.assert_close(model.encoder.layers[1].self_attn.relative_attention_bias.weight, layer0)


def test_finetuned_checkpoint_predictor_is_ignored(tmp_path):
    raw = torch.load(tiny_checkpoint(tmp_path), weights_only=True)
    raw["cfg"]["finetuned_model"] = True
    raw["model"]["predictor.weight"] = torch.zeros(527, 48)
    raw["model"]["predictor.bias"] = torch.zeros(527)
    raw["label_dict"] = {"0": "Speech"}
    torch.save(raw, tmp_path / "ft.pt")
    assert "predictor.weight" not in load_beats(tmp_path / "ft.pt").state_dict()


def test_missing_file_names_the_download_page(tmp_path):
    with pytest.raises(ConfigError, match=r"not found.*BEATs_iter3.*github.com/microsoft/unilm"):
        load_beats(tmp_path / "BEATs_iter3.pt")


def edited(tmp_path: Path, edit) -> Path:
    raw = torch.load(tiny_checkpoint(tmp_path), weights_only=True)
    edit(raw)
    torch.save(raw, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["model"].pop("encoder.layers.1.fc1.bias"), r"missing keys: encoder\.layers\.1\.fc1\.bias"),
    (lambda raw: raw["model"].update({"encoder.extra.weight": torch.zeros(2)}),
     r"unexpected keys: encoder\.extra\.weight"),
    (lambda raw: raw["model"].update({"layer_norm.weight": torch.zeros(7)}),
     r"wrong shapes: layer_norm\.weight \(7,\) \(expected \(32,\)\)"),
    (lambda raw: raw["cfg"].update({"encoder_embed_dim": 64}), r"wrong shapes: .*expected"),
    (lambda raw: raw["model"].update({"encoder.layer_norm.bias": [0.0] * 48}), "non-tensor"),
    (lambda raw: raw.pop("cfg"), "expected a dict with a flat 'cfg'"),
    (lambda raw: raw["cfg"].update({"input_patch_size": -1}), "cfg cannot build"),
])
def test_mismatched_checkpoints_raise_config_error(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_beats(edited(tmp_path, edit))
    assert "github.com/microsoft/unilm" in str(info.value)


@pytest.mark.parametrize("content", [[1, 2, 3], {"state_dict": {}}])
def test_non_beats_files_raise_config_error(tmp_path, content):
    torch.save(content, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a usable BEATs checkpoint"):
        load_beats(tmp_path / "other.pt")


def test_unreadable_file_raises_config_error(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match="torch.load failed"), pytest.warns(UserWarning, match="weights_only=False"):
        load_beats(tmp_path / "garbage.pt")


def test_checkpoint_refused_by_safe_unpickler_falls_back(tmp_path):
    raw = torch.load(tiny_checkpoint(tmp_path), weights_only=True)
    raw["extra_state"] = {"note": Path("not/allowed/by/weights_only")}
    torch.save(raw, tmp_path / "extras.pt")
    with pytest.warns(UserWarning, match="refused"):
        assert load_beats(tmp_path / "extras.pt").embed_dim == 48


# --- full size ----------------------------------------------------------------------------------

def test_full_size_state_dict_matches_official_key_list():
    expected = json.loads(FIXTURE.read_text())
    model = BeatsEncoder(BeatsConfig.from_dict(ITER3))
    state = model.state_dict()
    assert len(expected) == 250
    assert {k: list(v.shape) for k, v in state.items()} == expected
    assert list(state) == list(expected)
    assert sum(v.numel() for v in state.values()) == 90_354_032
    assert sum(p.numel() for p in model.parameters()) == 90_311_792
    assert model.embed_dim == 768


def test_full_size_random_checkpoint_loads_strictly_and_runs(tmp_path):
    path = write_random_checkpoint(tmp_path / "BEATs_iter3.pt")
    assert 350e6 < path.stat().st_size < 370e6
    model = load_beats(path)
    raw = torch.load(path, weights_only=True)
    assert raw["cfg"] == ITER3
    assert all(torch.equal(v, raw["model"][k]) for k, v in model.state_dict().items())
    del raw
    with torch.no_grad():
        out = model(noise(1, 1))
    assert out.shape == (1, 6 * 8, 768) and torch.isfinite(out).all()


def test_positional_conv_equals_torch_weight_norm_over_dim_2():
    pos_conv = tiny_model().encoder.pos_conv[0]
    reference = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(48, 48, 16, padding=8, groups=4), dim=2)
    reference.load_state_dict({  # §4.1: weight_g → original0, weight_v → original1
        "bias": pos_conv.bias, "parametrizations.weight.original0": pos_conv.weight_g,
        "parametrizations.weight.original1": pos_conv.weight_v,
    })
    x = torch.randn(2, 48, 30)
    with torch.no_grad():
        torch.testing.assert_close(pos_conv(x), reference(x))
