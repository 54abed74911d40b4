"""Training and extraction speed of the recipes at DCASE 2023's 18-s clips on this machine's device.

    python benchmarks/train_speed.py [--recipes dis_spec_adacos_fixed,ae] [--precisions 32,bf16-mixed]
                                     [--compile off,on] [--clips 64] [--seconds 18] [--batch-size N]

For each recipe × precision × compile setting, a fresh process trains the recipe's frontend for two epochs
on synthetic clips (the first epoch warms up: compilation, allocator, audio cache) and extracts the
embeddings of every clip; it reports the second epoch's training clips/s, the share of that epoch's step
time spent waiting for the next batch, extraction clips/s, and the peak host (RSS) and device memory.
BEATs/EAT recipes run on randomly initialised checkpoints of the official sizes. ``16-mixed`` is
measured on CUDA only. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TRAINED = ["dis_spec_adacos_fixed", "dis_spec_adacos_fixed_wo_mixup", "dis_spec_scac_fixed", "dis_spec_scac_trainable",
           "dis_multispec_scac_trainable", "dis_spec_subspaceloss", "dis_spec_featex", "ae",
           "dis_beats_scac_trainable", "dis_eat_scac_trainable"]


def measure(recipe: str, precision: str, compile_model: bool, data: Path, clips: int, seconds: float,
            batch_size: int | None) -> dict:
    """One configuration, in this process: train two epochs, extract, and report."""
    import torch

    from asdcore.config import load_config
    from asdcore.engine import Pipeline

    output = data.parent / f"out-{os.getpid()}"
    per_machine = clips // 2
    overrides = [
        f"dataset={{name: synth, root: {data}, machines: [fan, valve], n_train_source: {per_machine - 2}, "
        f"n_train_target: 2, n_test: 4, clip_seconds: {seconds}}}", f"output={output}", "seeds=[0]",
        "frontend.training.epochs=2", f"frontend.training.precision={precision}",
        f"frontend.training.compile={str(compile_model).lower()}", "frontend.training.scope=shared",
        f"extraction.precision={'32' if precision == '16-mixed' else precision}", "backends=[{name: knn}]",
    ]
    if batch_size:
        overrides += [f"frontend.training.batch_size={batch_size}", f"extraction.batch_size={batch_size}"]
    pipeline = Pipeline.create(load_config(RECIPES / f"{recipe}.yaml", overrides), progress=False)
    pipeline.run(["train"])
    context = pipeline.context
    for machine in context.dataset.machines():  # decoded before timing extraction, as training did for its clips
        context.audio_cache(machine, "test")
    started = time.perf_counter()
    pipeline.run(["extract"])
    extract_seconds = time.perf_counter() - started
    log_file = next((output / recipe / "synth" / "seed0" / "frontend").glob("*/train_log.csv"))
    header, *rows = [line.split(",") for line in log_file.read_text().splitlines()]
    epoch = dict(zip(header, map(float, rows[-1])))
    train_clips = sum(len(context.dataset.clips(m, "train")) for m in context.dataset.machines())
    all_clips = train_clips + sum(len(context.dataset.clips(m, "test")) for m in context.dataset.machines())
    cuda = torch.cuda.is_available()
    return {
        "recipe": recipe, "precision": precision, "compile": compile_model, "device": str(context.device),
        "train_clips_per_s": train_clips / epoch["seconds"], "data_wait": epoch["data_seconds"] / epoch["seconds"],
        "extract_clips_per_s": all_clips / extract_seconds,
        "host_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def ssl_checkpoints(folder: Path) -> dict[str, str]:
    """Randomly initialised BEATs and EAT checkpoints of the official sizes, for the SSL recipes."""
    from asd_frontends_ssl import beats, eat

    paths = {"BEATS_CHECKPOINT": folder / "beats.pt", "EAT_CHECKPOINT": folder / "eat.pt"}
    beats.write_random_checkpoint(paths["BEATS_CHECKPOINT"])
    eat.write_random_checkpoint(paths["EAT_CHECKPOINT"])
    return {k: str(v) for k, v in paths.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(TRAINED))
    parser.add_argument("--precisions", default=None, help="default: 32,bf16-mixed (and 16-mixed on CUDA)")
    parser.add_argument("--compile", default="off,on")
    parser.add_argument("--clips", type=int, default=64, help="training clips (two machine types)")
    parser.add_argument("--seconds", type=float, default=18.0)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--one", nargs=4, metavar=("RECIPE", "PRECISION", "COMPILE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        recipe, precision, compile_model, data = args.one
        print(json.dumps(measure(recipe, precision, compile_model == "on", Path(data), args.clips, args.seconds,
                                 args.batch_size)))
        return
    import torch

    precisions = (args.precisions or ("32,bf16-mixed,16-mixed" if torch.cuda.is_available() else "32,bf16-mixed"))
    print(_header(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        recipes = args.recipes.split(",")
        env = dict(os.environ)
        if any("beats" in r or "eat" in r for r in recipes):
            env.update(ssl_checkpoints(Path(tmp)))
        for recipe in recipes:
            for precision in precisions.split(","):
                for compile_model in args.compile.split(","):
                    command = [sys.executable, __file__, "--one", recipe, precision, compile_model, f"{tmp}/data",
                               "--clips", str(args.clips), "--seconds", str(args.seconds)]
                    if args.batch_size:
                        command += ["--batch-size", str(args.batch_size)]
                    done = subprocess.run(command, capture_output=True, text=True, env=env)
                    if done.returncode:
                        print(f"{recipe} {precision} compile {compile_model}: failed\n{done.stderr[-2000:]}",
                              file=sys.stderr)
                        continue
                    print(_row(json.loads(done.stdout.strip().splitlines()[-1])), flush=True)


def _header() -> str:
    return ("| recipe | device | precision | compile | train clips/s | data wait | extract clips/s | peak host MiB "
            "| peak device MiB |\n|---|---|---|---|---|---|---|---|---|")


def _row(r: dict) -> str:
    device = "–" if r["device_mib"] is None else f"{r['device_mib']:.0f}"
    return (f"| {r['recipe']} | {r['device']} | {r['precision']} | {'on' if r['compile'] else 'off'} "
            f"| {r['train_clips_per_s']:.1f} | {100 * r['data_wait']:.1f} % | {r['extract_clips_per_s']:.1f} "
            f"| {r['host_mib']:.0f} | {device} |")


if __name__ == "__main__":
    main()
