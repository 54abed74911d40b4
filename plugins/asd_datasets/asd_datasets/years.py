"""One declarative spec per DCASE Task 2 year: machine types, sections, clip length, channels,
archives, ground-truth sources, meta-information, and the official scorer."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEV, EVAL = "dev", "eval"
ZENODO = "https://zenodo.org/record"
ZENODO_RECORDS = "https://zenodo.org/records"
BASELINE_LISTS = "https://raw.githubusercontent.com/nttcslab/dcase2023_task2_baseline_ae/main/datasets"


@dataclass(frozen=True)
class Archive:
    """One downloadable archive: it unpacks to ``<machine>/<subdir>/*.wav`` inside ``subset``'s folder."""

    url: str
    machine: str
    subset: str  # "dev" or "eval" (the folder dev_data/ or eval_data/ it unpacks into)
    part: str  # "dev", "eval_train" or "eval_test"

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class YearSpec:
    """Everything the toolkit knows about one DCASE year.

    ``sections[subset][machine]`` lists the sections (machine IDs in 2020) that count towards that
    subset's official score. ``archives`` are the official download addresses. Ground truth of the
    eval test files comes from the organisers' list (``eval_list_url``; None: there is none) and,
    where published, the official evaluator's folders (``evaluator_url`` + ``ground_truth_data/…``).

    ``clip_seconds`` is the length of every clip; None means it differs per machine type, so readers
    take it from the files. ``machine_seconds`` then holds the lengths that are known; a type missing
    from it has an unknown length (2026: the eval clips last 6, 10 or 16 s, but which type has which
    length is not published). ``channels``: channels per clip; with two, channel 0 is the
    microphone near the machine and channel 1 the far one. ``numbered_tests``: dev types whose test
    clips are numbered 0000… across all domain × label classes, not within each (2026 ToyCar, ToyCarEmu).
    """

    year: int
    sections: dict[str, dict[str, tuple[int, ...]]]
    clip_seconds: float | None
    archives: tuple[Archive, ...]
    eval_list_url: str | None = None
    evaluator_url: str | None = None
    machine_seconds: Mapping[str, float] = field(default_factory=dict)
    channels: int = 1
    sample_rate: int = 16000
    domains: bool = True
    per_domain_files: bool = False
    id_names: bool = False
    test_dirs: tuple[str, ...] = ("test",)
    no_attribute: frozenset[str] = frozenset()
    numbered_tests: frozenset[str] = frozenset()
    supplemental: bool = False
    label_fields: tuple[str, ...] = ("machine", "section", "attribute", "domain")
    scorer: str = ""

    def machines(self, subset: str | None = None) -> list[str]:
        subsets = [subset] if subset else [DEV, EVAL]
        return sorted({m for s in subsets for m in self.sections[s]}, key=str.lower)

    def subsets(self, machine: str) -> dict[int, str]:
        """Section -> subset for one machine type."""
        return {sec: subset for subset, table in self.sections.items() for sec in table.get(machine, ())}


def _same(machines: list[str], sections: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {m: sections for m in machines}


def _archives(part: str, subset: str, pattern: str, machines: list[str], names: dict[str, str] | None = None):
    return tuple(Archive(pattern.format(m=(names or {}).get(m, m)), m, subset, part) for m in machines)


_2020 = ["fan", "pump", "slider", "ToyCar", "ToyConveyor", "valve"]
_2020_IDS = {m: ((0, 2, 4, 6), (1, 3, 5)) for m in ("fan", "pump", "slider", "valve")}
_2020_IDS["ToyCar"] = ((1, 2, 3, 4), (5, 6, 7))
_2020_IDS["ToyConveyor"] = ((1, 2, 3), (4, 5, 6))
_2021 = ["fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve"]
_2022 = ["bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve"]
_EVAL_2023 = ["bandsaw", "grinder", "shaker", "ToyDrone", "ToyNscale", "ToyTank", "Vacuum"]
_EVAL_2024 = ["3DPrinter", "AirCompressor", "BrushlessMotor", "HairDryer", "HoveringDrone", "RoboticArm", "Scanner",
              "ToothBrush", "ToyCircuit"]
_EVAL_2025 = ["AutoTrash", "BandSealer", "CoffeeGrinder", "HomeCamera", "Polisher", "ScrewFeeder", "ToyPet",
              "ToyRCCar"]
_DEV_2026 = ["ToyCar", "ToyCarEmu", "bearingEmu", "fan", "gearboxEmu", "sliderEmu", "valveEmu"]
_EVAL_2026 = ["ToyDrone", "ToothBrush", "SewingMachine", "BlowerDustCollector", "Sander"]
_2024_TRAIN = {m: f"{m}_train" for m in _EVAL_2024} | {"3DPrinter": "3DPrinter_train_r2",
                                                      "RoboticArm": "RoboticArm_train_r2"}

YEARS: dict[int, YearSpec] = {
    2020: YearSpec(
        2020, {DEV: {m: d for m, (d, _) in _2020_IDS.items()}, EVAL: {m: e for m, (_, e) in _2020_IDS.items()}},
        clip_seconds=11.0,
        archives=_archives("dev", DEV, f"{ZENODO}/3678171/files/dev_data_{{m}}.zip", _2020)
        + _archives("eval_train", EVAL, f"{ZENODO}/3727685/files/eval_data_train_{{m}}.zip", _2020)
        + _archives("eval_test", EVAL, f"{ZENODO}/3841772/files/eval_data_test_{{m}}.zip", _2020),
        eval_list_url=f"{ZENODO}/3951620/files/eval_data_list.csv",
        domains=False, id_names=True, label_fields=("machine", "section"), scorer="dcase2020"),
    2021: YearSpec(
        2021, {DEV: _same(_2021, (0, 1, 2)), EVAL: _same(_2021, (3, 4, 5))}, clip_seconds=10.0,
        archives=_archives("dev", DEV, f"{ZENODO}/4562016/files/dev_data_{{m}}.zip", _2021)
        + _archives("eval_train", EVAL, f"{ZENODO}/4660992/files/eval_data_{{m}}_train.zip", _2021)
        + _archives("eval_test", EVAL, f"{ZENODO}/4884786/files/eval_data_{{m}}_test.zip", _2021),
        eval_list_url=f"{BASELINE_LISTS}/eval_data_list_2021.csv",
        evaluator_url="https://raw.githubusercontent.com/y-kawagu/dcase2021_task2_evaluator/main",
        per_domain_files=True, test_dirs=("source_test", "target_test"), scorer="dcase2021"),
    2022: YearSpec(
        2022, {DEV: _same(_2022, (0, 1, 2)), EVAL: _same(_2022, (3, 4, 5))}, clip_seconds=10.0,
        archives=_archives("dev", DEV, f"{ZENODO}/6355122/files/dev_{{m}}.zip", _2022)
        + _archives("eval_train", EVAL, f"{ZENODO}/6462969/files/eval_data_{{m}}_train.zip", _2022)
        + _archives("eval_test", EVAL, f"{ZENODO}/6586456/files/eval_data_{{m}}_test.zip", _2022),
        eval_list_url=f"{BASELINE_LISTS}/eval_data_list_2022.csv",
        evaluator_url="https://raw.githubusercontent.com/Kota-Dohi/dcase2022_evaluator/main", scorer="dcase2022"),
    2023: YearSpec(
        2023, {DEV: _same(_2022, (0,)), EVAL: _same(_EVAL_2023, (0,))}, clip_seconds=18.0,
        archives=_archives("dev", DEV, f"{ZENODO}/7882613/files/dev_{{m}}.zip", _2022)
        + _archives("eval_train", EVAL, f"{ZENODO}/7830345/files/eval_data_{{m}}_train.zip", _EVAL_2023)
        + _archives("eval_test", EVAL, f"{ZENODO}/7860847/files/eval_data_{{m}}_test.zip", _EVAL_2023),
        eval_list_url=f"{BASELINE_LISTS}/eval_data_list_2023.csv",
        evaluator_url="https://raw.githubusercontent.com/nttcslab/dcase2023_task2_evaluator/main", scorer="dcase2023"),
    2024: YearSpec(
        2024, {DEV: _same(_2022, (0,)), EVAL: _same(_EVAL_2024, (0,))}, clip_seconds=12.0,
        archives=_archives("dev", DEV, f"{ZENODO}/10902294/files/dev_{{m}}.zip", _2022)
        + _archives("eval_train", EVAL, f"{ZENODO_RECORDS}/11259435/files/eval_data_{{m}}.zip", _EVAL_2024, _2024_TRAIN)
        + _archives("eval_test", EVAL, f"{ZENODO_RECORDS}/11363076/files/eval_data_{{m}}_test.zip", _EVAL_2024),
        eval_list_url=f"{BASELINE_LISTS}/eval_data_list_2024.csv",
        evaluator_url="https://raw.githubusercontent.com/nttcslab/dcase2024_task2_evaluator/main",
        no_attribute=frozenset({"gearbox", "slider", "ToyTrain", "AirCompressor", "BrushlessMotor", "HoveringDrone",
                                "ToothBrush"}),
        scorer="dcase2024"),
    2025: YearSpec(
        2025, {DEV: _same(_2022, (0,)), EVAL: _same(_EVAL_2025, (0,))}, clip_seconds=12.0,
        archives=_archives("dev", DEV, f"{ZENODO_RECORDS}/15097779/files/dev_{{m}}.zip", _2022)
        + _archives("eval_train", EVAL, f"{ZENODO_RECORDS}/15392814/files/eval_data_{{m}}_train.zip", _EVAL_2025)
        + _archives("eval_test", EVAL, f"{ZENODO_RECORDS}/15519362/files/eval_data_{{m}}_test.zip", _EVAL_2025),
        eval_list_url=f"{BASELINE_LISTS}/eval_data_list_2025.csv",
        evaluator_url="https://raw.githubusercontent.com/nttcslab/dcase2025_task2_evaluator/main",
        no_attribute=frozenset({"bearing", "slider", "ToyTrain", "AutoTrash", "Polisher", "ScrewFeeder", "ToyPet"}),
        supplemental=True, scorer="dcase2025"),
    2026: YearSpec(
        2026, {DEV: _same(_DEV_2026, (0,)), EVAL: _same(_EVAL_2026, (0,))}, clip_seconds=None,
        machine_seconds={m: 12.0 if m.startswith("ToyCar") else 10.0 for m in _DEV_2026},
        archives=_archives("dev", DEV, f"{ZENODO_RECORDS}/19336329/files/dev_{{m}}.zip", _DEV_2026,
                           {"ToyCar": "ToyCar_r2"})
        + _archives("eval_train", EVAL, f"{ZENODO_RECORDS}/20151556/files/eval_data_{{m}}_train.zip", _EVAL_2026)
        + _archives("eval_test", EVAL, f"{ZENODO_RECORDS}/20437238/files/eval_data_{{m}}_test.zip", _EVAL_2026),
        evaluator_url="https://raw.githubusercontent.com/nttcslab/dcase2026_task2_evaluator/"
                      "f6a94a2b5e614a9626c9d1ccff6df0705e6aaa75",
        no_attribute=frozenset({"ToyCar", "bearingEmu", "sliderEmu", "valveEmu", "SewingMachine", "ToothBrush"}),
        numbered_tests=frozenset({"ToyCar", "ToyCarEmu"}), channels=2, scorer="dcase2026"),
}


def get_year(year: int) -> YearSpec:
    """The spec of ``year``; an unknown year is a ValueError listing the known ones."""
    if year not in YEARS:
        raise ValueError(f"unknown DCASE year {year}; known years: {', '.join(map(str, YEARS))}")
    return YEARS[year]
