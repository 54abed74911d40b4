import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import asdcore
import training_processes
from asdcore.errors import AsdcoreError
from asdcore.training import CHECKPOINT, ClipDataset, train
from toy_plugin import SoftmaxLoss, TinyFrontend, TinyNet
from training_processes import fresh


def make_data(tmp_path, toy_root, epochs=2, workdir="work", **training):
    return training_processes.make_data(toy_root, tmp_path / workdir, epochs, **training)


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
    with pytest.raises(AsdcoreError, match="training loss is nan at epoch 1, step 1;"):
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


def test_bf16_mixed_training_lowers_the_loss_and_keeps_float32_weights(registry, tmp_path, toy_root):
    data = make_data(tmp_path, toy_root, epochs=6, precision="bf16-mixed")
    frontend = fresh()
    train(frontend, data)
    assert data.log[-1]["loss"] < data.log[0]["loss"]
    assert all(t.dtype == torch.float32 for t in frontend.model.state_dict().values())
    plain = make_data(tmp_path, toy_root, epochs=6, workdir="plain")
    train(fresh(), plain)
    assert data.log[-1]["loss"] != plain.log[-1]["loss"]  # bf16 arithmetic did happen


def test_the_loss_runs_in_float32_under_mixed_precision(registry, tmp_path, toy_root):
    seen = []

    class Recording(SoftmaxLoss):
        def forward(self, embedding, target):
            seen.append((embedding.dtype, torch.is_autocast_enabled("cpu")))
            return super().forward(embedding, target)

    data = make_data(tmp_path, toy_root, epochs=1, precision="bf16-mixed")
    data.make_loss = lambda d, c: Recording(SoftmaxLoss.Params(), embedding_dim=d, num_classes=c)
    train(fresh(), data)
    assert seen and set(seen) == {(torch.float32, False)}


def test_16_mixed_needs_cuda(registry, tmp_path, toy_root):
    with pytest.raises(asdcore.ConfigError, match="16-mixed needs a CUDA device"):
        train(fresh(), make_data(tmp_path, toy_root, epochs=1, precision="16-mixed"))


def test_gradient_clipping_limits_each_step(registry, tmp_path, toy_root):
    norms = {}

    def record(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.setdefault(limit, []).append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    handle = register_optimizer_step_pre_hook(record)
    try:
        for limit in (None, 0.01):
            train(fresh(), make_data(tmp_path, toy_root, epochs=1, workdir=f"clip{limit}", gradient_clip_norm=limit))
    finally:
        handle.remove()
    assert max(norms[None]) > 0.01 and max(norms[0.01]) <= 0.01 * (1 + 1e-5)


def test_compiled_model_trains_like_the_eager_one(registry, tmp_path, toy_root):
    eager = fresh()
    train(eager, make_data(tmp_path, toy_root, epochs=2, workdir="eager"))
    compiled = fresh()
    train(compiled, make_data(tmp_path, toy_root, epochs=2, workdir="compiled", compile=True))
    assert type(compiled.model) is TinyNet  # the frontend keeps its own module, saved without compile's prefixes
    for name, tensor in eager.model.state_dict().items():
        assert torch.allclose(tensor, compiled.model.state_dict()[name], atol=1e-4), name


def test_batches_do_not_depend_on_the_number_of_loader_workers(registry, tmp_path, toy_root):
    models = []
    for workers in (0, 2):
        frontend = fresh()
        train(frontend, make_data(tmp_path, toy_root, epochs=2, workdir=f"w{workers}", num_workers=workers))
        models.append(frontend.model.state_dict())
    for name, tensor in models[0].items():
        assert torch.equal(tensor, models[1][name]), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_cuda_training_resumes_exactly(registry, tmp_path, toy_root, precision):
    def data(epochs, workdir):
        d = make_data(tmp_path, toy_root, epochs=epochs, workdir=workdir, precision=precision)
        d.device = torch.device("cuda")
        return d

    whole, part = fresh(), fresh()
    train(whole, data(3, "whole"))
    train(part, data(1, "part"))
    torch.cuda.manual_seed_all(123)  # disturbed by the interruption; the checkpoint restores it
    resumed = fresh(seed=99)
    log = data(3, "part")
    train(resumed, log)
    assert [row["epoch"] for row in log.log] == [1, 2, 3] and log.log[-1]["loss"] < log.log[0]["loss"]
    assert torch.load(tmp_path / "part" / CHECKPOINT, weights_only=False)["random"][0]["cuda"] is not None
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
