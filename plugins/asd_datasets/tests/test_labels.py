import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asd_datasets.labels import LabelSet, build_labels, labels_command, variant_fields
from asdcore.errors import DatasetError

# One line per distinct (year, machine, split, section, domain, attribute) of the real DCASE 2023
# and 2024 train/test file lists: enough to reproduce their class structure.
CLASSES = Path(__file__).parent / "data" / "dcase2023_2024_classes.tsv.gz"


def touch(root: Path, year: int, machine: str, split: str, name: str) -> None:
    path = root / "formatted" / f"dcase{year}" / "raw" / machine / split / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def name(section: int, domain: str, split: str, index: int, attribute: str = "", label: str = "normal") -> str:
    suffix = f"_{attribute}" if attribute else ""
    return f"section_{section:02d}_{domain}_{split}_{label}_{index:04d}{suffix}.wav"


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    """Empty .wav files with the class structure of the real 2023 and 2024 lists."""
    root = tmp_path_factory.mktemp("data")
    for i, line in enumerate(gzip.open(CLASSES, "rt")):
        year, machine, split, section, domain, attribute = line.rstrip("\n").split("\t")
        touch(root, int(year), machine, split, name(int(section), domain, split, i, attribute))
    return root


@pytest.mark.parametrize(("year", "main", "machine_section"), [(2023, (187, 167, 187), 14),
                                                                (2024, (225, 148, 223), 16)])
def test_reference_class_counts(real_tree, year, main, machine_section):
    labels = build_labels(year, real_tree)
    assert (labels.num_class, labels.num_class_train, labels.num_class_test) == main
    assert build_labels(year, real_tree, variant_fields(year, "machine_section")).num_class == machine_section


def test_2024_train_classes_per_machine(real_tree):
    labels = build_labels(2024, real_tree)
    train = {labels.classes[i].split("---")[0] for p, i in labels.path2idx.items() if "/train/" in p}
    assert len(train) == 16
    brushless = {c for c in labels.classes if c.startswith("BrushlessMotor---")}
    assert len(brushless) == 53 and "BrushlessMotor---0---noAttribute---0" in brushless


def test_2020_machine_ids(tmp_path):
    ids = {m: range(7) for m in ("fan", "pump", "slider", "valve")} | {"ToyCar": range(1, 8),
                                                                     "ToyConveyor": range(1, 7)}
    for machine, sections in ids.items():
        for s in sections:
            touch(tmp_path, 2020, machine, "train", name(s, "source", "train", 0))
            touch(tmp_path, 2020, machine, "test", name(s, "source", "test", 0, label="anomaly"))
    labels = build_labels(2020, tmp_path)
    assert (labels.num_class, labels.num_class_train, labels.num_class_test) == (41, 41, 41)
    assert labels.classes[:3] == ["ToyCar---1", "ToyCar---2", "ToyCar---3"]


def test_2021_test_names_without_attributes_form_their_own_classes(tmp_path):
    for machine in ("fan", "gearbox"):
        for section in (0, 3):
            for domain in ("source", "target"):
                for i, attribute in enumerate(("a_1", "a_2")):
                    touch(tmp_path, 2021, machine, "train", name(section, domain, "train", i, attribute))
                touch(tmp_path, 2021, machine, "test", name(section, domain, "test", 0))
                touch(tmp_path, 2021, machine, "test", name(section, domain, "test", 1, label="anomaly"))
    labels = build_labels(2021, tmp_path)
    assert (labels.num_class, labels.num_class_train, labels.num_class_test) == (24, 16, 8)
    assert "fan---3------1" in labels.classes
    assert build_labels(2021, tmp_path, variant_fields(2021, "machine_section")).num_class == 4


def test_2022_ids_paths_and_train_only(tmp_path):
    touch(tmp_path, 2022, "fan", "train", name(0, "source", "train", 0, "m-n_W"))
    touch(tmp_path, 2022, "fan", "train", name(0, "target", "train", 1, "m-n_X"))
    touch(tmp_path, 2022, "fan", "test", name(0, "source", "test", 0, "m-n_W"))
    touch(tmp_path, 2022, "fan", "test", name(0, "target", "test", 1, "m-n_Y", "anomaly"))
    touch(tmp_path, 2022, "bearing", "train", name(3, "source", "train", 0, "vel_6"))
    labels = build_labels(2022, tmp_path)
    assert labels.classes == ["bearing---3---vel_6---0", "fan---0---m-n_W---0", "fan---0---m-n_X---1",
                              "fan---0---m-n_Y---1"]
    assert (labels.num_class, labels.num_class_train, labels.num_class_test) == (4, 3, 2)
    assert labels.path2idx["dcase2022/raw/fan/test/section_00_target_test_anomaly_0001_m-n_Y.wav"] == 3
    assert labels.path2idx["dcase2022/raw/bearing/train/section_03_source_train_normal_0000_vel_6.wav"] == 0
    train_only = build_labels(2022, tmp_path, include_test=False)
    assert train_only.num_class == 3
    assert train_only.path2idx["dcase2022/raw/fan/test/section_00_target_test_anomaly_0001_m-n_Y.wav"] == -1
    assert train_only.path2idx["dcase2022/raw/fan/test/section_00_source_test_normal_0000_m-n_W.wav"] == 1


