"""Formatting tiny hand-built original trees of every DCASE year into the unified layout."""
import os
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from asd_datasets.format import JOURNAL, format_command, format_year
from asd_datasets.layout import parse_name
from asdcore.errors import DatasetError

# original path (under original/dcase<Y>/) -> expected path (under formatted/dcase<Y>/raw/)
TREES = {
    2020: {
        "dev_data/raw/fan/train/normal_id_00_00000000.wav": "fan/train/section_00_source_train_normal_00000000.wav",
        "dev_data/raw/fan/train/normal_id_02_00000001.wav": "fan/train/section_02_source_train_normal_00000001.wav",
        "dev_data/raw/fan/test/normal_id_00_00000000.wav": "fan/test/section_00_source_test_normal_00000000.wav",
        "dev_data/raw/fan/test/anomaly_id_00_00000001.wav": "fan/test/section_00_source_test_anomaly_00000001.wav",
        "eval_data/raw/fan/train/normal_id_01_00000000.wav": "fan/train/section_01_source_train_normal_00000000.wav",
        "eval_data/raw/fan/test/id_01_00000000.wav": "fan/test/section_01_source_test_normal_00000098.wav",
        "eval_data/raw/fan/test/id_01_00000001.wav": "fan/test/section_01_source_test_anomaly_00000064.wav",
    },
    2021: {
        "dev_data/raw/ToyCar/train/section_00_source_train_normal_0000_A1Spd28VMic1.wav":
            "ToyCar/train/section_00_source_train_normal_0000_A1Spd28VMic1.wav",
        "dev_data/raw/ToyCar/train/section_01_target_train_normal_0000_A2Spd31VMic1.wav":
            "ToyCar/train/section_01_target_train_normal_0000_A2Spd31VMic1.wav",
        "dev_data/raw/ToyCar/source_test/section_00_source_test_normal_0000.wav":
            "ToyCar/test/section_00_source_test_normal_0000.wav",
        "dev_data/raw/ToyCar/source_test/section_00_source_test_anomaly_0001.wav":
            "ToyCar/test/section_00_source_test_anomaly_0001.wav",
        "dev_data/raw/ToyCar/target_test/section_00_target_test_normal_0000.wav":
            "ToyCar/test/section_00_target_test_normal_0000.wav",
        "eval_data/raw/ToyCar/train/section_03_source_train_normal_0000_E1Spd28VMic1.wav":
            "ToyCar/train/section_03_source_train_normal_0000_E1Spd28VMic1.wav",
        "eval_data/raw/ToyCar/source_test/section_03_source_test_0000.wav":
            "ToyCar/test/section_03_source_test_anomaly_0000.wav",
        "eval_data/raw/ToyCar/target_test/section_03_target_test_0000.wav":
            "ToyCar/test/section_03_target_test_normal_0000.wav",
    },
    2022: {
        "dev_data/raw/ToyCar/train/section_00_source_train_normal_0000_car_A1_spd_28V_mic_1_noise_1.wav":
            "ToyCar/train/section_00_source_train_normal_0000_car_A1_spd_28V_mic_1_noise_1.wav",
        "dev_data/raw/ToyCar/test/section_01_target_test_anomaly_0000_car_A2_spd_31V_mic_1_noise_1.wav":
            "ToyCar/test/section_01_target_test_anomaly_0000_car_A2_spd_31V_mic_1_noise_1.wav",
        "dev_data/raw/fan/train/section_00_source_train_normal_0000_m-n_W.wav":
            "fan/train/section_00_source_train_normal_0000_m-n_W.wav",
        "dev_data/raw/fan/test/section_00_source_test_normal_0000_m-n_W.wav":
            "fan/test/section_00_source_test_normal_0000_m-n_W.wav",
        "eval_data/raw/ToyCar/train/section_03_source_train_normal_0000_car_E1_spd_28V_mic_1_noise_2.wav":
            "ToyCar/train/section_03_source_train_normal_0000_car_E1_spd_28V_mic_1_noise_2.wav",
        "eval_data/raw/ToyCar/test/section_03_0000.wav":
            "ToyCar/test/section_03_source_test_normal_0000_car_G2_spd_34V_mic_1_noise_6.wav",
        "eval_data/raw/ToyCar/test/section_04_0001.wav":
            "ToyCar/test/section_04_target_test_anomaly_0001_car_F1_spd_31V_mic_1_noise_6.wav",
    },
    2023: {
        "dev_data/raw/fan/train/section_00_source_train_normal_0000_f-n_A.wav":
            "fan/train/section_00_source_train_normal_0000_f-n_A.wav",
        "dev_data/raw/fan/test/section_00_target_test_anomaly_0000_f-n_B.wav":
            "fan/test/section_00_target_test_anomaly_0000_f-n_B.wav",
        "eval_data/raw/bandsaw/train/section_00_source_train_normal_0000_vel_6.wav":
            "bandsaw/train/section_00_source_train_normal_0000_vel_6.wav",
        "eval_data/raw/bandsaw/test/section_00_0000.wav": "bandsaw/test/section_00_source_test_anomaly_0005_vel_15.wav",
        "eval_data/raw/bandsaw/test/section_00_0001.wav": "bandsaw/test/section_00_target_test_normal_0001_vel_9.wav",
    },
    2024: {
        "dev_data/raw/gearbox/train/section_00_source_train_normal_0000_noAttribute.wav":
            "gearbox/train/section_00_source_train_normal_0000_noAttribute.wav",
        "dev_data/raw/gearbox/test/section_00_source_test_normal_0000_noAttribute.wav":
            "gearbox/test/section_00_source_test_normal_0000_noAttribute.wav",
        "eval_data/raw/RoboticArm/train/section_00_target_train_normal_0000_weight35_BckgE.wav":
            "RoboticArm/train/section_00_target_train_normal_0000_weight35_BckgE.wav",
        "eval_data/raw/RoboticArm/test/section_00_0000.wav":
            "RoboticArm/test/section_00_source_test_normal_0035_weight15_BckgF.wav",
        "eval_data/raw/RoboticArm/test/section_00_0001.wav":
            "RoboticArm/test/section_00_target_test_anomaly_0091_weight35_BckgE.wav",
    },
    2025: {
        "dev_data/raw/bearing/train/section_00_source_train_normal_0000_noAttribute.wav":
            "bearing/train/section_00_source_train_normal_0000_noAttribute.wav",
        "dev_data/raw/bearing/test/section_00_source_test_anomaly_0000_noAttribute.wav":
            "bearing/test/section_00_source_test_anomaly_0000_noAttribute.wav",
        "dev_data/raw/bearing/supplemental/section_00_machine_0001_.wav":
            "bearing/supplemental/section_00_machine_0001_.wav",
        "eval_data/raw/AutoTrash/train/section_00_target_train_normal_0000_noAttribute.wav":
            "AutoTrash/train/section_00_target_train_normal_0000_noAttribute.wav",
        "eval_data/raw/AutoTrash/supplemental/section_00_noise_0001_.wav":
            "AutoTrash/supplemental/section_00_noise_0001_.wav",
        "eval_data/raw/AutoTrash/test/section_00_0000.wav":
            "AutoTrash/test/section_00_target_test_anomaly_0012_id_C1_spd_2_mic_2.wav",
    },
    2026: {
        "dev_data/raw/ToyCar/train/section_00_source_train_normal_0000_noAttribute.wav":
            "ToyCar/train/section_00_source_train_normal_0000_noAttribute.wav",
        "dev_data/raw/ToyCar/test/section_00_target_test_anomaly_0199_noAttribute.wav":
            "ToyCar/test/section_00_target_test_anomaly_0199_noAttribute.wav",
        "dev_data/raw/gearboxEmu/train/section_00_target_train_normal_0000_pro_Y.wav":
            "gearboxEmu/train/section_00_target_train_normal_0000_pro_Y.wav",
        "dev_data/raw/gearboxEmu/test/section_00_target_test_normal_0000_pro_y.wav":
            "gearboxEmu/test/section_00_target_test_normal_0000_pro_y.wav",
        "eval_data/raw/ToyDrone/train/section_00_source_train_normal_0000_car_A1_spd_1_mic_2_mic_1.wav":
            "ToyDrone/train/section_00_source_train_normal_0000_car_A1_spd_1_mic_2_mic_1.wav",
        "eval_data/raw/ToyDrone/test/section_00_0000.wav":
            "ToyDrone/test/section_00_source_test_anomaly_0001_car_B2_spd_2_mic_2_mic_1.wav",
        "eval_data/raw/ToyDrone/test/section_00_0001.wav":
            "ToyDrone/test/section_00_target_test_normal_0001_car_C1_spd_3_mic_2_mic_1.wav",
    },
}

