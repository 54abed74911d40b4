import math

import numpy as np
import pytest
import torch

import asdcore
from asd_frontends.losses import (
    EPS, AdaCosLoss, AdaProjLoss, ArcFaceLoss, FeatExLoss, SubClusterAdaCosLoss, SubspaceLoss, fixed_scale,
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


# Dynamic scales, computed by hand in numpy from the rules of ASDKit (methods-facts §2).

def np_unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def np_angle(cos):
    return np.arccos(np.clip(cos, -1 + 1e-7, 1 - 1e-7))


def lower_median(values):
    """torch.median: the lower of the two middle values for an even count."""
    return np.sort(np.ravel(values))[(np.size(values) - 1) // 2]


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_soft_ce(log_p, y):
    return -(y * log_p).sum(axis=-1).mean()


def adacos_scale(cos, y, s):
    """ln(B_avg)/cos(min(π/4, θ_med)); ASDKit's NaN when no entry is exactly 1 is kept as s."""
    if not (y == 1).any():
        return s
    b_avg = np.exp(s * cos)[y < 1].sum() / len(cos)
    return np.log(b_avg) / np.cos(min(np.pi / 4, lower_median(np_angle(cos)[y == 1])))


def scac_scale(cos, column_y, s):
    """(M + ln B′)/(cos(min(π/4, θ_med)) + 1e-7), B′ over all columns, θ_b = Σ_j ỹ_bj·θ_bj."""
    m = (s * cos).max()
    b = np.exp(s * cos - m).sum(axis=1).mean()
    theta = (column_y * np_angle(cos)).sum(axis=1)
    return (m + np.log(b)) / (np.cos(min(np.pi / 4, lower_median(theta))) + 1e-7)


def scac_loss(cos, y, s, k):
    p = np.exp(log_softmax(s * cos))
    return np_soft_ce(np.log(p.reshape(len(cos), -1, k).sum(axis=2)), y)


def adaproj_cos(x, bases):
    """⟨x̂, a/‖a‖⟩ with a the projection of x̂ on each class's unit basis vectors, [B, C]."""
    xh, w = np_unit(x), np_unit(bases)
    a = np.einsum("bcp,cpd->bcd", np.einsum("bd,cpd->bcp", xh, w), w)
    return np.einsum("bd,bcd->bc", xh, np_unit(a))


def adaproj_scale(cos, y, s):
    """(M + ln B′)/(cos(min(π/4, θ_med)) + 1e-7), e^{−M} at entries y ≥ 1, θ_b = Σ_c y_bc·θ_bc."""
    m = (s * cos).max()
    b = np.where(y < 1, np.exp(s * cos - m), np.exp(-m)).sum(axis=1).mean()
    theta = (y * np_angle(cos)).sum(axis=1)
    return (m + np.log(b)) / (np.cos(min(np.pi / 4, lower_median(theta))) + 1e-7)


def tensor(a):
    return torch.tensor(a, dtype=torch.float32)


RNG = np.random.default_rng(3)
CENTRES = RNG.normal(size=(3, 4)).astype(np.float32)
EMB = (np_unit(CENTRES[[0, 1, 2, 0]]) + 0.3 * RNG.normal(size=(4, 4))).astype(np.float32)
BASES = RNG.normal(size=(3, 2, 4)).astype(np.float32)
EMB_P = (np.einsum("bp,bpd->bd", RNG.normal(size=(4, 2)), BASES[[0, 1, 2, 0]])
         + 0.3 * RNG.normal(size=(4, 4))).astype(np.float32)
SUB_CENTRES = {1: CENTRES, 3: (np.repeat(CENTRES, 3, axis=0) + 0.5 * RNG.normal(size=(9, 4))).astype(np.float32)}
LABELS = {
    "one-hot": np.eye(3)[[0, 1, 2, 0]],
    "soft": np.array([[1, 0, 0], [0, 1, 0], [0.3, 0, 0.7], [0.6, 0.4, 0]]),
    "fully-mixed": np.array([[0.5, 0.5, 0], [0.3, 0, 0.7], [0, 0.6, 0.4], [0.2, 0.2, 0.6]]),
}
by_labels = pytest.mark.parametrize("y", LABELS.values(), ids=list(LABELS))
DYNAMIC = [(AdaCosLoss, {}), (SubClusterAdaCosLoss, {"k": 2}), (AdaProjLoss, {"basis_size": 2})]


def test_fixed_scale_values():
    assert round(fixed_scale(187), 2) == 7.39
    assert round(fixed_scale(16 * 187), 2) == 11.32
    assert round(fixed_scale(41), 2) == 5.22
    assert round(make(AdaCosLoss, 187).scale.item(), 2) == 7.39
    assert round(make(SubClusterAdaCosLoss, 187, k=16).scale.item(), 2) == 11.32
    assert make(AdaProjLoss, 3, basis_size=2).scale.item() == pytest.approx(math.sqrt(2) * math.log(2))


def test_class_defaults_are_asdkit_ones():
    assert ArcFaceLoss.Params().model_dump() == {"margin": 0.5, "scale": 64.0, "trainable": False}
    assert AdaCosLoss.Params().model_dump() == {"trainable": False, "dynamic": True}
    assert SubClusterAdaCosLoss.Params().model_dump() == {"k": 1, "trainable": False, "dynamic": True}
    assert AdaProjLoss.Params().model_dump() == {"basis_size": 32, "trainable": False, "dynamic": True}
    assert EPS == 1e-7
    assert make(AdaCosLoss, 5).scale.item() == pytest.approx(math.sqrt(2) * math.log(4))
    assert make(SubClusterAdaCosLoss, 5).scale.item() == pytest.approx(math.sqrt(2) * math.log(4))
    assert make(SubClusterAdaCosLoss, 5, k=4).scale.item() == pytest.approx(math.sqrt(2) * math.log(19))
    assert make(AdaProjLoss, 5).scale.item() == pytest.approx(math.sqrt(2) * math.log(4))
    assert make(ArcFaceLoss, 5).scale.item() == 64.0


def test_adaproj_centres_are_xavier_uniform_over_classes_basis_and_dimensions():
    torch.manual_seed(0)
    expected = torch.nn.init.xavier_uniform_(torch.empty(5, 32, 4))
    assert torch.equal(make(AdaProjLoss, 5).centres, expected)


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
    loss = make(ArcFaceLoss, 3, trainable=True)
    value = loss(loss.centres.detach()[:1] * 3.0, torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(loss.centres.grad).all()


def test_adacos_fixed_scale_and_soft_targets():
    loss = make(AdaCosLoss, 3, dynamic=False)
    s = math.sqrt(2) * math.log(2)
    expected_logits = [[s * c for c in cosines(x, rows(loss.centres))] for x in X]
    assert loss(torch.tensor(X), torch.tensor(Y3)).item() == pytest.approx(soft_ce(expected_logits, Y3), rel=1e-5)
    probs = loss.class_log_probs(torch.tensor(X)).exp()
    assert probs.sum(dim=1).tolist() == pytest.approx([1.0] * 3)


@by_labels
def test_adacos_dynamic_scale_by_hand(y):
    loss = make(AdaCosLoss, 3)
    loss.centres.data = tensor(CENTRES)
    cos = np_unit(EMB) @ np_unit(CENTRES).T
    s1 = adacos_scale(cos, y, math.sqrt(2) * math.log(2))
    value = loss(tensor(EMB), tensor(y))
    assert loss.scale.item() == pytest.approx(s1, rel=1e-5)
    assert value.item() == pytest.approx(np_soft_ce(log_softmax(s1 * cos), y), rel=1e-5)


def test_adacos_keeps_its_scale_without_a_target_equal_to_one():
    loss = make(AdaCosLoss, 3)
    loss(tensor(EMB), tensor(LABELS["fully-mixed"]))
    assert loss.scale.item() == pytest.approx(math.sqrt(2) * math.log(2))
    loss(tensor(EMB), tensor(LABELS["soft"]))
    assert loss.scale.item() != pytest.approx(math.sqrt(2) * math.log(2))


@pytest.mark.parametrize("k", [1, 3])
@by_labels
def test_scac_dynamic_scale_by_hand(k, y):
    loss = make(SubClusterAdaCosLoss, 3, k=k)
    loss.centres.data = tensor(SUB_CENTRES[k])
    cos = np_unit(EMB) @ np_unit(SUB_CENTRES[k]).T
    s1 = scac_scale(cos, np.tile(y, (1, k)), math.sqrt(2) * math.log(3 * k - 1))
    value = loss(tensor(EMB), tensor(y))
    assert loss.scale.item() == pytest.approx(s1, rel=1e-5)
    assert value.item() == pytest.approx(scac_loss(cos, y, s1, k), rel=1e-5)


def test_scac_scale_tiles_the_label_across_the_sub_clusters():
    """Column k·C + c takes y_c: centres 0 and 2 lie near e0, 1 and 3 near e1 (the loss groups 0, 1 and 2, 3)."""
    centres = np.array([[1, 0, 0.1, 0], [0, 1, 0, 0], [1, 0, 0, 0.1], [0, 1, 0.1, 0]], dtype=np.float32)
    x = np.array([[1, 0.05, 0, 0], [0.05, 1, 0, 0], [1, 0, 0.05, 0.05], [0, 1, 0, 0.1]], dtype=np.float32)
    y = np.eye(2)[[0, 1, 0, 1]]
    loss = make(SubClusterAdaCosLoss, 2, k=2)
    loss.centres.data = tensor(centres)
    loss(tensor(x), tensor(y))
    cos, s0 = np_unit(x) @ np_unit(centres).T, math.sqrt(2) * math.log(3)
    tiled, grouped = scac_scale(cos, np.tile(y, (1, 2)), s0), scac_scale(cos, np.repeat(y, 2, axis=1), s0)
    assert loss.scale.item() == pytest.approx(tiled, rel=1e-5)
    assert tiled != pytest.approx(grouped, rel=1e-2)


@by_labels
def test_adaproj_dynamic_scale_by_hand(y):
    loss = make(AdaProjLoss, 3, basis_size=2)
    loss.centres.data = tensor(BASES)
    cos = adaproj_cos(EMB_P, BASES)
    s1 = adaproj_scale(cos, y, math.sqrt(2) * math.log(2))
    value = loss(tensor(EMB_P), tensor(y))
    assert loss.scale.item() == pytest.approx(s1, rel=1e-5)
    assert value.item() == pytest.approx(np_soft_ce(log_softmax(s1 * cos), y), rel=1e-5)


def test_hand_cases_reach_below_the_angle_bound():
    """The one-hot cases take θ_med below π/4, so the choice of the median counts."""
    cos = np_unit(EMB) @ np_unit(CENTRES).T
    y = LABELS["one-hot"]
    assert lower_median(np_angle(cos)[y == 1]) < np.pi / 4
    assert lower_median((y * np_angle(adaproj_cos(EMB_P, BASES))).sum(axis=1)) < np.pi / 4


@pytest.mark.parametrize("cls, params", DYNAMIC)
def test_the_updated_scale_scales_the_same_call(cls, params):
    loss, fixed = make(cls, 3, **params), make(cls, 3, dynamic=False, **params)
    x, y = tensor(EMB), tensor(LABELS["one-hot"])
    value = loss(x, y)
    assert loss.scale.item() != pytest.approx(fixed.scale.item(), rel=1e-2)
    assert loss.scale.grad_fn is None and not loss.scale.requires_grad
    assert value.item() != pytest.approx(fixed(x, y).item(), rel=1e-3)
    assert value.item() == pytest.approx(loss.eval()(x, y).item(), rel=1e-6)


@pytest.mark.parametrize("cls, params", DYNAMIC)
def test_eval_mode_and_fixed_scales_do_not_update(cls, params):
    x, y = tensor(EMB), tensor(LABELS["one-hot"])
    for loss in (make(cls, 3, **params).eval(), make(cls, 3, dynamic=False, **params)):
        before = loss.scale.item()
        loss(x, y)
        assert loss.scale.item() == before


@pytest.mark.parametrize("cls, params", DYNAMIC)
def test_the_updated_scale_is_saved_with_the_loss(cls, params):
    loss = make(cls, 3, **params)
    loss(tensor(EMB), tensor(LABELS["one-hot"]))
    reloaded = make(cls, 3, **params)
    reloaded.load_state_dict(loss.state_dict())
    assert reloaded.scale.item() == loss.scale.item() != make(cls, 3, **params).scale.item()


def test_scac_pools_contiguous_sub_cluster_blocks():
    loss = make(SubClusterAdaCosLoss, 2, k=3, dynamic=False)
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
    scac, adacos = make(SubClusterAdaCosLoss, 3, dynamic=False), make(AdaCosLoss, 3, dynamic=False)
    assert torch.equal(scac.centres, adacos.centres)
    x, y = torch.tensor(X), torch.tensor(Y3)
    assert scac(x, y).item() == pytest.approx(adacos(x, y).item(), rel=1e-6)


def test_adaproj_renormalised_projection():
    loss = make(AdaProjLoss, 3, basis_size=2, dynamic=False)
    s = math.sqrt(2) * math.log(2)
    basis = [unit(w) for w in rows(loss.centres.flatten(0, 1))]
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
    (ArcFaceLoss, {}, False), (AdaCosLoss, {}, False), (SubClusterAdaCosLoss, {"k": 2}, False),
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
    a, b = make(SubClusterAdaCosLoss, 3, k=16), make(SubClusterAdaCosLoss, 3, k=16)
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
    assert loss.main.scale.item() == pytest.approx(math.sqrt(2) * math.log(3))
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
        make(AdaCosLoss, 2, dynamic=False)
    assert make(AdaCosLoss, 2).scale.item() == 0.0


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"target \[B, 3\]"):
        make(AdaCosLoss, 3)(torch.tensor(X), torch.tensor(Y2))


def test_registered_by_path_and_module_contract():
    registry = asdcore.get_registry()
    losses = {name: registry.get("losses", name).cls for name in registry.names("losses")
              if registry.get("losses", name).distribution == "asd-frontends"}
    assert losses == {"arcface": ArcFaceLoss, "adacos": AdaCosLoss, "scac": SubClusterAdaCosLoss,
                      "adaproj": AdaProjLoss, "subspace": SubspaceLoss, "featex": FeatExLoss}
    for cls in losses.values():
        assert issubclass(cls, asdcore.Loss) and issubclass(cls, torch.nn.Module)
        assert issubclass(cls.Params, asdcore.Params)
    loss = make(SubspaceLoss, 2, k=2, subspace_size=2)
    assert loss.params.k == 2 and loss.embedding_dim == 4 and loss.num_classes == 2
    assert {"main.centres", "main.scale", "heads.0.centres"} <= set(loss.state_dict())
