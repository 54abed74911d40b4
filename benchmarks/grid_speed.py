"""Speed-up and scheduling overhead of executors on a grid with many independent units.

    python benchmarks/grid_speed.py [--executors local,processes,slurm] [--seeds 3] [--epochs 10]

The grid: the AE trained per machine type (4 synthetic machine types × ``--seeds`` seeds = 12 independent
training units by default), then extraction, scoring and evaluation: 52 units. The data are generated
once, before any timing; each executor runs the grid from scratch into its own folder. Printed per
executor: wall time, the units' own time (sum of what each unit took inside its worker), the speed-up
over ``local`` and the overhead per unit: (wall × units that may run at once − units' own time) / units,
i.e. everything that is not a unit computing: starting workers, shipping units, waiting on dependencies.
Then the same for 48 no-op units (no dependencies), which isolates dispatch cost.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from asdcore.grid import load_grid
from asdcore.registry import get_registry
from asdcore.testing import ProbeUnit, probe_job

RECIPE = """name: ae_per_machine
dataset: {{name: synth, root: data}}
frontend:
  name: ae
  training: {{epochs: {epochs}, batch_size: 32, scope: per_machine}}
backends: [{{name: passthrough}}]
evaluation: {{plots: false}}
"""
GRID = """name: speed
recipes: [ae.yaml]
datasets: [{{name: synth, root: {data}, n_train_source: {train}, n_train_target: 10, n_test: 40, clip_seconds: 2.0}}]
seeds: {seeds}
output: {output}
"""
PARAMS = {"local": [], "processes": ["executor.params.workers=2"],
          "slurm": ["executor.params.cluster=local", "executor.params.poll_seconds=0.05"],
          "ray": ["executor.params.num_cpus=2"]}
SLOTS = {"local": 1, "processes": 2, "slurm": 2, "ray": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executors", default="local,processes,slurm")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train", type=int, default=190, help="normal source training clips per machine type")
    args = parser.parse_args()
    executors = args.executors.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "ae.yaml").write_text(RECIPE.format(epochs=args.epochs))
        results = {}
        print(f"{'executor':<10} {'wall s':>8} {'units s':>8} {'speed-up':>9} {'overhead/unit s':>16} {'no-op unit s':>13}",
              flush=True)
        for name in executors:
            grid_file = folder / f"{name}.yaml"
            grid_file.write_text(GRID.format(data=folder / "data", output=folder / name, train=args.train,
                                             seeds=list(range(args.seeds))))
            grid = load_grid(grid_file, PARAMS[name], executor=name, progress=False)
            grid.prepare()
            start = time.perf_counter()
            result = grid.run(progress=False)
            wall = time.perf_counter() - start
            assert result.failure is None, result.failure
            own = sum(o.seconds for o in result.outcomes.values())
            results[name] = wall
            speedup = f"{results['local'] / wall:.2f}x" if "local" in results else "-"
            overhead = (wall * SLOTS[name] - own) / len(result.outcomes)
            noop = _noop(name, folder / f"noop-{name}")
            print(f"{name:<10} {wall:8.1f} {own:8.1f} {speedup:>9} {overhead:16.3f} {noop:13.3f}", flush=True)
    print(f"grid: AE per machine type × {args.seeds} seeds ({args.epochs} epochs), {len(result.outcomes)} units")


def _noop(name: str, folder: Path, count: int = 48) -> float:
    """Wall seconds per unit of ``count`` independent units that do nothing, on two slots."""
    folder.mkdir(parents=True)
    units = [ProbeUnit(f"u{i}", "score", (), str(folder), seconds=0.0) for i in range(count)]
    params = {k.split(".")[-1]: v for k, v in (p.split("=") for p in PARAMS[name])}
    executor = get_registry().create("executors", name, params=params)
    start = time.perf_counter()
    outcomes = executor.run(units, probe_job, progress=False)
    assert {o.status for o in outcomes.values()} == {"done"}
    return (time.perf_counter() - start) / count


if __name__ == "__main__":
    main()
