"""The EAT encoder against the SSL checkpoint fact sheet (§2–§4): preprocessing, forward, drop-path,
official-format checkpoints. All but the last test use a tiny config."""
import dataclasses
import datetime
import json
import math
from pathlib import Path

import pytest
import torch
import torchaudio
from torch import nn

import asdcore
from asd_frontends_ssl.eat import (
    EatConfig, EatEncoder, load_eat, preprocess, sincos_positions, write_random_checkpoint,
)

SR = 16000
TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2, "max_length": 128}
FIXTURE = Path(__file__).parent / "fixtures" / "eat_base_keys.json"
POSITIONS = "modality_encoders.IMAGE.fixed_positional_encoder.positions"


def tiny(**changes):
    return dataclasses.replace(EatConfig(**TINY), **changes)


def waves(batch, seconds, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(seconds * SR), generator=g) + 0.05


def reference_tokens(model, fbank):
    """The §2.3 feature path with explicit operations: patches cut by reshaping, time-major order,
    q|k|v rows split by hand, float32 softmax, post-LN, no final norm."""
    cfg = model.cfg
    enc = model.modality_encoders["IMAGE"]
    b, t, f = fbank.shape
    p, d, h = cfg.patch_size, cfg.embed_dim, cfg.num_heads
    patches = fbank.reshape(b, t // p, p, f // p, p).permute(0, 1, 3, 2, 4).reshape(b, -1, p * p)
    proj = enc.local_encoder.proj
    x = patches @ proj.weight.reshape(d, -1).T + proj.bias
    x = x + enc.fixed_positional_encoder.positions[0, : x.shape[1]]
    x = torch.cat([enc.extra_tokens.expand(b, 1, d), x], dim=1)
    x = nn.functional.layer_norm(x, (d,), enc.context_encoder.norm.weight, enc.context_encoder.norm.bias, cfg.norm_eps)
    for blk in model.blocks:
        qkv = x @ blk.attn.qkv.weight.T + blk.attn.qkv.bias
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(b, -1, h, d // h).transpose(1, 2) for i in range(3))
        attn = ((q @ k.transpose(-1, -2)) / math.sqrt(d // h)).softmax(-1, dtype=torch.float32)
        a = (attn @ v).transpose(1, 2).reshape(b, -1, d) @ blk.attn.proj.weight.T + blk.attn.proj.bias
        x = blk.norm1(x + a)
        m = nn.functional.gelu(x @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
        x = blk.norm2(x + m)
    return x


def encoder_entries(path):
    """The main-model tensors of a written file under the encoder's names, as float32."""
    state = torch.load(path, weights_only=True)["model"]
    return {k: v.float() for k, v in state.items() if isinstance(v, torch.Tensor) and "decoder" not in k}


def test_config_defaults_are_eat_base():
    cfg = EatConfig()
    assert (cfg.depth, cfg.embed_dim, cfg.num_heads, cfg.mlp_dim, cfg.patch_size) == (12, 768, 12, 3072, 16)
    assert (cfg.norm_eps, cfg.max_length, cfg.freq_patches, cfg.drop_path_rate) == (1e-6, 768, 8, 0.0)


def test_config_from_checkpoint_cfg_is_tolerant():
    model = {"depth": 3, "embed_dim": 48, "num_heads": 4, "unknown_field": 7,
             "modalities": {"image": {"patch_size": 16, "max_length": 40, "extra": None}, "audio": {}}}
    expected = EatConfig(depth=3, embed_dim=48, num_heads=4, max_length=40)
    assert EatConfig.from_checkpoint_cfg({"common": {}, "model": model}) == expected
    assert EatConfig.from_checkpoint_cfg(model) == expected  # a bare model group
    assert EatConfig.from_checkpoint_cfg({"model": {}}) == EatConfig()
    assert EatConfig.from_checkpoint_cfg(None) == EatConfig()


@pytest.mark.parametrize(("field", "value"), [
    ("layer_norm_first", True), ("modalities.image.use_alibi_encoder", True), ("modalities.image.prenet_depth", 2),
])
def test_config_rejects_unimplemented_variants(field, value):
    model = value
    for name in reversed(field.split(".")):
        model = {name: model}
    with pytest.raises(asdcore.ConfigError, match=field.split(".")[-1]):
        EatConfig.from_checkpoint_cfg({"model": model})


def test_preprocess_equals_direct_kaldi_fbank_padded_and_normalised():
    x = waves(2, 1.0)
    out = preprocess(x)
    for i in range(2):
        direct = torchaudio.compliance.kaldi.fbank(
            (x[i] - x[i].mean())[None], htk_compat=True, sample_frequency=16000, use_energy=False,
            window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10, frame_length=25,
        )
        assert direct.shape == (98, 128)
        padded = torch.cat([direct, torch.zeros(128 - 98, 128)])
        torch.testing.assert_close(out[i], (padded + 4.268) / (2 * 4.569), rtol=0, atol=0)
    assert torch.allclose(out[:, 98:], torch.tensor(4.268 / 9.138))


def test_preprocess_ignores_dc_and_does_not_scale():
    x = waves(1, 0.5)
    torch.testing.assert_close(preprocess(x + 0.3), preprocess(x), rtol=0, atol=1e-4)
    assert not torch.allclose(preprocess(2 * x), preprocess(x), atol=1e-2)


@pytest.mark.parametrize(("seconds", "frames"), [(10, 1024), (18, 1824), (11, 1120), (12, 1216), (2, 224)])
def test_frame_counts(seconds, frames):
    assert preprocess(torch.zeros(1, seconds * SR)).shape == (1, frames, 128)


def test_preprocess_target_length():
    x = waves(1, 1.0)
    assert preprocess(x, target_length=160).shape == (1, 160, 128)
    with pytest.raises(ValueError, match="98 fbank frames"):
        preprocess(x, target_length=64)


def test_sincos_table_recipe():
    table = sincos_positions(5, 8, 32)
    assert table.shape == (1, 40, 32)
    for t, f, k in [(0, 0, 0), (3, 5, 2), (4, 7, 7), (2, 1, 5)]:
        w = 10000.0 ** (-k / 8)
        row = table[0, t * 8 + f]
        expected = [math.sin(f * w), math.cos(f * w), math.sin(t * w), math.cos(t * w)]
        torch.testing.assert_close(row[[k, 8 + k, 16 + k, 24 + k]], torch.tensor(expected))


def test_forward_shapes_and_reference_path():
    torch.manual_seed(0)
    model = EatEncoder(tiny()).eval()
    x = waves(2, 2.0)
    with torch.no_grad():
        tokens = model(x)
        assert tokens.shape == (2, 1 + 14 * 8, 32)  # 2 s → 224 frames → 14 time × 8 freq patches
        torch.testing.assert_close(tokens, reference_tokens(model, preprocess(x)), rtol=1e-5, atol=1e-5)
    ten_s = model.forward_fbank(torch.zeros(1, 1024, 128))
    assert ten_s.shape == (1, 513, 32)


def test_cls_token_comes_first_without_positions():
    torch.manual_seed(0)
    model = EatEncoder(tiny(depth=0)).eval()
    enc = model.modality_encoders["IMAGE"]
    with torch.no_grad():
        a, b = model(waves(1, 1.0, seed=1)), model(waves(1, 1.0, seed=2))
        cls = enc.context_encoder.norm(enc.extra_tokens)[0, 0]
    torch.testing.assert_close(a[0, 0], cls)
    torch.testing.assert_close(b[0, 0], cls)
    assert not torch.allclose(a[0, 1:], b[0, 1:])


def test_too_many_patches_is_an_error():
    model = EatEncoder(tiny(max_length=4))
    with pytest.raises(ValueError, match="positional table"):
        model.forward_fbank(torch.zeros(1, 96, 128))


def test_qkv_is_one_fused_linear_per_block_and_positions_frozen():
    model = EatEncoder(tiny())
    qkv = [name for name, module in model.named_modules() if name.endswith("qkv")]
    assert qkv == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert all(isinstance(model.get_submodule(n), nn.Linear) and model.get_submodule(n).out_features == 96 for n in qkv)
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen == [POSITIONS]


def test_peft_lora_targets_qkv():
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(EatEncoder(tiny()), peft.LoraConfig(r=4, target_modules=["qkv"]))
    trainable = {name: p.shape for name, p in model.named_parameters() if p.requires_grad}
    assert len(trainable) == 4
    assert trainable["base_model.model.blocks.0.attn.qkv.lora_B.default.weight"] == (96, 4)


def test_drop_path_schedule_and_training_only():
    rates = [blk.drop_path.p for blk in EatEncoder(tiny(depth=12, drop_path_rate=0.1)).blocks]
    assert rates == pytest.approx([0.1 * i / 11 for i in range(12)])

    torch.manual_seed(0)
    model = EatEncoder(tiny(drop_path_rate=0.9))
    plain = EatEncoder(tiny())
    plain.load_state_dict(model.state_dict())
    fbank = preprocess(waves(4, 1.0))
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model.forward_fbank(fbank), plain.eval().forward_fbank(fbank))
        model.train()
        torch.manual_seed(1)
        first = model.forward_fbank(fbank)
        torch.manual_seed(2)
        assert not torch.allclose(first, model.forward_fbank(fbank))
        plain.train()
        torch.testing.assert_close(plain.forward_fbank(fbank), model.eval().forward_fbank(fbank))


def test_random_checkpoint_has_the_official_layout(tmp_path):
    path = tmp_path / "eat.pt"
    cfg = write_random_checkpoint(path, TINY, seed=3)
    assert cfg == tiny()
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"args", "cfg", "model", "criterion", "optimizer_history", "task_state", "extra_state"}
    assert ckpt["cfg"]["model"]["_name"] == "data2vec_multi"
    assert EatConfig.from_checkpoint_cfg(ckpt["cfg"]) == cfg
    state = ckpt["model"]
    ema = state.pop("_ema")
    encoder_keys = set(EatEncoder(cfg).state_dict())
    decoder = {k for k in state if k.startswith("modality_encoders.IMAGE.decoder.")}
    assert len(decoder) == 14 and set(state) == encoder_keys | decoder
    assert set(ema) == encoder_keys
    assert all(v.dtype == torch.float16 for v in state.values())
    assert all(v.dtype == torch.float32 for v in ema.values())


def test_random_checkpoint_round_trip_uses_main_weights(tmp_path):
    path = tmp_path / "eat.pt"
    cfg = write_random_checkpoint(path, TINY, seed=3)
    model = load_eat(path)
    assert not model.training and model.cfg == cfg
    assert model.modality_encoders["IMAGE"].fixed_positional_encoder.positions.dtype == torch.float32

    expected = EatEncoder(cfg).eval()
    expected.load_state_dict(encoder_entries(path), strict=True)
    ema = EatEncoder(cfg).eval()
    ema.load_state_dict(torch.load(path, weights_only=True)["model"]["_ema"])
    x = waves(2, 1.0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected(x), rtol=0, atol=0)
        assert not torch.allclose(model(x), ema(x))
    assert load_eat(path, drop_path=0.1).blocks[-1].drop_path.p == pytest.approx(0.1)


def test_positional_table_length_follows_the_file(tmp_path):
    path = tmp_path / "eat.pt"
    write_random_checkpoint(path, {**TINY, "max_length": 100})
    ckpt = torch.load(path, weights_only=True)
    del ckpt["cfg"]["model"]["modalities"]["image"]["max_length"]  # cfg silent: the default 768 would not fit
    torch.save(ckpt, path)
    model = load_eat(path)
    assert model.cfg.max_length == 100
    assert model.modality_encoders["IMAGE"].fixed_positional_encoder.positions.shape == (1, 800, 32)


def test_non_weights_only_extras_are_read(tmp_path):
    path = tmp_path / "eat.pt"
    write_random_checkpoint(path, TINY)
    ckpt = torch.load(path, weights_only=True)
    ckpt["extra_state"]["train_time"] = datetime.timedelta(seconds=5)  # refused by weights_only=True
    torch.save(ckpt, path)
    assert load_eat(path).cfg == tiny()


def test_missing_file_names_the_download(tmp_path):
    with pytest.raises(asdcore.ConfigError) as err:
        load_eat(tmp_path / "EAT-base_epoch10_pt.pt")
    message = str(err.value)
    assert "not found" in message and "EAT-base_epoch10_pt.pt" in message
    assert "https://github.com/cwx-worst-one/EAT" in message and "drive.google.com" in message


def _corrupt(tmp_path, change):
    path = tmp_path / "eat.pt"
    write_random_checkpoint(path, TINY)
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(("change", "pattern"), [
    (lambda c: c["model"].pop("blocks.1.attn.qkv.weight"), r"missing keys \(1\): blocks.1.attn.qkv.weight"),
    (lambda c: c["model"].update({"blocks.0.mlp.fc1.bias": torch.zeros(7)}),
     r"wrong shapes \(1\): blocks.0.mlp.fc1.bias \(7,\) \(expected \(128,\)\)"),
    (lambda c: c["model"].update({"blocks.2.norm1.weight": torch.zeros(32)}), r"unexpected keys \(1\): blocks.2.norm1"),
    (lambda c: c["cfg"]["model"].update({"depth": 3}), r"missing keys \(12\)"),
    (lambda c: c.pop("model"), "no 'model' state dict"),
])
def test_mismatched_checkpoint_errors(tmp_path, change, pattern):
    with pytest.raises(asdcore.ConfigError, match=pattern) as err:
        load_eat(_corrupt(tmp_path, change))
    assert "EAT-base_epoch10_pt.pt" in str(err.value)


def test_unreadable_file_is_a_config_error(tmp_path):
    path = tmp_path / "eat.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(asdcore.ConfigError, match="cannot be read"):
        load_eat(path)


def test_full_size_eat_base_keys_parameters_and_checkpoint(tmp_path):
    fixture = json.loads(FIXTURE.read_text())
    entries = {name: tuple(e["shape"]) for name, e in fixture["entries"].items()}
    kept = {name: shape for name, shape in entries.items() if fixture["entries"][name]["kept"]}
    assert len(entries) == 314 and len(kept) == 150

    torch.manual_seed(0)
    model = EatEncoder()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == kept
    assert sum(p.numel() for p in model.parameters()) == 89_972_736 == fixture["kept_elements"]
    assert sum(p.numel() for p in model.parameters() if not p.requires_grad) == 4_718_592

    path = tmp_path / "eat_base.pt"
    write_random_checkpoint(path, seed=1)
    state = torch.load(path, weights_only=True)["model"]
    ema = state.pop("_ema")
    written = {k: tuple(v.shape) for k, v in state.items()} | {f"_ema/{k}": tuple(v.shape) for k, v in ema.items()}
    assert written == entries

    loaded = load_eat(path)
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, state[name].float()), name
    with torch.no_grad():
        assert loaded(waves(1, 1.0)).shape == (1, 1 + 8 * 8, 768)
