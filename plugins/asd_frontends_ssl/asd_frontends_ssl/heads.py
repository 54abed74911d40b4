"""Heads that turn encoder tokens ``[B, N, C]`` into one embedding per clip (ssl-checkpoint-facts §3.2).

Module and tensor names follow ASDKit's, so ``projection_net.0.attention.0.weight`` etc. mean the same.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Pooling = Literal["mean", "cls", "attentive_stats"]
STD_FLOOR = 1e-4  # variances are clamped here before the square root


class AttentiveStatsPooling(nn.Module):
    """ECAPA-style attentive statistics pooling over tokens ``[B, N, C]`` -> ``[B, C]``.

    Attention input [x, mean, std] (3C, mean and unbiased std over the tokens) → Conv1×1 3C→C/16 →
    ReLU → BN → tanh → Conv1×1 C/16→C → softmax over the tokens: one weighting per channel. Weighted
    mean μ and std σ = √max(Σw·x² − μ², 1e-4); [μ, σ] → BN → Linear 2C→C → BN.
    """

    def __init__(self, channels: int):
        super().__init__()
        hidden = max(1, channels // 16)
        self.attention = nn.Sequential(
            nn.Conv1d(3 * channels, hidden, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(hidden),
            nn.Tanh(),
            nn.Conv1d(hidden, channels, kernel_size=1),
        )
        self.last_layer = nn.Sequential(
            nn.BatchNorm1d(2 * channels),
            nn.Linear(2 * channels, channels),
            nn.BatchNorm1d(channels),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens.transpose(1, 2)  # [B, C, N]
        n = x.shape[-1]
        mean = x.mean(dim=-1, keepdim=True).expand(-1, -1, n)
        std = x.var(dim=-1, keepdim=True).clamp(min=STD_FLOOR).sqrt().expand(-1, -1, n)
        weights = torch.softmax(self.attention(torch.cat([x, mean, std], dim=1)), dim=-1)
        mu = (weights * x).sum(dim=-1)
        sigma = ((weights * x * x).sum(dim=-1) - mu * mu).clamp(min=STD_FLOOR).sqrt()
        return self.last_layer(torch.cat([mu, sigma], dim=1))


class MeanProjection(nn.Linear):
    """Mean over the tokens, then a Linear layer."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(tokens.mean(dim=1))


class ClsProjection(nn.Linear):
    """The first (CLS) token, then a Linear layer (EAT's ``projection_net``: 768 → 256 with bias)."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(tokens[:, 0])


def projection_head(pooling: Pooling, channels: int, embedding_dim: int) -> nn.Module:
    """A trainable head ``[B, N, channels] -> [B, embedding_dim]``.

    ``attentive_stats`` is BEATs' head (attentive statistics pooling, then Linear C→D), ``cls`` EAT's.
    """
    if pooling == "attentive_stats":
        return nn.Sequential(AttentiveStatsPooling(channels), nn.Linear(channels, embedding_dim))
    if pooling == "cls":
        return ClsProjection(channels, embedding_dim)
    return MeanProjection(channels, embedding_dim)


def pool_tokens(tokens: torch.Tensor, pooling: Literal["mean", "cls", "tokens_mean"]) -> torch.Tensor:
    """Parameter-free pooling of frozen features: the mean of all tokens, the first (CLS) token, or the
    mean of the tokens after the first."""
    if pooling == "cls":
        return tokens[:, 0]
    if pooling == "tokens_mean":
        return tokens[:, 1:].mean(dim=1)
    return tokens.mean(dim=1)
