"""Artifacts others can read, training scratch removed, damaged artifacts and full disks as clear errors.

End to end through the ``asdcore`` command line on tiny synthetic data; the disk-full translation with the
writers made to fail in-process (a real full file system is tested elsewhere)."""
import errno
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from asdcore import store
from asdcore.errors import DISK_FULL_HINT, ArtifactError, SystemResourceError
from asdcore.features import FeatureSet, load_features, save_features
from asdcore.store import write_text
from asdcore.submission import SCORES, read_groups, read_table
from asdcore.training import load_artifact, save_artifact
from asdcore.units import read_evaluation

REPO = Path(__file__).resolve().parents[1]
DATASET = "{name: synth, root: %s, machines: [fan], n_train_source: 6, n_train_target: 2, n_test: 8, clip_seconds: 0.5}"
TRAINED = "{name: ae, training: {epochs: 1, batch_size: 8, keep_checkpoints: %s}}"
UNTRAINED = "{name: raw_spec, params: {n_mels: 16}}"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth") / "data"


def pipeline(tmp_path: Path, data: Path, frontend: str, backend: str = "passthrough") -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"name: faults\ndataset: {DATASET % data}\nfrontend: {frontend}\nbackends: [{{name: {backend}}}]\n"
                    f"seeds: [0]\noutput: {tmp_path / 'out'}\ndevice: cpu\n")
    return path


def asdcore(*args, umask: int | None = None) -> subprocess.CompletedProcess:
    preexec = None if umask is None else (lambda: os.umask(umask))
    return subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", *map(str, args),
                           "--no-progress"], capture_output=True, text=True, cwd=REPO, preexec_fn=preexec)


def succeeds(*args, umask: int | None = None) -> str:
    result = asdcore(*args, umask=umask)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def executed(log: str) -> list[str]:
    return [line.split(":")[0] for line in log.splitlines() if ": running (" in line]


def damage(path: Path, fill: bytes) -> None:
    """Overwrite ``path`` with ``fill`` bytes and give it back its time: damage its record cannot see (as a
    crash may leave a file of zeros)."""
    before = path.stat()
    path.write_bytes(fill * before.st_size)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def fails_with_redo_hint(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode != 0
    assert f"{path}: " in result.stderr, result.stderr[-3000:]  # the error starts with the file
    assert f"rerun with --force, or delete {path} and rerun" in result.stderr
    assert "Traceback" not in result.stderr


# -- modes and training scratch -------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode, keep", [(0o022, 0o644, False), (0o002, 0o664, True)], ids=["022", "002-keep"])
def test_modes_follow_the_umask_and_training_scratch_is_kept_only_on_request(tmp_path, data, umask, mode, keep):
    config = pipeline(tmp_path, data, TRAINED % str(keep).lower())
    succeeds("run", config, umask=umask)
    root = tmp_path / "out" / "faults" / "synth"
    checkpoint = root / "seed0" / "frontend" / "shared" / "work" / "checkpoint.pt"
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and ".locks" not in p.parts]
    assert {root / "seed0" / "fan" / "features.h5", root / "seed0" / "frontend" / "shared" / "model" / "model.pt",
            root / "table.md"} <= set(files)
    assert {p.relative_to(tmp_path): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == \
           {p.relative_to(tmp_path): oct(mode) for p in files}
    folders = [p for p in (tmp_path / "out").rglob("*") if p.is_dir()]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {oct(0o777 & ~umask)}
    assert checkpoint.is_file() == keep and checkpoint.parent.exists() == keep

    toggled = f"frontend.training.keep_checkpoints={str(not keep).lower()}"
    assert executed(succeeds("run", config, "--set", toggled)) == []  # no input of the training
    if not keep:
        return
    log = succeeds("run", config, "--set", "frontend.training.epochs=2")
    assert "resuming training after epoch 1" in log and checkpoint.is_file()

    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # a damaged checkpoint: named, with how to redo it
    fails_with_redo_hint(asdcore("run", config, "--set", "frontend.training.epochs=3"), checkpoint)
    checkpoint.unlink()
    log = succeeds("run", config, "--set", "frontend.training.epochs=3")
    assert "resuming" not in log and "epoch 3/3" in log


# -- damaged artifacts through the command line ----------------------------------------------------------
def test_a_damaged_artifact_names_the_file_and_force_redoes_it(tmp_path, data):
    config = pipeline(tmp_path, data, UNTRAINED, backend="knn")
    succeeds("run", config)
    root = tmp_path / "out" / "faults" / "synth"
    for percentile, (damaged, fill) in zip((80, 70), [("shared/fan/features.h5", b"\0"),
                                                      ("seed0/fan/knn/anomaly_score_train.csv", b"\n")]):
        damage(root / damaged, fill)
        again = ("run", config, "--set", f"evaluation.decision_percentile={percentile}")  # evaluation reads both
        fails_with_redo_hint(asdcore(*again), root / damaged)
        assert "seed0/evaluate/fan/knn" in executed(succeeds(*again, "--force"))
        assert (root / "seed0" / "fan" / "knn" / "evaluation.json").is_file()
        assert set((root / damaged).read_bytes()) != set(fill)  # written anew


# -- readers -------------------------------------------------------------------------------------------
def features() -> FeatureSet:
    return FeatureSet(embedding=np.ones((2, 3)), path=["a.wav", "b.wav"], section=[0, 0], domain=[0, 1],
                      is_anomaly=[0, 1], attribute=["", ""])


def test_damaged_features_name_the_file_and_how_to_redo_it(tmp_path):
    path = tmp_path / "features.h5"
    save_features(path, {"train": features()})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ArtifactError, match=re.escape(f"{path}: cannot read split 'train' (") + ".*damaged.*"
                                            + re.escape(f"rerun with --force, or delete {path} and rerun")):
        load_features(path, "train")


