"""Training of torch frontends in the core: optimiser, warm-up, precision, data parallelism, checkpoints.

A :class:`TorchFrontend` supplies its model and how a batch becomes a loss; :func:`train` does the
rest on Lightning Fabric: AdamW with a fixed learning rate after a linear warm-up, shuffled batches
of clips cropped at a random offset (the tile/crop rule of the reference), augmentations on the
device, ``precision`` 32 / bf16-mixed / 16-mixed (losses always in float32), ``devices: N`` as N
data-parallel processes (DDP) with the same global batches as one process, ``compile``, gradient
clipping and accumulation, a checkpoint after every epoch (model, loss, optimiser, schedule and the
CPU and CUDA random states of every process), resume from the last one, a CSV-ready log per epoch
(and TensorBoard when installed), progress bars. Checkpoints and models are written by
:func:`save_artifact` and read by :func:`load_artifact` (a full disk, a damaged file: clear errors).
"""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed
from .audio import fit_length
from .config import NOT_IN_IDENTITY
from .errors import AsdcoreError, ConfigError
from .interfaces import Frontend, FrontendOutput, FrontendSpec, TrainData
from .store import atomic_path, fingerprint, unreadable

log = logging.getLogger("asdcore")
CHECKPOINT = "checkpoint.pt"


def save_artifact(obj, path: Path) -> None:
    """``torch.save`` of a checkpoint or model, atomically: a full disk or quota is an error naming ``path``
    (:func:`asdcore.store.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_artifact(path: Path, device: torch.device | str, weights_only: bool = True):
    """``torch.load`` of a checkpoint or model the pipeline wrote; a file it cannot load (truncated,
    overwritten, missing) is an :class:`~asdcore.errors.ArtifactError` saying how to redo it."""
    try:
        return torch.load(path, map_location=device, weights_only=weights_only)
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, KeyError, UnpicklingError, ... on bad files
        raise unreadable(path, exc) from None


class TorchFrontend(Frontend):
    """A frontend whose ``torch.nn.Module`` is trained by :func:`train`.

    Subclasses implement :meth:`build_model` (waves ``[B, L]`` -> embeddings ``[B, D]``) and
    ``embedding_dim``; they may override :meth:`training_loss` and :meth:`training_dataset` (whose items
    are fetched by ``(epoch, index)`` when it has ``keyed_by_epoch = True``, else by index). A model whose
    steps may leave trained parameters without a gradient (layer drop) sets ``skips_parameters``, which
    data-parallel training needs to know.
    """

    embedding_dim: int
    needs_training = True
    uses_loss = True
    uses_augmentations = True  # batches are (waves, class probabilities)
    skips_parameters = False  # a step may leave trained parameters without a gradient (e.g. layer drop)

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
        save_artifact(self.checkpoint_state(), Path(directory) / "model.pt")

    def load(self, directory: Path) -> None:
        self.restore_checkpoint_state(load_artifact(Path(directory) / "model.pt", self.device))


class ClipDataset(torch.utils.data.Dataset):
    """Training clips cropped at a random offset of the tiled waveform, with one-hot targets.

    Items are keyed by ``(epoch, index)``: the offset of clip ``index`` in ``epoch`` comes from
    ``(seed, epoch, index)``, so batches depend neither on worker processes nor on the number of
    data-parallel processes.
    """

    keyed_by_epoch = True

    def __init__(self, data: TrainData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data.clips)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        clip_samples = self.data.clip_samples
        wave = self.data.load(self.data.clips[index])
        starts = len(wave) * max(1, -(-clip_samples // len(wave))) - clip_samples
        offset = int(np.random.default_rng([self.data.seed, epoch, index]).integers(0, starts + 1))
        target = torch.zeros(self.data.num_classes)
        target[int(self.data.labels[index])] = 1.0
        return torch.from_numpy(fit_length(wave, clip_samples, offset)), target


class EpochBatchSampler(torch.utils.data.Sampler):
    """The batches of one process. Global batch ``b`` of epoch ``e`` holds the indices
    ``perm_e[b·B : (b+1)·B]``, ``perm_e`` a permutation drawn from ``(seed, e)``; process ``r`` of ``w``
    takes part ``r`` of it (``numpy.array_split``), so what is trained on does not depend on ``w``.
    With ``w`` > 1 a last global batch smaller than ``w`` is left out (a process would get no clip).
    Items are ``(epoch, index)`` for datasets that are ``keyed_by_epoch``, else indices."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, keyed: bool = False):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world, self.keyed = rank, world, keyed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        return full + (rest >= self.world if self.world > 1 else rest > 0)

    def global_size(self, batch: int) -> int:
        """Number of clips in global batch ``batch``."""
        return min(self.batch_size, self.size - batch * self.batch_size)

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        for b in range(len(self)):
            part = np.array_split(order[b * self.batch_size:(b + 1) * self.batch_size], self.world)[self.rank]
            yield [(self.epoch, int(i)) for i in part] if self.keyed else part.tolist()