# ground-truth folder contents (under original/dcase<Y>/ground_truth/)
GROUND_TRUTH = {
    2020: {"eval_data_list_2020.csv": "fan\nid_01_00000000.wav,normal_id_01_00000098.wav,0\n"
                                      "id_01_00000001.wav,anomaly_id_01_00000064.wav,1\n"},
    2021: {
        "eval_data_list_2021.csv": "ToyCar\nsection_03_source_test_0000.wav,section_03_source_test_anomaly_0000.wav\n"
                                   "section_03_target_test_0000.wav,section_03_target_test_normal_0000.wav\n",
        "ground_truth_data/ground_truth_ToyCar_section_03_source_test.csv": "section_03_source_test_0000.wav,1\n",
        "ground_truth_data/ground_truth_ToyCar_section_03_target_test.csv": "section_03_target_test_0000.wav,0\n",
    },
    2022: {
        "eval_data_list_2022.csv":
            "ToyCar\nsection_03_0000.wav,section_03_source_test_normal_0000_car_G2_spd_34V_mic_1_noise_6.wav\n"
            "section_04_0001.wav,section_04_target_test_anomaly_0001_car_F1_spd_31V_mic_1_noise_6.wav\n",
        "ground_truth_data/ground_truth_ToyCar_section_03_test.csv": "section_03_0000.wav,0\n",
        "ground_truth_data/ground_truth_ToyCar_section_04_test.csv": "section_04_0001.wav,1\n",
        "ground_truth_domain/ground_truth_ToyCar_section_03_test.csv": "section_03_0000.wav,0\n",
        "ground_truth_domain/ground_truth_ToyCar_section_04_test.csv": "section_04_0001.wav,1\n",
    },
    2023: {
        "eval_data_list_2023.csv": "bandsaw\nsection_00_0000.wav,section_00_source_test_anomaly_0005_vel_15.wav\n"
                                   "section_00_0001.wav,section_00_target_test_normal_0001_vel_9.wav\n",
        "ground_truth_data/ground_truth_bandsaw_section_00_test.csv": "section_00_0000.wav,1\nsection_00_0001.wav,0",
        "ground_truth_domain/ground_truth_bandsaw_section_00_test.csv": "section_00_0000.wav,0\nsection_00_0001.wav,1",
        "ground_truth_attributes/ground_truth_bandsaw_section_00_test.csv":
            "section_00_0000.wav,section_00_source_test_anomaly_0005_vel_15\n"
            "section_00_0001.wav,section_00_target_test_normal_0001_vel_9\n",
    },
    2024: {
        "eval_data_list_2024.csv": "RoboticArm\nsection_00_0000.wav,section_00_source_normal_0035_weight15_BckgF.wav\n"
                                   "section_00_0001.wav,section_00_target_test_anomaly_0091_weight35_BckgE.wav\n",
        "ground_truth_data/ground_truth_RoboticArm_section_00_test.csv": "section_00_0000.wav,0\nsection_00_0001.wav,1",
        "ground_truth_domain/ground_truth_RoboticArm_section_00_test.csv":
            "section_00_0000.wav,0\nsection_00_0001.wav,1",
    },
    2025: {
        "eval_data_list_2025.csv":
            "AutoTrash\nsection_00_0000.wav,section_00_target_test_anomaly_0012_id_C1_spd_2_mic_2.wav\n",
    },
    2026: {  # no eval list: names from the attribute files (2 columns, no .wav, not sorted)
        "ground_truth_data/ground_truth_ToyDrone_section_00_test.csv":
            "section_00_0001.wav,0\nsection_00_0000.wav,1\n",
        "ground_truth_domain/ground_truth_ToyDrone_section_00_test.csv":
            "section_00_0001.wav,1\nsection_00_0000.wav,0\n",
        "ground_truth_attributes/ground_truth_ToyDrone_section_00_test.csv":
            "section_00_0001.wav,section_00_target_test_normal_0001_car_C1_spd_3_mic_2_mic_1\n"
            "section_00_0000.wav,section_00_source_test_anomaly_0001_car_B2_spd_2_mic_2_mic_1\n",
    },
}


