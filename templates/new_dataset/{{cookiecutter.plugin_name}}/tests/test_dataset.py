import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asdcore
from asdcore.testing import check_dataset, run_cli
from {{ cookiecutter.package_name }}.{{ cookiecutter.dataset_name }} import {{ cookiecutter.class_name }}

NAME = "{{ cookiecutter.dataset_name }}"


def tone(path: Path, freq: float, seconds: float = 0.25, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(rate * seconds)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two machine types, each with three normal training clips and two normal and two anomalous test clips."""
    for machine, base in (("fan", 300.0), ("pump", 500.0)):
        for i in range(3):
            tone(tmp_path / machine / "train" / f"normal_{i}.wav", base + i)
        for i in range(2):
            tone(tmp_path / machine / "test" / f"normal_{i}.wav", base + i)
            tone(tmp_path / machine / "test" / f"anomaly_{i}.wav", 3 * base, seconds=0.5)
    return tmp_path


def dataset(root: Path, **params) -> asdcore.Dataset:
    return asdcore.create("datasets", NAME, root=str(root), **params)


def test_entry_point_registers_the_dataset(root):
    assert NAME in asdcore.registered("datasets")
    assert isinstance(dataset(root), {{ cookiecutter.class_name }})


def test_conformance(root):
    check_dataset(NAME, {"root": str(root)})


def test_listing_and_labels(root):
    data = dataset(root)
    assert (data.id, data.scorer, data.sample_rate) == (NAME, "hmean", 16000)
    assert data.machines() == ["fan", "pump"]
    test = data.clips("pump", "test")
    assert [(clip.name, clip.is_anomaly) for clip in test] == [
        ("anomaly_0.wav", asdcore.ANOMALY), ("anomaly_1.wav", asdcore.ANOMALY),
        ("normal_0.wav", asdcore.NORMAL), ("normal_1.wav", asdcore.NORMAL)]
    assert {(clip.machine, clip.split, clip.section, clip.domain) for clip in test} == {("pump", "test", 0, asdcore.SOURCE)}
    train = data.clips("fan", "train")
    assert [clip.path for clip in train] == [root / "fan" / "train" / f"normal_{i}.wav" for i in range(3)]
    assert {clip.is_anomaly for clip in train} == {asdcore.NORMAL}


def test_machines_param(root):
    assert dataset(root, machines=["pump"]).machines() == ["pump"]
    with pytest.raises(asdcore.ConfigError, match="unknown machine type 'valve'"):
        dataset(root, machines=["valve"]).machines()


def test_clip_length_and_load(root):
    data = dataset(root)
    assert data.clip_seconds == 0.25 and data.clip_samples == 4000  # the longest training clip
    assert dataset(root, clip_seconds=1.5).clip_samples == 24000
    wave = data.load(data.clips("fan", "test")[0])
    assert wave.dtype == np.float32 and wave.shape == (8000,)


@pytest.mark.parametrize(("name", "message"), [
    ("fan/test/recording.wav", "the file name must start with 'normal_' or 'anomaly_'"),
    ("fan/train/anomaly_9.wav", "training clips must be normal"),
])
def test_badly_named_files_are_errors_naming_them(root, name, message):
    tone(root / name, 300.0)
    with pytest.raises(asdcore.DatasetError) as info:
        dataset(root).prepare()
    assert str(root / name) in str(info.value) and message in str(info.value)


def test_missing_folders_are_errors_naming_them(tmp_path):
    with pytest.raises(asdcore.DatasetError) as info:
        dataset(tmp_path / "none").prepare()
    assert f"dataset root '{tmp_path / 'none'}' does not exist" in str(info.value)
    tone(tmp_path / "fan" / "train" / "normal_0.wav", 300.0)
    with pytest.raises(asdcore.DatasetError) as info:
        dataset(tmp_path).prepare()
    assert f"missing folder '{tmp_path / 'fan' / 'test'}'" in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rate": 22050}, "sample rate 22050 Hz, expected 16000 Hz"),
    ({"channels": 2}, "2 channels, expected mono"),
])
def test_unusable_audio_is_an_error_naming_the_file(root, kwargs, message):
    path = tone(root / "fan" / "test" / "normal_7.wav", 300.0, **kwargs)
    data = dataset(root)
    [clip] = [clip for clip in data.clips("fan", "test") if clip.path == path]
    with pytest.raises(asdcore.AudioError) as info:
        data.load(clip)
    assert str(path) in str(info.value) and message in str(info.value)


def test_scores_a_pipeline(root):
    """A whole run with the toy frontend and backend of asdcore.testing, ending with the official score table."""
    outside = root.parent / f"{root.name}-run"  # not a machine type folder of the dataset
    outside.mkdir()
    pipeline = outside / "pipeline.yaml"
    pipeline.write_text(json.dumps({
        "name": "probe", "dataset": {"name": NAME, "root": str(root)},
        "frontend": {"name": "toy", "params": {"bins": 8}}, "backends": [{"name": "toy"}],
        "evaluation": {"plots": False}, "output": str(outside / "results"), "seeds": [0],
    }))  # JSON is YAML
    result = run_cli("-q", "run", pipeline, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "| toy |" in result.output
    run = outside / "results" / "probe" / NAME / "seed0"
    assert sorted(p.name for p in run.glob("*/toy/anomaly_score_*_test.csv")) == [
        "anomaly_score_fan_section_00_test.csv", "anomaly_score_pump_section_00_test.csv"]
