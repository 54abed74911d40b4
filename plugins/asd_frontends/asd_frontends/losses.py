"""Angular-margin classification losses for discriminative ASD frontends, with ASDKit's defaults and
dynamic-scale rules.

Notation: x̂ = x/‖x‖ is the embedding, ŵ_j the L2-normalised class (or sub-cluster) centres,
cos_j = ⟨x̂, ŵ_j⟩, θ_j = arccos(clamp(cos_j, −1+ε, 1−ε)) with ε = 1e-7, y the target distribution over
classes (one-hot, or soft after mixup). Every loss is the batch mean of −Σ_c y_c·ln P_c.

Centres are ``torch.nn.Parameter`` tensors drawn Xavier-uniform from the global torch RNG and
normalised in the forward pass; ``trainable: false`` (the default) freezes them at their random
initial values. The scale s starts at √2·ln(N − 1) with N centres (AdaProj: N = C). With
``dynamic: true`` (the default of AdaCos, SCAC and AdaProj; the paper recipes set false) every call in
training mode first updates s from the batch, by the rule of each loss, and the new s scales the logits
of that call and of all later ones; eval mode leaves s as it is.

s is a buffer saved in the state dict, so a resumed training goes on with the updated s. ASDKit keeps
AdaCos's s out of its state dict (a reload restores √2·ln(C − 1), a resumed run then differs from an
uninterrupted one) and saves SCAC's and AdaProj's; saved frontend models never hold a loss.

Under data parallelism the batch statistics cover the global batch (:func:`asdcore.gather`), so every
process computes the scale a single process would, without host synchronisation.
"""
from __future__ import annotations

import math

import pydantic
import torch
import torch.nn.functional as F

import asdcore

EPS = 1e-7


def fixed_scale(n: int) -> float:
    """The AdaCos fixed scale √2·ln(N − 1) for N centres (e.g. AdaCos with 187 classes: 7.39)."""
    return math.sqrt(2.0) * math.log(n - 1)


def _initial_scale(n: int, dynamic: bool) -> torch.Tensor:
    if n < (2 if dynamic else 3):
        raise asdcore.ConfigError(
            f"loss: the scale √2·ln(N−1) needs at least 3 centres (2 with dynamic: true), got N = {n}"
        )
    return torch.tensor(fixed_scale(n))


def _centres(*shape: int, trainable: bool) -> torch.nn.Parameter:
    """Xavier-uniform centres; the bound follows torch's fans of ``shape`` ([C, P, D]: P·D in, C·D out)."""
    weight = torch.empty(shape)
    torch.nn.init.xavier_uniform_(weight)
    return torch.nn.Parameter(weight, requires_grad=trainable)


