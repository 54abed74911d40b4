"""Trainings of the toy frontend that tests run in one process or as data-parallel processes (importable by
the processes :func:`asdcore.distributed.spawn` starts, as ``tests/`` is on their path)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import asdcore
from asdcore import distributed
from asdcore.config import TrainingConfig
from asdcore.interfaces import TrainData
from asdcore.training import train
from toy_plugin import Gain, SoftmaxLoss, TinyFrontend, ToyDataset


def make_data(toy_root: Path, workdir: Path, epochs: int = 2, augment: bool = True, **training) -> TrainData:
    dataset = ToyDataset(ToyDataset.Params(root=str(toy_root)))
    clips = [c for m in dataset.machines() for c in dataset.clips(m, "train")]
    classes, n = dataset.class_labels()
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {"batch_size": 8, "lr": 0.05, "num_workers": 0, **training}
    return TrainData(
        clips=clips, load=dataset.load, clip_samples=dataset.clip_samples,
        labels=np.array([classes[c.path] for c in clips]), num_classes=n,
        training=TrainingConfig(epochs=epochs, **settings),
        make_loss=lambda d, c: SoftmaxLoss(SoftmaxLoss.Params(), embedding_dim=d, num_classes=c),
        augmentations=[Gain(Gain.Params())] if augment else [], device=torch.device("cpu"), seed=3, workdir=workdir,
    )


def fresh(seed: int = 0) -> TinyFrontend:
    torch.manual_seed(seed)
    return TinyFrontend(asdcore.Params(), sample_rate=8000, clip_samples=2000)


def train_and_save(toy_root: Path, workdir: Path, result: Path, epochs: int, augment: bool, training: dict,
                   device: str = "cpu") -> None:
    """Train the toy frontend from seed 0 (every process the same); rank 0 saves the model's tensors and the log."""
    torch.set_num_threads(1)
    frontend = fresh()
    data = make_data(toy_root, workdir, epochs, augment, **training)
    data.device = torch.device(device)
    train(frontend, data)
    if distributed.is_main():
        torch.save({"model": frontend.model.state_dict(), "log": data.log}, result)


if __name__ == "__main__":  # python training_processes.py TOY_ROOT WORKDIR RESULT EPOCHS PROCESSES
    root, work, out, count, processes = sys.argv[1:]
    distributed.spawn(train_and_save, (Path(root), Path(work), Path(out), int(count), False,
                                       {"devices": int(processes)}), int(processes))
