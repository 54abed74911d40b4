"""The rerun scenarios of a user on the command line: own recordings edited, synthetic data with other
parameters, and --dry-run."""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
SR = 16000


def asdcore(*args):
    return subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=REPO)


def tone(rng, freq):
    t = np.arange(SR // 2) / SR
    return (0.3 * np.sin(2 * np.pi * freq * (1 + 0.01 * rng.standard_normal()) * t)
            + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def own_data(root: Path) -> Path:
    """One machine type: 12 normal training clips, 16 labelled test clips (8 normal, 8 anomalous)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "press" / split).mkdir(parents=True)
    for i in range(12):
        sf.write(root / "press" / "train" / f"n{i:02d}.wav", tone(rng, 440), SR)
    rows = ["file,label"]
    for i in range(16):
        anomalous = i % 2
        sf.write(root / "press" / "test" / f"t{i:02d}.wav", tone(rng, 520 if anomalous else 440), SR)
        rows.append(f"t{i:02d}.wav,{'anomaly' if anomalous else 'normal'}")
    (root / "press" / "test_labels.csv").write_text("\n".join(rows) + "\n")
    return root


def pipeline_file(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "own.yaml"
    path.write_text(f"""name: own_reruns
dataset: {{name: own, root: {data}}}
frontend: {{name: raw_spec, params: {{n_mels: 32}}}}
backends: [{{name: knn}}]
seeds: [0]
output: {tmp_path / 'out'}
device: cpu
""")
    return path


def official(root: Path) -> float:
    rows = list(csv.DictReader((root / "table.csv").open()))
    return next(float(r["mean"]) for r in rows if r["machine"] == "all" and r["metric"] == "official")


def test_own_recordings_edited_between_runs(tmp_path):
    data = own_data(tmp_path / "data")
    pipeline = pipeline_file(tmp_path, data)
    root = tmp_path / "out" / "own_reruns" / "own"
    scores = root / "seed0" / "press" / "knn" / "anomaly_score_press_section_00_test.csv"
    assert asdcore("run", str(pipeline), "--no-progress").returncode == 0

    sf.write(data / "press" / "test" / "t16.wav", tone(np.random.default_rng(1), 520), SR)
    with open(data / "press" / "test_labels.csv", "a") as f:
        f.write("t16.wav,anomaly\n")
    result = asdcore("run", str(pipeline), "--no-progress")
    assert "shared/extract/press: running (changed: data press/test, metadata press)" in result.stderr
    assert len(scores.read_text().splitlines()) == 17
    rerun = official(root)
    assert asdcore("run", str(pipeline), "--no-progress", "--force").returncode == 0
    assert official(root) == rerun

    labels = data / "press" / "test_labels.csv"
    labels.write_text(labels.read_text().replace(",anomaly", ",x").replace(",normal", ",anomaly").replace(",x", ",normal"))
    result = asdcore("run", str(pipeline), "--no-progress")
    assert result.returncode == 0 and "changed: data press/test, metadata press" in result.stderr
    flipped = official(root)
    assert flipped < 0.5 < rerun
    assert asdcore("run", str(pipeline), "--no-progress", "--force").returncode == 0
    assert official(root) == flipped

    sf.write(data / "press" / "train" / "n03.wav", tone(np.random.default_rng(2), 520), SR)
    result = asdcore("run", str(pipeline), "--no-progress")
    assert "shared/extract/press: running (changed: data press/train)" in result.stderr


def test_dry_run_on_the_command_line(tmp_path):
    data = own_data(tmp_path / "data")
    pipeline = pipeline_file(tmp_path, data)
    first = asdcore("run", str(pipeline), "--dry-run")
    assert first.returncode == 0 and first.stdout.splitlines()[0].split() == ["run", "shared/extract/press", "not",
                                                                               "done", "yet"]
    assert not (tmp_path / "out").exists()
    assert asdcore("run", str(pipeline), "--no-progress").returncode == 0
    lines = asdcore("run", str(pipeline), "--dry-run", "--set", "backends.0.params.k_source=2").stdout.splitlines()
    assert lines[0].split()[:2] == ["skip", "shared/extract/press"] and lines[0].endswith("up to date")
    assert lines[1].split()[:2] == ["run", "seed0/score/press/knn"] and lines[1].endswith("changed: backend")


def test_generated_data_with_other_parameters(tmp_path):
    root = tmp_path / "synth"
    small = ["--set", f"dataset.root={root}", "--set", f"output={tmp_path / 'out'}", "--set", "dataset.n_train_source=8",
             "--set", "dataset.n_train_target=2", "--set", "dataset.n_test=8", "--set", "dataset.machines=[fan]",
             "--set", "backends=[{name: knn}]", "--set", "evaluation.plots=false", "--seeds", "0", "--no-progress"]
    assert asdcore("run", "recipes/demo.yaml", *small, "--set", "dataset.clip_seconds=1.0").returncode == 0
    other = [*small, "--set", "dataset.seed=5", "--set", "dataset.clip_seconds=2.0"]
    result = asdcore("run", "recipes/demo.yaml", *other)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "clip_seconds: recorded 1.0, requested 2.0" in result.stderr and "seed: recorded 0, requested 5" in result.stderr
    forced = asdcore("run", "recipes/demo.yaml", *other, "--force")
    assert forced.returncode == 0, forced.stderr
    assert '"seed": 5' in (root / "synth.json").read_text()