def _cosine(embedding: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """cos_bj = ⟨x̂_b, ŵ_j⟩ for embeddings [B, D] and centres [N, D]."""
    return F.normalize(embedding, dim=-1) @ F.normalize(centres, dim=-1).T


def _angle(cos: torch.Tensor) -> torch.Tensor:
    return torch.arccos(cos.clamp(-1.0 + EPS, 1.0 - EPS))


def _soft_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_i −Σ_c y_ic·ln P_ic."""
    return -(target * log_probs).sum(dim=-1).mean()


def _log_mean_row_sum(logits: torch.Tensor) -> torch.Tensor:
    """ln((1/B)·Σ_b Σ_j exp(logits_bj)) over the global batch of B rows (−inf entries count as 0)."""
    sums = asdcore.gather(torch.logsumexp(logits.flatten(), dim=0)[None])
    count = asdcore.gather(logits.new_tensor([len(logits)])).sum()
    return torch.logsumexp(sums, dim=0) - torch.log(count)


def _bounded_cos(theta_med: torch.Tensor) -> torch.Tensor:
    return torch.cos(theta_med.clamp(max=math.pi / 4))


def _batch_scale(log_b: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """SCAC and AdaProj: s ← ln(B′)/(cos(min(π/4, θ_med)) + ε), θ_med = lower median of θ_b over the rows."""
    return log_b / (_bounded_cos(torch.median(asdcore.gather(theta))) + EPS)


class _AngularLoss(asdcore.Loss, torch.nn.Module):
    """Shared set-up: ``params``, ``embedding_dim``, ``num_classes``, the input check and the scale update."""

    def __init__(self, params: asdcore.Params, *, embedding_dim: int, num_classes: int):
        torch.nn.Module.__init__(self)
        self.params = params
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes

    def _check(self, embedding: torch.Tensor, target: torch.Tensor) -> None:
        if embedding.shape[1:] != (self.embedding_dim,) or target.shape != (len(embedding), self.num_classes):
            raise ValueError(
                f"{type(self).__name__}: expected embedding [B, {self.embedding_dim}] and target "
                f"[B, {self.num_classes}], got {tuple(embedding.shape)} and {tuple(target.shape)}"
            )

    def _scaled(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """s·cos, s first set to ``self._new_scale(cos, target)`` in training mode with ``dynamic: true``."""
        if self.params.dynamic and self.training:
            with torch.no_grad():
                self.scale.copy_(self._new_scale(cos.detach(), target))
        return self.scale * cos


class ArcFaceLoss(_AngularLoss):
    """ArcFace: logits_c = s·cos(θ_c + m) with the margin m added to **every** class angle (as in
    ASDKit), then cross-entropy; fixed s. Usage::

        loss: {name: arcface, params: {margin: 0.5, scale: 64.0, trainable: false}}
    """

    class Params(asdcore.Params):
        margin: float = 0.5
        scale: float = pydantic.Field(64.0, gt=0)
        trainable: bool = False

    def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
        super().__init__(params, embedding_dim=embedding_dim, num_classes=num_classes)
        self.centres = _centres(num_classes, embedding_dim, trainable=params.trainable)
        self.register_buffer("scale", torch.tensor(params.scale))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.cos(_angle(_cosine(embedding, self.centres)) + self.params.margin)

    def class_log_probs(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.logits(embedding).log_softmax(dim=-1)

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(embedding, target)
        return _soft_cross_entropy(self.class_log_probs(embedding), target)


class AdaCosLoss(_AngularLoss):
    """AdaCos: logits_c = s·cos_c (no margin), cross-entropy with probability targets; initial
    s = √2·ln(C − 1).

    Dynamic rule (ASDKit's): s ← ln(B_avg)/cos(min(π/4, θ_med)), B_avg = (1/B)·Σ_b Σ_{c: y_bc<1}
    exp(s·cos_bc), θ_med = median of θ_bc over the entries with y_bc exactly 1 (``torch.median``: the
    lower middle value for an even count). A batch without such an entry (every row mixed up) keeps s;
    ASDKit's s turns NaN there and stays NaN. Usage::

        loss: {name: adacos, params: {trainable: false, dynamic: false}}
    """

    class Params(asdcore.Params):
        trainable: bool = False
        dynamic: bool = True

    def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
        super().__init__(params, embedding_dim=embedding_dim, num_classes=num_classes)
        self.centres = _centres(num_classes, embedding_dim, trainable=params.trainable)
        self.register_buffer("scale", _initial_scale(num_classes, params.dynamic))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * _cosine(embedding, self.centres)

    def class_log_probs(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.logits(embedding).log_softmax(dim=-1)

    def _new_scale(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_b = _log_mean_row_sum(torch.where(target < 1, self.scale * cos, -torch.inf))
        theta_med = torch.nanmedian(asdcore.gather(torch.where(target == 1, _angle(cos), torch.nan).flatten()))
        return torch.where(theta_med.isnan(), self.scale, log_b / _bounded_cos(theta_med))

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(embedding, target)
        logits = self._scaled(_cosine(embedding, self.centres), target)
        return _soft_cross_entropy(logits.log_softmax(dim=-1), target)


class SubClusterAdaCosLoss(_AngularLoss):
    """Sub-cluster AdaCos (SCAC): K centres per class, class c owning the contiguous columns
    c·K … c·K+K−1. p_j = softmax_j(s·cos_j) over all N = K·C columns, P_c = Σ_{j∈block(c)} p_j,
    loss = mean_b −Σ_c y_bc·ln P_bc; initial s = √2·ln(K·C − 1).

    Dynamic rule (ASDKit's): s ← ln((1/B)·Σ_b Σ_j exp(s·cos_bj)) / (cos(min(π/4, θ_med)) + ε), summing
    over all columns, targets included; θ_med = lower median over rows of θ_b = Σ_j ỹ_bj·θ_bj with the
    label tiled as ỹ = [y | y | … | y], so column k·C + c takes y_c although the loss gives it to class
    ⌊(k·C + c)/K⌋. The two layouts agree for K = 1; for K > 1 θ_b sums K angles under either layout and
    usually exceeds π/4, so the layout rarely matters. Usage::

        loss: {name: scac, params: {k: 16, trainable: false, dynamic: false}}
    """

    class Params(asdcore.Params):
        k: int = pydantic.Field(1, ge=1)
        trainable: bool = False
        dynamic: bool = True

    def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
        super().__init__(params, embedding_dim=embedding_dim, num_classes=num_classes)
        self.centres = _centres(params.k * num_classes, embedding_dim, trainable=params.trainable)
        self.register_buffer("scale", _initial_scale(params.k * num_classes, params.dynamic))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """Sub-cluster logits s·cos_j, [B, K·C]."""
        return self.scale * _cosine(embedding, self.centres)

    def class_log_probs(self, embedding: torch.Tensor) -> torch.Tensor:
        """ln P_c, [B, C]."""
        return self._pool(self.logits(embedding))

    def _pool(self, logits: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(dim=-1)
        return log_p.view(len(logits), self.num_classes, self.params.k).logsumexp(dim=-1)

    def _new_scale(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        theta = (target.repeat(1, self.params.k) * _angle(cos)).sum(dim=1)
        return _batch_scale(_log_mean_row_sum(self.scale * cos), theta)

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(embedding, target)
        logits = self._scaled(_cosine(embedding, self.centres), target)
        return _soft_cross_entropy(self._pool(logits), target)


class AdaProjLoss(_AngularLoss):
    """AdaProj: class c has P unit-norm basis vectors ŵ_c1 … ŵ_cP (not orthogonalised), centres
    [C, P, D]; proj_c = Σ_p ⟨x̂, ŵ_cp⟩·ŵ_cp, logits_c = s·⟨x̂, proj_c/‖proj_c‖⟩, loss −Σ y·ln softmax;
    initial s = √2·ln(C − 1).

    Dynamic rule (ASDKit's): s ← ln((1/B)·Σ_b [Σ_{c: y_bc<1} exp(s·cos_bc) + #{c: y_bc ≥ 1}]) /
    (cos(min(π/4, θ_med)) + ε), θ_med = lower median over rows of Σ_c y_bc·θ_bc. Usage::

        loss: {name: adaproj, params: {basis_size: 32, trainable: false, dynamic: false}}
    """

    class Params(asdcore.Params):
        basis_size: int = pydantic.Field(32, ge=1)
        trainable: bool = False
        dynamic: bool = True

    def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
        super().__init__(params, embedding_dim=embedding_dim, num_classes=num_classes)
        self.centres = _centres(num_classes, params.basis_size, embedding_dim, trainable=params.trainable)
        self.register_buffer("scale", _initial_scale(num_classes, params.dynamic))

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        """⟨x̂, proj_c/‖proj_c‖⟩, [B, C]."""
        x = F.normalize(embedding, dim=-1)
        basis = F.normalize(self.centres, dim=-1)
        proj = torch.einsum("bcp,cpd->bcd", torch.einsum("bd,cpd->bcp", x, basis), basis)
        return (x[:, None, :] * F.normalize(proj, dim=-1)).sum(dim=-1)

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosine(embedding)

    def class_log_probs(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.logits(embedding).log_softmax(dim=-1)

    def _new_scale(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        theta = (target * _angle(cos)).sum(dim=1)
        return _batch_scale(_log_mean_row_sum(torch.where(target < 1, self.scale * cos, 0.0)), theta)

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(embedding, target)
        logits = self._scaled(self.cosine(embedding), target)
        return _soft_cross_entropy(logits.log_softmax(dim=-1), target)


def _num_subspaces(embedding_dim: int, subspace_size: int) -> int:
    if embedding_dim % subspace_size:
        raise asdcore.ConfigError(
            f"loss.params.subspace_size: {subspace_size} must divide the embedding dimension {embedding_dim}"
        )
    return embedding_dim // subspace_size


class SubspaceLoss(_AngularLoss):
    """Subspace loss: L = L_main(x, y) + weight·Σ_m L_m(x_m, y), where L_main is SCAC over the full
    embedding with fixed centres and L_m is SCAC (trainable centres) over the m-th slice
    x_m = x[m·S : (m+1)·S] of size S = ``subspace_size``; every head has a fixed scale. Usage::

        loss: {name: subspace, params: {k: 16, subspace_size: 128, weight: 1.0}}
    """

    class Params(asdcore.Params):
        k: int = pydantic.Field(16, ge=1)
        subspace_size: int = pydantic.Field(128, ge=1)
        weight: float = 1.0

    def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
        super().__init__(params, embedding_dim=embedding_dim, num_classes=num_classes)
        count = _num_subspaces(embedding_dim, params.subspace_size)
        self.main = SubClusterAdaCosLoss(
            SubClusterAdaCosLoss.Params(k=params.k, dynamic=False), embedding_dim=embedding_dim, num_classes=num_classes
        )
        self.heads = torch.nn.ModuleList(
            SubClusterAdaCosLoss(
                SubClusterAdaCosLoss.Params(k=params.k, trainable=True, dynamic=False),
                embedding_dim=params.subspace_size, num_classes=num_classes,
            )
            for _ in range(count)
        )

    def class_log_probs(self, embedding: torch.Tensor) -> torch.Tensor:
        """ln P_c of the main head."""
        return self.main.class_log_probs(embedding)

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(embedding, target)
        slices = embedding.split(self.params.subspace_size, dim=1)
        heads = sum(head(part, target) for head, part in zip(self.heads, slices))
        return self.main(embedding, target) + self.params.weight * heads


class FeatExLoss(_AngularLoss):
    """Feature exchange (FeatEx): L = L_main(x, y) + weight·L_featex(x', y') in training, L_main alone
    in eval mode. L_main is SCAC with fixed centres; L_featex is SCAC (trainable centres) over
    (M+1)·C classes, M = embedding_dim / subspace_size; both have a fixed scale.

    Per sample, with probability ``prob``, subspace 0 stays and subspace m ≥ 1 is taken from sample
    π_m(i) (independent random permutations); targets in blocks of C: kept → [y_i, 0, …, 0],
    exchanged → [0, y_i/M, y_π1(i)/M, …, y_π(M−1)(i)/M]. Draw order from the global torch RNG:
    ``rand(B)`` (exchange decisions), then ``randperm(B)`` for m = 1 … M−1. Usage::

        loss: {name: featex, params: {k: 16, subspace_size: 128, prob: 0.5, weight: 1.0}}
    """

    class Params(asdcore.Params):
        k: int = pydantic.Field(16, ge=1)
        subspace_size: int = pydantic.Field(128, ge=1)
        prob: float = pydantic.Field(0.5, ge=0, le=1)
        weight: float = 1.0

    def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
        super().__init__(params, embedding_dim=embedding_dim, num_classes=num_classes)
        self.num_subspaces = _num_subspaces(embedding_dim, params.subspace_size)
        if self.num_subspaces < 2:
            raise asdcore.ConfigError(
                f"loss.params.subspace_size: FeatEx needs at least two subspaces, but {params.subspace_size} "
                f"leaves one of the {embedding_dim}-d embedding"
            )
        self.main = SubClusterAdaCosLoss(
            SubClusterAdaCosLoss.Params(k=params.k, dynamic=False), embedding_dim=embedding_dim, num_classes=num_classes
        )
        self.head = SubClusterAdaCosLoss(
            SubClusterAdaCosLoss.Params(k=params.k, trainable=True, dynamic=False),
            embedding_dim=embedding_dim, num_classes=(self.num_subspaces + 1) * num_classes,
        )

    def class_log_probs(self, embedding: torch.Tensor) -> torch.Tensor:
        """ln P_c of the main head."""
        return self.main.class_log_probs(embedding)

    def exchange(self, embedding: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (partly) exchanged embeddings [B, D] and their FeatEx targets [B, (M+1)·C]."""
        batch, count, device = len(embedding), self.num_subspaces, embedding.device
        exchanged = (torch.rand(batch) < self.params.prob).to(device)[:, None]
        perms = [torch.arange(batch)] + [torch.randperm(batch) for _ in range(count - 1)]
        perms = [perm.to(device) for perm in perms]
        slices = embedding.split(self.params.subspace_size, dim=1)
        swapped = torch.cat([part[perm] for part, perm in zip(slices, perms)], dim=1)
        kept_target = torch.cat([target, target.new_zeros(batch, count * self.num_classes)], dim=1)
        blocks = [target.new_zeros(batch, self.num_classes)] + [target[perm] / count for perm in perms]
        swapped_target = torch.cat(blocks, dim=1)
        return torch.where(exchanged, swapped, embedding), torch.where(exchanged, swapped_target, kept_target)

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(embedding, target)
        loss = self.main(embedding, target)
        if self.training:
            loss = loss + self.params.weight * self.head(*self.exchange(embedding, target))
        return loss

