"""BEATs (iter3) audio encoder, re-implemented to load the official ``BEATs_iter3.pt`` strictly.

Written from ``ssl-checkpoint-facts.md`` §1 and §4 (section numbers below refer to that sheet):

- checkpoint file: ``{"cfg": {...}, "model": state_dict}`` (§1.1); every ``cfg`` key overrides a
  code default (§1.2);
- preprocessing: waveform × 2^15 → Kaldi fbank (128 mel, 16 kHz, 25/10 ms, torchaudio defaults
  otherwise) → (x − 15.41663) / (2 · 6.55582) (§1.5);
- feature path: 16×16 patch conv (no bias) → time-major tokens → LayerNorm → Linear → convolutional
  positional embedding (weight-normalised) → post-LN Deep-Norm transformer with a shared T5-style
  relative position bias gated per layer and head (§1.3);
- training-only behaviours read from ``cfg``: layerdrop and the layer-wise gradient decay (§1.3);
- optional sample-level padding mask reduced as the official code does (§1.6).

The attention projections are ``nn.Linear`` submodules named ``q_proj``, ``k_proj``, ``v_proj`` and
``out_proj`` so that peft LoRA can target ``q_proj``/``v_proj`` by name (§3.1).
"""
from __future__ import annotations

import dataclasses
import math
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import asdcore

from .fbank import kaldi_fbank

FBANK_MEAN = 15.41663  # §1.5
FBANK_STD = 6.55582  # §1.5
NUM_MEL_BINS = 128
SAMPLE_RATE = 16000

CHECKPOINT_HELP = (
    "Download BEATs_iter3.pt (the 'BEATs_iter3' pre-trained checkpoint link) from the BEATs README of "
    "microsoft/unilm: https://github.com/microsoft/unilm/tree/master/beats"
)

ITER3_CFG: dict[str, Any] = {
    "input_patch_size": 16,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 0.6,
    "layer_norm_first": False,
    "deep_norm": True,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05,
    "dropout_input": 0.0,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": True,
    "num_buckets": 320,
    "max_distance": 800,
    "gru_rel_pos": True,
    "finetuned_model": False,
    "predictor_dropout": 0.0,
    "predictor_class": 527,
}
"""The iter3 ``cfg`` as public copies show it (§1.2). ``encoder_layerdrop`` is 0.05 in most copies but
[UNVERIFIED] for the real file (0.0 in others); a loaded checkpoint always uses its own value."""


