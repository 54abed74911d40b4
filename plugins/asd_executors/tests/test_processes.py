"""``processes``: worker processes, GPU slots, failures that stop nothing else, workers killed mid-unit."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from asd_executors.processes import ProcessesExecutor, visible_gpus
from asdcore import load_grid
from asdcore.testing import ProbeUnit, check_executor, probe_units


def test_processes_pass_the_conformance_check(tmp_path):
    records = check_executor("processes", {"workers": 2}, folder=tmp_path / "probe")
    assert os.getpid() not in {r["pid"] for r in records.values()}
    slow = [ProbeUnit(f"u{i}", "score", (), str(tmp_path / "slow"), seconds=1.0) for i in range(4)]
    records = check_executor("processes", {"workers": 2}, folder=tmp_path / "slow", units=slow)
    assert len({r["pid"] for r in records.values()}) == 2  # both workers took units


def test_units_that_run_a_model_get_a_gpu_slot_of_their_own(tmp_path):
    """Two faked GPUs, two units per GPU: device units see one GPU each, at most two at a time per GPU;
    the other units run on the CPU workers and see the parent's devices."""
    units = [ProbeUnit(f"extract-{i}", "extract", (), str(tmp_path), seconds=1.0) for i in range(8)]
    units += [ProbeUnit(f"score-{i}", "score", (f"extract-{i}",), str(tmp_path)) for i in range(8)]
    records = check_executor("processes", {"gpus": 2, "units_per_gpu": 2, "workers": 1}, folder=tmp_path,
                             units=units)
    device = {uid: r for uid, r in records.items() if uid.startswith("extract")}
    assert {r["gpu"] for r in device.values()} == {"0", "1"}
    for gpu in ("0", "1"):
        spans = [(r["start"], r["end"]) for r in device.values() if r["gpu"] == gpu]
        assert max(sum(s < t < e for s, e in spans) for t, _ in spans) <= 1  # 2 at once: each start meets ≤ 1 other
        assert len({r["pid"] for r in device.values() if r["gpu"] == gpu}) == 2
    assert {r["gpu"] for uid, r in records.items() if uid.startswith("score")} == {os.environ.get("CUDA_VISIBLE_DEVICES")}
    assert len({r["pid"] for uid, r in records.items() if uid.startswith("score")}) == 1


def test_gpu_ids_follow_the_parents_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus(None) == ["3", "5"] and visible_gpus(1) == ["3"] and visible_gpus(0) == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus(2) == ["0", "1"]
    slots = ProcessesExecutor(ProcessesExecutor.Params(gpus=2, units_per_gpu=3, workers=2)).slots()
    assert [(s.name, s.capacity, s.env) for s in slots] == [
        ("cpu", 2, {}), ("gpu0", 3, {"CUDA_VISIBLE_DEVICES": "0"}), ("gpu1", 3, {"CUDA_VISIBLE_DEVICES": "1"})]


def test_a_corrupt_clip_fails_its_machine_type_only_and_a_rerun_does_the_rest(tmp_path, grid_file, fresh_data):
    path = grid_file(tmp_path, fresh_data)
    bad = sorted((fresh_data / "beta" / "test").glob("*.wav"))[0]
    original = bad.read_bytes()
    bad.write_bytes(b"RIFF" + os.urandom(200))
    first = load_grid(path, executor="processes", progress=False).run(progress=False)
    failed = {uid for uid, o in first.outcomes.items() if o.status == "failed"}
    assert failed == {"untrained/toy/shared/extract/beta", "trained/toy/seed0/extract/beta",
                      "trained/toy/seed1/extract/beta"}
    assert all(o.status == "done" for uid, o in first.outcomes.items() if "/alpha" in uid or "train/beta" in uid)
    message = str(first.failure)
    assert f"untrained/toy/shared/extract/beta: {bad}: cannot read audio" in message
    assert "log: " + str(tmp_path / "out" / "untrained" / "toy" / "logs" / "shared--extract--beta.log") in message
    assert first.markdown is None and len(first.missing) == 4

    bad.write_bytes(original)
    second = load_grid(path, executor="processes", progress=False).run(progress=False)
    assert second.failure is None
    executed = {uid for uid, o in second.outcomes.items() if o.status == "done"}
    assert executed == {uid for uid, o in first.outcomes.items() if o.status in ("failed", "blocked")}


def grid_command(path: Path, *extra: str) -> list[str]:
    """The ``asdcore grid`` program of this environment on the processes executor; 100 epochs make a
    toy training unit last a second or more, long enough to kill its worker in the middle."""
    return [str(Path(sys.executable).with_name("asdcore")), "grid", str(path), "--executor", "processes",
            "--no-progress", "--set", "frontend.training.epochs=100", *extra]


def test_a_worker_killed_in_the_middle_of_a_unit_then_a_rerun_gives_identical_results(tmp_path, grid_file, read_tables):
    reference = tmp_path / "reference"
    done = subprocess.run(grid_command(grid_file(reference)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    path = grid_file(tmp_path / "killed")
    proc = subprocess.Popen(grid_command(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "killed" / "out" / "trained" / "toy" / "logs" / "seed1--train--beta.log"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and "epoch" not in _text(log):
        time.sleep(0.05)
    worker = int(re.search(r"^\S+ \S+ (\d+) INFO .*running", _text(log), re.M).group(1))
    os.kill(worker, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    assert "trained/toy/seed1/train/beta: its worker process ended abruptly" in err
    record = tmp_path / "killed" / "out" / "trained" / "toy" / "seed1" / "frontend" / "beta" / "train.record.json"
    assert not record.exists()

    rerun = subprocess.run(grid_command(path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "trained/toy/seed1/train/beta: running" in rerun.stderr
    assert "untrained/toy/shared/extract/alpha: running" not in rerun.stderr
    assert read_tables(tmp_path / "killed" / "out") == read_tables(reference / "out")


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_job_that_cannot_reach_the_workers_fails_its_units_with_the_reason(tmp_path):
    outcomes = ProcessesExecutor(ProcessesExecutor.Params(workers=1)).run(probe_units(tmp_path), lambda u: None, False)
    assert {o.status for o in outcomes.values()} == {"failed", "blocked"}
    assert "pickle" in outcomes["train-a"].error.lower()
