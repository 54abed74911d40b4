"""Training of torch frontends in the core: optimiser, warm-up, epochs, checkpoints and resume.

A :class:`TorchFrontend` supplies its model and how a batch becomes a loss; :func:`train` does the
rest: AdamW with a fixed learning rate after a linear warm-up, shuffled batches of clips cropped at
a random offset (the tile/crop rule of the reference), augmentations, a checkpoint after every epoch
(model, loss, optimiser, schedule and every random state), resume from the last one, a CSV-ready log
per epoch (and TensorBoard when installed), progress bars, CUDA when present.
"""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .audio import fit_length
from .errors import AsdcoreError
from .interfaces import Frontend, FrontendOutput, FrontendSpec, TrainData
from .store import atomic_path, fingerprint

log = logging.getLogger("asdcore")
CHECKPOINT = "checkpoint.pt"


class TorchFrontend(Frontend):
    """A frontend whose ``torch.nn.Module`` is trained by :func:`train`.

    Subclasses implement :meth:`build_model` (waves ``[B, L]`` -> embeddings ``[B, D]``) and
    ``embedding_dim``; they may override :meth:`training_loss` and :meth:`training_dataset`.
    """

    embedding_dim: int
    needs_training = True
    uses_loss = True
    uses_augmentations = True  # batches are (waves, class probabilities)

    def __init__(self, params, **context):
        super().__init__(params, **context)
        self.model = self.build_model().to(self.device)

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def spec(self) -> FrontendSpec:
        return FrontendSpec(embedding_dim=self.embedding_dim, needs_training=True)

    def training_dataset(self, data: TrainData) -> torch.utils.data.Dataset:
        return ClipDataset(data)

    def training_loss(self, batch, loss) -> torch.Tensor:
        waves, targets = batch
        return loss(self.model(waves), targets)

    def fit(self, data: TrainData) -> None:
        train(self, data)

    def extract(self, waves: torch.Tensor) -> FrontendOutput:
        self.model.eval()
        return FrontendOutput(self.model(waves))

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The model tensors that saved models and training checkpoints hold (default: all of them).

        Frontends with a frozen pretrained backbone return only their trained tensors.
        """
        return self.model.state_dict()

    def restore_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put back the tensors of :meth:`checkpoint_state`."""
        self.model.load_state_dict(state)

    def save(self, directory: Path) -> None:
        with atomic_path(Path(directory) / "model.pt") as tmp:
            torch.save(self.checkpoint_state(), tmp)

    def load(self, directory: Path) -> None:
        state = torch.load(Path(directory) / "model.pt", map_location=self.device, weights_only=True)
        self.restore_checkpoint_state(state)


class ClipDataset(torch.utils.data.Dataset):
    """Training clips cropped at a random offset of the tiled waveform, with one-hot targets.

    The offset of clip ``i`` in epoch ``e`` comes from ``(seed, e, i)``, so batches do not depend
    on the number of worker processes.
    """

    def __init__(self, data: TrainData):
        self.data = data
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.data.clips)

    def __getitem__(self, index: int):
        clip_samples = self.data.clip_samples
        wave = self.data.load(self.data.clips[index])
        starts = len(wave) * max(1, -(-clip_samples // len(wave))) - clip_samples
        offset = int(np.random.default_rng([self.data.seed, self.epoch, index]).integers(0, starts + 1))
        target = torch.zeros(self.data.num_classes)
        target[int(self.data.labels[index])] = 1.0
        return torch.from_numpy(fit_length(wave, clip_samples, offset)), target


def train(frontend: TorchFrontend, data: TrainData) -> None:
    """Train ``frontend.model`` for ``data.training.epochs``, resuming from a matching checkpoint."""
    cfg = data.training
    device = data.device
    if data.augmentations and not frontend.uses_augmentations:
        raise AsdcoreError(f"{type(frontend).__name__} trains on other batches than waveforms and labels; "
                           "remove frontend.augmentations")
    model = frontend.model.to(device)
    loss = None
    if frontend.uses_loss:
        if data.make_loss is None:
            raise AsdcoreError(f"{type(frontend).__name__} needs a loss: set frontend.loss in the pipeline")
        loss = data.make_loss(frontend.spec.embedding_dim, data.num_classes).to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if loss is not None:
        parameters += [p for p in loss.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
    dataset = frontend.training_dataset(data)
    generator = torch.Generator().manual_seed(data.seed)
    identity = fingerprint(data.identity, {k: v for k, v in cfg.model_dump().items() if k != "epochs"}, data.seed,
                           len(dataset), type(frontend).__name__, frontend.params.model_dump(),
                           None if loss is None else [type(loss).__name__, loss.params.model_dump()])
    path = Path(data.workdir) / CHECKPOINT
    start = _resume(path, identity, frontend, loss, optimizer, schedule, generator, data)
    writer = _tensorboard(Path(data.workdir))
    for epoch in range(start, cfg.epochs):
        if hasattr(dataset, "epoch"):
            dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                                             num_workers=cfg.num_workers, drop_last=False)
        model.train()
        if loss is not None:
            loss.train()
        started, total, count = time.perf_counter(), 0.0, 0
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None):
            batch = [b.to(device) for b in batch]
            for augmentation in data.augmentations:
                batch = list(augmentation(*batch))
            value = frontend.training_loss(batch, loss)
            if not torch.isfinite(value):
                raise AsdcoreError(f"training loss is {value.item()} at epoch {epoch + 1}; stopping (last checkpoint kept)")
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            schedule.step()
            total += value.item() * len(batch[0])
            count += len(batch[0])
        row = {"epoch": epoch + 1, "loss": total / max(count, 1), "lr": schedule.get_last_lr()[0],
               "seconds": round(time.perf_counter() - started, 3)}
        data.log.append(row)
        log.info("epoch %d/%d: loss %.5f", epoch + 1, cfg.epochs, row["loss"])
        if writer is not None:
            writer.add_scalar("loss", row["loss"], epoch + 1)
        _save(path, identity, epoch + 1, frontend, loss, optimizer, schedule, generator, data.log)
    if writer is not None:
        writer.close()


def _save(path, identity, epoch, frontend, loss, optimizer, schedule, generator, rows) -> None:
    state = {
        "identity": identity, "epoch": epoch, "model": frontend.checkpoint_state(),
        "loss": loss.state_dict() if loss is not None else None, "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(), "generator": generator.get_state(), "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(), "random": random.getstate(), "log": list(rows),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _resume(path, identity, frontend, loss, optimizer, schedule, generator, data: TrainData) -> int:
    if not path.exists():
        return 0
    state = torch.load(path, map_location=data.device, weights_only=False)
    if state.get("identity") != identity:
        log.info("checkpoint %s belongs to other training inputs; starting afresh", path)
        return 0
    if state["epoch"] > data.training.epochs:  # never the result of a shorter run
        log.info("checkpoint %s is after epoch %d, past the %d configured; starting afresh", path, state["epoch"],
                 data.training.epochs)
        return 0
    frontend.restore_checkpoint_state(state["model"])
    if loss is not None and state["loss"] is not None:
        loss.load_state_dict(state["loss"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    data.log[:] = state["log"]
    log.info("resuming training after epoch %d from %s", state["epoch"], path)
    return state["epoch"]


def _tensorboard(directory: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(directory / "tensorboard"))
