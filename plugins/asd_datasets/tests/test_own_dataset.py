import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdcore import ANOMALY, NORMAL, SOURCE, TARGET, UNKNOWN, DatasetError, Pipeline, load_config


def tone(path: Path, rate: int, seconds: float, freq: float = 440.0, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


def dataset(registry, root, **params):
    return registry.create("datasets", "own", params={"root": str(root), **params})


@pytest.fixture
def mixed(tmp_path):
    """Arbitrary names, 8 / 16 / 22.05 kHz and a stereo file."""
    tone(tmp_path / "pump" / "train" / "monday morning.wav", 8000, 0.5)
    tone(tmp_path / "pump" / "train" / "rec-02.WAV", 16000, 0.75)
    tone(tmp_path / "pump" / "train" / "stereo.wav", 22050, 0.25, channels=2)
    tone(tmp_path / "pump" / "test" / "a.wav", 16000, 0.5)
    tone(tmp_path / "pump" / "test" / "b.wav", 22050, 0.5, 880.0)
    tone(tmp_path / "pump" / "test" / "c.wav", 16000, 0.5)
    (tmp_path / "pump" / "train" / "notes.txt").write_text("not audio")
    return tmp_path


def test_properties(registry, mixed):
    data = dataset(registry, mixed)
    assert (data.id, data.scorer, data.sample_rate) == ("own", "hmean", 16000)
    assert registry.get("datasets", "own").distribution == "asd-datasets"
    assert data.clip_seconds == 0.75
    assert dataset(registry, mixed, clip_seconds=2).clip_seconds == 2.0


def test_clips_without_labels(registry, mixed):
    data = dataset(registry, mixed)
    data.prepare()
    train = data.clips("pump", "train")
    assert [c.name for c in train] == ["monday morning.wav", "rec-02.WAV", "stereo.wav"]
    assert {(c.section, c.domain, c.is_anomaly, c.subset) for c in train} == {(0, SOURCE, NORMAL, "dev")}
    assert {c.is_anomaly for c in data.clips("pump", "test")} == {UNKNOWN}
    assert data.subsets("pump") == {0: "dev"}


def test_read_resamples_and_mixes_down(registry, mixed, caplog):
    data = dataset(registry, mixed, sample_rate=16000, clip_seconds=0.5)
    clips = {c.name: c for c in data.clips("pump", "train") + data.clips("pump", "test")}
    with caplog.at_level(logging.INFO, logger="asdcore"):
        waves = {name: data.read(clip) for name, clip in clips.items()}
        data.read(clips["b.wav"])
    assert all(w.shape == (8000,) and w.dtype == np.float32 for w in waves.values())
    spectrum = np.abs(np.fft.rfft(waves["b.wav"]))
    assert abs(np.argmax(spectrum) * 16000 / 8000 - 880) <= 2
    assert np.max(np.abs(waves["stereo.wav"])) == pytest.approx(0.5, abs=0.02)
    notes = [r.getMessage() for r in caplog.records]
    assert sum("resampling 22050 Hz" in n for n in notes) == 1
    assert sum("resampling 8000 Hz" in n for n in notes) == 1
    assert sum("2-channel" in n for n in notes) == 1


@pytest.mark.parametrize("header", [True, False])
def test_label_csv(registry, mixed, header):
    rows = [["a.wav", "anomaly", "target"], ["b.wav", "0", "source"], ["pump/test/c.wav", "1", "1"],
            ["fan/test/x.wav", "normal"]]
    text = "\n".join(",".join(r) for r in ([["file", "label", "domain"]] if header else []) + rows) + "\n"
    (mixed / "pump" / "test_labels.csv").write_text(text)
    test = {c.name: c for c in dataset(registry, mixed).clips("pump", "test")}
    assert (test["a.wav"].is_anomaly, test["a.wav"].domain) == (ANOMALY, TARGET)
    assert (test["b.wav"].is_anomaly, test["b.wav"].domain) == (NORMAL, SOURCE)
    assert (test["c.wav"].is_anomaly, test["c.wav"].domain) == (ANOMALY, TARGET)


def test_metadata_files_are_the_label_csv(registry, mixed):
    assert dataset(registry, mixed).metadata_files("pump") == []
    (mixed / "pump" / "test_labels.csv").write_text("a.wav,normal\n")
    assert dataset(registry, mixed).metadata_files("pump") == [mixed / "pump" / "test_labels.csv"]
    explicit = dataset(registry, mixed, labels_csv="labels/{machine}.csv")
    assert explicit.metadata_files("pump") == []
    (mixed / "labels").mkdir()
    (mixed / "labels" / "pump.csv").write_text("a.wav,normal\n")
    assert explicit.metadata_files("pump") == [mixed / "labels" / "pump.csv"]


def test_partial_labels_and_explicit_csv(registry, mixed):
    (mixed / "labels").mkdir()
    (mixed / "labels" / "pump.csv").write_text("a.wav,NORMAL\n\n")
    test = {c.name: c for c in dataset(registry, mixed, labels_csv="labels/{machine}.csv").clips("pump", "test")}
    assert (test["a.wav"].is_anomaly, test["a.wav"].domain) == (NORMAL, SOURCE)
    assert test["b.wav"].is_anomaly == test["c.wav"].is_anomaly == UNKNOWN


@pytest.mark.parametrize(("text", "message"), [
    ("a.wav,normal\nmissing.wav,anomaly\n", "test_labels.csv:2: 'missing.wav' names no file in the pump/test folder"),
    ("a.wav,broken\n", "test_labels.csv:1: label 'broken' is not one of"),
    ("a.wav,1,both\n", "test_labels.csv:1: domain 'both' is not one of"),
    ("a.wav\n", "test_labels.csv:1: expected file,label[,domain]"),
    ("pump/a.wav,1\n", "test_labels.csv:1: 'pump/a.wav' is neither a file name nor <machine>/test/<name>"),
])
def test_bad_csv_names_the_file(registry, mixed, text, message):
    (mixed / "pump" / "test_labels.csv").write_text(text)
    with pytest.raises(DatasetError) as info:
        dataset(registry, mixed).prepare()
    assert str(mixed / "pump") in str(info.value) and message in str(info.value)


def test_errors_name_the_path(registry, tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'none'}' does not exist"):
        dataset(registry, tmp_path / "none").prepare()
    tone(tmp_path / "fan" / "test" / "x.wav", 16000, 0.1)
    with pytest.raises(DatasetError, match=f"missing folder '{tmp_path / 'fan' / 'train'}'"):
        dataset(registry, tmp_path).prepare()
    tone(tmp_path / "fan" / "train" / "y.wav", 16000, 0.1)
    with pytest.raises(DatasetError, match=f"labels_csv '{tmp_path / 'nope.csv'}' does not exist"):
        dataset(registry, tmp_path, labels_csv="nope.csv").prepare()


def test_run_through_the_engine(registry, tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    labels = []
    for machine, base in (("pump", 300.0), ("press", 500.0)):
        for i in range(8):
            tone(root / machine / "train" / f"ok_{i}.wav", 16000, 0.5, base + rng.uniform(-5, 5))
        for i in range(8):
            anomaly = i % 2
            rate = 22050 if i < 2 else 16000
            tone(root / machine / "test" / f"t{i}.wav", rate, 0.5, base * (2.5 if anomaly else 1) + rng.uniform(-5, 5))
            labels.append((machine, f"t{i}.wav", anomaly))
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("file", "label")] + [(f"{m}/test/{n}", a) for m, n, a in labels])
    config = {"name": "mine", "dataset": {"name": "own", "root": str(root), "labels_csv": "labels.csv"},
              "frontend": {"name": "toy"}, "backends": [{"name": "toy"}], "evaluation": {"plots": False},
              "output": str(tmp_path / "results"), "device": "cpu"}
    resolved = load_config(config, registry=registry)
    assert resolved.scorer == "hmean"
    out = Pipeline.create(resolved, registry, progress=False).run()
    assert out == tmp_path / "results" / "mine" / "own"
    assert (out / "seed0" / "pump" / "toy" / "anomaly_score_pump_section_00_test.csv").is_file()
    rows = list(csv.DictReader((out / "seed0" / "summary.csv").open()))
    official = [float(r["value"]) for r in rows if r["machine"] == "all" and r["metric"] == "official"]
    assert len(official) == 1 and official[0] > 0.9


def test_unlabelled_run_writes_scores_without_evaluation(registry, tmp_path):
    root = tmp_path / "data"
    for i in range(4):
        tone(root / "fan" / "train" / f"{i}.wav", 16000, 0.3, 300.0 + i)
        tone(root / "fan" / "test" / f"{i}.wav", 16000, 0.3, 300.0 + 50 * i)
    config = {"name": "blind", "dataset": {"name": "own", "root": str(root)},
              "frontend": {"name": "toy"}, "backends": [{"name": "toy"}], "evaluation": {"plots": False},
              "output": str(tmp_path / "results"), "device": "cpu"}
    out = Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    toy = out / "seed0" / "fan" / "toy"
    assert len((toy / "anomaly_score_fan_section_00_test.csv").read_text().splitlines()) == 4
    assert (toy / "decision_result_fan_section_00_test.csv").is_file()
    assert not (toy / "evaluation.csv").exists()
