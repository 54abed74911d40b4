"""Heads: attentive statistics pooling against a hand computation, names and sizes of the fact sheet."""
import numpy as np
import pytest
import torch

from asd_frontends_ssl.heads import (
    AttentiveStatsPooling, ClsProjection, MeanProjection, pool_tokens, projection_head,
)


def randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Random parameters and BatchNorm statistics, so that every term of the computation counts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]:
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


def batch_norm(x, bn):
    """Eval-mode BatchNorm over axis 1 of ``x`` (float64 numpy)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = bn.running_mean.double().numpy().reshape(shape), bn.running_var.double().numpy().reshape(shape)
    weight, bias = bn.weight.double().detach().numpy().reshape(shape), bn.bias.double().detach().numpy().reshape(shape)
    return (x - mean) / np.sqrt(var + bn.eps) * weight + bias


def by_hand(pool: AttentiveStatsPooling, tokens: np.ndarray) -> np.ndarray:
    """The fact sheet's steps (§3.2) in float64 numpy, one clip at a time."""
    conv1, _, bn1, _, conv2 = pool.attention
    bn_a, linear, bn_b = pool.last_layer
    w1, b1 = conv1.weight.double().detach().numpy()[:, :, 0], conv1.bias.double().detach().numpy()
    w2, b2 = conv2.weight.double().detach().numpy()[:, :, 0], conv2.bias.double().detach().numpy()
    wl, bl = linear.weight.double().detach().numpy(), linear.bias.double().detach().numpy()
    outputs = []
    for x in tokens.astype(np.float64).transpose(0, 2, 1):  # x: [C, N]
        n = x.shape[1]
        mean = x.mean(axis=1, keepdims=True)
        std = np.sqrt(np.maximum(x.var(axis=1, ddof=1, keepdims=True), 1e-4))
        context = np.concatenate([x, np.repeat(mean, n, 1), np.repeat(std, n, 1)], axis=0)  # [3C, N]
        hidden = np.maximum(w1 @ context + b1[:, None], 0.0)
        hidden = np.tanh(batch_norm(hidden[None], bn1)[0])
        logits = w2 @ hidden + b2[:, None]
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        mu = (weights * x).sum(axis=1)
        sigma = np.sqrt(np.maximum((weights * x * x).sum(axis=1) - mu * mu, 1e-4))
        outputs.append(np.concatenate([mu, sigma]))
    pooled = batch_norm(np.stack(outputs), bn_a)
    return batch_norm(pooled @ wl.T + bl, bn_b)


def test_attentive_stats_pooling_equals_the_hand_computation():
    torch.manual_seed(0)
    pool = AttentiveStatsPooling(32)
    randomise(pool)
    pool.eval()
    tokens = torch.randn(3, 10, 32)
    tokens[1, :, 5] = 0.7  # a constant channel: both standard deviations hit the 1e-4 variance floor
    expected = by_hand(pool, tokens.numpy())
    np.testing.assert_allclose(pool(tokens).detach().double().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_attention_weights_are_a_distribution_over_tokens_per_channel():
    pool = AttentiveStatsPooling(32).eval()
    same = torch.randn(2, 1, 32).expand(2, 6, 32)  # identical tokens: μ = token, σ at the floor
    mu_sigma = pool.last_layer[0]
    pool.last_layer = torch.nn.Identity()
    out = pool(same)
    torch.testing.assert_close(out[:, :32], same[:, 0])
    torch.testing.assert_close(out[:, 32:], torch.full((2, 32), 1e-2), rtol=1e-3, atol=1e-3)
    assert isinstance(mu_sigma, torch.nn.BatchNorm1d) and mu_sigma.num_features == 64


def test_beats_head_names_shapes_and_size_match_the_fact_sheet():
    head = projection_head("attentive_stats", 768, 256)
    shapes = {f"projection_net.{k}": tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["projection_net.0.attention.0.weight"] == (48, 2304, 1)
    assert shapes["projection_net.0.attention.2.running_var"] == (48,)
    assert shapes["projection_net.0.attention.4.weight"] == (768, 48, 1)
    assert shapes["projection_net.0.last_layer.0.running_mean"] == (1536,)
    assert shapes["projection_net.0.last_layer.1.weight"] == (768, 1536)
    assert shapes["projection_net.0.last_layer.2.num_batches_tracked"] == ()
    assert shapes["projection_net.1.weight"] == (256, 768)
    assert len(shapes) == 2 + 5 + 2 + 5 + 2 + 5 + 2
    assert sum(p.numel() for p in head.parameters()) == 1_530_256
    assert head(torch.randn(4, 20, 768)).shape == (4, 256)


def test_eat_head_is_one_linear_on_the_cls_token():
    head = projection_head("cls", 768, 256)
    assert isinstance(head, ClsProjection)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {"weight": (256, 768), "bias": (256,)}
    assert sum(p.numel() for p in head.parameters()) == 196_864
    tokens = torch.randn(2, 5, 768)
    torch.testing.assert_close(head(tokens), tokens[:, 0] @ head.weight.T + head.bias)


def test_mean_head_and_parameter_free_pooling():
    head = projection_head("mean", 8, 3)
    assert isinstance(head, MeanProjection)
    tokens = torch.randn(2, 5, 8)
    torch.testing.assert_close(head(tokens), tokens.mean(1) @ head.weight.T + head.bias)
    torch.testing.assert_close(pool_tokens(tokens, "mean"), tokens.mean(1))
    torch.testing.assert_close(pool_tokens(tokens, "cls"), tokens[:, 0])
    torch.testing.assert_close(pool_tokens(tokens, "tokens_mean"), tokens[:, 1:].mean(1))


@pytest.mark.parametrize("pooling", ["mean", "cls", "attentive_stats"])
def test_every_head_trains(pooling):
    torch.manual_seed(0)
    head = projection_head(pooling, 16, 4)
    tokens = torch.randn(4, 7, 16)
    head(tokens).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
