from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asd_datasets import synth
from asd_datasets.layout import ParsedName, parse_name
from asdcore import ANOMALY, NORMAL, SOURCE, TARGET, AudioError, Clip, ConfigError, DatasetError, fit_length

SR = 16000
OPTIONS = synth.SynthOptions(machines=("fan", "valve"), n_train_source=3, n_train_target=1, n_test=4,
                             clip_seconds=0.5)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    synth.generate(root, OPTIONS)
    return root


def dataset(registry, root, **params):
    return registry.create("datasets", "synth", params={"root": str(root), "generate": False, "clip_seconds": 0.5,
                                                        **params})


@pytest.mark.parametrize(("name", "expected"), [
    ("section_00_source_train_normal_0000_m-n_X.wav", ParsedName(0, SOURCE, "train", NORMAL, "0000", "m-n_X")),
    ("section_00_target_test_anomaly_0012_car_B1_spd_31V_mic_1.wav",
     ParsedName(0, TARGET, "test", ANOMALY, "0012", "car_B1_spd_31V_mic_1")),
    ("section_00_source_test_normal_0049_vel_6_loc_A.wav", ParsedName(0, SOURCE, "test", NORMAL, "0049", "vel_6_loc_A")),
    ("section_03_target_train_normal_0007_noAttribute.wav",
     ParsedName(3, TARGET, "train", NORMAL, "0007", "noAttribute")),
    ("section_01_source_train_normal_0991.wav", ParsedName(1, SOURCE, "train", NORMAL, "0991", "")),
    ("section_00_source_train_normal_0000_car_A1_spd_1_mic_2_mic_1.wav",
     ParsedName(0, SOURCE, "train", NORMAL, "0000", "car_A1_spd_1_mic_2_mic_1")),
    ("section_00_target_test_normal_0003_pro_y.wav", ParsedName(0, TARGET, "test", NORMAL, "0003", "pro_y")),
    ("section_00_target_test_anomaly_0003_pro_Y.wav", ParsedName(0, TARGET, "test", ANOMALY, "0003", "pro_Y")),
])
def test_parse_name(name, expected):
    assert parse_name(Path("/data/fan/train") / name) == expected
    assert parse_name(name) == expected


@pytest.mark.parametrize("name", [
    "section_00_0000.wav",
    "section_xx_source_train_normal_0000.wav",
    "section_00_other_train_normal_0000.wav",
    "section_00_source_valid_normal_0000.wav",
    "section_00_source_train_abnormal_0000.wav",
    "section_00_source_train_normal.wav",
    "sec_00_source_train_normal_0000.wav",
    "normal_id_00_00000000.wav",
    "section_00_source_train_normal__x.wav",
    "section_-1_source_train_normal_0000.wav",
])
def test_malformed_names_raise_dataset_error(name):
    with pytest.raises(DatasetError) as info:
        parse_name(Path("/data/fan/train") / name)
    assert f"/data/fan/train/{name}" in str(info.value)


def test_entry_point_registers_synth(registry):
    assert registry.get("datasets", "synth").distribution == "asd-datasets"


def test_machines(registry, root):
    assert dataset(registry, root).machines() == ["fan", "valve"]
    assert dataset(registry, root, machines=["valve"]).machines() == ["valve"]


@pytest.mark.parametrize("machine", ["pump", "fann"])
def test_unknown_machine_lists_allowed(registry, root, machine):
    with pytest.raises(ConfigError) as info:
        dataset(registry, root, machines=["fan", machine]).machines()
    message = str(info.value)
    assert "dataset.machines" in message and repr(machine) in message and "allowed: fan, valve" in message


def test_unknown_synthetic_machine_on_prepare(registry, tmp_path):
    with pytest.raises(ConfigError, match="drill") as info:
        dataset(registry, tmp_path / "new", machines=["drill"], generate=True).prepare(progress=False)
    assert all(m in str(info.value) for m in synth.MACHINE_TYPES)
    assert not (tmp_path / "new").exists()


def test_clips_with_metadata(registry, root):
    ds = dataset(registry, root)
    train, test = ds.clips("fan", "train"), ds.clips("fan", "test")
    assert [c.domain for c in train] == [SOURCE] * 3 + [TARGET]
    assert {c.is_anomaly for c in train} == {NORMAL}
    assert sorted((c.domain, c.is_anomaly) for c in test) == [
        (SOURCE, NORMAL), (SOURCE, ANOMALY), (TARGET, NORMAL), (TARGET, ANOMALY)]
    for clip, split in [(c, "train") for c in train] + [(c, "test") for c in test]:
        assert clip.path.parent == root / "fan" / split and clip.path.is_file()
        assert (clip.machine, clip.split, clip.section, clip.subset) == ("fan", split, 0, "dev")
        assert clip.attribute.startswith("spd_") and "_mic_" in clip.attribute
    assert train[0].name == "section_00_source_train_normal_0000_spd_1000_mic_1.wav"
    assert train[0].attribute == "spd_1000_mic_1"
    assert ds.subsets("valve") == {0: "dev"}


