"""EAT-base (data2vec-multi image encoder) written from the SSL checkpoint fact sheet, §2–§4.

The module tree reproduces the official parameter names, so the ``model`` dict of the fairseq file
``EAT-base_epoch10_pt.pt`` loads strictly once its pretraining-only entries are dropped (§2.4):
``modality_encoders.IMAGE.{extra_tokens, local_encoder.proj, fixed_positional_encoder.positions,
context_encoder.norm}`` and ``blocks.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``.
Every attention keeps the fused ``qkv`` Linear so that peft LoRA can target it by name (§3.1).

Only 16 kHz audio is supported; the input is always a 128-bin log-mel image (§2.3, §2.5).
"""
from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from asdcore import ConfigError

from .fbank import kaldi_fbank

SAMPLE_RATE = 16000
N_MELS = 128
FRAME_MULTIPLE = 32  # §2.5: ASDKit pads the fbank frames up to a multiple of 32 (10 s → 1024, 18 s → 1824)
FBANK_MEAN = -4.268  # §2.5: (x − mean) / (2·std)
FBANK_STD = 4.569
IMAGE = "modality_encoders.IMAGE."
POSITIONS_KEY = IMAGE + "fixed_positional_encoder.positions"
# §2.4: pretraining-only entries (and ones that only other settings create), ignored when loading.
IGNORED_KEYS = (
    "_ema", IMAGE + "decoder", IMAGE + "encoder_mask", IMAGE + "alibi_bias", IMAGE + "alibi_scale",
    "recon_proj", "cls_proj", "center", "shared_decoder",
)
DOWNLOAD_HINT = (
    "Download the pre-trained EAT-base_epoch10_pt.pt linked from the EAT repository README "
    "(https://github.com/cwx-worst-one/EAT; Google Drive: "
    "https://drive.google.com/file/d/10pklbY_fKraQUIBizSg1kv4lJXNWxpxl/view)."
)
# §2.2: cfg["model"] settings whose other values change the computation without changing the keys
# (or that this encoder does not implement); checked when present.
REQUIRED_MODEL_CFG = {
    "layer_norm_first": False,
    "modalities.image.prenet_depth": 0,
    "modalities.image.use_alibi_encoder": False,
    "modalities.image.fixed_positions": True,
    "modalities.image.num_extra_tokens": 1,
    "modalities.image.in_chans": 1,
}


def _lookup(section: Any, dotted: str, default: Any = None) -> Any:
    """``section[a][b]…`` for ``dotted`` "a.b…": mappings (plain dicts, OmegaConf DictConfig) are
    indexed, other objects read by attribute; a missing level gives ``default``."""
    for name in dotted.split("."):
        if isinstance(section, Mapping):
            section = section.get(name)
        else:
            section = getattr(section, name, None)
        if section is None:
            return default
    return section


@dataclasses.dataclass(frozen=True)
class EatConfig:
    """Encoder hyper-parameters; defaults are EAT-base (§2.2).

    ``max_length`` is the number of time patches in the positional table (768 → 6144 rows).
    ``drop_path_rate`` is the stochastic-depth rate of the last block; block i of n uses
    ``drop_path_rate·i/(n−1)`` (ASDKit fine-tunes with 0.1, §3.3). Dropouts are absent: they are 0
    in the checkpoint and in ASDKit's fine-tuning (§2.2, §3.3).
    """

    depth: int = 12
    embed_dim: int = 768
    num_heads: int = 12
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    patch_size: int = 16
    max_length: int = 768
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads or self.embed_dim % 4:
            raise ConfigError(
                f"EAT embed_dim {self.embed_dim} must be divisible by num_heads ({self.num_heads}) and by 4"
            )
        if N_MELS % self.patch_size:
            raise ConfigError(f"EAT patch_size {self.patch_size} must divide the {N_MELS} mel bins")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"EAT drop_path_rate {self.drop_path_rate} must lie in [0, 1)")

    @property
    def freq_patches(self) -> int:
        return N_MELS // self.patch_size

    @property
    def mlp_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @classmethod
    def from_checkpoint_cfg(cls, cfg: Any) -> EatConfig:
        """The architecture read from a fairseq checkpoint's ``cfg`` (its ``model`` group is used;
        a bare model group is accepted too).

        A raw ``torch.load`` yields plain dicts (§4.6); OmegaConf objects work as mappings and other
        objects are read by attribute. Missing fields keep the EAT-base defaults, unknown fields are
        ignored, drop-path is not read (the file holds 0; pass it to :func:`load_eat`). Settings that
        select a variant this encoder does not implement (e.g. ``layer_norm_first: true``) raise
        :class:`asdcore.ConfigError`.
        """
        model = _lookup(cfg, "model", cfg) if cfg is not None else {}
        for dotted, required in REQUIRED_MODEL_CFG.items():
            value = _lookup(model, dotted)
            if value is not None and value != required:
                raise ConfigError(
                    f"cfg.model.{dotted} is {value!r}; the EAT encoder implements only {required!r} (EAT-base)"
                )
        defaults = cls()
        return cls(
            depth=int(_lookup(model, "depth", defaults.depth)),
            embed_dim=int(_lookup(model, "embed_dim", defaults.embed_dim)),
            num_heads=int(_lookup(model, "num_heads", defaults.num_heads)),
            mlp_ratio=float(_lookup(model, "mlp_ratio", defaults.mlp_ratio)),
            norm_eps=float(_lookup(model, "norm_eps", defaults.norm_eps)),
            patch_size=int(_lookup(model, "modalities.image.patch_size", defaults.patch_size)),
            max_length=int(_lookup(model, "modalities.image.max_length", defaults.max_length)),
        )


