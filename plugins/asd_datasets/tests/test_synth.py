import collections
import dataclasses
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import roc_auc_score

from asd_datasets import synth

SMALL = synth.SynthOptions(machines=("fan", "valve"), n_train_source=6, n_train_target=2, n_test=8,
                           clip_seconds=0.5)


def _wavs(root):
    """Every file in the machine-type folders (the record and lock file lie in the root)."""
    return sorted(p for p in root.glob("*/*/*") if p.is_file())


def _bytes(paths, root):
    return {p.relative_to(root): p.read_bytes() for p in paths}


def test_layout_names_and_format(tmp_path):
    paths = synth.generate(tmp_path, SMALL)
    assert sorted(paths) == _wavs(tmp_path)
    assert len(paths) == 2 * (6 + 2 + 8)
    assert tmp_path / "fan/train/section_00_source_train_normal_0000_spd_1000_mic_1.wav" in paths

    groups = collections.defaultdict(list)
    attrs = collections.defaultdict(set)
    for path in paths:
        fields = path.stem.split("_")
        assert fields[:2] == ["section", "00"]
        domain, split, label, index = fields[2:6]
        assert domain in ("source", "target") and label in ("normal", "anomaly")
        assert split == path.parent.name and path.parent.parent.parent == tmp_path
        assert len(index) == 4 and index.isdigit()
        tokens = fields[6:]
        assert tokens and len(tokens) % 2 == 0
        keys = tokens[::2]
        assert all(key.isalpha() and key.islower() for key in keys)
        groups[path.parent.parent.name, domain, split, label].append(int(index))
        attrs[path.parent.parent.name, domain, split].add(tuple(tokens))

        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert info.frames == 8000
        assert np.abs(sf.read(path, dtype="int16")[0]).max() > 1000

    expected = {("source", "train", "normal"): 6, ("target", "train", "normal"): 2}
    expected.update({(d, "test", label): 2 for d in ("source", "target") for label in ("normal", "anomaly")})
    for machine in SMALL.machines:
        for key, count in expected.items():
            assert sorted(groups[(machine,) + key]) == list(range(count)), (machine, key)
        # a domain's test clips use that domain's conditions, and the domains differ
        for domain in ("source", "target"):
            assert attrs[machine, domain, "test"] <= attrs[machine, domain, "train"]
        assert not attrs[machine, "source", "train"] & attrs[machine, "target", "train"]


def test_same_options_same_bytes_and_subsets_agree(tmp_path):
    first = _bytes(synth.generate(tmp_path / "a", SMALL), tmp_path / "a")
    again = _bytes(synth.generate(tmp_path / "b", SMALL), tmp_path / "b")
    assert first == again

    valve_only = dataclasses.replace(SMALL, machines=("valve",))
    subset = _bytes(synth.generate(tmp_path / "c", valve_only), tmp_path / "c")
    assert subset and subset == {rel: data for rel, data in first.items() if rel.parts[0] == "valve"}

    reseeded = dataclasses.replace(SMALL, seed=1)
    other = _bytes(synth.generate(tmp_path / "d", reseeded), tmp_path / "d")
    assert other.keys() == first.keys()
    assert all(other[rel] != first[rel] for rel in first)


def test_speed_attribute_sets_the_blade_pass_frequency(tmp_path):
    paths = synth.generate(tmp_path, dataclasses.replace(SMALL, machines=("fan",)))
    freqs = np.fft.rfftfreq(8000, 1 / 16000)
    band = (freqs > 60) & (freqs < 400)
    for path in paths:
        if "_normal_" in path.name:
            rpm = int(path.stem.split("_spd_")[1].split("_")[0])
            x = sf.read(path)[0]
            spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
            assert freqs[band][spectrum[band].argmax()] == pytest.approx(6 * rpm / 60, rel=0.03)  # six blades


def test_rerun_skips_existing_files_and_is_complete(tmp_path, capsys):
    assert not synth.is_complete(tmp_path, SMALL)
    paths = synth.generate(tmp_path, SMALL)
    assert synth.is_complete(tmp_path, SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in paths}

    missing = paths[3]
    original = missing.read_bytes()
    missing.unlink()
    assert not synth.is_complete(tmp_path, SMALL)

    assert synth.generate(tmp_path, SMALL, progress=True) == paths
    assert "synth" in capsys.readouterr().err
    assert missing.read_bytes() == original
    assert all(p.stat().st_mtime_ns == stamps[p] for p in paths if p != missing)
    assert synth.is_complete(tmp_path, SMALL)
    assert not synth.is_complete(tmp_path, dataclasses.replace(SMALL, n_test=12))


