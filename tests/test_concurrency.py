"""Processes on one output: two concurrent runs share the work; a run killed in any stage resumes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline

HERE = Path(__file__).parent
SCRIPT = """
import json, logging, sys, toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.registry import Registry, use_registry
logging.basicConfig(level=logging.INFO, format="%(message)s")
registry = Registry(entry_points=False)
registry.add_plugin(toy_plugin, name="toy_plugin", distribution="toy-dist", version="9.9")
with use_registry(registry):
    pipeline = Pipeline.create(load_config(json.loads(sys.argv[1]), registry=registry), registry, progress=False)
    pipeline.run()
print(json.dumps(sorted(uid for uid, outcome in pipeline.outcomes.items() if outcome.status == "done")))
"""


def start(config) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def outputs(root: Path) -> dict[str, bytes]:
    """Every result file of a run (records, locks, models and logs left out)."""
    skip = (".record.json", ".lock", ".log", ".pt", "train_log.csv", "config.yaml")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(skip)}


def run_here(registry, config) -> Path:
    return Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()


def test_two_concurrent_runs_share_the_work(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path / "out", frontend={"name": "spectrum", "params": {"delay": 0.2}},
                                 extraction={"batch_size": 4})
    first, second = start(config), start(config)
    done = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        done.append(set(json.loads(out.strip().splitlines()[-1])))
    units = {u.id for u in Pipeline.create(load_config(config, registry=registry), registry).plan()}
    assert done[0] | done[1] == units and not done[0] & done[1]  # each unit's work done once
    reference = run_here(registry, dict(config, output=str(tmp_path / "reference")))
    root = tmp_path / "out" / "toyrun" / "toy"
    assert outputs(root) == outputs(reference)
    assert not list(root.rglob(".tmp-*"))


# the unit in whose middle the run is killed, per stage; each stage's components sleep so that it is slow
KILLED = {"train": "seed0--train--shared", "extract": "seed0--extract--beta",
          "score": "seed0--score--beta--distance", "evaluate": "seed0--evaluate--beta--distance"}


@pytest.mark.parametrize("stage", list(KILLED))
def test_killed_in_any_stage_resumes_to_identical_results(registry, toy_root, tmp_path, stage):
    def config_with(output, delay):
        return toy_plugin.pipeline(
            toy_root, output, frontend={"name": "centred", "params": {"noise": 0.3, "delay": delay}}, seeds=[0],
            backends=[{"name": "distance", "params": {"delay": delay / 4}}], scorer="slow_hmean",
            extraction={"batch_size": 8},
        )

    config = config_with(tmp_path / "run", 0.3)
    proc = start(config)
    lock = tmp_path / "run" / "toyrun" / "toy" / ".locks" / f"{KILLED[stage]}.lock"
    deadline = time.time() + 120
    while not lock.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.15)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    root = tmp_path / "run" / "toyrun" / "toy"
    unit = next(u for u in Pipeline.create(load_config(config, registry=registry), registry).plan()
                if u.id == KILLED[stage].replace("--", "/"))
    assert lock.exists() and unit.stale_reason() is not None  # killed while that unit ran
    run_here(registry, config)
    assert not list(root.rglob(".tmp-*"))
    assert outputs(root) == outputs(run_here(registry, config_with(tmp_path / "reference", 0.0)))