def sincos_positions(time_patches: int, freq_patches: int, dim: int) -> torch.Tensor:
    """The fixed 2-D sin-cos table (1, time_patches·freq_patches, dim) of §2.3: row t·F+f is
    [sin(f·ω), cos(f·ω), sin(t·ω), cos(t·ω)] with ω_k = 10000^(−k/(dim/4)), k < dim/4."""
    quarter = dim // 4
    omega = 10000.0 ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    t, f = torch.meshgrid(torch.arange(time_patches), torch.arange(freq_patches), indexing="ij")
    f_angle = f.reshape(-1, 1).double() * omega
    t_angle = t.reshape(-1, 1).double() * omega
    table = torch.cat([f_angle.sin(), f_angle.cos(), t_angle.sin(), t_angle.cos()], dim=1)
    return table.float().unsqueeze(0)


def preprocess(waves: torch.Tensor, target_length: int | None = None) -> torch.Tensor:
    """16 kHz waveforms (B, L) → normalised log-mel images (B, T, 128) as EAT expects (§2.5).

    Subtract each clip's mean (no 2^15 scaling); Kaldi fbank with 128 mel bins, Hanning window, no
    energy (htk_compat then has no effect), dither 0, 25 ms frames every 10 ms, batched on the waves'
    device in float32 by :func:`~asd_frontends_ssl.fbank.kaldi_fbank`; zero-pad the log-fbank along
    time to ``target_length`` frames (default: the frame count rounded up to a multiple of 32, which
    is ASDKit's target for clips of that length: 10 s → 1024, 18 s → 1824); normalise
    (x + 4.268)/(2·4.569), so padded frames become ≈ 0.467.
    """
    if waves.dim() != 2:
        raise ValueError(f"EAT preprocess expects waveforms (batch, samples), got shape {tuple(waves.shape)}")
    waves = waves.float()
    fbank = kaldi_fbank(waves - waves.mean(1, keepdim=True), N_MELS, SAMPLE_RATE, window="hanning")
    frames = fbank.shape[1]
    if target_length is None:
        target_length = math.ceil(frames / FRAME_MULTIPLE) * FRAME_MULTIPLE
    if frames > target_length:
        raise ValueError(f"EAT input has {frames} fbank frames, more than the target length {target_length}")
    fbank = F.pad(fbank, (0, 0, 0, target_length - frames))
    return fbank.sub_(FBANK_MEAN).div_(2 * FBANK_STD)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch per sample with probability ``p`` and
    scale the kept ones by 1/(1−p); identity in eval mode (§3.3)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` Linear (rows q | k | v, heads of
    consecutive channels) and an output ``proj``; logits scaled by 1/√head_dim (§2.3).

    Uses ``scaled_dot_product_attention``; the official code's float32 softmax is what it computes
    for float32 inputs.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """timm-layout MLP: ``fc1`` → exact GELU → ``fc2``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Post-LN transformer block: x ← norm1(x + dp(attn(x))); x ← norm2(x + dp(mlp(x))) (§2.3)."""

    def __init__(self, cfg: EatConfig, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.embed_dim, cfg.mlp_dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop_path(self.attn(x)))
        return self.norm2(x + self.drop_path(self.mlp(x)))


class ImageEncoder(nn.Module):
    """The modality encoder ``modality_encoders.IMAGE`` (§2.3 steps 1–4): 16×16 patch conv with bias,
    time-major flattening (token t·F+f), the stored positional table sliced to the token count
    (no interpolation, §3.3), the CLS token ``extra_tokens`` prepended without a positional term,
    then the zero-block context encoder, i.e. one LayerNorm.

    The plain sub-modules only carry the official names.
    """

    def __init__(self, cfg: EatConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.extra_tokens = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.trunc_normal_(self.extra_tokens, std=0.02)
        self.local_encoder = nn.Module()
        self.local_encoder.proj = nn.Conv2d(1, dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.fixed_positional_encoder = nn.Module()
        self.fixed_positional_encoder.positions = nn.Parameter(
            sincos_positions(cfg.max_length, cfg.freq_patches, dim), requires_grad=False
        )
        self.context_encoder = nn.Module()
        self.context_encoder.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.local_encoder.proj(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
        positions = self.fixed_positional_encoder.positions
        if x.shape[1] > positions.shape[1]:
            raise ValueError(
                f"EAT input gives {x.shape[1]} patches but the positional table holds {positions.shape[1]}"
            )
        x = x + positions[:, : x.shape[1]]
        x = torch.cat([self.extra_tokens.expand(x.shape[0], -1, -1), x], dim=1)
        return self.context_encoder.norm(x)


class EatEncoder(nn.Module):
    """The EAT feature path (§2.3): waveforms → tokens (B, 1+N, D), CLS first, no final norm.

    Holds exactly the 150 parameters that feature extraction uses in EAT-base (89,972,736 elements,
    of which the 4,718,592 positional-table entries are frozen), under the official names.
    """

    def __init__(self, cfg: EatConfig | None = None):
        super().__init__()
        self.cfg = cfg or EatConfig()
        self.modality_encoders = nn.ModuleDict({"IMAGE": ImageEncoder(self.cfg)})
        rates = torch.linspace(0.0, self.cfg.drop_path_rate, self.cfg.depth).tolist()
        self.blocks = nn.ModuleList(Block(self.cfg, rate) for rate in rates)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def forward_fbank(self, fbank: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel images (B, T, 128) from :func:`preprocess` → tokens (B, 1+N, D)."""
        if fbank.dim() != 3 or fbank.shape[2] != N_MELS:
            raise ValueError(f"EAT expects fbank (batch, frames, {N_MELS}), got shape {tuple(fbank.shape)}")
        x = self.modality_encoders["IMAGE"](fbank)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, waves: torch.Tensor, target_length: int | None = None) -> torch.Tensor:
        """16 kHz waveforms (B, L) → tokens (B, 1+N, D); N = 8·T/16 with T from :func:`preprocess`."""
        return self.forward_fbank(preprocess(waves, target_length))


def _ignored(key: str) -> bool:
    return any(key == name or key.startswith(name + ".") for name in IGNORED_KEYS)


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` first; fairseq files may pickle other objects in
    their training extras [UNVERIFIED], so a refused file is re-read with ``weights_only=False``:
    the file the caller names is trusted (§2.1)."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot be read as a torch checkpoint ({err}). {DOWNLOAD_HINT}") from err


