"""What the data-parallel tests run in each of several processes (importable there: the test puts this folder on
the path, which spawned processes inherit)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asd_frontends.losses import AdaCosLoss, AdaProjLoss, SubClusterAdaCosLoss
from asdcore import distributed

DYNAMIC = {"adacos": (AdaCosLoss, {}), "scac": (SubClusterAdaCosLoss, {"k": 2}), "adaproj": (AdaProjLoss, {"basis_size": 2})}


def dynamic_scales(rows: int = 7, classes: int = 5, dim: int = 6) -> dict[str, float]:
    """The dynamic scale of each loss after one training batch of ``rows`` seeded embeddings (one-hot and mixed
    targets), each process computing on its part of the batch (``numpy.array_split``)."""
    generator = torch.Generator().manual_seed(0)
    embedding = torch.randn(rows, dim, generator=generator)
    target = torch.nn.functional.one_hot(torch.arange(rows) % classes, classes).float()
    target[1] = 0.5 * target[1] + 0.5 * target[2]
    part = np.array_split(np.arange(rows), distributed.world_size())[distributed.rank()]
    scales = {}
    for name, (cls, params) in DYNAMIC.items():
        torch.manual_seed(1)
        loss = cls(cls.Params(dynamic=True, **params), embedding_dim=dim, num_classes=classes).train()
        loss(embedding[part], target[part])
        scales[name] = loss.scale.item()
    return scales


def save_dynamic_scales(path: Path) -> None:
    """:func:`dynamic_scales` in each process of a data-parallel group; rank 0 saves them."""
    distributed.fabric("cpu", ddp=True)
    scales = dynamic_scales()
    if distributed.is_main():
        torch.save(scales, path)