def test_failed_write_cleans_up_and_rerun_completes(tmp_path, monkeypatch):
    reference = _bytes(synth.generate(tmp_path / "ref", SMALL), tmp_path / "ref")
    root = tmp_path / "run"
    real_write = sf.write
    calls, lock = [0], threading.Lock()

    def failing_write(file, data, *args, **kwargs):
        with lock:
            calls[0] += 1
            fail = calls[0] == 5
        if fail:
            real_write(file, data[: len(data) // 2], *args, **kwargs)
            raise OSError("disk full")
        real_write(file, data, *args, **kwargs)

    monkeypatch.setattr(synth.sf, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        synth.generate(root, SMALL)
    left = _wavs(root)
    assert left and all(p.suffix == ".wav" for p in left)  # no temporary files either
    assert all(p.read_bytes() == reference[p.relative_to(root)] for p in left)
    assert not synth.is_complete(root, SMALL)

    monkeypatch.setattr(synth.sf, "write", real_write)
    synth.generate(root, SMALL)
    assert _bytes(_wavs(root), root) == reference


def test_crash_mid_write_leaves_no_partial_clip(tmp_path):
    reference = _bytes(synth.generate(tmp_path / "ref", SMALL), tmp_path / "ref")
    root = tmp_path / "run"
    # a hard exit half way through writing a file, so no cleanup code runs
    script = textwrap.dedent(f"""
        import itertools, os, sys
        import soundfile
        from asd_datasets import synth
        real_write, calls = soundfile.write, itertools.count(1)
        def crashing_write(file, data, *args, **kwargs):
            if next(calls) == 5:
                real_write(file, data[: len(data) // 2], *args, **kwargs)
                os._exit(3)
            real_write(file, data, *args, **kwargs)
        soundfile.write = crashing_write
        synth.generate(sys.argv[1], synth.SynthOptions(**{dataclasses.asdict(SMALL)!r}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", script, str(root)], env=env).returncode == 3

    files = _wavs(root)
    clips = [p for p in files if p.suffix == ".wav"]
    assert clips and len(clips) < len(files)  # the half-written file exists, under another name
    assert all(p.read_bytes() == reference[p.relative_to(root)] for p in clips)
    assert not synth.is_complete(root, SMALL)
    synth.generate(root, SMALL)
    assert synth.is_complete(root, SMALL)
    assert {p.relative_to(root): p.read_bytes() for p in _wavs(root) if p.suffix == ".wav"} == reference


@pytest.mark.parametrize("changes, message", [
    ({"machines": ("fan", "blender")}, r"blender.*available: fan, pump, gearbox, valve"),
    ({"n_test": 10}, "divisible by 4"),
    ({"n_test": -4}, "n_test"),
    ({"n_train_source": -1}, "n_train_source"),
    ({"n_train_target": -1}, "n_train_target"),
    ({"clip_seconds": 0.0}, "clip_seconds"),
])
def test_bad_options_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        synth.SynthOptions(**changes)


def _embed(paths):
    """Time-averaged magnitude spectrum pooled into 64 mel-spaced bands, L2-normalised."""
    window, hop = np.hanning(1024), 512
    freqs = np.fft.rfftfreq(1024, 1 / 16000)
    edges = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 65)[:-1] / 2595) - 1)
    starts = np.searchsorted(freqs, edges)
    out = []
    for path in paths:
        x = sf.read(path)[0]
        frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::hop] * window
        bands = np.add.reduceat(np.abs(np.fft.rfft(frames)).mean(0), starts)
        out.append(bands / np.linalg.norm(bands))
    return np.array(out)


@pytest.mark.parametrize("machine", synth.MACHINE_TYPES)
def test_anomalies_are_detectable_but_not_trivial(tmp_path, machine):
    options = synth.SynthOptions(machines=(machine,), n_train_source=60, n_train_target=6, n_test=80,
                                 clip_seconds=1.0)
    paths = synth.generate(tmp_path, options)
    train = [p for p in paths if p.parent.name == "train"]
    test = [p for p in paths if p.parent.name == "test"]
    distances = np.linalg.norm(_embed(test)[:, None] - _embed(train)[None], axis=-1)
    is_source = np.array(["_source_" in p.name for p in train])
    scores = np.minimum(distances[:, is_source].min(1), distances[:, ~is_source].min(1))
    anomalous = np.array(["_anomaly_" in p.name for p in test])
    source = np.array(["_source_" in p.name for p in test])

    auc_source = roc_auc_score(anomalous[source | anomalous], scores[source | anomalous])
    auc_all = roc_auc_score(anomalous, scores)
    assert auc_source > 0.6
    assert 0.55 < auc_all < 0.97