def build(root: Path, year: int, subsets=("dev_data", "eval_data"), ground_truth=True) -> dict[str, str]:
    """Write the tiny original tree of ``year`` (each file holds its own original path); the expected result."""
    original = root / "original" / f"dcase{year}"
    expected = {}
    for rel, formatted in TREES[year].items():
        if rel.split("/")[0] in subsets:
            write(original / rel, rel)
            expected[formatted] = rel
    for rel, text in GROUND_TRUTH[year].items() if ground_truth else ():
        write(original / "ground_truth" / rel, text)
    return expected


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def formatted(root: Path, year: int) -> dict[str, str]:
    """Formatted file (relative to formatted/dcase<Y>/raw) -> its content, i.e. its original path."""
    raw = root / "formatted" / f"dcase{year}" / "raw"
    return {p.relative_to(raw).as_posix(): p.read_text() for p in raw.rglob("*.wav")}


def original_wavs(root: Path, year: int) -> list[Path]:
    return sorted((root / "original" / f"dcase{year}").rglob("*.wav"))


@pytest.mark.parametrize("year", sorted(TREES))
def test_symlinks_every_year(tmp_path, year):
    expected = build(tmp_path, year)
    report = format_year(year, tmp_path, progress=False)
    assert formatted(tmp_path, year) == expected
    raw = tmp_path / "formatted" / f"dcase{year}" / "raw"
    for rel, original in expected.items():
        link = raw / rel
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.resolve() == (tmp_path / "original" / f"dcase{year}" / original).resolve()
        if "/supplemental/" not in rel:
            parse_name(link)
    assert report.total == report.created == len(expected) and report.skipped == 0
    assert len(original_wavs(tmp_path, year)) == len(expected)


