"""Faults a user meets, through the real command line: each ends in one clear message and the exit code of
its kind (asdcore.errors.EXIT_CODES), never a traceback unless --debug is given, and a rerun after the cause is
fixed gives the results of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
SR = 16000
COMMAND = [sys.executable, "-c", "from asdcore.cli import main; main()"]


def asdcore(*args, env=None):
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})})


def own_data(root: Path, labelled: bool = True) -> Path:
    """One machine type of half-second tones: 12 normal training clips, 8 test clips (half anomalous)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "press" / split).mkdir(parents=True)
    t = np.arange(SR // 2) / SR
    for i in range(12):
        sf.write(root / "press" / "train" / f"n{i:02d}.wav", 0.3 * np.sin(2 * np.pi * 440 * t)
                 + 0.02 * rng.standard_normal(len(t)), SR)
    rows = ["file,label"]
    for i in range(8):
        freq = 520 if i % 2 else 440
        sf.write(root / "press" / "test" / f"t{i:02d}.wav", 0.3 * np.sin(2 * np.pi * freq * t)
                 + 0.02 * rng.standard_normal(len(t)), SR)
        rows.append(f"t{i:02d}.wav,{'anomaly' if i % 2 else 'normal'}")
    if labelled:
        (root / "press" / "test_labels.csv").write_text("\n".join(rows) + "\n")
    return root


def pipeline(tmp_path: Path, data: Path, output: Path, trained: bool = False, epochs: int = 2) -> Path:
    frontend = (f"{{name: ae, training: {{epochs: {epochs}, batch_size: 64, scope: per_machine}}}}" if trained
                else "{name: raw_spec, params: {n_mels: 32}}")
    backend = "passthrough" if trained else "knn"
    path = tmp_path / f"{'ae' if trained else 'spec'}.yaml"
    path.write_text(f"name: faults\ndataset: {{name: own, root: {data}}}\nfrontend: {frontend}\n"
                    f"backends: [{{name: {backend}}}]\nseeds: [0]\noutput: {output}\ndevice: cpu\n"
                    "audio_cache: false\nevaluation: {plots: false}\n")
    return path


def one_clear_error(result, code: int, *texts: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    for text in texts:
        assert text in output, output


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return own_data(tmp_path_factory.mktemp("faults") / "data")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> Path:
    """The table of an uninterrupted run of the untrained pipeline."""
    tmp = tmp_path_factory.mktemp("reference")
    result = asdcore("run", str(pipeline(tmp, data, tmp / "out")), "--no-progress")
    assert result.returncode == 0, result.stderr
    return tmp / "out" / "faults" / "own" / "table.csv"


def test_output_path_is_a_file(tmp_path, data, reference):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    result = asdcore("run", str(pipeline(tmp_path, data, blocker)), "--no-progress")
    one_clear_error(result, 6, str(blocker), "is a file, not a folder")
    blocker.unlink()
    assert asdcore("run", str(pipeline(tmp_path, data, blocker)), "--no-progress").returncode == 0
    assert (blocker / "faults" / "own" / "table.csv").read_text() == reference.read_text()


def test_debug_shows_the_traceback(tmp_path, data):
    (tmp_path / "out").write_text("")
    result = asdcore("--debug", "run", str(pipeline(tmp_path, data, tmp_path / "out")), "--no-progress")
    assert result.returncode == 6 and "Traceback" in result.stderr and "is a file, not a folder" in result.stderr
    result = asdcore("run", str(pipeline(tmp_path, data, tmp_path / "out")), env={"ASDCORE_DEBUG": "1"})
    assert result.returncode == 6 and "Traceback" in result.stderr


@contextmanager
def mounted(*args: str):
    """``mount ARGS...`` for the block (root only: elsewhere the test says it is skipped and why)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root; this test runs as uid %d" % os.geteuid())
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mounting is not permitted here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", args[-1]], check=True)


@contextmanager
def read_only(folder: Path):
    """``folder`` read-only for this process: a read-only bind mount as root, permissions otherwise."""
    if os.geteuid() == 0:
        with mounted("--bind", "-o", "ro", str(folder), str(folder)):
            yield
        return
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)


def test_read_only_output_folder(tmp_path, data, reference):
    output = tmp_path / "out"
    output.mkdir()
    with read_only(output):
        result = asdcore("run", str(pipeline(tmp_path, data, output)), "--no-progress")
    one_clear_error(result, 6, str(output))
    assert "read-only file system" in result.stderr or "permission denied" in result.stderr
    assert asdcore("run", str(pipeline(tmp_path, data, output)), "--no-progress").returncode == 0
    assert (output / "faults" / "own" / "table.csv").read_text() == reference.read_text()


def test_disk_full_during_extraction_then_rerun_with_space(tmp_path, data, reference):
    output = tmp_path / "small"
    output.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(output)):
        big = output / "filler"
        big.write_bytes(b"\0" * 40_000)  # leaves room for records and logs, not for the features
        result = asdcore("run", str(pipeline(tmp_path, data, output)), "--no-progress")
        one_clear_error(result, 6, "the disk (or quota) is full", "free space or choose another `output`; rerun resumes")
        assert "features.h5" in result.stderr
        big.unlink()
        subprocess.run(["mount", "-o", "remount,size=4m", str(output)], check=True)
        rerun = asdcore("run", str(pipeline(tmp_path, data, output)), "--no-progress")
        assert rerun.returncode == 0, rerun.stderr
        assert (output / "faults" / "own" / "table.csv").read_text() == reference.read_text()


def test_disk_full_during_a_training_checkpoint(tmp_path, data):
    output = tmp_path / "small"
    output.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(output)):
        result = asdcore("run", str(pipeline(tmp_path, data, output, trained=True)), "--no-progress")
        one_clear_error(result, 6, "the disk (or quota) is full", "rerun resumes", "checkpoint")
        assert "inline_container" not in result.stderr


def _wait_for(path: Path, text: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path} after {seconds} s (process exit {proc.poll()})")


def test_ctrl_c_during_training_exits_130_and_a_rerun_resumes(tmp_path, data):
    (tmp_path / "ref").mkdir()
    reference = asdcore("run", str(pipeline(tmp_path / "ref", data, tmp_path / "ref", trained=True, epochs=6)),
                        "--no-progress")
    assert reference.returncode == 0, reference.stderr
    args = [*COMMAND, "run", str(pipeline(tmp_path, data, tmp_path / "out", trained=True, epochs=6)), "--no-progress"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "out" / "faults" / "own" / "logs" / "seed0--train--press.log"
    _wait_for(log, "epoch 2/6", proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted — rerun the same command to resume" in stderr and "Traceback" not in stdout + stderr
    resumed = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming training after epoch" in log.read_text()
    table = "faults/own/table.csv"
    assert (tmp_path / "out" / table).read_text() == (tmp_path / "ref" / table).read_text()


def test_config_typo_leads_with_the_suggestion(tmp_path, data):
    path = pipeline(tmp_path, data, tmp_path / "out")
    path.write_text(path.read_text().replace("backends:", "backend:"))
    result = asdcore("run", str(path))
    one_clear_error(result, 2)
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: backend: unknown key 'backend'") and first.endswith("Did you mean 'backends'?")
    assert "backends: required key missing" in result.stderr and "{'name'" not in result.stderr


def test_train_on_an_untrained_frontend_says_so(tmp_path, data):
    result = asdcore("train", str(pipeline(tmp_path, data, tmp_path / "out")), "--no-progress")
    assert result.returncode == 0
    assert "frontend 'raw_spec' is not trained: nothing to train" in result.stdout
    assert not (tmp_path / "out").exists()


def test_no_labelled_test_clips_is_stated(tmp_path):
    data = own_data(tmp_path / "data", labelled=False)
    result = asdcore("run", str(pipeline(tmp_path, data, tmp_path / "out")), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "knn: no labelled test clips, so no official score" in result.stderr
    assert "official score: \n" not in result.stderr
    scores = tmp_path / "out" / "faults" / "own" / "seed0" / "press" / "knn" / "anomaly_score_press_section_00_test.csv"
    assert len(scores.read_text().splitlines()) == 8


def test_evaluate_with_scores_and_a_pipeline_is_a_usage_error(tmp_path, data):
    result = asdcore("evaluate", str(pipeline(tmp_path, data, tmp_path / "out")), "--scores", str(tmp_path),
                     "--year", "2023")
    one_clear_error(result, 2, "give either a PIPELINE file or --scores DIR, not both")


def test_recipes_are_listed_with_a_description():
    result = asdcore("recipes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    demo = next(line for line in lines if line.split()[:1] == ["demo"])
    assert "synthetic machine sounds" in demo
    assert any(line.split()[:1] == ["dcase_baseline_ae_mse"] and "Simple Autoencoder" in line for line in lines)
    assert "grids (asdcore grid FILE)" in result.stdout and any(line.split()[:1] == ["paper_fig2"] for line in lines)


def test_exit_codes_are_documented():
    result = asdcore("--help")
    assert result.returncode == 0
    for code in ("1 ", "2 usage or configuration", "3 data", "4 plugin", "5 a result or score file", "6 operating system",
                 "7 out of memory", "130 interrupted"):
        assert code in " ".join(result.stdout.split()), result.stdout
