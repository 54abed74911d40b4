"""Wall time per stage and peak memory of a pipeline run (default: the demo recipe), from scratch.

    python benchmarks/pipeline_speed.py [recipes/demo.yaml] [--set key=value ...]

Writes into a temporary folder (data and results) unless the overrides say otherwise.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time

from asdcore.config import load_config
from asdcore.engine import STAGES, Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", nargs="?", default="recipes/demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"dataset.root={tmp}/data", f"output={tmp}/results", *args.overrides]
        start = time.perf_counter()
        pipeline = Pipeline.create(load_config(args.pipeline, overrides), progress=False)
        timings = {}
        t = time.perf_counter()
        pipeline.dataset.prepare(progress=False)
        timings["prepare data"] = time.perf_counter() - t
        t = time.perf_counter()
        units = len(pipeline.plan())
        timings["plan"] = time.perf_counter() - t  # listing and fingerprinting; each stage below plans again
        for stage in STAGES:
            t = time.perf_counter()
            pipeline.run([stage])
            timings[stage] = time.perf_counter() - t
        total = time.perf_counter() - start
        n_clips = sum(len(pipeline.dataset.clips(m, s)) for m in pipeline.dataset.machines() for s in ("train", "test"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"pipeline: {args.pipeline}  clips: {n_clips}  seeds: {pipeline.resolved.config.seeds}  units: {units}")
    for name, seconds in timings.items():
        print(f"  {name:<13} {seconds:7.2f} s")
    print(f"  {'total':<13} {total:7.2f} s   peak RSS {peak:.0f} MiB (largest worker {workers:.0f} MiB)")


if __name__ == "__main__":
    main()