@pytest.mark.parametrize("year", sorted(TREES))
def test_move_every_year(tmp_path, year):
    expected = build(tmp_path, year)
    report = format_year(year, tmp_path, mode="move", progress=False)
    assert formatted(tmp_path, year) == expected
    raw = tmp_path / "formatted" / f"dcase{year}" / "raw"
    assert not any(p.is_symlink() for p in raw.rglob("*.wav"))
    assert original_wavs(tmp_path, year) == []
    assert (tmp_path / "formatted" / f"dcase{year}" / JOURNAL).is_file()
    assert report.created == len(expected)


def test_report_counts_and_renamed_eval_files(tmp_path):
    build(tmp_path, 2021)
    report = format_year(2021, tmp_path, progress=False)
    assert report.counts == {"ToyCar": {"train": 3, "test": 5}}
    assert sorted((r.original, r.unified) for r in report.renamed) == [
        ("section_03_source_test_0000.wav", "section_03_source_test_anomaly_0000.wav"),
        ("section_03_target_test_0000.wav", "section_03_target_test_normal_0000.wav")]
    assert report.corrections == []
    assert "2 eval test files renamed" in report.summary()


def test_2020_ids_become_sections(tmp_path):
    build(tmp_path, 2020)
    report = format_year(2020, tmp_path, progress=False)
    assert {(r.original, r.unified) for r in report.renamed} == {
        ("id_01_00000000.wav", "section_01_source_test_normal_00000098.wav"),
        ("id_01_00000001.wav", "section_01_source_test_anomaly_00000064.wav")}


