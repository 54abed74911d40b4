"""Faulty audio of an ``own`` dataset: truncated or non-finite files are errors naming them on every read path
(mono or multi-channel, through the audio cache or not); clips tiled many times and silent clips or machine
types are warned about; warnings of scikit-learn while a backend fits become one asdcore warning."""
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from asdcore import audio, audio_cache
from asdcore.audio import MAX_TILES, duration, read_audio, require_clip_samples, warn_tiling
from asdcore.errors import AudioError, ConfigError
from asdcore.features import FeatureSet
from asdcore.registry import Registry
from asdcore.backend_warnings import backend_warnings

SR = 16000


@pytest.fixture(scope="module")
def registry():
    return Registry()


def noise(path: Path, seconds: float, channels: int = 1, seed: int = 0, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (round(SR * seconds), channels) if channels > 1 else round(SR * seconds)
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, shape).astype(np.float32), SR, subtype=subtype)
    return path


def truncate(path: Path, drop: int = 1000) -> Path:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - drop)
    return path


def own_tree(root: Path, channels: int = 1) -> Path:
    for split in ("train", "test"):
        for i in range(4):
            noise(root / "pump" / split / f"{i}.wav", 0.5, channels, seed=i + 10 * (split == "test"))
    return root


def run_cli(tmp_path: Path, root: Path, **changes) -> subprocess.CompletedProcess:
    config = {"name": "faults", "dataset": {"name": "own", "root": str(root)},
              "frontend": {"name": "raw_spec", "params": {"n_fft": 256, "hop_length": 128, "n_mels": 16}},
              "backends": [{"name": "knn"}], "output": str(tmp_path / "out"), "device": "cpu", **changes}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", "run", str(path),
                           "--no-progress"], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("cache", [True, False])
def test_truncated_stereo_wav_fails_the_run_naming_it(tmp_path, cache):
    root = own_tree(tmp_path / "data", channels=2)
    bad = truncate(root / "pump" / "train" / "1.wav")
    result = run_cli(tmp_path, root, audio_cache=cache)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{bad}: truncated audio file" in output
    assert "Traceback" not in output