def test_2025_supplemental_is_ignored(tmp_path):
    touch(tmp_path, 2025, "fan", "train", name(0, "source", "train", 0, "noAttribute"))
    touch(tmp_path, 2025, "fan", "supplemental", "section_00_machine_0001_.wav")
    labels = build_labels(2025, tmp_path)
    assert labels.num_class == 1 and len(labels.path2idx) == 1


def test_2026_attribute_strings_are_opaque_and_case_sensitive(tmp_path):
    touch(tmp_path, 2026, "ToyCarEmu", "train", name(0, "source", "train", 0, "car_A1_spd_1_mic_2_mic_1"))
    touch(tmp_path, 2026, "ToyCarEmu", "train", name(0, "source", "train", 1, "car_A1_spd_1_mic_1_mic_2"))
    touch(tmp_path, 2026, "gearboxEmu", "train", name(0, "target", "train", 0, "pro_Y"))
    touch(tmp_path, 2026, "gearboxEmu", "test", name(0, "target", "test", 0, "pro_y"))
    touch(tmp_path, 2026, "gearboxEmu", "test", name(0, "target", "test", 1, "pro_Y", "anomaly"))
    touch(tmp_path, 2026, "bearingEmu", "train", name(0, "source", "train", 0, "noAttribute"))
    labels = build_labels(2026, tmp_path)
    assert labels.classes == [
        "ToyCarEmu---0---car_A1_spd_1_mic_1_mic_2---0", "ToyCarEmu---0---car_A1_spd_1_mic_2_mic_1---0",
        "bearingEmu---0---noAttribute---0", "gearboxEmu---0---pro_Y---1", "gearboxEmu---0---pro_y---1"]
    assert (labels.num_class_train, labels.num_class_test) == (4, 2)
    assert build_labels(2026, tmp_path, include_test=False).path2idx[
        "dcase2026/raw/gearboxEmu/test/section_00_target_test_normal_0000_pro_y.wav"] == -1


def test_save_is_json(tmp_path):
    labels = LabelSet(["a", "b"], {"x.wav": 1}, 2, 1)
    labels.save(tmp_path / "out" / "main.json")
    data = json.loads((tmp_path / "out" / "main.json").read_text())
    assert data == {"num_class": 2, "num_class_train": 2, "num_class_test": 1, "classes": ["a", "b"],
                    "path2idx_dict": {"x.wav": 1}}
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match="formatted/dcase2023/raw.*asdcore data format --year 2023"):
        build_labels(2023, tmp_path)
    with pytest.raises(ValueError, match="known years: 2020, 2021, 2022, 2023, 2024, 2025"):
        build_labels(2019, tmp_path)
    with pytest.raises(ValueError, match="fields: machine, section, attribute, domain"):
        build_labels(2023, tmp_path, ("machine", "colour"))


def test_command(real_tree, tmp_path):
    runner = CliRunner()
    counts = tmp_path / "counts.json"
    result = runner.invoke(labels_command, ["--year", "2024", "--root", str(real_tree), "--json", str(counts)])
    assert result.exit_code == 0, result.output
    assert "num_class: 225\nclasses seen in training: 148\nclasses seen in test: 223" in result.output
    assert json.loads(counts.read_text()) == {"num_class": 225, "num_class_train": 148, "num_class_test": 223}
    assert json.loads((real_tree / "labels" / "dcase2024" / "main.json").read_text())["num_class"] == 225
    result = runner.invoke(labels_command, ["--year", "2023", "--root", str(real_tree), "--variant",
                                            "machine_section"])
    assert result.exit_code == 0 and "num_class: 14\n" in result.output
    assert (real_tree / "labels" / "dcase2023" / "machine_section.json").is_file()
    result = runner.invoke(labels_command, ["--year", "2023", "--root", str(real_tree), "--train-only"])
    assert result.exit_code == 0 and "num_class: 167\n" in result.output
    assert (real_tree / "labels" / "dcase2023" / "main_train_only.json").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--year", "2022"], "formatted/dcase2022/raw"),
    (["--year", "2019"], "known years: 2020, 2021, 2022, 2023, 2024, 2025"),
])
def test_command_errors(tmp_path, args, message):
    result = CliRunner().invoke(labels_command, [*args, "--root", str(tmp_path)])
    assert result.exit_code == 1 and message in result.output
