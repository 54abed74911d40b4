"""Run every recipe on synthetic data with reduced epochs and several seeds; print the official-score
table (mean ± std over seeds) with training/extraction throughput and peak memory per recipe.

    python benchmarks/compare_recipes.py [--epochs 2] [--seeds 0,1] [--recipes a,b] [--out DIR]

Each recipe runs in its own process (so peak memory is its own); the synthetic data (4 machine types,
5-s clips by default, sized by --train/--test/--clip-seconds) is shared. Results: DIR/results/<recipe>/synth/…, the table in
DIR/results/overview.md and the figures in DIR/figures.csv.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKER = r"""
import json, resource, sys, time
from asdcore.config import load_config
from asdcore.engine import STAGES, Pipeline
recipe, overrides = sys.argv[1], json.loads(sys.argv[2])
pipeline = Pipeline.create(load_config(recipe, overrides), progress=False)
pipeline.dataset.prepare(progress=False)
times = {}
for stage in STAGES:
    start = time.perf_counter()
    pipeline.run([stage])
    times[stage] = time.perf_counter() - start
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"times": times, "peak_mib": peak / 1024, "root": str(pipeline.root)}))
"""


def _missing_variables(recipe: Path) -> list[str]:
    """Environment variables a recipe names that are not set (e.g. $BEATS_CHECKPOINT): such recipes are skipped."""
    text = "\n".join(line.split("#", 1)[0] for line in recipe.read_text().splitlines())
    return [name for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text) if name not in os.environ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--recipes", default=None,
                        help="comma-separated recipe names (default: all but demo and those naming unset variables)")
    parser.add_argument("--train", type=int, default=40, help="source training clips per machine type")
    parser.add_argument("--test", type=int, default=40, help="test clips per machine type")
    parser.add_argument("--clip-seconds", type=float, default=5.0, help="clip length (DCASE 2023: 18)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="asdcore-compare-"))
    names = args.recipes.split(",") if args.recipes else []
    for recipe in [] if args.recipes else sorted((REPO / "recipes").glob("*.yaml")):
        missing = _missing_variables(recipe)
        if missing:
            print(f"skipping {recipe.stem}: set {', '.join('$' + m for m in missing)}")
        elif recipe.stem != "demo":
            names.append(recipe.stem)
    dataset = (f"dataset={{name: synth, root: {out / 'data'}, n_train_source: {args.train}, n_train_target: 4, "
               f"n_test: {args.test}, clip_seconds: {args.clip_seconds}}}")
    seeds = [int(s) for s in args.seeds.split(",")]
    n_train = 4 * (args.train + 4)
    n_extract = 4 * (args.train + 4 + args.test)
    figures = []
    for name in names:
        overrides = [dataset, f"output={out / 'results'}", f"seeds={seeds}", "evaluation.plots=false",
                     f"frontend.training.epochs={args.epochs}"]
        result = subprocess.run([sys.executable, "-c", WORKER, str(REPO / "recipes" / f"{name}.yaml"),
                                 json.dumps(overrides)], capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            print(f"{name}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
            continue
        report = json.loads(result.stdout.strip().splitlines()[-1])
        times = report["times"]
        train_rate = n_train * args.epochs * len(seeds) / times["train"] if times["train"] > 0.5 else float("nan")
        extract_rate = n_extract * len(seeds) / times["extract"]
        figures.append({"recipe": name, "train_clips_per_s": round(train_rate, 2),
                        "extract_clips_per_s": round(extract_rate, 2), "peak_mib": round(report["peak_mib"]),
                        **{f"{stage}_s": round(t, 1) for stage, t in times.items()}})
        print(f"{name}: {figures[-1]}", file=sys.stderr)
    if figures:
        with open(out / "figures.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(figures[0]))
            writer.writeheader()
            writer.writerows(figures)
    table = subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", "table",
                            str(out / "results")], capture_output=True, text=True, cwd=REPO)
    print(table.stdout)
    for row in figures:
        print(", ".join(f"{k} {v}" for k, v in row.items()))
    print(f"outputs: {out}")


if __name__ == "__main__":
    main()