def test_read_audio_refuses_a_truncated_stereo_file(tmp_path):
    path = noise(tmp_path / "stereo.wav", 0.5, channels=2)
    assert read_audio(path, SR, channels=2).shape == (SR // 2, 2)
    truncate(path, drop=1001)  # not even a whole frame
    with pytest.raises(AudioError, match=f"{re.escape(str(path))}: truncated audio file"):
        read_audio(path, SR, channels=2)
    with pytest.raises(AudioError, match=f"{re.escape(str(path))}: truncated audio file"):
        duration(path)


@pytest.mark.parametrize("channels", [1, 2])
def test_own_load_and_the_cache_refuse_truncated_and_non_finite_files(registry, tmp_path, channels):
    root = own_tree(tmp_path / "data", channels)
    truncated = truncate(root / "pump" / "train" / "1.wav")
    nan = noise(root / "pump" / "test" / "2.wav", 0.5, channels, subtype="FLOAT")
    wave, _ = sf.read(nan, dtype="float32")
    wave[100] = np.nan
    sf.write(nan, wave, SR, subtype="FLOAT")
    dataset = registry.create("datasets", "own", params={"root": str(root), "clip_seconds": 0.5})
    clips = {split: dataset.clips("pump", split) for split in ("train", "test")}
    for split, path, cause in (("train", truncated, "truncated audio file"),
                               ("test", nan, "NaN or infinite samples")):
        clip = next(c for c in clips[split] if c.path == path)
        with pytest.raises(AudioError, match=f"{re.escape(str(path))}: .*{cause}"):
            dataset.load(clip)
        with pytest.raises(AudioError, match=f"{re.escape(str(path))}: .*{cause}"):
            audio_cache.open_cache(dataset, clips[split], tmp_path / "cache" / split, {"name": "own"},
                                   progress=False)


def silence(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(round(SR * seconds), np.float32), SR)
    return path


def test_short_and_silent_clips_and_machine_types_are_warned_about(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "test"):
        for i in range(4):
            noise(root / "pump" / split / f"{i}.wav", 1.0, seed=i + 10 * (split == "test"))
            silence(root / "quiet" / split / f"{i}.wav")
    short = noise(root / "pump" / "train" / "short.wav", 0.1, seed=7)
    silence(root / "pump" / "test" / "mute.wav")
    result = run_cli(tmp_path, root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = output.splitlines()
    assert [line for line in lines if " is tiled " in line] == [
        f"{short}: a clip of 0.1 s is tiled 10 times to the clip length of 1 s; check the recording, or leave it out"]
    assert sorted(line for line in lines if "silent (all samples 0)" in line) == [
        "machine type quiet: every test clip is silent (all samples 0): quiet/test/0.wav, quiet/test/1.wav, "
        "quiet/test/2.wav and 1 more; its results mean nothing: check the recordings or leave it out of "
        "`dataset.machines`",
        "machine type quiet: every train clip is silent (all samples 0): quiet/train/0.wav, quiet/train/1.wav, "
        "quiet/train/2.wav and 1 more; its results mean nothing: check the recordings or leave it out of "
        "`dataset.machines`",
        "pump/test: 1 of 5 clips are silent (all samples 0): pump/test/mute.wav; check the recordings or remove them",
    ]
    assert "Traceback" not in output


def test_a_reused_cache_warns_again_in_a_new_process(registry, tmp_path, caplog, monkeypatch):
    root = own_tree(tmp_path / "data")
    silence(root / "pump" / "train" / "1.wav")
    short = noise(root / "pump" / "train" / "short.wav", 0.05)
    dataset = registry.create("datasets", "own", params={"root": str(root), "clip_seconds": 0.5})
    clips = dataset.clips("pump", "train")
    for build in range(2):  # built, then reused by a "new process" (nothing warned about yet)
        monkeypatch.setattr(audio_cache, "_warned", set())
        monkeypatch.setattr(audio, "_tiled", set())
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="asdcore"):
            audio_cache.open_cache(dataset, clips, tmp_path / "cache", {"name": "own"}, progress=False)
            audio_cache.open_cache(dataset, clips, tmp_path / "cache", {"name": "own"}, progress=False)
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warned == [f"{short}: a clip of 0.05 s is tiled 10 times to the clip length of 0.5 s; check the "
                          "recording, or leave it out",
                          "pump/train: 1 of 5 clips are silent (all samples 0): pump/train/1.wav; check the recordings "
                          "or remove them"]
        assert any("building" in r.getMessage() for r in caplog.records) == (build == 0)


def test_tiling_is_warned_about_beyond_max_tiles_once_per_file(caplog, monkeypatch):
    monkeypatch.setattr(audio, "_tiled", set())
    with caplog.at_level(logging.WARNING, logger="asdcore"):
        warn_tiling("a.wav", 1000, 1000 * MAX_TILES, SR)  # exactly MAX_TILES repetitions: no warning
        for _ in range(3):
            warn_tiling("b.wav", 1000, 1000 * MAX_TILES + 1, SR)
    assert [r.getMessage() for r in caplog.records] == [
        f"b.wav: a clip of 0.0625 s is tiled {MAX_TILES + 1} times to the clip length of 0.25 s; check the "
        "recording, or leave it out"]


def test_the_clip_length_minimum_names_the_frontend_the_minimum_and_the_remedy():
    require_clip_samples("f", 16000, 16000, SR, "use a smaller `frontend.params.n_fft`")
    with pytest.raises(ConfigError) as info:
        require_clip_samples("f", 16001, 8000, SR, "use a smaller `frontend.params.n_fft`")
    assert str(info.value) == (
        "frontend 'f' needs clips of at least 16001 samples (1 s at 16000 Hz), but the clip length is 8000 samples "
        "(0.5 s); use longer clips, set `dataset.clip_seconds` to at least 1.01 where the dataset has it (shorter "
        "clips are tiled), or use a smaller `frontend.params.n_fft`")


def embeddings(n: int) -> FeatureSet:
    return FeatureSet(embedding=np.ones((n, 4), np.float32), path=[f"{i}.wav" for i in range(n)], section=[0] * n,
                      domain=[0] * n, is_anomaly=[0] * n, attribute=[""] * n, frontend_score=None)


def test_backend_warnings_become_one_asdcore_warning(registry, caplog):
    backend = registry.create("backends", "kmeans", params={"n_clusters": 4, "metric": "euclidean"})
    with warnings.catch_warnings(record=True) as leaked, caplog.at_level(logging.WARNING, logger="asdcore"):
        warnings.simplefilter("always")
        with backend_warnings("pump", "kmeans"):
            for _ in range(2):
                backend.fit(embeddings(10))  # identical embeddings: fewer distinct clusters than asked
                backend.score(embeddings(3))
            warnings.warn("not of scikit-learn", UserWarning)
    assert [str(w.message) for w in leaked] == ["not of scikit-learn"]
    assert [r.getMessage() for r in caplog.records] == [
        "backend 'kmeans' on pump: ConvergenceWarning: Number of distinct clusters (1) found smaller than "
        "n_clusters (4). Possibly due to duplicate points in X."]


def test_backend_warnings_are_logged_when_the_backend_fails(caplog):
    from sklearn.exceptions import ConvergenceWarning

    with caplog.at_level(logging.WARNING, logger="asdcore"), pytest.raises(ValueError, match="failed"):
        with backend_warnings("fan", "mine"):
            warnings.warn("did not converge", ConvergenceWarning)
            raise ValueError("failed")
    assert [r.getMessage() for r in caplog.records] == ["backend 'mine' on fan: ConvergenceWarning: did not converge"]
