"""The generation record of synth data: mismatches, force, extension, no record, the inter-process lock."""
import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import filelock
import pytest

import asdcore
from asd_datasets import synth
from asdcore.errors import DatasetError

SMALL = synth.SynthOptions(machines=("fan", "valve"), n_train_source=4, n_train_target=1, n_test=4,
                           clip_seconds=0.2)
OTHER = dataclasses.replace(SMALL, seed=5, clip_seconds=0.3)
N_CLIPS = 2 * (4 + 1 + 4)


def _clips(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.glob("*/*/*.wav"))}


def _record(root):
    return json.loads((root / synth.RECORD).read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The clips of a fresh generation: SMALL and OTHER."""
    root = tmp_path_factory.mktemp("reference")
    synth.generate(root / "small", SMALL)
    synth.generate(root / "other", OTHER)
    return {SMALL: _clips(root / "small"), OTHER: _clips(root / "other")}


def test_the_record_holds_the_parameters(tmp_path):
    synth.generate(tmp_path, SMALL)
    assert _record(tmp_path) == {"format": synth.RECORD_FORMAT, "n_train_source": 4, "n_train_target": 1,
                                 "n_test": 4, "clip_seconds": 0.2, "sample_rate": 16000, "seed": 0,
                                 "machines": ["fan", "valve"]}
    assert synth.is_complete(tmp_path, SMALL)
    assert not synth.is_complete(tmp_path, OTHER)  # the same file names, other parameters


def test_other_parameters_are_an_error_naming_them(tmp_path, reference):
    synth.generate(tmp_path, SMALL)
    with pytest.raises(DatasetError) as info:
        synth.generate(tmp_path, OTHER)
    message = str(info.value)
    assert "seed: recorded 0, requested 5" in message
    assert "clip_seconds: recorded 0.2, requested 0.3" in message
    assert "n_test" not in message and "machines" not in message
    assert str(tmp_path / synth.RECORD) in message
    assert "another root" in message and "--force" in message and "asdcore run --force" in message
    assert _clips(tmp_path) == reference[SMALL] and _record(tmp_path)["seed"] == 0


def test_force_regenerates_like_a_fresh_root_and_keeps_other_files(tmp_path, reference):
    synth.generate(tmp_path, SMALL)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "fan" / "train" / "notes.txt").write_text("mine too")
    (tmp_path / "valve" / "test" / ".section_00_x.wav.99.part").write_bytes(b"stale")

    fan_only = dataclasses.replace(OTHER, machines=("fan",))
    synth.generate(tmp_path, fan_only, force=True)
    assert _clips(tmp_path) == {rel: data for rel, data in reference[OTHER].items() if rel.parts[0] == "fan"}
    record = _record(tmp_path)
    assert (record["seed"], record["clip_seconds"], record["machines"]) == (5, 0.3, ["fan"])
    assert not (tmp_path / "valve").exists()  # the old record's machine type: emptied, so removed
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "fan" / "train" / "notes.txt").read_text() == "mine too"

    synth.generate(tmp_path, OTHER, force=True)
    assert _clips(tmp_path) == reference[OTHER]


def test_a_machine_subset_then_the_full_set_extends_the_record(tmp_path, reference):
    synth.generate(tmp_path, dataclasses.replace(SMALL, machines=("valve",)))
    assert _record(tmp_path)["machines"] == ["valve"]
    assert len(synth.generate(tmp_path, SMALL)) == N_CLIPS
    assert _record(tmp_path)["machines"] == ["fan", "valve"]
    assert _clips(tmp_path) == reference[SMALL]
    record = (tmp_path / synth.RECORD).read_bytes()
    synth.generate(tmp_path, dataclasses.replace(SMALL, machines=("valve", "fan")))
    assert (tmp_path / synth.RECORD).read_bytes() == record


@pytest.mark.parametrize("record, message", [
    (None, "has generated files but no record"),
    ("{", "unreadable record of generation parameters"),
    ('{"seed": 0}', "not a record of generation parameters"),
])
def test_clips_without_a_usable_record_need_force(tmp_path, reference, record, message):
    synth.generate(tmp_path, SMALL)
    path = tmp_path / synth.RECORD
    path.unlink() if record is None else path.write_text(record)
    with pytest.raises(DatasetError, match=message) as info:
        synth.generate(tmp_path, SMALL)
    assert str(path) in str(info.value) and "--force" in str(info.value)
    assert not synth.is_complete(tmp_path, SMALL)
    synth.generate(tmp_path, OTHER, force=True)
    assert _clips(tmp_path) == reference[OTHER] and _record(tmp_path)["seed"] == 5


def test_a_root_without_clips_needs_no_record(tmp_path, reference):
    (tmp_path / "notes.txt").write_text("mine")
    synth.generate(tmp_path, SMALL)
    assert _clips(tmp_path) == reference[SMALL]


def test_the_synth_dataset_checks_and_forces(tmp_path, reference):
    params = dict(root=str(tmp_path), machines=["fan", "valve"], n_train_source=4, n_train_target=1, n_test=4,
                  clip_seconds=0.2)
    data = asdcore.create("datasets", "synth", **params)
    assert data.metadata_files("fan") == []
    data.prepare(progress=False)
    assert data.metadata_files("fan") == []  # generated: the params are the dataset's, checked by prepare
    unchecked = asdcore.create("datasets", "synth", **{**params, "generate": False})
    assert unchecked.metadata_files("fan") == unchecked.metadata_files("valve") == [tmp_path / synth.RECORD]
    assert _clips(tmp_path) == reference[SMALL]

    changed = asdcore.create("datasets", "synth", **{**params, "seed": 5, "clip_seconds": 0.3})
    with pytest.raises(DatasetError) as info:
        changed.prepare(progress=False)
    assert "seed: recorded 0, requested 5" in str(info.value)
    assert "clip_seconds: recorded 0.2, requested 0.3" in str(info.value)
    changed.prepare(progress=False, force=True)
    assert _clips(tmp_path) == reference[OTHER] and _record(tmp_path)["seed"] == 5
    assert [c.path.relative_to(tmp_path) for c in changed.clips("fan", "train")] == sorted(
        rel for rel in reference[OTHER] if rel.parts[:2] == ("fan", "train"))


def test_stale_temporaries_are_cleaned_only_under_the_lock(tmp_path, reference, caplog):
    live = tmp_path / "fan" / "train" / ".section_00_source_train_normal_0000_spd_1000_mic_1.wav.1.part"
    live.parent.mkdir(parents=True)
    live.write_bytes(b"another process is writing this")
    holder = filelock.FileLock(tmp_path / synth.LOCK)
    holder.acquire()
    with caplog.at_level(logging.INFO, logger="asdcore"), ThreadPoolExecutor(1) as pool:
        worker = pool.submit(synth.generate, tmp_path, SMALL)
        time.sleep(1.0)
        assert not worker.done() and live.exists() and not (tmp_path / synth.RECORD).exists()
        holder.release()
        assert len(worker.result(timeout=60)) == N_CLIPS
    assert not live.exists() and _clips(tmp_path) == reference[SMALL]
    assert any("waiting for another process" in r.getMessage() for r in caplog.records)


def test_two_processes_on_one_root_both_succeed(tmp_path, reference):
    root = tmp_path / "shared"
    # each process reports how many clips it wrote; both start generating when `go` appears
    script = textwrap.dedent(f"""
        import pathlib, sys, time
        import soundfile
        from asd_datasets import synth
        writes, real_write = [], soundfile.write
        def counting_write(*args, **kwargs):
            writes.append(1)
            real_write(*args, **kwargs)
        soundfile.write = counting_write
        pathlib.Path(sys.argv[2]).touch()
        while not pathlib.Path(sys.argv[3]).exists():
            time.sleep(0.002)
        synth.generate(sys.argv[1], synth.SynthOptions(**{dataclasses.asdict(SMALL)!r}))
        print(len(writes))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    workers = [subprocess.Popen([sys.executable, "-c", script, str(root), str(flag), str(go)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for flag in ready]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    results = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in results]
    # the lock made one process wait and then find every clip written
    assert sorted(int(out) for out, _ in results) == [0, N_CLIPS]
    assert _clips(root) == reference[SMALL]
    assert _record(root)["machines"] == ["fan", "valve"]
    assert not list(root.rglob("*.part"))