class _Float32Loss:
    """Calls the loss outside autocast on float32 inputs: angular-margin heads and their scale statistics
    keep full precision under mixed-precision training. Other attributes are the loss's."""

    def __init__(self, loss: torch.nn.Module):
        self.loss = loss

    def __call__(self, *args):
        device = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        with torch.autocast(device, enabled=False):
            return self.loss(*(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args))

    def __getattr__(self, name: str):
        if name == "loss":  # not set yet (while unpickling)
            raise AttributeError(name)
        return getattr(self.loss, name)


class _Batch:
    """Holds a batch as it comes, so that mixed precision does not cast waveforms to half precision
    (autocast decides the precision of each operation instead)."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = tensors


class _Step(torch.nn.Module):
    """The frontend's model and its loss as one module whose forward is the training loss of a batch:
    what Fabric wraps for precision and data parallelism."""

    def __init__(self, frontend: TorchFrontend, loss: torch.nn.Module | None):
        super().__init__()
        self.model = frontend.model
        self.loss = loss
        self.frontend = frontend
        self.float_loss = None if loss is None else _Float32Loss(loss)

    def forward(self, batch: _Batch) -> torch.Tensor:
        return self.frontend.training_loss(batch.tensors, self.float_loss)


def train(frontend: TorchFrontend, data: TrainData) -> None:
    """Train ``frontend.model`` for ``data.training.epochs``, resuming from a matching checkpoint.

    With ``devices`` > 1 every process of the data-parallel group calls this; only rank 0 writes."""
    cfg = data.training
    if data.augmentations and not frontend.uses_augmentations:
        raise AsdcoreError(f"{type(frontend).__name__} trains on other batches than waveforms and labels; "
                           "remove frontend.augmentations")
    loss = None
    if frontend.uses_loss:
        if data.make_loss is None:
            raise AsdcoreError(f"{type(frontend).__name__} needs a loss: set frontend.loss in the pipeline")
        loss = data.make_loss(frontend.spec.embedding_dim, data.num_classes).to(data.device)
    fabric = _fabric(cfg, data.device, frontend.skips_parameters)
    rank, world, device = fabric.global_rank, fabric.world_size, fabric.device
    if rank:  # every process augments its own clips with its own draws
        torch.manual_seed(int(fingerprint(data.seed, rank), 16))
    dataset = frontend.training_dataset(data)
    identity = fingerprint(data.identity, cfg.model_dump(exclude=set(NOT_IN_IDENTITY)), data.seed,
                           len(dataset), type(frontend).__name__, frontend.params.model_dump(),
                           None if loss is None else [type(loss).__name__, loss.params.model_dump()])
    raw = frontend.model
    step = _Step(frontend, loss)
    optimizer = torch.optim.AdamW([p for p in step.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    path = Path(data.workdir) / CHECKPOINT
    start = _resume(path, identity, frontend, loss, optimizer, schedule, data, rank)
    if cfg.compile:
        step.model = frontend.model = torch.compile(raw)
    module, optimizer = fabric.setup(step, optimizer)
    sampler = EpochBatchSampler(len(dataset), cfg.batch_size, data.seed, rank, world,
                                keyed=getattr(dataset, "keyed_by_epoch", False))
    workers = cfg.num_workers
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                         persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                                         prefetch_factor=4 if workers else None,
                                         generator=torch.Generator().manual_seed(data.seed))  # not the global RNG
    writer = _tensorboard(Path(data.workdir)) if rank == 0 else None
    try:
        for epoch in range(start, cfg.epochs):
            sampler.set_epoch(epoch)
            row = _epoch(fabric, module, optimizer, schedule, loader, sampler, data, epoch)
            data.log.append(row)
            log.info("epoch %d/%d: loss %.5f", epoch + 1, cfg.epochs, row["loss"])
            if writer is not None:
                writer.add_scalar("loss", row["loss"], epoch + 1)
            states = _gather_objects(_random_states(), world)
            frontend.model = raw
            if rank == 0:
                _save(path, identity, epoch + 1, frontend, loss, optimizer, schedule, states, data.log)
            frontend.model = step.model
            fabric.barrier()
    finally:
        frontend.model = raw
        if writer is not None:
            writer.close()


def _epoch(fabric, module, optimizer, schedule, loader, sampler: EpochBatchSampler, data: TrainData, epoch: int) -> dict:
    """One pass over the batches; the loss stays on the device until the end of the epoch."""
    cfg, device, world = data.training, fabric.device, fabric.world_size
    steps, group = len(sampler), cfg.accumulate_grad_batches
    module.train()
    started, waited = time.perf_counter(), 0.0
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = torch.zeros((), device=device, dtype=torch.float64)
    bad_step = torch.full((), -1, device=device, dtype=torch.long)
    bad_value = torch.zeros((), device=device)
    batches = iter(loader)
    for step in tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                     disable=None if fabric.global_rank == 0 else True):
        ready = time.perf_counter()
        batch = next(batches)
        waited += time.perf_counter() - ready
        batch = [b.to(device, non_blocking=True) for b in batch]
        for augmentation in data.augmentations:
            batch = list(augmentation(*batch))
        first = step - step % group
        last = min(first + group, steps)
        closes = step + 1 == last
        # The gradient of the mean over the clips of all processes and accumulated batches: each batch's mean
        # weighted by its share of them (the data-parallel wrapper averages over the processes).
        weight = len(batch[0]) * world / sum(sampler.global_size(s) for s in range(first, last))
        with fabric.no_backward_sync(module, enabled=world > 1 and not closes):
            value = module(_Batch(batch))
            fabric.backward(value * weight)
        if closes:
            if cfg.gradient_clip_norm is not None:
                fabric.clip_gradients(module, optimizer, max_norm=cfg.gradient_clip_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
        value = value.detach().float()
        total += value * len(batch[0])
        count += len(batch[0])
        new = (bad_step < 0) & ~torch.isfinite(value)
        bad_step = torch.where(new, step, bad_step)
        bad_value = torch.where(new, value, bad_value)
    _raise_if_non_finite(fabric, bad_step, bad_value, epoch)
    total, count = fabric.all_reduce(total, reduce_op="sum"), fabric.all_reduce(count, reduce_op="sum")
    return {"epoch": epoch + 1, "loss": float(total / count.clamp(min=1)), "lr": schedule.get_last_lr()[0],
            "seconds": round(time.perf_counter() - started, 3), "data_seconds": round(waited, 3)}


def _raise_if_non_finite(fabric, bad_step: torch.Tensor, bad_value: torch.Tensor, epoch: int) -> None:
    steps, values = fabric.all_gather(bad_step).reshape(-1), fabric.all_gather(bad_value).reshape(-1)
    bad = (steps >= 0).nonzero()
    if len(bad):
        first = bad[steps[bad].argmin()].item()
        raise AsdcoreError(f"training loss is {values[first].item()} at epoch {epoch + 1}, step "
                           f"{steps[first].item() + 1}; stopping (last checkpoint kept)")


def _fabric(cfg, device: torch.device, skips_parameters: bool):
    """A launched Fabric for the training's device, precision and processes."""
    world = distributed.launched_world()
    if world != cfg.devices:
        raise AsdcoreError(
            f"frontend.training.devices is {cfg.devices} but {world} training process(es) run: let `asdcore` start "
            f"them (it does for devices > 1), or start exactly {cfg.devices} with torchrun or srun")
    accelerator = "cuda" if device.type == "cuda" else "cpu"
    if cfg.precision == "16-mixed" and accelerator == "cpu":
        raise ConfigError("frontend.training.precision: 16-mixed needs a CUDA device; use bf16-mixed on the CPU")
    if accelerator == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
    return distributed.fabric(accelerator, cfg.precision, ddp=cfg.strategy == "ddp",
                              find_unused_parameters=skips_parameters)


def _random_states() -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "random": random.getstate()}


def _restore_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        if len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])
        else:
            log.warning("the checkpoint has the CUDA random states of %d devices, this process sees %d: "
                        "not restored, so the resumed run differs from an uninterrupted one",
                        len(states["cuda"]), torch.cuda.device_count())
    np.random.set_state(states["numpy"])
    random.setstate(states["random"])


def _gather_objects(value, world: int) -> list:
    if world == 1:
        return [value]
    gathered = [None] * world
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def _save(path, identity, epoch, frontend, loss, optimizer, schedule, random_states, rows) -> None:
    state = {
        "identity": identity, "epoch": epoch, "model": frontend.checkpoint_state(),
        "loss": loss.state_dict() if loss is not None else None, "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(), "random": random_states, "log": list(rows),
    }
    save_artifact(state, path)


def _resume(path, identity, frontend, loss, optimizer, schedule, data: TrainData, rank: int) -> int:
    if not path.exists():
        return 0
    state = load_artifact(path, data.device, weights_only=False)
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
    _restore_random_states(state["random"][rank])
    data.log[:] = state["log"]
    log.info("resuming training after epoch %d from %s", state["epoch"], path)
    return state["epoch"]


def _tensorboard(directory: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(directory / "tensorboard"))