@pytest.mark.parametrize("content, cause", [
    (b"", "no 'file name,value' rows"),
    (b"\n\n", "no 'file name,value' rows"),
    (b"\xff\xfe\x00garbage", "not a text file"),
    (b"a.wav," + b"1" * 200_000 + b"\n", "not CSV"),
])
def test_a_damaged_score_file_says_how_to_redo_it_only_when_the_pipeline_wrote_it(tmp_path, content, cause):
    path = tmp_path / f"{SCORES}_train.csv"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=cause) as submitted:
        read_table(path)
    assert str(path) in str(submitted.value) and "--force" not in str(submitted.value)
    with pytest.raises(ArtifactError, match=cause + ".*" + re.escape(f"the file is damaged: rerun with --force, "
                                                                       f"or delete {path} and rerun")):
        read_groups(tmp_path, SCORES, {"train": np.arange(2)}, ["a.wav", "b.wav"], written=True)


def test_score_files_of_other_clips_say_how_to_redo_them_when_the_pipeline_wrote_them(tmp_path):
    path = tmp_path / f"{SCORES}_train.csv"
    path.write_text("a.wav,1.0\nz.wav,2.0\n")
    with pytest.raises(ArtifactError, match="unexpected: z.wav$"):
        read_groups(tmp_path, SCORES, {"train": np.arange(2)}, ["a.wav", "b.wav"])
    with pytest.raises(ArtifactError, match="unexpected: z.wav; the file is damaged: rerun with --force"):
        read_groups(tmp_path, SCORES, {"train": np.arange(2)}, ["a.wav", "b.wav"], written=True)


@pytest.mark.parametrize("content", ['{"machine": "fan", "metr', "", '{"machine": "fan"}', "[1, 2]"])
def test_a_damaged_evaluation_names_the_file_and_how_to_redo_it(tmp_path, content):
    path = tmp_path / "evaluation.json"
    path.write_text(content)
    with pytest.raises(ArtifactError, match=re.escape(f"{path}: cannot read it (") + ".*"
                                            + re.escape(f"rerun with --force, or delete {path} and rerun")):
        read_evaluation(path)


@pytest.mark.parametrize("keep", [1000, 0])
def test_a_damaged_model_or_checkpoint_names_the_file_and_how_to_redo_it(tmp_path, keep):
    path = tmp_path / "model.pt"
    save_artifact({"weight": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:keep])
    for weights_only in (True, False):
        with pytest.raises(ArtifactError, match=re.escape(f"{path}: cannot read it (") + ".*damaged.*"
                                                + re.escape(f"delete {path} and rerun")):
            load_artifact(path, "cpu", weights_only=weights_only)


# -- full disk -----------------------------------------------------------------------------------------
def no_temporaries(folder: Path) -> bool:
    return not any(p.name.startswith(store.TMP_PREFIX) for p in folder.iterdir())


def disk_full(path: Path, error) -> None:
    with pytest.raises(SystemResourceError) as raised:
        error()
    message = str(raised.value)
    assert message.startswith(f"{path}: cannot write it, the disk (or quota) is full")
    assert message.endswith(DISK_FULL_HINT) and DISK_FULL_HINT == "free space or choose another `output`; rerun resumes"
    assert not path.exists() and no_temporaries(path.parent)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_features_on_a_full_disk(tmp_path, monkeypatch, code):
    def full(*args, **kwargs):
        raise OSError(code, "Can't synchronously write data (file write failed: errno = 28)")

    monkeypatch.setattr(h5py.Group, "create_dataset", full)
    path = tmp_path / "features.h5"
    disk_full(path, lambda: save_features(path, {"train": features()}))


@pytest.mark.parametrize("text", ["[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534",
                                  "PytorchStreamWriter failed writing file data/0: file write failed"])
def test_models_and_checkpoints_on_a_full_disk(tmp_path, monkeypatch, text):
    def full(obj, target):
        Path(target).write_bytes(b"partial")
        raise RuntimeError(text)

    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "work" / "checkpoint.pt"
    disk_full(path, lambda: save_artifact({"epoch": 1}, path))


def test_text_on_a_full_disk_and_other_errors_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"

    def write(self, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def other(obj, target):
        raise RuntimeError("other")

    monkeypatch.setattr(Path, "write_text", write)
    disk_full(path, lambda: write_text(path, "x"))
    monkeypatch.setattr(torch, "save", other)
    with pytest.raises(RuntimeError, match="^other$"):
        save_artifact({}, tmp_path / "model.pt")
    assert no_temporaries(tmp_path)


def test_the_umask_is_read_without_changing_it():
    before = os.umask(0o027)
    try:
        assert store._read_umask() == 0o027
    finally:
        assert os.umask(before) == 0o027