@dataclasses.dataclass
class BeatsConfig:
    """Constructor settings of BEATs with the code defaults of §1.2 (not the iter3 values).

    ``from_dict`` lets every key of a checkpoint ``cfg`` override its default; keys this class does
    not know are kept in ``extra`` and otherwise ignored, as the official loader does.
    """

    input_patch_size: int = -1
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float = 1.0
    layer_norm_first: bool = False
    deep_norm: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    finetuned_model: bool = False
    predictor_dropout: float = 0.1
    predictor_class: int = 527
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> BeatsConfig:
        """Build from a checkpoint ``cfg`` dict: known keys override defaults, unknown go to ``extra``."""
        if not isinstance(cfg, Mapping):
            raise asdcore.ConfigError(f"BEATs cfg must be a dict, got {type(cfg).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        config = cls(**{k: v for k, v in cfg.items() if k in known})
        config.extra = {k: v for k, v in cfg.items() if k not in known}
        return config

    def to_dict(self) -> dict[str, Any]:
        """The flat ``cfg`` dict of the checkpoint format (known fields, then ``extra``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out


_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x.float()).type_as(x),  # §1.2: exact erf GELU evaluated in float32
    "gelu_accurate": lambda x: F.gelu(x.float(), approximate="tanh").type_as(x),
    "relu": F.relu,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}


def _validate(cfg: BeatsConfig) -> None:
    problems = []
    if cfg.input_patch_size <= 0 or NUM_MEL_BINS % cfg.input_patch_size:
        problems.append(f"input_patch_size={cfg.input_patch_size} must be a positive divisor of {NUM_MEL_BINS}")
    if cfg.encoder_embed_dim % cfg.encoder_attention_heads:
        problems.append(
            f"encoder_embed_dim={cfg.encoder_embed_dim} is not divisible by "
            f"encoder_attention_heads={cfg.encoder_attention_heads}"
        )
    if cfg.encoder_embed_dim % cfg.conv_pos_groups:
        problems.append(
            f"encoder_embed_dim={cfg.encoder_embed_dim} is not divisible by conv_pos_groups={cfg.conv_pos_groups}"
        )
    if cfg.deep_norm and cfg.layer_norm_first:
        problems.append("deep_norm and layer_norm_first cannot both be true")
    if cfg.activation_fn not in _ACTIVATIONS:
        problems.append(f"activation_fn={cfg.activation_fn!r} is not one of {sorted(_ACTIVATIONS)}")
    if problems:
        raise asdcore.ConfigError("invalid BEATs cfg: " + "; ".join(problems))


class _GradMultiply(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``scale`` (layer-wise decay, §1.3)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class WeightNormConv1d(nn.Module):
    """Conv1d stored as old-style weight norm over dim 2: ``bias``, ``weight_g`` (1, 1, K), ``weight_v``.

    The effective weight is g · v / ‖v‖ with the norm over dims 0 and 1 per kernel position (§4.1),
    which keeps the official key names ``weight_g``/``weight_v``.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__()
        self.padding = kernel_size // 2
        self.groups = groups
        self.bias = nn.Parameter(torch.zeros(channels))
        std = math.sqrt(4.0 / (kernel_size * channels))
        weight_v = torch.randn(channels, channels // groups, kernel_size) * std
        self.weight_g = nn.Parameter(weight_v.norm(dim=(0, 1), keepdim=True))
        self.weight_v = nn.Parameter(weight_v)

    def folded_weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.folded_weight(), self.bias, padding=self.padding, groups=self.groups)


class _TrimLast(nn.Module):
    """Drop the last output step when the positional kernel is even ("same" padding, §1.3 b)."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.trim = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] - self.trim]


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 buckets of ``key − query`` positions (§1.3 d), in float32 like the original."""
    half = num_buckets // 2
    max_exact = half // 2
    buckets = (relative_position > 0).long() * half
    distance = relative_position.abs()
    large = max_exact + (
        torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).long()
    large = large.clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class BeatsSelfAttention(nn.Module):
    """Multi-head self-attention with (gated) relative position bias (§1.3 d).

    Logits are q·k/√d_head (the original's shift by the row maximum is softmax-neutral); padded keys
    are excluded; the shared bias (H, N, N) is multiplied per query and head by the gate
    a·(b·grep_a − 1) + 2, where (a, b) = sigmoid of the two group sums of ``grep_linear(q)`` on the
    unscaled query.
    """

    def __init__(self, cfg: BeatsConfig, has_relative_attention_bias: bool):
        super().__init__()
        self.num_heads = cfg.encoder_attention_heads
        self.head_dim = cfg.encoder_embed_dim // self.num_heads
        self.scaling = self.head_dim ** -0.5
        self.attention_dropout = cfg.attention_dropout
        self.num_buckets = cfg.num_buckets
        self.max_distance = cfg.max_distance
        dim = cfg.encoder_embed_dim
        self.grep_a = nn.Parameter(torch.ones(1, self.num_heads, 1, 1)) if cfg.gru_rel_pos else None
        self.relative_attention_bias = (
            nn.Embedding(cfg.num_buckets, self.num_heads) if has_relative_attention_bias else None
        )
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.grep_linear = nn.Linear(self.head_dim, 8) if cfg.gru_rel_pos else None

    def compute_bias(self, length: int) -> torch.Tensor:
        """Relative position bias (H, N, N) for N tokens in flattened (time-major) order."""
        position = torch.arange(length, device=self.relative_attention_bias.weight.device)
        bucket = relative_position_bucket(position[None, :] - position[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(bucket).permute(2, 0, 1)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None, position_bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = x.shape
        if position_bias is None and self.relative_attention_bias is not None:
            position_bias = self.compute_bias(length)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        logits = torch.matmul(q * self.scaling, k.transpose(-1, -2))
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        if position_bias is not None:
            bias = position_bias.unsqueeze(0)
            if self.grep_linear is not None:
                groups = self.grep_linear(q).view(batch, self.num_heads, length, 2, 4).sum(-1)
                gate_a, gate_b = torch.sigmoid(groups).chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
            logits = logits + bias
        probs = torch.softmax(logits.float(), dim=-1).type_as(logits)
        probs = F.dropout(probs, p=self.attention_dropout, training=self.training)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, length, -1)
        return self.out_proj(out), position_bias


class BeatsLayer(nn.Module):
    """One transformer layer (§1.3 d).

    Post-LN (``layer_norm_first`` false): x ← LN(α·x + Attn(x)); x ← LN(α·x + FFN(x)) with the Deep-Norm
    α = (2·layers)^(1/4) when ``deep_norm`` is true, else 1. Pre-LN: x ← x + Attn(LN(x)); x ← x + FFN(LN(x)).
    """

    def __init__(self, cfg: BeatsConfig, has_relative_attention_bias: bool):
        super().__init__()
        self.self_attn = BeatsSelfAttention(cfg, has_relative_attention_bias)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.fc1 = nn.Linear(cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, cfg.encoder_embed_dim)
        self.final_layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.activation = _ACTIVATIONS[cfg.activation_fn]
        self.dropout = cfg.dropout
        self.activation_dropout = cfg.activation_dropout
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(self.activation(self.fc1(x)), p=self.activation_dropout, training=self.training)
        return F.dropout(self.fc2(x), p=self.dropout, training=self.training)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None, position_bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.layer_norm_first:
            attn, position_bias = self.self_attn(self.self_attn_layer_norm(x), key_padding_mask, position_bias)
            x = x + F.dropout(attn, p=self.dropout, training=self.training)
            return x + self._ffn(self.final_layer_norm(x)), position_bias
        attn, position_bias = self.self_attn(x, key_padding_mask, position_bias)
        x = self.self_attn_layer_norm(self.alpha * x + F.dropout(attn, p=self.dropout, training=self.training))
        return self.final_layer_norm(self.alpha * x + self._ffn(x)), position_bias


class BeatsTransformer(nn.Module):
    """``encoder.*``: positional conv, LayerNorm, layers (§1.3 step 5).

    With ``relative_position_embedding`` only layer 0 owns ``relative_attention_bias``; the same module
    is attached to every other layer (so the state dict lists it once per layer, §4.2), and the bias
    computed by the first executed layer is passed on unchanged. In train mode each layer is skipped
    with probability ``encoder_layerdrop`` (drawn from torch's RNG; the original draws from numpy's),
    and before each layer the gradient is multiplied by ``layer_wise_gradient_decay_ratio`` (§1.3).
    """

    def __init__(self, cfg: BeatsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(dim, cfg.conv_pos, cfg.conv_pos_groups), _TrimLast(cfg.conv_pos), nn.GELU()
        )
        self.layers = nn.ModuleList(
            BeatsLayer(cfg, has_relative_attention_bias=cfg.relative_position_embedding and i == 0)
            for i in range(cfg.encoder_layers)
        )
        if cfg.relative_position_embedding:
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg.layer_norm_first
        self.dropout = cfg.dropout
        self.layerdrop = cfg.encoder_layerdrop
        self.gradient_decay = cfg.layer_wise_gradient_decay_ratio

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        position_bias = None
        for layer in self.layers:
            if self.gradient_decay != 1.0 and x.requires_grad:
                x = _GradMultiply.apply(x, self.gradient_decay)
            if self.training and self.layerdrop > 0 and torch.rand(()).item() <= self.layerdrop:
                continue
            x, position_bias = layer(x, padding_mask, position_bias)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x


def _reduce_padding_mask(padding_mask: torch.Tensor, length: int) -> torch.Tensor:
    """Official mask reduction (§1.6): drop the last ``len mod length`` entries, chunk, all-padded → padded."""
    extra = padding_mask.shape[1] % length
    if extra:
        padding_mask = padding_mask[:, :-extra]
    return padding_mask.reshape(padding_mask.shape[0], length, -1).all(-1)


def preprocess(waves: torch.Tensor) -> torch.Tensor:
    """Waveforms (B, L) in [−1, 1] at 16 kHz → normalised log-mel fbank (B, T, 128) (§1.5).

    Float32 on the waves' device: × 2^15, Kaldi fbank with 128 mel bins, 16 kHz, 25 ms / 10 ms (other
    options at torchaudio defaults: povey window, dither 0, pre-emphasis 0.97, DC removal, snip edges
    → T = 1 + ⌊(L − 400)/160⌋) batched by :func:`~asd_frontends_ssl.fbank.kaldi_fbank`, then
    (x − 15.41663) / (2 · 6.55582).
    """
    if waves.dim() != 2:
        raise ValueError(f"expected waveforms of shape [B, L], got {tuple(waves.shape)}")
    fbank = kaldi_fbank(waves.float() * 2**15, NUM_MEL_BINS, SAMPLE_RATE, window="povey")
    return fbank.sub_(FBANK_MEAN).div_(2 * FBANK_STD)


class BeatsEncoder(nn.Module):
    """The BEATs feature path (§1.3); ``state_dict()`` matches ``BEATs_iter3.pt["model"]`` for the iter3 cfg.

    ``embed_dim`` is the output token width (``cfg.encoder_embed_dim``, 768), not ``cfg.embed_dim``
    (the 512 patch-embedding channels). ``forward(waves)`` = ``from_fbank(preprocess(waves))``.
    Fine-tuned checkpoints' classifier (``finetuned_model``) is not part of this module (see
    ``load_beats``).
    """

    def __init__(self, cfg: BeatsConfig):
        super().__init__()
        _validate(cfg)
        self.cfg = cfg
        self.embed_dim = cfg.encoder_embed_dim
        self.patch_size = cfg.input_patch_size
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        )
        self.patch_embedding = nn.Conv2d(
            1, cfg.embed_dim, kernel_size=cfg.input_patch_size, stride=cfg.input_patch_size, bias=cfg.conv_bias
        )
        self.encoder = BeatsTransformer(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.dropout_input = cfg.dropout_input

    def from_fbank(self, fbank: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised fbank (B, T, 128) → last-layer tokens (B, ⌊T/p⌋·(128/p), embed_dim).

        Frames after the last full patch are dropped; tokens are ordered time-major (t·(128/p) + f).
        ``padding_mask`` (B, T), True = padded frame, is chunked onto the tokens as in §1.6.
        """
        if fbank.dim() != 3 or fbank.shape[-1] != NUM_MEL_BINS:
            raise ValueError(f"expected fbank of shape [B, T, {NUM_MEL_BINS}], got {tuple(fbank.shape)}")
        if fbank.shape[1] < self.patch_size:
            raise ValueError(f"need at least {self.patch_size} fbank frames, got {fbank.shape[1]}")
        features = self.patch_embedding(fbank.unsqueeze(1))
        features = self.layer_norm(features.flatten(2).transpose(1, 2))
        if padding_mask is not None:
            padding_mask = _reduce_padding_mask(padding_mask, features.shape[1])
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        features = F.dropout(features, p=self.dropout_input, training=self.training)
        return self.encoder(features, padding_mask)

    def forward(self, waves: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Waveforms (B, L) at 16 kHz → tokens (B, N, embed_dim); ``padding_mask`` (B, L), True = padded."""
        fbank = preprocess(waves)
        if padding_mask is not None:
            padding_mask = _reduce_padding_mask(padding_mask, fbank.shape[1])
        return self.from_fbank(fbank, padding_mask)


def _not_beats(path: Path, what: str) -> asdcore.ConfigError:
    return asdcore.ConfigError(f"{path} is not a usable BEATs checkpoint: {what}. {CHECKPOINT_HELP}")


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; if the safe unpickler refuses the file, retry unrestricted.

    The official file should need no fallback (§1.1: only tensors and primitive types).
    """
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            warnings.warn(
                f"torch.load(weights_only=True) refused {path}; retrying with weights_only=False "
                "(only do this with files from a trusted source)",
                stacklevel=3,
            )
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes one clear error
        raise _not_beats(path, f"torch.load failed ({type(exc).__name__}: {exc})") from exc


def _summarise(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def load_beats(path: str | Path, device: str | torch.device = "cpu") -> BeatsEncoder:
    """Load an official BEATs checkpoint (``{"cfg", "model"}``, §1.1) into a float32 ``BeatsEncoder`` in eval mode.

    The model is built from ``cfg`` and the ``model`` tensors are loaded strictly after these
    tolerances: the shared relative-bias table is taken from layer 0 for every layer (§4.2), tensors
    are cast to float32 (stored dtype [UNVERIFIED], §4.5), and for ``finetuned_model`` checkpoints the
    ``predictor.*`` classifier keys are dropped. Missing file, unreadable file, wrong layout, missing
    or unexpected keys and shape mismatches raise ``asdcore.ConfigError``.
    """
    path = Path(path)
    if not path.is_file():
        raise asdcore.ConfigError(f"BEATs checkpoint not found: {path}. {CHECKPOINT_HELP}")
    checkpoint = _read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("cfg"), Mapping) or not isinstance(
        checkpoint.get("model"), Mapping
    ):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise _not_beats(path, f"expected a dict with a flat 'cfg' dict and a 'model' state dict, found {found}")
    try:
        with torch.device("meta"):  # no random init: every tensor is assigned from the file below
            model = BeatsEncoder(BeatsConfig.from_dict(checkpoint["cfg"]))
    except (TypeError, ValueError, asdcore.ConfigError) as exc:
        raise _not_beats(path, f"its cfg cannot build a BEATs model ({exc})") from exc

    state = dict(checkpoint["model"])
    if model.cfg.finetuned_model:
        state = {k: v for k, v in state.items() if not k.startswith("predictor.")}
    not_tensors = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise _not_beats(path, f"'model' holds non-tensor entries: {_summarise(not_tensors)}")
    shared = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    if shared in state:
        for i in range(1, model.cfg.encoder_layers):
            name = f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"
            if name in state:
                state[name] = state[shared]

    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_summarise(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_summarise(wrong)}")
    if problems:
        raise _not_beats(path, "'model' does not match its cfg; " + "; ".join(problems))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.to(device).eval()


def write_random_checkpoint(
    path: str | Path, cfg_overrides: Mapping[str, Any] | None = None, seed: int = 0
) -> Path:
    """Write a synthetic checkpoint in the official format: ``{"cfg": ITER3_CFG | overrides, "model": ...}``.

    Every tensor is random (LayerNorm affines and ``grep_a`` are perturbed too, so a loader that skips
    them is caught); the shared relative-bias table is written once per layer with identical values
    (§4.2). The global RNG state is left untouched.
    """
    cfg = {**ITER3_CFG, **(cfg_overrides or {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BeatsEncoder(BeatsConfig.from_dict(cfg))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("grep_a") or "layer_norm" in name:
                    param.add_(0.1 * torch.randn_like(param))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"cfg": cfg, "model": model.state_dict()}, path)
    return path