def test_evaluator_wins_over_the_list(tmp_path):
    expected = build(tmp_path, 2022)
    truth = tmp_path / "original" / "dcase2022" / "ground_truth"
    write(truth / "ground_truth_data" / "ground_truth_ToyCar_section_03_test.csv", "section_03_0000.wav,1\n")
    write(truth / "ground_truth_domain" / "ground_truth_ToyCar_section_04_test.csv", "section_04_0001.wav,0\n")
    report = format_year(2022, tmp_path, progress=False)
    names = set(formatted(tmp_path, 2022))
    assert "ToyCar/test/section_03_source_test_anomaly_0000_car_G2_spd_34V_mic_1_noise_6.wav" in names
    assert "ToyCar/test/section_04_source_test_anomaly_0001_car_F1_spd_31V_mic_1_noise_6.wav" in names
    assert len(names) == len(expected)
    assert {(c.file, c.reasons) for c in report.corrections} == {("section_03_0000.wav", ("label",)),
                                                                ("section_04_0001.wav", ("domain",))}


def test_roboticarm_name_without_split_token(tmp_path):
    build(tmp_path, 2024)
    report = format_year(2024, tmp_path, progress=False)
    assert report.corrections == [
        ("RoboticArm", "section_00_0000.wav", "section_00_source_normal_0035_weight15_BckgF.wav",
         "section_00_source_test_normal_0035_weight15_BckgF.wav", ("split token",))]


def test_attribute_files_name_what_the_list_lacks(tmp_path):
    expected = build(tmp_path, 2023)
    write(tmp_path / "original" / "dcase2023" / "ground_truth" / "eval_data_list_2023.csv",
          "bandsaw\nsection_00_0000.wav,section_00_source_test_anomaly_0005_vel_15.wav\n")
    format_year(2023, tmp_path, progress=False)
    assert formatted(tmp_path, 2023) == expected


def test_given_ground_truth_folder(tmp_path):
    expected = build(tmp_path, 2025)
    default = tmp_path / "original" / "dcase2025" / "ground_truth"
    default.rename(tmp_path / "truth")
    format_year(2025, tmp_path, ground_truth=tmp_path / "truth", progress=False)
    assert formatted(tmp_path, 2025) == expected
    with pytest.raises(DatasetError, match="nowhere"):
        format_year(2025, tmp_path, ground_truth=tmp_path / "nowhere", progress=False)


def test_dev_only_needs_no_ground_truth(tmp_path):
    expected = build(tmp_path, 2022, subsets=("dev_data",), ground_truth=False)
    report = format_year(2022, tmp_path, progress=False)
    assert formatted(tmp_path, 2022) == expected
    assert set(report.counts) == {"ToyCar", "fan"} and report.renamed == []


def test_subset_of_machine_types(tmp_path):
    expected = build(tmp_path, 2023)
    lst = tmp_path / "original" / "dcase2023" / "ground_truth" / "eval_data_list_2023.csv"
    write(lst, lst.read_text() + "grinder\nsection_00_0000.wav,section_00_source_test_normal_0000_grs_1.wav\n")
    report = format_year(2023, tmp_path, progress=False)
    assert formatted(tmp_path, 2023) == expected
    assert set(report.counts) == {"fan", "bandsaw"}