def _check_state(model: EatEncoder, state: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong = [
        f"{key} {tuple(state[key].shape)} (expected {shape})"
        for key, shape in expected.items()
        if key in state and tuple(state[key].shape) != shape
    ]
    problems = [
        f"{label} ({len(items)}): {', '.join(items[:5])}{' …' if len(items) > 5 else ''}"
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong))
        if items
    ]
    if problems:
        raise ConfigError(
            f"{path}: not a pre-trained EAT checkpoint matching its cfg: {'; '.join(problems)}. {DOWNLOAD_HINT}"
        )


def load_eat(path: str | Path, device: str | torch.device = "cpu", drop_path: float = 0.0) -> EatEncoder:
    """The encoder with the weights of the official fairseq file ``EAT-base_epoch10_pt.pt`` (§2.1, §4).

    Reads only ``cfg`` (architecture, :meth:`EatConfig.from_checkpoint_cfg`) and ``model``; skips
    non-tensor entries and every key under ``_ema`` (the EMA teacher) or the pretraining-only names of
    §2.4 (decoder, …); no prefix is stripped because the module tree keeps the official names. Every
    tensor is cast to float32 (the main weights are expected in float16, unverified). The positional
    table is accepted with any number of rows that is a multiple of the frequency patches
    (``max_length`` follows it). The rest must match exactly and is loaded strictly.
    ``drop_path`` is the last block's stochastic-depth rate (ASDKit fine-tunes with 0.1).
    Returns the encoder in eval mode on ``device``. A missing, unreadable or mismatched file raises
    :class:`asdcore.ConfigError` naming the problem and where to download the checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"EAT checkpoint not found: {path}. {DOWNLOAD_HINT}")
    checkpoint = _read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise ConfigError(f"{path}: not a fairseq checkpoint (no 'model' state dict). {DOWNLOAD_HINT}")
    try:
        cfg = EatConfig.from_checkpoint_cfg(checkpoint.get("cfg"))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    state = {
        key: value.float() if value.is_floating_point() else value
        for key, value in checkpoint["model"].items()
        if isinstance(value, torch.Tensor) and not _ignored(key)
    }
    positions = state.get(POSITIONS_KEY)
    if positions is not None and positions.dim() == 3 and positions.shape[1] % cfg.freq_patches == 0:
        cfg = dataclasses.replace(cfg, max_length=positions.shape[1] // cfg.freq_patches)
    model = EatEncoder(dataclasses.replace(cfg, drop_path_rate=drop_path))
    _check_state(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def _fairseq_model_cfg(cfg: EatConfig) -> dict[str, Any]:
    """cfg["model"] as the EAT pretraining file stores it (§2.2), for the given architecture."""
    return {
        "_name": "data2vec_multi", "depth": cfg.depth, "embed_dim": cfg.embed_dim, "num_heads": cfg.num_heads,
        "mlp_ratio": cfg.mlp_ratio, "norm_eps": cfg.norm_eps, "norm_affine": True, "layer_norm_first": False,
        "encoder_dropout": 0.0, "post_mlp_drop": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
        "dropout_input": 0.0, "layerdrop": 0.0, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
        "supported_modality": "IMAGE", "ema_encoder_only": False, "skip_ema": False, "cls_loss": 1.0,
        "recon_loss": 0.0, "utterance_level": False, "shared_decoder": None, "clone_batch": 16,
        "average_top_k_layers": cfg.depth, "ema_decay": 0.9998, "ema_end_decay": 0.99999,
        "modalities": {"image": {
            "type": "IMAGE", "in_chans": 1, "patch_size": cfg.patch_size, "embed_dim": cfg.embed_dim,
            "prenet_depth": 0, "num_extra_tokens": 1, "use_alibi_encoder": False, "fixed_positions": True,
            "target_length": 1024, "max_length": cfg.max_length,
            "decoder": {"decoder_dim": cfg.embed_dim, "decoder_groups": 16, "decoder_kernel": 3, "decoder_layers": 6},
        }},
    }


def write_random_checkpoint(
    path: str | Path, cfg_overrides: Mapping[str, Any] | None = None, seed: int = 0
) -> EatConfig:
    """Write a file in the official fairseq layout (§2.1) with random values, for tests.

    ``cfg_overrides`` replaces :class:`EatConfig` fields (e.g. a tiny ``depth``/``embed_dim``).
    Top level: ``args`` None, ``cfg`` (plain nested dicts incl. the ``model`` group), ``model``,
    ``criterion`` None, ``optimizer_history``, ``task_state``, ``extra_state``. ``model`` holds the
    encoder entries in float16, the six-layer CNN decoder (pretraining only) and ``_ema``: a dict of
    float32 encoder entries with values different from the main ones. Returns the config written.
    """
    cfg = dataclasses.replace(EatConfig(), **dict(cfg_overrides or {}))
    generator = torch.Generator().manual_seed(seed)

    def random_like(shape: tuple[int, ...], key: str) -> torch.Tensor:
        values = 0.02 * torch.randn(shape, generator=generator)
        return values + 1.0 if "norm" in key and key.endswith(".weight") else values

    shapes = {key: tuple(value.shape) for key, value in EatEncoder(cfg).state_dict().items()}
    dim = cfg.embed_dim
    groups = math.gcd(16, dim)
    for j in range(6):
        shapes[f"{IMAGE}decoder.blocks.{j}.0.weight"] = (dim, dim // groups, 3, 3)
        shapes[f"{IMAGE}decoder.blocks.{j}.0.bias"] = (dim,)
    shapes[f"{IMAGE}decoder.proj.weight"] = (dim, dim)
    shapes[f"{IMAGE}decoder.proj.bias"] = (dim,)
    model: dict[str, Any] = {key: random_like(shape, key).half() for key, shape in shapes.items()}
    model["_ema"] = {
        key: random_like(shape, key) for key, shape in shapes.items() if not key.startswith(IMAGE + "decoder.")
    }
    checkpoint = {
        "args": None,
        "cfg": {
            "common": {"fp16": True, "seed": seed}, "checkpoint": {}, "task": {"_name": "mae_image_pretraining"},
            "model": _fairseq_model_cfg(cfg), "optimization": {"max_update": 0}, "optimizer": {"_name": "adam"},
            "lr_scheduler": {"_name": "cosine"}, "dataset": {}, "distributed_training": {},
        },
        "model": model,
        "criterion": None,
        "optimizer_history": [
            {"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam",
             "lr_scheduler_state": {"best": None}, "num_updates": 0}
        ],
        "task_state": {},
        "extra_state": {"epoch": 10, "previous_training_time": 0.0},
    }
    torch.save(checkpoint, Path(path))
    return cfg
