import numpy as np
import pytest
import torch

import asdcore
from asdcore.config import TrainingConfig
from asdcore.errors import AsdcoreError
from asdcore.interfaces import TrainData
from asdcore.training import CHECKPOINT, ClipDataset, TorchFrontend, train
from toy_plugin import Gain, SoftmaxLoss, TinyFrontend, TinyNet


def make_data(tmp_path, toy_root, epochs=2, workdir="work", **training):
    from toy_plugin import ToyDataset

    dataset = ToyDataset(ToyDataset.Params(root=str(toy_root)))
    clips = [c for m in dataset.machines() for c in dataset.clips(m, "train")]
    classes, n = dataset.class_labels()
    work = tmp_path / workdir
    work.mkdir(exist_ok=True)
    return TrainData(
        clips=clips, load=dataset.load, clip_samples=dataset.clip_samples,
        labels=np.array([classes[c.path] for c in clips]), num_classes=n,
        training=TrainingConfig(epochs=epochs, batch_size=8, lr=0.05, num_workers=0, **training),
        make_loss=lambda d, c: SoftmaxLoss(SoftmaxLoss.Params(), embedding_dim=d, num_classes=c),
        augmentations=[Gain(Gain.Params())], device=torch.device("cpu"), seed=3, workdir=work,
    )


def fresh(seed=0):
    torch.manual_seed(seed)
    return TinyFrontend(asdcore.Params(), sample_rate=8000, clip_samples=2000)


def test_class_labels_follow_the_reference_rule(registry, toy_root):
    from toy_plugin import ToyDataset

    classes, n = ToyDataset(ToyDataset.Params(root=str(toy_root))).class_labels()
    # machine x section x (empty attribute) x domain: alpha/beta x source/target
    assert n == 4 and sorted(set(classes.values())) == [0, 1, 2, 3]


def test_training_lowers_the_loss_and_logs_each_epoch(registry, tmp_path, toy_root):
    data = make_data(tmp_path, toy_root, epochs=6)
    frontend = fresh()
    frontend.fit(data)
    losses = [row["loss"] for row in data.log]
    assert [row["epoch"] for row in data.log] == [1, 2, 3, 4, 5, 6]
    assert losses[-1] < losses[0]
    assert (tmp_path / "work" / CHECKPOINT).exists()


def test_resume_gives_the_same_result_as_an_uninterrupted_run(registry, tmp_path, toy_root):
    whole = fresh()
    train(whole, make_data(tmp_path, toy_root, epochs=3, workdir="whole"))
    part = fresh()
    train(part, make_data(tmp_path, toy_root, epochs=1, workdir="part"))
    torch.manual_seed(123)  # the interruption disturbs the global generator; resume restores it
    resumed = fresh(seed=99)
    data = make_data(tmp_path, toy_root, epochs=3, workdir="part")
    train(resumed, data)
    assert [row["epoch"] for row in data.log] == [1, 2, 3]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_config_is_not_resumed(registry, tmp_path, toy_root):
    train(fresh(), make_data(tmp_path, toy_root, epochs=1))
    data = make_data(tmp_path, toy_root, epochs=1, weight_decay=0.5)
    train(fresh(), data)
    assert [row["epoch"] for row in data.log] == [1]


class ScaledFrontend(TinyFrontend):
    class Params(asdcore.Params):
        scale: float = 1.0

    def training_loss(self, batch, loss):
        waves, targets = batch
        return loss(self.model(waves) * self.params.scale, targets)


def scaled(scale):
    torch.manual_seed(0)
    return ScaledFrontend(ScaledFrontend.Params(scale=scale), sample_rate=8000, clip_samples=2000)


def test_checkpoint_of_other_frontend_params_is_not_resumed(registry, tmp_path, toy_root):
    first = make_data(tmp_path, toy_root, epochs=1)
    train(scaled(1.0), first)
    data = make_data(tmp_path, toy_root, epochs=2)
    train(scaled(2.0), data)
    assert [row["epoch"] for row in data.log] == [1, 2] and data.log[0]["loss"] != first.log[0]["loss"]
    again = make_data(tmp_path, toy_root, epochs=3)
    train(scaled(2.0), again)
    assert again.log[:2] == data.log and [row["epoch"] for row in again.log] == [1, 2, 3]  # resumed


def test_warmup_scales_the_learning_rate(registry, tmp_path, toy_root):
    data = make_data(tmp_path, toy_root, epochs=1, warmup_steps=100)
    train(fresh(), data)
    steps = -(-len(data.clips) // 8)
    assert data.log[0]["lr"] == pytest.approx(0.05 * (steps + 1) / 100)


def test_nan_loss_stops_training(registry, tmp_path, toy_root):
    data = make_data(tmp_path, toy_root, epochs=1)
    data.make_loss = lambda d, c: NanLoss(SoftmaxLoss.Params(), embedding_dim=d, num_classes=c)
    with pytest.raises(AsdcoreError, match="training loss is nan at epoch 1"):
        train(fresh(), data)


class NanLoss(SoftmaxLoss):
    def forward(self, embedding, target):
        return super().forward(embedding, target) * float("nan")


def test_missing_loss_is_a_clear_error(registry, tmp_path, toy_root):
    data = make_data(tmp_path, toy_root, epochs=1)
    data.make_loss = None
    with pytest.raises(AsdcoreError, match="needs a loss"):
        train(fresh(), data)


def test_random_crops_are_deterministic_and_tile_short_clips(registry, tmp_path, toy_root):
    data = make_data(tmp_path, toy_root)
    data.clip_samples = 5000  # longer than the 2000-sample clips: tiled, random offset
    dataset = ClipDataset(data)
    a, target = dataset[0, 0]
    assert a.shape == (5000,) and target.sum() == 1
    assert torch.equal(a, dataset[0, 0][0])
    assert not torch.equal(a, dataset[1, 0][0])


def test_augmentations_on_a_frontend_without_waveform_batches_are_refused(registry, tmp_path, toy_root):
    frontend = fresh()
    frontend.uses_augmentations = False
    with pytest.raises(AsdcoreError, match="remove frontend.augmentations"):
        train(frontend, make_data(tmp_path, toy_root, epochs=1))
