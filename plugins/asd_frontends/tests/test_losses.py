import math

import pytest
import torch

import asdcore
from asd_frontends.losses import (
    LOSSES, AdaCosLoss, AdaProjLoss, ArcFaceLoss, FeatExLoss, SubClusterAdaCosLoss, SubspaceLoss, fixed_scale,
)

# Three 4-d embeddings; targets: two one-hot rows and one soft (mixed-up) row.
X = [[1.0, 2.0, 0.5, -1.0], [-0.5, 1.0, 2.0, 0.3], [0.2, -1.5, 0.7, 1.1]]
Y3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.0, 0.7]]
Y2 = [[1.0, 0.0], [0.0, 1.0], [0.25, 0.75]]


def make(cls, num_classes, **params):
    torch.manual_seed(0)
    return cls(cls.Params(**params), embedding_dim=4, num_classes=num_classes)


def unit(v):
    norm = math.sqrt(sum(a * a for a in v))
    return [a / norm for a in v]


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def cosines(x, centres):
    return [dot(unit(x), unit(w)) for w in centres]


def soft_ce(all_logits, targets):
    """mean_i −Σ_c y_ic·log_softmax(logits_i)_c, in plain floats."""
    total = 0.0
    for logits, y in zip(all_logits, targets):
        log_z = math.log(sum(math.exp(v) for v in logits))
        total -= sum(t * (v - log_z) for t, v in zip(y, logits))
    return total / len(targets)


def rows(parameter):
    return parameter.detach().tolist()


def test_fixed_scale_values():
    assert round(fixed_scale(187), 2) == 7.39
    assert round(fixed_scale(16 * 187), 2) == 11.32
    assert round(fixed_scale(41), 2) == 5.22
    assert round(make(AdaCosLoss, 187).scale.item(), 2) == 7.39
    assert round(make(SubClusterAdaCosLoss, 187).scale.item(), 2) == 11.32
    assert make(AdaProjLoss, 3, basis_size=2).scale.item() == pytest.approx(math.sqrt(2) * math.log(2))


def test_arcface_adds_margin_to_every_class_angle():
    loss = make(ArcFaceLoss, 3)
    expected_logits = [
        [64.0 * math.cos(math.acos(c) + 0.5) for c in cosines(x, rows(loss.centres))] for x in X
    ]
    value = loss(torch.tensor(X), torch.tensor(Y3))
    assert value.item() == pytest.approx(soft_ce(expected_logits, Y3), rel=1e-5)
    logits = loss.logits(torch.tensor(X)).flatten().tolist()
    assert logits == pytest.approx(sum(expected_logits, []), rel=1e-5, abs=1e-4)


