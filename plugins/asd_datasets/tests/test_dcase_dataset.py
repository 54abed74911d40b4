import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdcore import ANOMALY, NORMAL, SOURCE, TARGET, ConfigError, DatasetError, Pipeline, load_config
from asdcore.errors import AudioError

SR = 16000


def write(root: Path, year: int, machine: str, split: str, name: str, seed: int = 0) -> Path:
    path = root / "formatted" / f"dcase{year}" / "raw" / machine / split / name
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = np.random.default_rng(seed).normal(0, 0.1, SR // 10) * (3 if "_anomaly_" in name else 1)
    sf.write(path, wave.astype(np.float32), SR)
    return path


def clip_name(section: int, domain: str, split: str, label: str, index: int, attribute: str = "") -> str:
    suffix = f"_{attribute}" if attribute else ""
    return f"section_{section:02d}_{domain}_{split}_{label}_{index:04d}{suffix}.wav"


def fill(root: Path, year: int, machine: str, sections, n_train: int = 2) -> None:
    seed = 0
    for section in sections:
        for domain in ("source", "target"):
            for i in range(n_train):
                seed += 1
                write(root, year, machine, "train", clip_name(section, domain, "train", "normal", i, "a_1"), seed)
            for label in ("normal", "anomaly"):
                for i in range(2):
                    seed += 1
                    write(root, year, machine, "test", clip_name(section, domain, "test", label, i), seed)


def dataset(registry, root, year, **params):
    return registry.create("datasets", "dcase", params={"root": str(root), "year": year, **params})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fill(root, 2021, "fan", (0, 1, 3))
    fill(root, 2021, "valve", (0,))
    (root / "formatted" / "dcase2021" / "raw" / "notes").mkdir()
    (root / "formatted" / "dcase2021" / "raw" / "unknown" / "train").mkdir(parents=True)
    fill(root, 2023, "fan", (0,))
    fill(root, 2023, "bandsaw", (0,))
    fill(root, 2025, "ToyPet", (0,))
    supplemental = root / "formatted" / "dcase2025" / "raw" / "ToyPet" / "supplemental"
    supplemental.mkdir()
    sf.write(supplemental / "section_00_noise_0001.wav", np.zeros(SR // 10, np.float32), SR)
    return root


@pytest.mark.parametrize(("year", "scorer", "seconds"), [(2020, "dcase2020", 11.0), (2021, "dcase2021", 10.0),
                                                         (2022, "dcase2022", 10.0), (2023, "dcase2023", 18.0),
                                                         (2024, "dcase2024", 12.0), (2025, "dcase2025", 12.0)])
def test_year_properties(registry, tmp_path, year, scorer, seconds):
    data = dataset(registry, tmp_path, year)
    assert data.id == f"dcase{year}" and data.scorer == scorer and data.clip_seconds == seconds
    assert data.sample_rate == SR
    assert data.root == tmp_path / "formatted" / f"dcase{year}" / "raw"
    assert load_config(pipeline(tmp_path, year), registry=registry).scorer == scorer


def test_entry_point_registers_dcase(registry):
    assert registry.get("datasets", "dcase").distribution == "asd-datasets"


def test_machines_are_the_years_types_present(registry, root):
    assert dataset(registry, root, 2021).machines() == ["fan", "valve"]
    assert dataset(registry, root, 2021, machines=["valve"]).machines() == ["valve"]
    with pytest.raises(ConfigError, match="'unknown'.*allowed: fan, valve"):
        dataset(registry, root, 2021, machines=["unknown"]).machines()


def test_clips_and_subsets_2021(registry, root):
    data = dataset(registry, root, 2021)
    test = data.clips("fan", "test")
    assert len(test) == 3 * 2 * 4 and len(data.clips("fan", "train")) == 3 * 2 * 2
    by_section = {c.section: c.subset for c in test}
    assert by_section == {0: "dev", 1: "dev", 3: "eval"}
    assert data.subsets("fan") == {0: "dev", 1: "dev", 3: "eval"}
    assert data.subsets("valve") == {0: "dev"}
    first = test[0]
    assert first.path.name == "section_00_source_test_anomaly_0000.wav"
    assert (first.domain, first.is_anomaly, first.split, first.machine) == (SOURCE, ANOMALY, "test", "fan")
    train = data.clips("fan", "train")[-1]
    assert (train.section, train.domain, train.is_anomaly, train.attribute) == (3, TARGET, NORMAL, "a_1")


def test_subset_is_the_machine_types_in_2023(registry, root):
    data = dataset(registry, root, 2023)
    assert data.machines() == ["bandsaw", "fan"]
    assert {c.subset for c in data.clips("bandsaw", "test")} == {"eval"}
    assert {c.subset for c in data.clips("fan", "train")} == {"dev"}
    assert data.subsets("bandsaw") == {0: "eval"} and data.subsets("fan") == {0: "dev"}


def test_read_fits_the_years_clip_length(registry, root):
    data = dataset(registry, root, 2023)
    wave = data.read(data.clips("fan", "test")[0])
    assert wave.dtype == np.float32 and wave.shape == (18 * SR,)


def test_2025_supplemental_is_ignored(registry, root):
    data = dataset(registry, root, 2025)
    data.prepare(progress=False)
    assert data.machines() == ["ToyPet"]
    assert all(c.split == "train" for c in data.clips("ToyPet", "train"))
    assert not [c for s in ("train", "test") for c in data.clips("ToyPet", s) if "supplemental" in str(c.path)]


def test_section_outside_the_year_is_an_error(registry, tmp_path):
    path = write(tmp_path, 2023, "fan", "train", clip_name(1, "source", "train", "normal", 0))
    with pytest.raises(DatasetError, match=f"{path}: section 01 is not a DCASE 2023 section of fan"):
        dataset(registry, tmp_path, 2023).clips("fan", "train")


def test_unknown_year_lists_years(registry, tmp_path):
    with pytest.raises(ConfigError, match="dataset.year.*known years: 2020, 2021, 2022, 2023, 2024, 2025"):
        load_config(pipeline(tmp_path, 2019), registry=registry)


@pytest.mark.parametrize("call", ["prepare", "machines"])
def test_missing_tree_suggests_format(registry, tmp_path, call):
    data = dataset(registry, tmp_path, 2024)
    with pytest.raises(DatasetError) as info:
        getattr(data, call)()
    message = str(info.value)
    assert str(tmp_path / "formatted" / "dcase2024" / "raw") in message
    assert f"asdcore data format --year 2024 --root {tmp_path}" in message


def pipeline(root: Path, year: int, **extra) -> dict:
    return {"name": "dcase_run", "dataset": {"name": "dcase", "root": str(root), "year": year},
            "frontend": {"name": "toy"}, "backends": [{"name": "toy"}], "evaluation": {"plots": False},
            "output": str(root / "results"), "device": "cpu", **extra}


def test_run_2021_through_the_engine(registry, root, tmp_path):
    config = pipeline(root, 2021, output=str(tmp_path))
    out = Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    assert out == tmp_path / "dcase_run" / "dcase2021"
    fan = out / "seed0" / "fan" / "toy"
    assert (fan / "anomaly_score_fan_section_03_target_test.csv").is_file()
    rows = list(csv.DictReader((out / "seed0" / "summary.csv").open()))
    subsets = {r["section"] for r in rows if r["machine"] == "all" and r["metric"] == "official"}
    assert subsets == {"dev", "eval"}


@pytest.mark.parametrize("channels", ["far", "mean", "diff"])
def test_far_channels_of_a_mono_year_name_the_year(registry, root, tmp_path, channels):
    config = {"name": "mono", "dataset": {"name": "dcase", "root": str(root), "year": 2023, "channels": channels},
              "frontend": {"name": "toy"}, "backends": [{"name": "toy"}], "output": str(tmp_path)}
    with pytest.raises(ConfigError, match=rf"dataset.channels: '{channels}' needs two-channel recordings \(near and "
                                          r"far microphones\), but dcase2023 has one channel; use 'near'"):
        load_config(config, registry=registry)


def write_2026(root: Path, machine: str, split: str, name: str, seconds: float, seed: int) -> Path:
    path = root / "formatted" / "dcase2026" / "raw" / machine / split / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).normal(0, 0.1, (int(SR * seconds), 2)).astype(np.float32), SR)
    return path


def test_2026_clips_have_two_channels_and_a_length_per_machine_type(registry, tmp_path):
    lengths = {"ToyCarEmu": 0.3, "Sander": 0.4}
    for seed, (machine, seconds) in enumerate(lengths.items()):
        write_2026(tmp_path, machine, "train", clip_name(0, "source", "train", "normal", 0, "spd_2"), seconds, seed)
        write_2026(tmp_path, machine, "train", clip_name(0, "target", "train", "normal", 0, "spd_1"), seconds / 2, seed)
        write_2026(tmp_path, machine, "test", clip_name(0, "source", "test", "anomaly", 0), seconds, seed)
    data = {choice: dataset(registry, tmp_path, 2026, channels=choice) for choice in ("near", "far", "mean", "diff")}
    assert data["near"].recorded_channels == 2
    assert {m: data["near"].clip_seconds_of(m) for m in lengths} == lengths  # the longest training clip
    clip = data["near"].clips("Sander", "test")[0]
    direct, _ = sf.read(clip.path, dtype="float32", always_2d=True)
    near, far = direct[:, 0], direct[:, 1]
    for choice, expected in {"near": near, "far": far, "mean": (near + far) / 2, "diff": near - far}.items():
        np.testing.assert_allclose(data[choice].load(clip), expected, atol=1e-7)
    np.testing.assert_allclose(data["near"].load(clip, channels="far"), far, atol=1e-7)
    assert len(data["near"].read(data["near"].clips("Sander", "train")[1])) == int(SR * 0.4)  # tiled to 0.4 s


def test_a_mono_file_in_a_2026_tree_names_the_file(registry, tmp_path):
    write_2026(tmp_path, "fan", "train", clip_name(0, "source", "train", "normal", 0, "spd_1"), 0.2, 0)
    path = tmp_path / "formatted" / "dcase2026" / "raw" / "fan" / "test" / clip_name(0, "source", "test", "normal", 0)
    path.parent.mkdir(parents=True)
    sf.write(path, np.zeros(SR // 5, np.float32), SR)
    fan = dataset(registry, tmp_path, 2026)
    with pytest.raises(AudioError, match=rf"{path.name}: 1 channel, expected 2 \(channel 0: near microphone"):
        fan.load(fan.clips("fan", "test")[0])
