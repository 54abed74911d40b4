"""What each DCASE Task 2 year defines for evaluation: machine types and sections per subset."""
from __future__ import annotations

from dataclasses import dataclass, field

DEV, EVAL = "dev", "eval"


@dataclass(frozen=True)
class YearSpec:
    """Machine types and official sections of the dev and eval subsets of one DCASE year.

    ``sections[subset][machine]`` lists the sections (machine IDs in 2020) that count towards that
    subset's official score.
    """

    year: int
    sections: dict[str, dict[str, tuple[int, ...]]]
    domains: bool = True
    per_domain_files: bool = False
    id_names: bool = False
    scorer: str = field(default="")

    def machines(self, subset: str | None = None) -> list[str]:
        subsets = [subset] if subset else [DEV, EVAL]
        return sorted({m for s in subsets for m in self.sections[s]}, key=str.lower)

    def subsets(self, machine: str) -> dict[int, str]:
        """Section -> subset for one machine type."""
        return {sec: subset for subset, table in self.sections.items() for sec in table.get(machine, ())}


def _same(machines: list[str], sections: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {m: sections for m in machines}


_2020_IDS = {m: ((0, 2, 4, 6), (1, 3, 5)) for m in ("fan", "pump", "slider", "valve")}
_2020_IDS["ToyCar"] = ((1, 2, 3, 4), (5, 6, 7))
_2020_IDS["ToyConveyor"] = ((1, 2, 3), (4, 5, 6))
_2021 = ["fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve"]
_2022 = ["bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve"]
_DEV_2023 = _2022

YEARS: dict[int, YearSpec] = {
    2020: YearSpec(2020, {DEV: {m: d for m, (d, _) in _2020_IDS.items()},
                          EVAL: {m: e for m, (_, e) in _2020_IDS.items()}},
                   domains=False, id_names=True, scorer="dcase2020"),
    2021: YearSpec(2021, {DEV: _same(_2021, (0, 1, 2)), EVAL: _same(_2021, (3, 4, 5))},
                   per_domain_files=True, scorer="dcase2021"),
    2022: YearSpec(2022, {DEV: _same(_2022, (0, 1, 2)), EVAL: _same(_2022, (3, 4, 5))}, scorer="dcase2022"),
    2023: YearSpec(2023, {DEV: _same(_DEV_2023, (0,)), EVAL: _same(
        ["bandsaw", "grinder", "shaker", "ToyDrone", "ToyNscale", "ToyTank", "Vacuum"], (0,))}, scorer="dcase2023"),
    2024: YearSpec(2024, {DEV: _same(_DEV_2023, (0,)), EVAL: _same(
        ["3DPrinter", "AirCompressor", "BrushlessMotor", "HairDryer", "HoveringDrone", "RoboticArm", "Scanner",
         "ToothBrush", "ToyCircuit"], (0,))}, scorer="dcase2024"),
    2025: YearSpec(2025, {DEV: _same(_DEV_2023, (0,)), EVAL: _same(
        ["AutoTrash", "BandSealer", "CoffeeGrinder", "HomeCamera", "Polisher", "ScrewFeeder", "ToyPet", "ToyRCCar"],
        (0,))}, scorer="dcase2025"),
}
