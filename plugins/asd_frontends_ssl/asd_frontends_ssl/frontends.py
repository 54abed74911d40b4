"""Frontends on pretrained self-supervised encoders (asdkit-facts §4c, §4d; ssl-checkpoint-facts §3).

``beats`` / ``eat`` / ``hf_encoder`` fine-tune an encoder with LoRA and a small head under any
registered loss; only the LoRA and head tensors train, and only they are saved (the frozen encoder
is reloaded from its pretrained file). ``raw_beats`` / ``raw_eat`` / ``hf_encoder`` with
``trainable: false`` pool the frozen encoder's tokens and need no training.
"""
from __future__ import annotations

from typing import Literal

import pydantic
import torch
from torch import nn

import asdcore
from asdcore import TorchFrontend, expand_path

from . import beats, eat
from .heads import Pooling, pool_tokens, projection_head
from .hf_features import hf_features
from .lora import add_lora, freeze, linear_names, load_trainable_state, trainable_state

SAMPLE_RATE = 16000
# Default LoRA targets of Hugging Face encoders: the first group whose names all occur among the Linear
# layers (q_proj/v_proj: wav2vec 2.0, HuBERT, WavLM, Whisper, AST in transformers 5; query/value: AST and
# ViT-style models in transformers 4).
HF_LORA_DEFAULTS = (("q_proj", "v_proj"), ("query", "value"), ("q", "v"), ("qkv",))


def checkpoint_path(value: str, hint: str) -> str:
    """``value`` with ``~`` and environment variables expanded; an unset variable is a ConfigError."""
    return expand_path(value, "frontend.params.checkpoint", hint)


def require_sample_rate(frontend: asdcore.Frontend, encoder: str) -> None:
    if frontend.sample_rate != SAMPLE_RATE:
        raise asdcore.ConfigError(
            f"frontend: {encoder} takes {SAMPLE_RATE} Hz audio only; the dataset is at {frontend.sample_rate} Hz"
        )


