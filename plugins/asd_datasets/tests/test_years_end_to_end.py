"""Every DCASE year end to end on synthetic trees: original layout -> format -> a run with the toy frontend
and backend, scored by the year's scorer."""
import csv

import pytest
from click.testing import CliRunner

from asd_datasets.commands import data
from asd_datasets.years import YEARS
from asdcore import Pipeline, load_config

MACHINES = {2020: ["fan", "ToyCar"], 2021: ["gearbox"], 2022: ["bearing"], 2023: ["fan", "bandsaw"],
            2024: ["gearbox", "HairDryer"], 2025: ["slider", "ToyPet"], 2026: ["ToyCarEmu", "ToyDrone"]}


@pytest.mark.parametrize("year", sorted(YEARS))
def test_synth_format_and_run(registry, tmp_path, year):
    machines = ",".join(MACHINES[year])
    runner = CliRunner()
    synth = runner.invoke(data, ["synth", "--year", str(year), "--root", str(tmp_path), "--machines", machines,
                                 "--n-train", "20", "--n-test", "8", "--clip-seconds", "0.5"])
    assert synth.exit_code == 0, synth.output
    formatted = runner.invoke(data, ["format", "--year", str(year), "--root", str(tmp_path)])
    assert formatted.exit_code == 0, formatted.output
    config = {
        "name": "toy_run",
        "dataset": {"name": "dcase", "root": str(tmp_path), "year": year, "machines": MACHINES[year]},
        "frontend": {"name": "toy"},
        "backends": [{"name": "toy"}],
        "evaluation": {"plots": False},
        "seeds": [0],
        "output": str(tmp_path / "results"),
        "device": "cpu",
        "extraction": {"batch_size": 32},
    }
    resolved = load_config(config, registry=registry)
    assert resolved.scorer == f"dcase{year}"
    root = Pipeline.create(resolved, registry, progress=False).run()
    assert root.name == f"dcase{year}"
    rows = list(csv.DictReader((root / "seed0" / "summary.csv").open()))
    official = {r["section"]: float(r["value"]) for r in rows if r["machine"] == "all" and r["metric"] == "official"}
    assert set(official) == {"dev", "eval"}
    assert all(0.0 < value <= 1.0 for value in official.values())
    if year >= 2022:
        assert any(r["machine"] == "all" and r["metric"] == "ci95" for r in rows)
    machine = MACHINES[year][0]
    group = f"{machine}_id_" if year == 2020 else f"{machine}_section_"
    assert list((root / "seed0" / machine / "toy").glob(f"anomaly_score_{group}*.csv"))
