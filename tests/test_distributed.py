"""Data-parallel training on CPU processes (gloo): same model as one process, rank 0 writes, resume after kill -9."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asdcore import distributed
from asdcore.errors import AsdcoreError
from asdcore.training import train
from training_processes import fresh, make_data, train_and_save

HERE = Path(__file__).parent
# float32 gradients summed in another order (each process's half, then gloo's all-reduce) differ in the
# last bits; Adam's update divides by √v, so per-step differences of ~1e-7 stay ~1e-6 after 2 epochs.
TOLERANCE = 1e-5


def spawn_training(toy_root, tmp_path, name, epochs, processes=2, augment=False, device="cpu", **training):
    result = tmp_path / f"{name}.pt"
    distributed.spawn(train_and_save, (toy_root, tmp_path / name, result, epochs, augment,
                                       {"devices": processes, **training}, device), processes)
    return torch.load(result, map_location="cpu")


def test_two_processes_train_the_model_one_process_trains(toy_root, tmp_path):
    torch.set_num_threads(1)
    single = tmp_path / "single.pt"
    train_and_save(toy_root, tmp_path / "one", single, 3, False, {})
    one, two = torch.load(single), spawn_training(toy_root, tmp_path, "two", 3)
    for name, tensor in one["model"].items():
        assert torch.allclose(tensor, two["model"][name], rtol=0, atol=TOLERANCE), name
        assert not torch.equal(tensor, fresh().model.state_dict()[name])  # it trained
    assert [r["loss"] for r in two["log"]] == pytest.approx([r["loss"] for r in one["log"]], abs=TOLERANCE)
    # rank 0 alone wrote the checkpoint of the data-parallel training
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoint.pt"]


def test_a_training_of_two_devices_needs_two_processes(toy_root, tmp_path):
    with pytest.raises(AsdcoreError, match="devices is 2 but 1 training process"):
        train_and_save(toy_root, tmp_path / "w", tmp_path / "r.pt", 1, False, {"devices": 2})


def test_an_error_in_a_process_is_raised_with_its_message(toy_root, tmp_path):
    with pytest.raises(AsdcoreError, match="devices is 3 but 2 training process"):
        spawn_training(toy_root, tmp_path, "bad", 1, processes=2, devices=3)


def test_data_parallel_training_resumes_after_kill_9(toy_root, tmp_path):
    epochs = 20
    whole = spawn_training(toy_root, tmp_path, "whole", epochs)
    command = [sys.executable, str(HERE / "training_processes.py"), str(toy_root), str(tmp_path / "part"),
               str(tmp_path / "part.pt"), str(epochs), "2"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "part" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "part.pt").exists()  # killed before the end
    interrupted = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= interrupted < epochs
    resumed = spawn_training(toy_root, tmp_path, "part", epochs)
    assert [r["epoch"] for r in resumed["log"]] == list(range(1, epochs + 1))
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_gradient_accumulation_matches_the_larger_batch(toy_root, tmp_path):
    torch.set_num_threads(1)
    models = {}
    for batch_size, accumulate in ((8, 1), (4, 2)):
        frontend = fresh()
        train(frontend, make_data(toy_root, tmp_path / str(batch_size), 2, augment=False, batch_size=batch_size,
                                  accumulate_grad_batches=accumulate))
        models[batch_size] = frontend.model.state_dict()
    for name, tensor in models[8].items():  # the same clips per optimiser step, 30 = 8 + 8 + 8 + 6 of them
        assert torch.allclose(tensor, models[4][name], rtol=0, atol=TOLERANCE), name


def test_strategy_ddp_on_one_device_trains_as_without_it(toy_root, tmp_path):
    torch.set_num_threads(1)
    train_and_save(toy_root, tmp_path / "plain", tmp_path / "plain.pt", 2, False, {})
    plain = torch.load(tmp_path / "plain.pt")
    wrapped = spawn_training(toy_root, tmp_path, "ddp", 2, processes=1, strategy="ddp")
    for name, tensor in plain["model"].items():
        assert torch.equal(tensor, wrapped["model"][name]), name


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_train_the_model_one_gpu_trains(toy_root, tmp_path):
    one = spawn_training(toy_root, tmp_path, "one", 3, processes=1, device="cuda", precision="bf16-mixed")
    two = spawn_training(toy_root, tmp_path, "two", 3, processes=2, device="cuda", precision="bf16-mixed")
    for name, tensor in one["model"].items():  # bf16 autocast: rounding of ~1e-3 per operation
        assert torch.allclose(tensor, two["model"][name], rtol=0, atol=1e-2), name