@pytest.mark.parametrize("year, change, message", [
    (2022, lambda o: _remove_dir(o / "dev_data/raw/fan/test"), r"fan: incomplete machine folder, missing test"),
    (2021, lambda o: _remove_dir(o / "eval_data/raw/ToyCar/target_test"), r"ToyCar: incomplete .* target_test"),
    (2025, lambda o: _remove_dir(o / "eval_data/raw/AutoTrash/supplemental"), r"AutoTrash: incomplete .* supplemental"),
    (2022, lambda o: (o / "dev_data/raw/toaster/train").mkdir(parents=True), r"raw/toaster: unexpected machine type"),
    (2023, lambda o: (o / "dev_data/raw/bandsaw/train").mkdir(parents=True), r"raw/bandsaw: unexpected machine type"),
    (2022, lambda o: (o / "dev_data/raw/fan/valid").mkdir(), r"raw/fan: unknown subfolder\(s\) valid"),
    (2022, lambda o: write(o / "dev_data/raw/fan/train/fan_0001.wav", ""), r"train/fan_0001.wav: 'fan_0001.wav' does"),
    (2022, lambda o: write(o / "dev_data/raw/fan/train/section_00_source_test_normal_0001_a.wav", ""),
     r"a test name in a train folder"),
    (2020, lambda o: write(o / "dev_data/raw/fan/train/id_00_00000009.wav", ""), r"not a DCASE 2020 name"),
    (2026, lambda o: (o / "dev_data/raw/bearing/train").mkdir(parents=True),
     r"raw/bearing: unexpected machine type 'bearing' in DCASE 2026 dev.*Did you mean 'bearingEmu'"),
    (2026, lambda o: (o / "eval_data/raw/ToyDrone/supplemental").mkdir(),
     r"raw/ToyDrone: unknown subfolder\(s\) supplemental"),
])
def test_malformed_trees_are_refused(tmp_path, year, change, message):
    build(tmp_path, year)
    change(tmp_path / "original" / f"dcase{year}")
    with pytest.raises(DatasetError, match=message):
        format_year(year, tmp_path, progress=False)
    assert not (tmp_path / "formatted").exists()