def test_arcface_clamps_the_angle_of_an_embedding_on_its_centre():
    loss = make(ArcFaceLoss, 3)
    value = loss(loss.centres.detach()[:1] * 3.0, torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(loss.centres.grad).all()


def test_adacos_fixed_scale_and_soft_targets():
    loss = make(AdaCosLoss, 3)
    s = math.sqrt(2) * math.log(2)
    expected_logits = [[s * c for c in cosines(x, rows(loss.centres))] for x in X]
    assert loss(torch.tensor(X), torch.tensor(Y3)).item() == pytest.approx(soft_ce(expected_logits, Y3), rel=1e-5)
    probs = loss.class_log_probs(torch.tensor(X)).exp()
    assert probs.sum(dim=1).tolist() == pytest.approx([1.0] * 3)


def test_adacos_dynamic_scale_update_by_hand():
    loss = make(AdaCosLoss, 3, dynamic=True)
    centres = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    loss.centres.data = torch.tensor(centres)
    s0 = math.sqrt(2) * math.log(2)
    cos = [cosines(x, centres) for x in X]
    b = sum(math.exp(s0 * c) for ci, yi in zip(cos, Y3) for c, y in zip(ci, yi) if y < 1) / 3
    target_angles = sorted(math.acos(c) for ci, yi in zip(cos, Y3) for c, y in zip(ci, yi) if y == 1)
    assert len(target_angles) == 2  # torch.median takes the lower of the two middle values
    s1 = math.log(b) / math.cos(min(math.pi / 4, target_angles[0]))

    value = loss(torch.tensor(X), torch.tensor(Y3))
    assert loss.scale.item() == pytest.approx(s1, rel=1e-5)
    assert value.item() == pytest.approx(soft_ce([[s1 * c for c in ci] for ci in cos], Y3), rel=1e-5)

    loss.eval()
    loss(torch.tensor(X), torch.tensor(Y3))
    assert loss.scale.item() == pytest.approx(s1, rel=1e-5)


def test_scac_pools_contiguous_sub_cluster_blocks():
    loss = make(SubClusterAdaCosLoss, 2, k=3)
    s = math.sqrt(2) * math.log(2 * 3 - 1)
    assert loss.scale.item() == pytest.approx(s)
    expected_log_p = []
    for x in X:
        exps = [math.exp(s * c) for c in cosines(x, rows(loss.centres))]
        total = sum(exps)
        expected_log_p.append([math.log(sum(exps[0:3]) / total), math.log(sum(exps[3:6]) / total)])
    expected = -sum(dot(y, lp) for y, lp in zip(Y2, expected_log_p)) / 3
    assert loss(torch.tensor(X), torch.tensor(Y2)).item() == pytest.approx(expected, rel=1e-5)
    assert loss.class_log_probs(torch.tensor(X)).flatten().tolist() == pytest.approx(sum(expected_log_p, []), rel=1e-5)


def test_scac_with_one_sub_cluster_is_adacos():
    scac, adacos = make(SubClusterAdaCosLoss, 3, k=1), make(AdaCosLoss, 3)
    assert torch.equal(scac.centres, adacos.centres)
    x, y = torch.tensor(X), torch.tensor(Y3)
    assert scac(x, y).item() == pytest.approx(adacos(x, y).item(), rel=1e-6)


def test_scac_dynamic_update_gives_each_column_its_class_target():
    loss = make(SubClusterAdaCosLoss, 2, k=2, dynamic=True)
    s0 = math.sqrt(2) * math.log(3)
    cos = [cosines(x, rows(loss.centres)) for x in X]
    column_y = [[y[0], y[0], y[1], y[1]] for y in Y2]
    b = sum(math.exp(s0 * c) for ci, yi in zip(cos, column_y) for c, y in zip(ci, yi) if y < 1) / 3
    angles = sorted(math.acos(c) for ci, yi in zip(cos, column_y) for c, y in zip(ci, yi) if y == 1)
    s1 = math.log(b) / math.cos(min(math.pi / 4, angles[(len(angles) - 1) // 2]))
    loss(torch.tensor(X), torch.tensor(Y2))
    assert loss.scale.item() == pytest.approx(s1, rel=1e-5)


def test_adaproj_renormalised_projection():
    loss = make(AdaProjLoss, 3, basis_size=2)
    s = math.sqrt(2) * math.log(2)
    basis = [unit(w) for w in rows(loss.centres)]
    expected_logits = []
    for x in X:
        xh = unit(x)
        logits = []
        for c in range(3):
            w1, w2 = basis[2 * c], basis[2 * c + 1]
            proj = [dot(xh, w1) * a + dot(xh, w2) * b for a, b in zip(w1, w2)]
            logits.append(s * dot(xh, unit(proj)))
        expected_logits.append(logits)
    assert loss(torch.tensor(X), torch.tensor(Y3)).item() == pytest.approx(soft_ce(expected_logits, Y3), rel=1e-5)
    assert loss.logits(torch.tensor(X)).flatten().tolist() == pytest.approx(sum(expected_logits, []), rel=1e-5)


@pytest.mark.parametrize("cls, params, default_trainable", [
    (ArcFaceLoss, {}, True), (AdaCosLoss, {}, False), (SubClusterAdaCosLoss, {"k": 2}, False),
    (AdaProjLoss, {"basis_size": 2}, False),
])
def test_fixed_centres_get_no_gradient_and_trainable_ones_do(cls, params, default_trainable):
    for trainable in (False, True):
        loss = make(cls, 3, trainable=trainable, **params)
        x = torch.tensor(X, requires_grad=True)
        loss(x, torch.tensor(Y3)).backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert loss.centres.requires_grad is trainable
        assert (loss.centres.grad is not None) is trainable
    assert make(cls, 3, **params).centres.requires_grad is default_trainable


def test_centres_are_xavier_uniform_from_the_global_seed():
    a, b = make(SubClusterAdaCosLoss, 3), make(SubClusterAdaCosLoss, 3)
    assert torch.equal(a.centres, b.centres)
    bound = math.sqrt(6 / (48 + 4))
    assert a.centres.abs().max().item() <= bound


def test_subspace_loss_is_main_plus_weighted_heads_on_slices():
    loss = make(SubspaceLoss, 2, k=2, subspace_size=2, weight=0.5)
    x, y = torch.tensor(X), torch.tensor(Y2)
    assert len(loss.heads) == 2 and loss.heads[0].embedding_dim == 2
    assert not loss.main.centres.requires_grad
    assert all(head.centres.requires_grad for head in loss.heads)
    expected = loss.main(x, y) + 0.5 * (loss.heads[0](x[:, :2], y) + loss.heads[1](x[:, 2:], y))
    assert loss(x, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.heads[1].scale.item() == pytest.approx(math.sqrt(2) * math.log(3))
    assert torch.equal(loss.class_log_probs(x), loss.main.class_log_probs(x))


def test_subspace_size_must_divide_the_embedding():
    with pytest.raises(asdcore.ConfigError, match="subspace_size"):
        make(SubspaceLoss, 2, subspace_size=3)


def test_featex_targets_for_exchanged_and_kept_samples():
    loss = make(FeatExLoss, 2, k=2, subspace_size=2, prob=0.5)
    assert loss.head.num_classes == 3 * 2 and loss.head.centres.requires_grad
    assert not loss.main.centres.requires_grad
    x, y = torch.tensor(X), torch.tensor(Y2)
    torch.manual_seed(1)
    exchanged, perm = (torch.rand(3) < 0.5).tolist(), torch.randperm(3).tolist()
    assert any(exchanged) and not all(exchanged) and perm != [0, 1, 2]
    torch.manual_seed(1)
    mixed, target = loss.exchange(x, y)
    for i in range(3):
        if exchanged[i]:
            assert mixed[i].tolist() == pytest.approx(X[i][:2] + X[perm[i]][2:])
            assert target[i].tolist() == pytest.approx([0, 0] + [v / 2 for v in Y2[i]] + [v / 2 for v in Y2[perm[i]]])
        else:
            assert mixed[i].tolist() == pytest.approx(X[i])
            assert target[i].tolist() == Y2[i] + [0, 0, 0, 0]
    assert target.sum(dim=1).tolist() == pytest.approx([1.0] * 3)


def test_featex_three_subspaces_use_independent_permutations():
    torch.manual_seed(0)
    loss = FeatExLoss(FeatExLoss.Params(k=2, subspace_size=2, prob=1.0), embedding_dim=6, num_classes=2)
    x = torch.arange(18.0).view(3, 6)
    torch.manual_seed(5)
    torch.rand(3)
    perm1, perm2 = torch.randperm(3), torch.randperm(3)
    torch.manual_seed(5)
    mixed, target = loss.exchange(x, torch.tensor(Y2))
    assert torch.equal(mixed, torch.cat([x[:, :2], x[perm1, 2:4], x[perm2, 4:]], dim=1))
    y = torch.tensor(Y2)
    assert torch.allclose(target, torch.cat([torch.zeros(3, 2), y / 3, y[perm1] / 3, y[perm2] / 3], dim=1))


def test_featex_training_loss_and_eval_skips_the_exchange():
    loss = make(FeatExLoss, 2, k=2, subspace_size=2, weight=0.7)
    x, y = torch.tensor(X), torch.tensor(Y2)
    torch.manual_seed(1)
    expected = loss.main(x, y) + 0.7 * loss.head(*loss.exchange(x, y))
    torch.manual_seed(1)
    assert loss(x, y).item() == pytest.approx(expected.item(), rel=1e-6)
    loss.eval()
    state = torch.random.get_rng_state()
    assert loss(x, y).item() == pytest.approx(loss.main(x, y).item(), rel=1e-6)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_featex_needs_two_subspaces():
    with pytest.raises(asdcore.ConfigError, match="two subspaces"):
        make(FeatExLoss, 2, subspace_size=4)


def test_params_are_strict_and_fixed_scale_needs_three_centres():
    with pytest.raises(Exception, match="extra"):
        SubClusterAdaCosLoss.Params(K=16)
    with pytest.raises(asdcore.ConfigError, match="at least 3 centres"):
        make(AdaCosLoss, 2)
    assert make(AdaCosLoss, 2, dynamic=True).scale.item() == 0.0


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"target \[B, 3\]"):
        make(AdaCosLoss, 3)(torch.tensor(X), torch.tensor(Y2))


def test_registry_dict_and_module_contract():
    assert set(LOSSES) == {"arcface", "adacos", "scac", "adaproj", "subspace", "featex"}
    for cls in LOSSES.values():
        assert issubclass(cls, asdcore.Loss) and issubclass(cls, torch.nn.Module)
        assert issubclass(cls.Params, asdcore.Params)
    loss = make(SubspaceLoss, 2, k=2, subspace_size=2)
    assert loss.params.k == 2 and loss.embedding_dim == 4 and loss.num_classes == 2
    assert {"main.centres", "main.scale", "heads.0.centres"} <= set(loss.state_dict())
