"""LoRA through peft on a frozen encoder, and the trainable state that checkpoints hold (facts §3.1).

``add_lora`` wraps the target layers in place with ``peft.inject_adapter_in_model``, so module names
keep their paths (``….q_proj.base_layer.weight``, ``….q_proj.lora_A.default.weight``) without the
``base_model.model.`` prefix of ``get_peft_model``. LoRA settings other than the rank are peft's
defaults: alpha 8, dropout 0, no bias, A Kaiming-uniform, B zero (the adapted model starts equal to
the base).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

import asdcore


def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad`` off on every parameter of ``module``."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def linear_names(module: nn.Module) -> list[str]:
    """The distinct last name components of the Linear layers of ``module``, in order of appearance."""
    names = (name.rsplit(".", 1)[-1] for name, child in module.named_modules() if isinstance(child, nn.Linear))
    return list(dict.fromkeys(names))


def add_lora(encoder: nn.Module, targets: Sequence[str], rank: int, what: str = "encoder") -> nn.Module:
    """Freeze ``encoder`` and add rank-``rank`` LoRA adapters to the Linear layers named ``targets``.

    A target matches a module whose name is the target or ends with ``.target`` (``q_proj``,
    ``self_attn.q_proj``). A target that matches no Linear layer is a ConfigError listing the names.
    """
    import peft

    freeze(encoder)
    linears = [name for name, child in encoder.named_modules() if isinstance(child, nn.Linear)]
    for target in targets:
        if not any(name == target or name.endswith(f".{target}") for name in linears):
            raise asdcore.ConfigError(
                f"frontend.params.lora_targets: no Linear layer named {target!r} in the {what}; "
                f"Linear layer names: {', '.join(linear_names(encoder)) or '(none)'}"
            )
    config = peft.LoraConfig(r=rank, target_modules=list(targets))
    peft.inject_adapter_in_model(config, encoder)
    for name, parameter in encoder.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return encoder


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained tensors of ``model``: every parameter that requires a gradient, plus the buffers of
    the modules that own one (the BatchNorm statistics of a head). Frozen encoder weights are left out."""
    state: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not any(p.requires_grad for p in own.values()):
            continue
        dot = f"{prefix}." if prefix else ""
        state.update({dot + name: p.detach() for name, p in own.items() if p.requires_grad})
        state.update({dot + name: b.detach() for name, b in module.named_buffers(recurse=False)})
    return state


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Restore tensors written from :func:`trainable_state`; the key sets must match exactly."""
    expected = set(trainable_state(model))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise asdcore.AsdcoreError(
            "the saved frontend state does not fit this model (was it trained with other params?): "
            f"missing {', '.join(missing[:5]) or 'nothing'}; unexpected {', '.join(unexpected[:5]) or 'nothing'}"
        )
    model.load_state_dict(state, strict=False)