def test_clip_in_wrong_split_folder(registry, tmp_path):
    folder = tmp_path / "fan" / "train"
    folder.mkdir(parents=True)
    sf.write(folder / "section_00_source_test_normal_0000.wav", np.zeros(10), SR)
    with pytest.raises(DatasetError, match="test file in the train folder"):
        dataset(registry, tmp_path).clips("fan", "train")
    with pytest.raises(DatasetError, match="missing folder"):
        dataset(registry, tmp_path).clips("fan", "test")


def test_missing_root_without_generation(registry, tmp_path):
    missing = tmp_path / "nowhere"
    ds = dataset(registry, missing)
    with pytest.raises(DatasetError, match=str(missing)):
        ds.prepare(progress=False)
    with pytest.raises(DatasetError, match=str(missing)):
        ds.machines()
    assert not missing.exists()


def test_prepare_generates_missing_clips(registry, tmp_path):
    ds = dataset(registry, tmp_path / "gen", machines=["valve"], generate=True, n_train_source=2, n_train_target=1,
                 n_test=4)
    ds.prepare(progress=False)
    assert ds.machines() == ["valve"]
    assert len(ds.clips("valve", "train")) == 3 and len(ds.clips("valve", "test")) == 4


def test_read_generated_clip(registry, root):
    ds = dataset(registry, root)
    clip = ds.clips("fan", "test")[0]
    wave = ds.read(clip)
    assert wave.dtype == np.float32 and wave.shape == (8000,)
    np.testing.assert_array_equal(wave, sf.read(clip.path, dtype="float32")[0])


def clip_at(path):
    return Clip(path, "fan", "test", 0, SOURCE, NORMAL)


def test_short_clip_is_tiled_and_long_clip_cropped(registry, root, tmp_path):
    ds = dataset(registry, root)
    short = np.linspace(-0.5, 0.5, 3000, dtype=np.float32)
    sf.write(tmp_path / "short.wav", short, SR, subtype="FLOAT")
    np.testing.assert_array_equal(ds.read(clip_at(tmp_path / "short.wav")), np.concatenate([short] * 3)[:8000])
    long = np.random.default_rng(0).uniform(-0.5, 0.5, 12000).astype(np.float32)
    sf.write(tmp_path / "long.wav", long, SR, subtype="FLOAT")
    np.testing.assert_array_equal(ds.read(clip_at(tmp_path / "long.wav")), long[:8000])


def test_fit_length():
    np.testing.assert_array_equal(fit_length(np.arange(3), 7), [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(fit_length(np.arange(3), 4, offset=2), [2, 0, 1, 2])
    np.testing.assert_array_equal(fit_length(np.arange(10), 4, offset=3), [3, 4, 5, 6])


def write_corrupt(path, valid):
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)


def write_8k(path, valid):
    sf.write(path, np.zeros(4000, dtype=np.float32), 8000)


def write_stereo(path, valid):
    sf.write(path, np.zeros((8000, 2), dtype=np.float32), SR)


def write_empty(path, valid):
    path.write_bytes(b"")


@pytest.mark.parametrize(("write", "message"), [
    (write_corrupt, "cannot read audio"),
    (write_8k, "sample rate 8000 Hz"),
    (write_stereo, "2 channels"),
    (write_empty, "cannot read audio"),
])
def test_bad_audio_raises_audio_error_naming_the_file(registry, root, tmp_path, write, message):
    ds = dataset(registry, root)
    path = tmp_path / "fan" / "test" / "section_00_source_test_normal_0000.wav"
    path.parent.mkdir(parents=True)
    write(path, ds.clips("fan", "test")[0].path)
    with pytest.raises(AudioError, match=message) as info:
        ds.read(clip_at(path))
    assert str(path) in str(info.value)


def test_missing_audio_file(registry, root, tmp_path):
    with pytest.raises(AudioError) as info:
        dataset(registry, root).read(clip_at(tmp_path / "gone.wav"))
    assert str(tmp_path / "gone.wav") in str(info.value)


@pytest.mark.parametrize("keep", [44, 45, 4001, -100, -1])
def test_truncated_wav_raises_audio_error(registry, root, tmp_path, keep):
    ds = dataset(registry, root)
    data = ds.clips("fan", "train")[0].path.read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[:keep])
    with pytest.raises(AudioError, match="truncated audio file") as info:
        ds.read(clip_at(path))
    assert str(path) in str(info.value)