class EncoderWithHead(nn.Module):
    """Encoder tokens ``[B, N, C]`` → ``projection_net`` → embeddings ``[B, D]``."""

    def __init__(self, encoder: nn.Module, projection_net: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.projection_net = projection_net

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.projection_net(self.encoder(waves))


class PooledEncoder(nn.Module):
    """A frozen encoder whose tokens are pooled without parameters."""

    def __init__(self, encoder: nn.Module, pooling: str):
        super().__init__()
        self.encoder = freeze(encoder)
        self.pooling = pooling

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return pool_tokens(self.encoder(waves), self.pooling)


class LoraFrontend(TorchFrontend):
    """Shared by ``beats``, ``eat`` and trainable ``hf_encoder``: encoder + LoRA + head; checkpoints and
    saved models hold only the trained tensors (LoRA, head and the head's BatchNorm statistics)."""

    pooling: Pooling

    def load_encoder(self) -> nn.Module:
        """The pretrained encoder (waves ``[B, L]`` → tokens ``[B, N, embed_dim]``)."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        encoder = self.load_encoder()
        add_lora(encoder, self.params.lora_targets, self.params.lora_rank, what=type(encoder).__name__)
        return EncoderWithHead(encoder, projection_head(self.pooling, encoder.embed_dim, self.params.embedding_dim))

    @property
    def embedding_dim(self) -> int:
        return self.params.embedding_dim

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return trainable_state(self.model)

    def restore_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        load_trainable_state(self.model, state)


class LoraParams(asdcore.Params):
    checkpoint: str
    lora_rank: int = pydantic.Field(64, ge=1)
    embedding_dim: int = pydantic.Field(256, ge=1)


class BeatsFrontend(LoraFrontend):
    """``beats``: BEATs_iter3 with LoRA (rank 64 on ``q_proj``, ``v_proj``), attentive statistics pooling
    and Linear → 256 (ASDKit ``dis_beats``). Usage::

        frontend:
          name: beats
          params: {checkpoint: $BEATS_CHECKPOINT}   # BEATs_iter3.pt
          loss: {name: scac, params: {k: 16, trainable: true, dynamic: false}}
          augmentations: [{name: mixup, params: {prob: 0.5}}]
          training: {epochs: 25, batch_size: 8, lr: 0.0001, warmup_steps: 5000}
    """

    pooling = "attentive_stats"
    skips_parameters = True  # BEATs' layer drop leaves a dropped layer's LoRA tensors without a gradient

    class Params(LoraParams):
        lora_targets: list[str] = pydantic.Field(["q_proj", "v_proj"], min_length=1)

    def load_encoder(self) -> nn.Module:
        require_sample_rate(self, "BEATs")
        return beats.load_beats(checkpoint_path(self.params.checkpoint, beats.CHECKPOINT_HELP))


class EatFrontend(LoraFrontend):
    """``eat``: EAT-base with LoRA (rank 64 on the fused ``qkv``), drop-path 0.1, CLS token → Linear → 256
    (ASDKit ``dis_eat``). Usage::

        frontend:
          name: eat
          params: {checkpoint: $EAT_CHECKPOINT, drop_path: 0.1}   # EAT-base_epoch10_pt.pt
          loss: {name: scac, params: {k: 16, trainable: true, dynamic: false}}
          augmentations: [{name: mixup, params: {prob: 0.5}}]
          training: {epochs: 25, batch_size: 8, lr: 0.0001, warmup_steps: 5000}
    """

    pooling = "cls"

    class Params(LoraParams):
        lora_targets: list[str] = pydantic.Field(["qkv"], min_length=1)
        drop_path: float = pydantic.Field(0.1, ge=0, lt=1)

    def load_encoder(self) -> nn.Module:
        require_sample_rate(self, "EAT")
        path = checkpoint_path(self.params.checkpoint, eat.DOWNLOAD_HINT)
        return eat.load_eat(path, drop_path=self.params.drop_path)


class RawFrontend(asdcore.Frontend):
    """Shared by ``raw_beats`` and ``raw_eat``: frozen encoder tokens pooled without parameters."""

    def load_encoder(self) -> nn.Module:
        raise NotImplementedError

    @property
    def pooling(self) -> str:
        return "mean"

    def __init__(self, params: asdcore.Params, **context):
        super().__init__(params, **context)
        encoder = self.load_encoder()
        self.embedding_dim = encoder.embed_dim
        self.model = PooledEncoder(encoder, self.pooling).to(self.device).eval()

    @property
    def spec(self) -> asdcore.FrontendSpec:
        return asdcore.FrontendSpec(embedding_dim=self.embedding_dim)

    def extract(self, waves: torch.Tensor) -> asdcore.FrontendOutput:
        with torch.no_grad():
            return asdcore.FrontendOutput(self.model.eval()(waves))


class RawBeatsFrontend(RawFrontend):
    """``raw_beats``: frozen BEATs_iter3, last-layer tokens averaged → 768-d; no training. Usage::

        frontend: {name: raw_beats, params: {checkpoint: $BEATS_CHECKPOINT}}
    """

    class Params(asdcore.Params):
        checkpoint: str

    def load_encoder(self) -> nn.Module:
        require_sample_rate(self, "BEATs")
        return beats.load_beats(checkpoint_path(self.params.checkpoint, beats.CHECKPOINT_HELP))


class RawEatFrontend(RawFrontend):
    """``raw_eat``: frozen EAT-base, CLS token → 768-d (``pooling: tokens_mean`` averages the other
    tokens instead); no training. Usage::

        frontend: {name: raw_eat, params: {checkpoint: $EAT_CHECKPOINT}}
    """

    class Params(asdcore.Params):
        checkpoint: str
        pooling: Literal["cls", "tokens_mean"] = "cls"

    @property
    def pooling(self) -> str:
        return self.params.pooling

    def load_encoder(self) -> nn.Module:
        require_sample_rate(self, "EAT")
        return eat.load_eat(checkpoint_path(self.params.checkpoint, eat.DOWNLOAD_HINT))


class HfAudioEncoder(nn.Module):
    """A Hugging Face audio model as an encoder: waves ``[B, L]`` → last hidden states ``[B, N, C]``.

    Waves are resampled to the feature extractor's rate on their device and turned into the model's
    input by :func:`~asd_frontends_ssl.hf_features.hf_features` (when the model has an extractor): on
    the device for the wav2vec 2.0 / HuBERT / WavLM, AST and Whisper extractors, through numpy on the
    CPU for any other. Encoder-decoder models (Whisper) contribute their encoder.
    """

    def __init__(self, model: nn.Module, extractor, sample_rate: int):
        super().__init__()
        self.model = model
        self.features = None if extractor is None else hf_features(extractor, model.main_input_name)
        self.sample_rate = sample_rate
        self.target_rate = getattr(extractor, "sampling_rate", None) or sample_rate
        config = model.config
        self.embed_dim = getattr(config, "hidden_size", None) or config.d_model

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        import torchaudio

        if self.target_rate != self.sample_rate:
            waves = torchaudio.functional.resample(waves, self.sample_rate, self.target_rate)
        inputs = waves if self.features is None else self.features(waves)
        return self.model(**{self.model.main_input_name: inputs}).last_hidden_state


def load_hf_encoder(model: str, sample_rate: int, local_files_only: bool | None) -> HfAudioEncoder:
    """``AutoModel`` (float32, eval mode) and, when the model has one, its ``AutoFeatureExtractor``."""
    import transformers

    options = {} if local_files_only is None else {"local_files_only": local_files_only}
    try:
        network = transformers.AutoModel.from_pretrained(model, **options)
    except (OSError, ValueError) as exc:
        raise asdcore.ConfigError(f"frontend.params.model: cannot load Hugging Face model {model!r}: {exc}") from None
    if getattr(network.config, "is_encoder_decoder", False):
        network = network.get_encoder()
    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(model, **options)
    except (OSError, ValueError):
        extractor = None
    return HfAudioEncoder(network.float().eval(), extractor, sample_rate)


class HfEncoderFrontend(LoraFrontend):
    """``hf_encoder``: any Hugging Face audio encoder (AST, wav2vec 2.0, HuBERT, WavLM, Whisper's encoder
    …) from a local folder or hub id. Trainable (default): LoRA on ``lora_targets`` (default: q_proj/v_proj
    or query/value, whichever the model has) + pooling (``mean``, ``cls``, ``attentive_stats``) + Linear →
    ``embedding_dim``. ``trainable: false``: the frozen model's tokens pooled (``mean`` or ``cls``), no
    training. ``local_files_only`` unset follows ``HF_HUB_OFFLINE``. Usage::

        frontend:
          name: hf_encoder
          params: {model: MIT/ast-finetuned-audioset-10-10-0.4593, pooling: cls}
          loss: {name: scac, params: {k: 16, trainable: true, dynamic: false}}
          training: {epochs: 25, batch_size: 8, lr: 0.0001, warmup_steps: 5000}
    """

    class Params(asdcore.Params):
        model: str
        local_files_only: bool | None = None
        trainable: bool = True
        lora_rank: int = pydantic.Field(64, ge=1)
        lora_targets: list[str] | None = pydantic.Field(None, min_length=1)
        pooling: Pooling = "mean"
        embedding_dim: int = pydantic.Field(256, ge=1)

        @pydantic.model_validator(mode="after")
        def _raw_pooling(self):
            if not self.trainable and self.pooling == "attentive_stats":
                raise ValueError("pooling 'attentive_stats' has parameters; with trainable: false use mean or cls")
            return self

    @classmethod
    def trains(cls, params: Params) -> bool:
        return params.trainable

    def build_model(self) -> nn.Module:
        p = self.params
        encoder = load_hf_encoder(p.model, self.sample_rate, p.local_files_only)
        if not p.trainable:
            return PooledEncoder(encoder, p.pooling)
        targets = p.lora_targets or default_lora_targets(encoder.model, p.model)
        add_lora(encoder.model, targets, p.lora_rank, what=f"Hugging Face model {p.model!r}")
        return EncoderWithHead(encoder, projection_head(p.pooling, encoder.embed_dim, p.embedding_dim))

    @property
    def embedding_dim(self) -> int:
        return self.params.embedding_dim if self.params.trainable else self.model.encoder.embed_dim

    @property
    def spec(self) -> asdcore.FrontendSpec:
        return asdcore.FrontendSpec(embedding_dim=self.embedding_dim, needs_training=self.params.trainable)


def default_lora_targets(model: nn.Module, name: str) -> list[str]:
    """The first group of :data:`HF_LORA_DEFAULTS` whose names all occur among the model's Linear layers."""
    available = linear_names(model)
    for names in HF_LORA_DEFAULTS:
        if set(names) <= set(available):
            return list(names)
    raise asdcore.ConfigError(
        f"frontend.params.lora_targets: no default LoRA targets for Hugging Face model {name!r}; "
        f"set them from its Linear layer names: {', '.join(available)}"
    )