def _remove_dir(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def test_eval_file_without_ground_truth(tmp_path):
    build(tmp_path, 2022)
    write(tmp_path / "original/dcase2022/eval_data/raw/ToyCar/test/section_05_0002.wav", "")
    with pytest.raises(DatasetError, match=r"1 ToyCar eval test file\(s\) without ground truth: .*/section_05_0002"):
        format_year(2022, tmp_path, progress=False)


def test_ground_truth_without_file(tmp_path):
    build(tmp_path, 2023)
    (tmp_path / "original/dcase2023/eval_data/raw/bandsaw/test/section_00_0001.wav").unlink()
    with pytest.raises(DatasetError, match=r"1 bandsaw ground-truth entries without a file: section_00_0001.wav"):
        format_year(2023, tmp_path, progress=False)


def test_2026_ground_truth_not_matching_the_files(tmp_path):
    build(tmp_path, 2026)
    attributes = tmp_path / "original/dcase2026/ground_truth/ground_truth_attributes"
    path = attributes / "ground_truth_ToyDrone_section_00_test.csv"
    write(path, path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DatasetError, match=r"1 ToyDrone eval test file\(s\) without ground truth: .*/section_00_0000"):
        format_year(2026, tmp_path, progress=False)
    write(path, path.read_text() + "section_00_0002.wav,section_00_target_test_normal_0002_car_C2_spd_3_mic_2_mic_1\n")
    with pytest.raises(DatasetError, match=r"ToyDrone ground-truth entries without a file: section_00_0002.wav"):
        format_year(2026, tmp_path, progress=False)
    assert not (tmp_path / "formatted").exists()


def test_2026_without_ground_truth_asks_for_the_evaluator_folders(tmp_path):
    build(tmp_path, 2026, ground_truth=False)
    with pytest.raises(DatasetError, match=r"\(expected evaluator folders there\) .*: 2 ToyDrone eval test file"):
        format_year(2026, tmp_path, progress=False)


def test_eval_without_any_ground_truth(tmp_path):
    build(tmp_path, 2020, ground_truth=False)
    with pytest.raises(DatasetError, match=r"expected eval_data_list_2020.csv .* 2 fan eval test file\(s\)"):
        format_year(2020, tmp_path, progress=False)


def test_unknown_year_mode_and_empty_root(tmp_path):
    with pytest.raises(ValueError, match="2020, 2021, 2022, 2023, 2024, 2025"):
        format_year(2019, tmp_path, progress=False)
    with pytest.raises(ValueError, match="symlink, move"):
        format_year(2022, tmp_path, mode="copy", progress=False)
    with pytest.raises(DatasetError, match="nothing to format"):
        format_year(2022, tmp_path, progress=False)


def test_interrupted_move_is_completed_by_a_rerun(tmp_path, monkeypatch):
    expected = build(tmp_path, 2022)
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        if str(src).endswith(".wav"):
            calls.append(src)
            if len(calls) > 3:
                raise OSError("disk on fire")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        format_year(2022, tmp_path, mode="move", progress=False)
    left = Counter(p.read_text() for p in original_wavs(tmp_path, 2022))
    assert left + Counter(formatted(tmp_path, 2022).values()) == Counter(expected.values())
    assert len(formatted(tmp_path, 2022)) == 3
    monkeypatch.undo()
    report = format_year(2022, tmp_path, mode="move", progress=False)
    assert formatted(tmp_path, 2022) == expected and original_wavs(tmp_path, 2022) == []
    assert (report.resumed, report.created, report.skipped) == (len(expected) - 3, 0, len(expected))


@pytest.mark.parametrize("mode", ["symlink", "move"])
def test_rerun_is_idempotent(tmp_path, mode):
    expected = build(tmp_path, 2021)
    format_year(2021, tmp_path, mode=mode, progress=False)
    report = format_year(2021, tmp_path, mode=mode, progress=False)
    assert formatted(tmp_path, 2021) == expected
    assert (report.created, report.skipped, report.resumed) == (0, len(expected), 0)


def test_move_after_symlink_replaces_the_links(tmp_path):
    expected = build(tmp_path, 2020)
    format_year(2020, tmp_path, progress=False)
    report = format_year(2020, tmp_path, mode="move", progress=False)
    raw = tmp_path / "formatted" / "dcase2020" / "raw"
    assert formatted(tmp_path, 2020) == expected and not any(p.is_symlink() for p in raw.rglob("*.wav"))
    assert report.created == len(expected)
    with pytest.raises(DatasetError, match="rerun with mode 'move'"):
        format_year(2020, tmp_path, progress=False)


def test_existing_foreign_file_is_not_overwritten(tmp_path):
    build(tmp_path, 2024)
    foreign = tmp_path / "formatted/dcase2024/raw/gearbox/train/section_00_source_train_normal_0000_noAttribute.wav"
    write(foreign, "mine")
    for mode in ("symlink", "move"):
        with pytest.raises(DatasetError, match="exists and is not a link"):
            format_year(2024, tmp_path, mode=mode, progress=False)
    assert foreign.read_text() == "mine" and len(original_wavs(tmp_path, 2024)) == len(TREES[2024])


def test_click_command(tmp_path):
    expected = build(tmp_path, 2024)
    result = CliRunner().invoke(format_command, ["--year", "2024", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"{len(expected)} files" in result.output and "split token" in result.output
    assert formatted(tmp_path, 2024) == expected
    result = CliRunner().invoke(format_command, ["--year", "2019", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "unknown DCASE year 2019" in result.output
    result = CliRunner().invoke(format_command, ["--year", "2023", "--root", str(tmp_path), "--mode", "move"])
    assert result.exit_code == 1 and "nothing to format" in result.output
